"""Times at the calendar's edges, on every field that carries one.

`0001-01-01T00:00:00+14:00` is a valid time in its own offset whose UTC is in year 0, and
`9999-12-31T23:59:59-14:00` one whose UTC is in year 10000: neither has a UTC spelling, so every
route refuses them with a 400 naming the field — before a streamed export sends its first byte.
The first and last instants that do have one (`0001-01-01T00:00:00Z`,
`9999-12-31T23:59:59.999999Z`) work everywhere.

The fields are read from docs/openapi.json, so a new date-time field fails here until it has a
request template below.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.cli import app as cli
from tests.api.decision_helpers import assert_error, row_counts, services
from tests.conftest import Backend, wait_until
from tests.rewards.synthetic import write_log

SPEC: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[2] / "docs" / "openapi.json").read_text(encoding="utf-8")
)
NO_UTC = ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00")
FIRST, LAST = "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z"
WINDOW = {"startTime": "2026-11-01T00:00:00Z", "endTime": "2026-11-02T00:00:00Z"}

# A valid request of each body schema that carries a time; the time under test replaces one key.
BODIES: dict[str, dict[str, Any]] = {
    "EvaluationCreate": {"surface": "personalizer"},
    "PolicySearchCreate": {"surface": "personalizer"},
    "Signal": {"type": "mood", "value": 3},
    "EvaluationContract": {"name": "edge", **WINDOW},
    "FeatureImportanceContract": {"name": "edge", **WINDOW},
    "ServiceConfigurationUpdate": {},  # the current configuration, read from the server
}

# The other required query parameters of a route whose query carries a time.
QUERIES: dict[str, dict[str, str]] = {
    "/v1/diagnostics": {"surface": "personalizer"},
}


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = SPEC["components"]["schemas"][name]
    return schema


def _is_date_time(schema: dict[str, Any]) -> bool:
    schema = _resolve(schema)
    branches = schema.get("anyOf", []) + schema.get("oneOf", [])
    return schema.get("format") == "date-time" or any(_is_date_time(b) for b in branches)


def date_time_fields() -> Iterator[tuple[str, str, str, str | None, str]]:
    """(method, path, where, body schema, field) for every request time in the contract."""
    for path, item in SPEC["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                if _is_date_time(parameter.get("schema", {})):
                    yield method.upper(), path, parameter["in"], None, parameter["name"]
            content = operation.get("requestBody", {}).get("content", {})
            ref = content.get("application/json", {}).get("schema", {}).get("$ref")
            if ref is None:
                continue
            name = ref.rsplit("/", 1)[-1]
            for field, schema in _resolve({"$ref": ref}).get("properties", {}).items():
                if _is_date_time(schema):
                    yield method.upper(), path, "body", name, field


FIELDS = sorted(set(date_time_fields()), key=str)


def test_the_contract_has_the_time_fields_this_file_knows() -> None:
    bodies = {schema for *_, schema, _ in FIELDS if schema is not None}
    assert bodies <= set(BODIES), "add a request template to BODIES"
    for _, path, where, _, _ in FIELDS:
        required = {
            parameter["name"]
            for operation in SPEC["paths"][path].values()
            for parameter in operation.get("parameters", [])
            if parameter.get("required") and parameter["in"] == "query"
        } - {"api-version"}
        assert where != "query" or required <= set(QUERIES.get(path, {})), (
            f"add {path}'s required query parameters to QUERIES"
        )
    queries = {(path, field) for _, path, where, _, field in FIELDS if where == "query"}
    assert {("/v1/logs/export", "start"), ("/v1/logs/export", "end")} <= queries
    assert len(FIELDS) >= 19  # both Personalizer forms, the analyst routes and signals


def _request(
    client: TestClient,
    method: str,
    path: str,
    where: str,
    schema: str | None,
    field: str,
    value: str,
) -> Any:
    url = path.replace("{feature_importance_id}", "edge").replace("{evaluation_id}", "edge")
    query = (
        {"api-version": "2022-09-01-preview"}
        if not url.startswith(("/v1", "/personalizer/v1.0"))
        else {}
    )
    if where == "query":
        return client.request(method, url, params={**query, **QUERIES.get(path, {}), field: value})
    if schema == "ServiceConfigurationUpdate":
        body = client.get("/personalizer/v1.0/configurations/service").json()
    else:
        body = dict(BODIES[schema or ""])
    body[field] = value
    return client.request(method, url, params=query, json=body)


def test_a_time_with_no_utc_spelling_is_a_400_naming_the_field(client: TestClient) -> None:
    write_log(services(client).store, 20)
    before = row_counts(client)
    refused = 0
    for method, path, where, schema, field in FIELDS:
        for value in NO_UTC:
            reply = _request(client, method, path, where, schema, field, value)
            assert reply.status_code == 400, (method, path, field, value, reply.text)
            error = reply.json()["error"]
            assert error["target"] == field, (method, path, error)
            assert error["message"] == f"`{field}` is out of range in UTC (got {value})", error
            refused += 1
    assert refused == 2 * len(FIELDS)
    assert row_counts(client) == before


@pytest.mark.parametrize("value", NO_UTC)
@pytest.mark.parametrize("format", ["dsjson", "parquet"])
def test_an_export_refuses_before_its_first_byte(
    client: TestClient, format: str, value: str
) -> None:
    write_log(services(client).store, 20)
    for field in ("start", "end"):
        with client.stream(
            "GET", "/v1/logs/export", params={"format": format, field: value}
        ) as reply:
            assert reply.headers["content-type"] == "application/json"
            body = json.loads(reply.read())
        assert reply.status_code == 400
        assert body["error"]["target"] == field


def test_the_dashboard_form_refuses_a_time_with_no_utc_spelling(client: TestClient) -> None:
    for field in ("start", "end"):
        for value in NO_UTC:
            reply = client.get("/dashboards/analysis", params={"surface": "tips", field: value})
            assert_error(reply, 400, "BadRequest", target=field, match="out of range in UTC")


def test_the_first_and_last_instants_work_on_every_analyst_route(client: TestClient) -> None:
    write_log(services(client).store, 40)
    window = {"start": FIRST, "end": LAST}
    lines = client.get("/v1/logs/export", params=window)
    assert lines.status_code == 200, lines.text
    assert len(lines.text.splitlines()) == 40
    table = client.get("/v1/logs/export", params={**window, "format": "parquet"})
    assert table.status_code == 200
    assert pq.read_table(io.BytesIO(table.content)).num_rows == 40
    # In range in UTC, whatever the offset: 0001-01-01T14:00Z.
    late_start = client.get("/v1/logs/export", params={"start": "0001-01-01T00:00:00-14:00"})
    assert len(late_start.text.splitlines()) == 40

    created = client.post("/v1/evaluations", json={"surface": "personalizer", **window})
    assert created.status_code == 201, created.text
    assert created.json()["request"]["start"] == FIRST
    search = client.post(
        "/v1/policy-searches",
        json={
            "surface": "personalizer",
            **window,
            "explorations": ["epsilon=0.1"],
            "interactions": [[]],
        },
    )
    assert search.status_code == 201, search.text
    personalizer = client.post(
        "/personalizer/v1.0/evaluations",
        json={"name": "edges", "startTime": FIRST, "endTime": LAST},
    )
    assert personalizer.status_code == 201, personalizer.text

    def finished(url: str, key: str, running: str) -> Any:
        body = client.get(url).json()
        return body if body[key] != running else None

    evaluation = wait_until(
        lambda: finished(f"/v1/evaluations/{created.json()['id']}", "status", "running"), 30
    )
    assert evaluation["status"] == "succeeded", evaluation["error"]
    assert evaluation["result"]["n"] == 40
    searched = wait_until(
        lambda: finished(f"/v1/policy-searches/{search.json()['id']}", "status", "running"), 60
    )
    assert searched["status"] == "succeeded", searched
    evaluated = wait_until(
        lambda: finished(
            f"/personalizer/v1.0/evaluations/{personalizer.json()['id']}", "status", "Running"
        ),
        60,
    )
    assert evaluated["status"] == "Succeeded", evaluated


def test_cli_date_options_refuse_a_time_with_no_utc_spelling(
    backend: Backend, tmp_path: Path
) -> None:
    if backend.name != "embedded":
        pytest.skip("the options are refused before any database is opened")
    runner = CliRunner()
    env = {"OO_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}"}
    for command in (["logs", "export"], ["evaluate"], ["search-policies"]):
        for option, value in (("--start", NO_UTC[0]), ("--end", NO_UTC[1])):
            reply = runner.invoke(cli, [*command, option, value], env=env)
            assert reply.exit_code == 2, (command, reply.output)
            assert option in reply.output and "out of range in UTC" in reply.output, reply.output
