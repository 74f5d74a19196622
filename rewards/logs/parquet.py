"""Decisions with their rewards as Parquet, for notebooks: the DSJSON export's rows, columnar.

The same decisions as :func:`rewards.logs.dsjson_export.export_lines` (settled ones only,
oldest first, the same labels), one row each, written one row group at a time with pyarrow so
that memory holds one row group whatever the size of the log. Columns:

``event_id``, ``timestamp`` (UTC, microseconds), ``surface``, ``policy``, ``model_key``,
``model_version``, ``experiment``, ``arm``
    The decision as logged.
``actions`` (list<string>), ``pmf`` (list<double>)
    Candidate ids and their probabilities, in the logged candidate order.
``chosen_index`` (0-based, DSJSON's ``_labelIndex``), ``chosen_action`` (its id),
``propensity`` (``_label_probability``), ``reward``, ``cost`` (``_label_cost`` = −reward),
``skip_learn`` (a deferred decision never activated; reward 0 and never learned)
    The label.
``context``, ``action_features`` (list<string>)
    Feature objects as JSON text (the context's list, and each candidate's list): nested
    features do not fit one Arrow schema across decisions, and notebooks parse what they need.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from bandit.store import LoggedDecision, Store
from rewards.logs.dsjson_export import label

SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("surface", pa.string()),
        ("policy", pa.string()),
        ("model_key", pa.string()),
        ("model_version", pa.int64()),
        ("experiment", pa.string()),
        ("arm", pa.string()),
        ("actions", pa.list_(pa.string())),
        ("pmf", pa.list_(pa.float64())),
        ("chosen_index", pa.int32()),
        ("chosen_action", pa.string()),
        ("propensity", pa.float64()),
        ("reward", pa.float64()),
        ("cost", pa.float64()),
        ("skip_learn", pa.bool_()),
        ("context", pa.string()),
        ("action_features", pa.list_(pa.string())),
    ]
)
ROW_GROUP = 5_000
"""Rows per row group: what an export holds in memory at once (see bench/bench_dsjson.py)."""
MEDIA_TYPE = "application/vnd.apache.parquet"


_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
"""Compact JSON text; one encoder for every call (`json.dumps` with options builds one each)."""


class _Columns:
    """One row group being gathered, column by column."""

    def __init__(self) -> None:
        self.data: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}

    def __len__(self) -> int:
        return len(self.data["event_id"])

    def add(self, logged: LoggedDecision, reward: float, skip_learn: bool) -> None:
        d, c = logged.decision, self.data
        c["event_id"].append(d.event_id)
        c["timestamp"].append(d.created_at)
        c["surface"].append(d.surface)
        c["policy"].append(d.policy)
        c["model_key"].append(d.model_key)
        c["model_version"].append(d.model_version)
        c["experiment"].append(d.experiment)
        c["arm"].append(d.arm)
        c["actions"].append([a.id for a in d.actions])
        c["pmf"].append(list(d.pmf))
        c["chosen_index"].append(d.chosen_index)
        c["chosen_action"].append(d.actions[d.chosen_index].id)
        c["propensity"].append(d.propensity)
        c["reward"].append(reward)
        c["cost"].append(-reward if reward else 0.0)
        c["skip_learn"].append(skip_learn)
        c["context"].append(_json(d.context))
        c["action_features"].append([_json(a.features) for a in d.actions])

    def table(self) -> pa.Table:
        return pa.Table.from_pydict(self.data, schema=SCHEMA)


def tables(
    store: Store,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    surface: str | None = None,
    batch: int = 1000,
    row_group: int = ROW_GROUP,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[pa.Table]:
    """Settled decisions of [start, end) as Arrow tables of `row_group` rows (the last fewer).

    `on_progress` receives the number of decisions read after each batch of `batch`.
    """
    if row_group < 1:
        raise ValueError(f"`row_group` must be at least 1 (got {row_group})")
    columns = _Columns()
    read = 0
    for logged in store.iter_logged(start=start, end=end, surface=surface, batch=batch):
        read += 1
        settled = label(logged)
        if settled is not None:
            columns.add(logged, *settled)
            if len(columns) >= row_group:
                yield columns.table()
                columns = _Columns()
        if on_progress is not None and read % batch == 0:
            on_progress(read)
    if len(columns):
        yield columns.table()
    if on_progress is not None:
        on_progress(read)


def write_parquet(
    store: Store,
    sink: str | BinaryIO,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    surface: str | None = None,
    batch: int = 1000,
    row_group: int = ROW_GROUP,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Write the settled decisions of [start, end) to `sink`, a row group at a time; returns the
    rows written. An empty range still makes a readable file (the schema, no rows)."""
    written = 0
    with pq.ParquetWriter(sink, SCHEMA, compression="zstd") as writer:
        for table in tables(
            store,
            start=start,
            end=end,
            surface=surface,
            batch=batch,
            row_group=row_group,
            on_progress=on_progress,
        ):
            writer.write_table(table)
            written += table.num_rows
        if not written:
            writer.write_table(_Columns().table())
    return written


class _Chunks:
    """A write-only sink whose bytes are taken away as they come (see `parquet_chunks`)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def parquet_chunks(
    store: Store,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    surface: str | None = None,
    batch: int = 1000,
    row_group: int = ROW_GROUP,
) -> Iterator[bytes]:
    """The file :func:`write_parquet` writes, as bytes handed on after every row group, so a
    response streams it with one row group in memory (plus the footer's metadata)."""
    sink = _Chunks()
    with pq.ParquetWriter(sink, SCHEMA, compression="zstd") as writer:
        written = 0
        for table in tables(
            store, start=start, end=end, surface=surface, batch=batch, row_group=row_group
        ):
            writer.write_table(table)
            written += table.num_rows
            yield sink.take()
        if not written:
            writer.write_table(_Columns().table())
    yield sink.take()
