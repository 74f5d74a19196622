"""`GET /v1/logs/export?format=parquet` and `oo logs export --format parquet`: the DSJSON
export's decisions, columnar, read back with pyarrow and compared row by row."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.cli import app as cli
from bandit.store import Store
from rewards.logs.parquet import MEDIA_TYPE, SCHEMA, parquet_chunks
from tests.api.decision_helpers import services
from tests.conftest import Backend
from tests.rewards.synthetic import START, decisions, write_log
from tests.schema import migrated


def _log(store: Store) -> None:
    """250 learned decisions, one deferred and never activated, one whose window is open."""
    write_log(store, 250, seed=31)
    deferred, _ = next(decisions(1, seed=32, start=START.replace(year=2027)))
    store.insert_decision(replace(deferred, event_id="deferred", activated_at=None))
    write_log(store, 1, seed=33, learned=False, start=START.replace(year=2028))


def _same_rows(table_rows: list[dict[str, Any]], dsjson: list[dict[str, Any]]) -> None:
    assert [r["event_id"] for r in table_rows] == [d["EventId"] for d in dsjson]
    for row, record in zip(table_rows, dsjson, strict=True):
        multi = record["c"]["_multi"]
        assert row["actions"] == [m["_tag"] for m in multi]
        assert row["chosen_index"] == record["_labelIndex"]
        assert row["chosen_action"] == multi[record["_labelIndex"]]["_tag"]
        assert row["propensity"] == record["_label_probability"]
        assert row["cost"] == record["_label_cost"]
        assert row["reward"] == (-record["_label_cost"] if record["_label_cost"] else 0.0)
        assert row["skip_learn"] == record.get("_skipLearn", False)
        # DSJSON lists the chosen action first (`a`, `p`); Parquet keeps the logged order.
        assert dict(zip(record["a"], record["p"], strict=True)) == {
            i + 1: p for i, p in enumerate(row["pmf"])
        }
        assert row["timestamp"].strftime("%Y-%m-%dT%H:%M:%S.%fZ") == record["Timestamp"]


def test_parquet_export_matches_the_dsjson_export_row_by_row(client: TestClient) -> None:
    _log(services(client).store)
    dsjson = client.get("/v1/logs/export", params={"format": "dsjson"})
    records = [json.loads(line) for line in dsjson.text.splitlines()]
    assert len(records) == 251  # the open decision is left out of both

    reply = client.get("/v1/logs/export", params={"format": "parquet"})
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == MEDIA_TYPE
    table = pq.read_table(io.BytesIO(reply.content))
    assert table.schema.equals(SCHEMA)
    rows = table.to_pylist()
    _same_rows(rows, records)
    assert rows[-1]["event_id"] == "deferred" and rows[-1]["skip_learn"] is True
    assert json.loads(rows[0]["context"])[0]["user"]["group"] in ("g0", "g1")


def test_the_stream_hands_on_every_row_group_as_it_is_written(client: TestClient) -> None:
    store = services(client).store
    _log(store)
    chunks = parquet_chunks(store, row_group=40, batch=25)
    first = next(chunks)
    assert first.startswith(b"PAR1")  # the header and the first row group, before the rest
    rest = list(chunks)
    file = pq.ParquetFile(io.BytesIO(first + b"".join(rest)))
    assert file.metadata.num_rows == 251
    assert file.metadata.num_row_groups == 7  # 6 of 40 and one of 11
    assert len(rest) == 7  # one chunk per further row group, then the footer


def test_an_empty_range_is_a_readable_empty_file(client: TestClient) -> None:
    reply = client.get(
        "/v1/logs/export", params={"format": "parquet", "start": "2030-01-01T00:00:00Z"}
    )
    assert reply.status_code == 200
    table = pq.read_table(io.BytesIO(reply.content))
    assert table.num_rows == 0 and table.schema.equals(SCHEMA)


def test_an_unknown_format_names_the_field(client: TestClient) -> None:
    reply = client.get("/v1/logs/export", params={"format": "csv"})
    assert reply.status_code == 400
    assert reply.json()["error"]["target"] == "format"


def test_cli_exports_parquet(backend: Backend, tmp_path: Path) -> None:
    if backend.name != "embedded":
        pytest.skip("the CLI reads whichever database it is given; one backend is enough")
    url = migrated(f"sqlite:///{tmp_path / 'parquet.sqlite3'}")
    store = Store.connect(url, pool_size=1)
    _log(store)
    store.engine.dispose()
    runner = CliRunner()
    out, lines = tmp_path / "log.parquet", tmp_path / "log.json"
    common = ["logs", "export", "--database-url", url]
    exported = runner.invoke(cli, [*common, "--format", "parquet", "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    assert "251 Parquet rows written" in exported.output
    assert runner.invoke(cli, [*common, "--out", str(lines)]).exit_code == 0
    records = [json.loads(line) for line in lines.read_text().splitlines()]
    _same_rows(pq.read_table(out).to_pylist(), records)

    bad = runner.invoke(cli, [*common, "--format", "csv"])
    assert bad.exit_code == 2
    assert "must be dsjson or parquet" in bad.output
