"""`POST /v1/evaluations` (jobs with progress, results, cancellation) and `oo evaluate`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.cli import app as cli
from bandit.store import Store
from tests.api.decision_helpers import services
from tests.conftest import Backend, wait_until
from tests.rewards.synthetic import START, write_log
from tests.schema import migrated

POLICY_KEYS = {"name", "kind", "estimates", "diagnostics", "verdict"}


def _finished(client: TestClient, evaluation_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"/v1/evaluations/{evaluation_id}").json()
        return body if body["status"] != "running" else None

    result: dict[str, Any] = wait_until(done, timeout=30)
    return result


def test_an_evaluation_runs_in_the_background_and_reports_its_result(client: TestClient) -> None:
    write_log(services(client).store, 600, seed=5)
    reply = client.post(
        "/v1/evaluations",
        json={"surface": "personalizer", "policies": ["baseline", "random", "vw-epsilon"]},
    )
    assert reply.status_code == 201, reply.text
    job = reply.json()
    assert job["status"] in ("running", "succeeded")
    assert job["request"]["policies"] == ["baseline", "random", "vw-epsilon"]

    body = _finished(client, job["id"])
    assert body["status"] == "succeeded", body["error"]
    assert body["done"] == body["total"] == 600
    result = body["result"]
    assert result["n"] == 600
    names = [p["name"] for p in result["policies"]]
    assert names == ["online", "baseline", "random", "vw-epsilon"]
    for policy in result["policies"]:
        assert set(policy) == POLICY_KEYS
        assert [e["estimator"] for e in policy["estimates"]] == ["ips", "snips", "dr"]
        for estimate in policy["estimates"]:
            assert len(estimate["intervals"]) == 2
            assert estimate["intervals"][0]["method"] == "gaussian"
        assert policy["diagnostics"]["ess"] > 0
    assert result["policies"][0]["verdict"]["recommended"] is None
    assert "vw-epsilon" in result["recommended"]

    listed = client.get("/v1/evaluations").json()
    assert [e["id"] for e in listed] == [job["id"]]


def test_a_time_range_selects_the_decisions(client: TestClient) -> None:
    write_log(services(client).store, 100, seed=6)
    reply = client.post(
        "/v1/evaluations",
        json={
            "surface": "personalizer",
            "start": "2026-11-01T00:00:10",  # naive: UTC
            "end": "2026-11-01T00:00:40Z",
            "policies": [],
        },
    )
    assert reply.status_code == 201, reply.text
    body = _finished(client, reply.json()["id"])
    assert body["result"]["n"] == 30
    assert [p["name"] for p in body["result"]["policies"]] == ["online"]


@pytest.mark.parametrize(
    ("body", "target", "message"),
    [
        ({"surface": "personalizer", "policies": ["nope"]}, "policies", "unknown policy 'nope'"),
        (
            {"surface": "personalizer", "policies": ["most-urgent-todo"]},
            "policies",
            "is a rule policy",
        ),
        (
            {"surface": "personalizer", "start": "2026-11-02", "end": "2026-11-01"},
            "start",
            "must be before `end`",
        ),
        ({"surface": "moon"}, "surface", "surface"),
        ({"surface": "tips", "extra": 1}, "extra", "extra"),
    ],
)
def test_bad_requests_name_the_field(
    client: TestClient, body: dict[str, Any], target: str, message: str
) -> None:
    reply = client.post("/v1/evaluations", json=body)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["target"] == target
    assert message in error["message"]


def test_delete_cancels_and_forgets(client: TestClient) -> None:
    write_log(services(client).store, 50, seed=8)
    job = client.post("/v1/evaluations", json={"surface": "personalizer"}).json()
    assert client.delete(f"/v1/evaluations/{job['id']}").status_code == 204
    missing = client.get(f"/v1/evaluations/{job['id']}")
    assert missing.status_code == 404
    assert missing.json()["error"]["target"] == "id"
    assert client.delete(f"/v1/evaluations/{job['id']}").status_code == 404


def test_cli_evaluates_the_database_as_json_and_as_a_table(
    backend: Backend, tmp_path: Path
) -> None:
    if backend.name != "embedded":
        pytest.skip("the CLI reads whichever database it is given; one backend is enough")
    url = migrated(f"sqlite:///{tmp_path / 'cli.sqlite3'}")
    store = Store.connect(url, pool_size=1)
    write_log(store, 300, seed=9)
    store.engine.dispose()
    runner = CliRunner()
    env = {"OO_DATABASE_URL": url}

    reply = runner.invoke(
        cli,
        ["evaluate", "--surface", "personalizer", "--policy", "baseline", "--json"],
        env=env,
    )
    assert reply.exit_code == 0, reply.output
    body = json.loads(reply.stdout)
    assert body["n"] == 300
    assert [p["name"] for p in body["policies"]] == ["online", "baseline"]
    assert set(body["policies"][1]) == POLICY_KEYS

    window = runner.invoke(
        cli,
        ["evaluate", "--start", (START.isoformat()), "--end", "2026-11-01T00:01:00Z", "--json"],
        env=env,
    )
    assert window.exit_code == 0, window.output
    assert json.loads(window.stdout)["n"] == 60

    table = runner.invoke(cli, ["evaluate", "--policy", "random"], env=env)
    assert table.exit_code == 0, table.output
    assert "online" in table.stdout and "reference" in table.stdout
    assert "CR " in table.stdout and "EB " in table.stdout

    bad = runner.invoke(cli, ["evaluate", "--policy", "nope"], env=env)
    assert bad.exit_code == 2
    assert "unknown policy 'nope'" in bad.output


def test_cli_evaluates_an_exported_dsjson_log(backend: Backend, tmp_path: Path) -> None:
    if backend.name != "embedded":
        pytest.skip("files need no database backend")
    url = migrated(f"sqlite:///{tmp_path / 'dsjson.sqlite3'}")
    store = Store.connect(url, pool_size=1)
    rewards = write_log(store, 200, seed=10)
    store.engine.dispose()
    runner = CliRunner()
    log = tmp_path / "log.json"
    exported = runner.invoke(cli, ["logs", "export", "--out", str(log), "--database-url", url])
    assert exported.exit_code == 0, exported.output

    reply = runner.invoke(
        cli,
        ["evaluate", "--log", str(log), "--policy", "vw-epsilon", "--json", "--database-url", url],
    )
    assert reply.exit_code == 0, reply.output
    body = json.loads(reply.stdout)
    assert body["n"] == 200
    online = body["policies"][0]["estimates"][0]
    assert online["value"] == pytest.approx(sum(rewards) / len(rewards))
