"""DSJSON export and import throughput and peak memory, beside plain-JSON baselines in the same run.

    infra/scripts/with-services .venv/bin/python bench/bench_dsjson.py --events 200000

Seeds N learned decisions (10 candidates each) into a fresh PostgreSQL schema with one COPY,
then measures:

- export: `rewards.dsjson.export_lines` (one streamed query, DSJSON lines encoded from the
  stored JSON text) into a file, beside a baseline that streams the same rows with one
  server-side cursor and `json.dumps` each row's columns as they come;
- import: `rewards.dsjson.read_dsjson` over the exported file, beside `json.loads` of each line;
- Parquet: `rewards.parquet.write_parquet` (row groups of 5,000, zstd) of the same decisions,
  and reading it back one record batch at a time with pyarrow.

Each phase runs in a fresh process; its peak memory is the growth of that process's peak RSS
(VmHWM) over its RSS when the phase starts. The export is measured once more after adding an
index on decisions (created_at, event_id), which the schema does not have (the export's order).
Figures only; nothing here passes or fails on time.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyarrow.parquet as pq
import sqlalchemy as sa

from bandit.events import Action, Decision
from bandit.store import Store
from bandit.store.rows import _JSON_COLUMNS, _row, decisions
from bench._harness import database_url, fresh_schema, table
from rewards.dsjson import export_lines, read_dsjson
from rewards.parquet import write_parquet

N_ACTIONS = 10
CHUNK = 5000


def _decision(i: int, start: datetime) -> Decision:
    actions = tuple(
        Action(
            f"tip-{(i + k) % 60}",
            [{"tip": {"kind": "todo" if k % 2 else "advice", "effort": k % 3, "tag": ["a", "b"]}}],
        )
        for k in range(N_ACTIONS)
    )
    pmf = tuple([0.91 if k == 0 else 0.01 for k in range(N_ACTIONS)])
    at = start + timedelta(milliseconds=i)
    return Decision(
        event_id=f"e{i:09d}",
        surface="tips" if i % 4 else "personalizer",
        principal=f"p{i % 1000}",
        context=[
            {"clock": {"part": "morning", "hour": f"h{i % 24:02d}", "weekend": i % 7 > 4}},
            {"mood": {"level": i % 5}, "energy": {"level": "unknown"}},
        ],
        actions=actions,
        pmf=pmf,
        chosen_index=i % N_ACTIONS,
        policy="vw-epsilon",
        model_key="tips:vw-epsilon",
        model_version=1,
        created_at=at,
        activated_at=at,
        example=("shared |clock part=morning", *(f"|tip id=t{k}" for k in range(N_ACTIONS))),
    )


def insert(store: Store, n: int, start: datetime) -> float:
    """Seed `n` learned decisions with one COPY (one transaction); returns the seconds taken."""
    extra = {"learn_seq": 0, "learned_reward": 0.0, "learned_at": start}
    columns = [*_row(_decision(0, start)), *extra]
    json_columns = [c in _JSON_COLUMNS for c in columns]
    sql = f"COPY decisions ({', '.join(columns)}) FROM STDIN"
    began = time.perf_counter()
    with store.raw() as conn, conn.cursor() as cursor, cursor.copy(sql) as copy:
        for i in range(n):
            row = _row(_decision(i, start))
            row.update(learn_seq=i + 1, learned_reward=float(i % 3 == 0), learned_at=start)
            copy.write_row(
                [json.dumps(v) if j else v for v, j in zip(row.values(), json_columns, strict=True)]
            )
            if (i + 1) % CHUNK == 0:
                print(f"\rinserted {i + 1:,}/{n:,}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return time.perf_counter() - began


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as handle:
        for entry in handle:
            if entry.startswith(field):
                return int(entry.split()[1]) / 1024
    return 0.0


def baseline_rows(store: Store) -> Iterator[dict[str, Any]]:
    columns = [c for c in decisions.c if c.name != "vw_example"]
    query = sa.select(*columns).order_by(decisions.c.created_at, decisions.c.event_id)
    with store.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=2000).execute(query)
        for row in result:
            yield dict(row._mapping)


def export(store: Store, path: Path, batch: int) -> int:
    n = 0
    with open(path, "w", encoding="utf-8") as out:
        for line in export_lines(store, batch=batch):
            out.write(line)
            n += 1
    return n


def export_baseline(store: Store, path: Path, batch: int) -> int:
    n = 0
    with open(path.with_suffix(".baseline"), "w", encoding="utf-8") as out:
        for row in baseline_rows(store):
            out.write(json.dumps(row, default=str) + "\n")
            n += 1
    return n


def import_(store: Store, path: Path, batch: int) -> int:
    with open(path, encoding="utf-8") as handle:
        return sum(1 for _ in read_dsjson(handle))


def import_baseline(store: Store, path: Path, batch: int) -> int:
    with open(path, encoding="utf-8") as handle:
        return sum(1 for line in handle if json.loads(line))


def export_parquet(store: Store, path: Path, batch: int) -> int:
    return write_parquet(store, str(path.with_suffix(".parquet")), batch=batch)


def import_parquet(store: Store, path: Path, batch: int) -> int:
    file = pq.ParquetFile(path.with_suffix(".parquet"))
    return sum(b.num_rows for b in file.iter_batches(batch_size=batch))


PHASES: dict[str, Callable[[Store, Path, int], int]] = {
    "export baseline: one cursor, json.dumps of raw rows": export_baseline,
    "export: export_lines (DSJSON)": export,
    "import baseline: json.loads per line": import_baseline,
    "import: read_dsjson (validated ImportedEvent)": import_,
    "export: write_parquet (row groups of 5k, zstd)": export_parquet,
    "import: pyarrow iter_batches of the Parquet file": import_parquet,
}


def run_phase(name: str, url: str, path: Path, batch: int) -> tuple[int, float, float]:
    """(rows, seconds, peak RSS growth in MB) of one phase, in a fresh process."""
    store = Store.connect(url, pool_size=1)
    base = _status_mb("VmRSS:")
    began = time.perf_counter()
    rows = PHASES[name](store, path, batch)
    seconds = time.perf_counter() - began
    store.engine.dispose()
    return rows, seconds, _status_mb("VmHWM:") - base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument(
        "--no-parquet", action="store_true", help="DSJSON phases only (Parquet is the slowest)"
    )
    args = parser.parse_args()

    url = fresh_schema(database_url())
    store = Store.connect(url, pool_size=2)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    inserted = insert(store, args.events, start)

    work = Path(tempfile.mkdtemp(prefix="bench-dsjson-"))
    path = work / "export.dsjson"
    spawn = multiprocessing.get_context("spawn")
    results: list[tuple[str, tuple[int, float, float]]] = []

    def measure(label: str, phase: str) -> None:
        with ProcessPoolExecutor(1, mp_context=spawn) as pool:
            results.append((label, pool.submit(run_phase, phase, url, path, args.batch).result()))
        print(f"{label}: done", file=sys.stderr)

    for phase in PHASES:
        if not (args.no_parquet and "arquet" in phase):
            measure(phase, phase)
    with store.engine.begin() as conn:
        conn.execute(sa.text("CREATE INDEX ix_bench_created ON decisions (created_at, event_id)"))
    measure(
        "export, with an index on (created_at, event_id)",
        "export: export_lines (DSJSON)",
    )

    size = path.stat().st_size / 1e6
    parquet = path.with_suffix(".parquet")
    parquet_size = (
        f"Parquet file {parquet.stat().st_size / 1e6:,.1f} MB; " if parquet.exists() else ""
    )
    rows = [
        [name, f"{n:,}", f"{seconds:.1f}", f"{n / seconds:,.0f}", f"{peak:.1f}"]
        for name, (n, seconds, peak) in results
    ]
    print(
        f"\n{args.events:,} decisions, {N_ACTIONS} candidates each; COPY seeding "
        f"{args.events / inserted:,.0f} rows/s; DSJSON file {size:,.0f} MB "
        f"({size * 1e6 / args.events:,.0f} B/line); {parquet_size}"
        f"batch {args.batch}; "
        "peak memory = growth of peak RSS over RSS at the start of the phase, fresh process\n"
    )
    print(table(rows, ["phase", "rows", "seconds", "rows/s", "peak RSS growth MB"]))
    for leftover in work.iterdir():
        leftover.unlink()
    work.rmdir()
    store.engine.dispose()


if __name__ == "__main__":
    main()
