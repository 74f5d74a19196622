"""`POST /v1/policy-searches` (jobs, progress, result, cancel, promote) and `oo search-policies`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.cli import app as cli
from bandit.events import utcnow
from bandit.store import Store
from tests.api.decision_helpers import services
from tests.conftest import Backend, wait_until
from tests.rewards.synthetic import write_log as synthetic_log
from tests.schema import migrated

# The synthetic log rewards each group's favourite candidate: only `-q ::` can learn it.
GRID = {
    "surface": "personalizer",
    "explorations": ["epsilon=0.05"],
    "interactions": [[], ["::"]],
    "learning_rates": [None],
    "cb_types": ["mtr"],
}


def write_log(store: Store, n: int, *, seed: int) -> None:
    """The synthetic log, dated from now: inside the reward window, so the app's learner does
    not settle the decisions with the default reward before the log marks them learned."""
    synthetic_log(store, n, seed=seed, start=utcnow())


def _finished(client: TestClient, search_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"/v1/policy-searches/{search_id}").json()
        return body if body["status"] != "running" else None

    result: dict[str, Any] = wait_until(done, timeout=60)
    return result


def test_a_search_finds_the_winner_and_promotes_it_to_a_policy_and_a_draft_arm(
    client: TestClient,
) -> None:
    write_log(services(client).store, 2000, seed=21)
    reply = client.post("/v1/policy-searches", json=GRID)
    assert reply.status_code == 201, reply.text
    body = _finished(client, reply.json()["id"])
    assert body["status"] == "succeeded", body["error"]
    assert body["candidates_done"] == body["candidates_planned"] == 2
    assert body["done"] == body["total"] == 4000
    result = body["result"]
    assert result["stopped"] == "exhausted" and result["n"] == 2000
    by_index = {t["candidate"]["index"]: t for t in result["trials"]}
    winner = by_index[result["winner"]]
    assert winner["candidate"]["args"] == "--cb_explore_adf --epsilon 0.05 --cb_type mtr -q ::"
    assert winner["result"]["verdict"]["recommended"] is True
    ips = winner["result"]["estimates"][0]
    assert ips["estimator"] == "ips"
    assert ips["intervals"][0]["low"] > result["online"]["estimates"][0]["intervals"][0]["low"]

    promoted = client.post(
        f"/v1/policy-searches/{body['id']}/promote",
        json={"name": "searched", "experiment": {}},
    )
    assert promoted.status_code == 200, promoted.text
    out = promoted.json()
    assert out["policy"]["id"] == "searched" and out["policy_created"] is True
    assert out["policy"]["args"] == winner["candidate"]["args"]
    assert out["experiment_created"] is True
    experiment = out["experiment"]
    assert experiment["name"] == "searched-v1-vs-online"
    assert experiment["status"] == "draft"
    online = services(client).default_policy("personalizer").name
    assert [(a["name"], a["policy"]) for a in experiment["arms"]] == [
        ("online", online),
        ("searched", "searched"),
    ]
    assert client.get("/v1/policies/searched").json()["args"] == winner["candidate"]["args"]

    # The same candidate again is the same version; into the existing draft it becomes an arm.
    again = client.post(
        f"/v1/policy-searches/{body['id']}/promote",
        json={
            "name": "searched",
            "candidate": result["winner"],
            "experiment": {"name": "searched-v1-vs-online", "arm": "second", "weight": 2},
        },
    )
    assert again.status_code == 200, again.text
    assert again.json()["policy_created"] is False
    assert again.json()["experiment_created"] is False
    assert [a["name"] for a in again.json()["experiment"]["arms"]] == [
        "online",
        "searched",
        "second",
    ]

    # A running experiment keeps its arms: a new draft is made instead.
    assert client.post("/v1/experiments/searched-v1-vs-online/start").status_code == 200
    loser = next(i for i in by_index if i != result["winner"])
    third = client.post(
        f"/v1/policy-searches/{body['id']}/promote",
        json={
            "name": "flat",
            "candidate": loser,
            "experiment": {"name": "searched-v1-vs-online"},
        },
    )
    assert third.status_code == 200, third.text
    assert third.json()["experiment"]["name"] == "flat-v1-vs-online"
    assert "running" in third.json()["note"]


@pytest.mark.parametrize(
    ("change", "target", "message"),
    [
        ({"explorations": ["greedy"]}, "explorations", "algorithm must be one of"),
        ({"interactions": [["--data"]]}, "interactions", "pairs of namespace letters"),
        ({"learning_rates": [-1]}, "learning_rates", "must be in (0, 10]"),
        ({"cb_types": ["nope"]}, "cb_types[0]", ""),
        ({"max_candidates": 0}, "max_candidates", ""),
        ({"start": "2026-11-02", "end": "2026-11-01"}, "start", "must be before `end`"),
        ({"surprise": 1}, "surprise", ""),
    ],
)
def test_bad_searches_name_the_field(
    client: TestClient, change: dict[str, Any], target: str, message: str
) -> None:
    reply = client.post("/v1/policy-searches", json={**GRID, **change})
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["target"] == target
    assert message in error["message"]


def test_promote_refuses_without_a_winner_and_unknown_candidates(client: TestClient) -> None:
    # Logged uniformly with rewards that ignore the candidate: nothing can beat the logger.
    write_log(services(client).store, 30, seed=22)
    job = client.post("/v1/policy-searches", json={**GRID, "interactions": [[]]}).json()
    body = _finished(client, job["id"])
    assert body["status"] == "succeeded", body["error"]
    if body["result"]["winner"] is None:
        none = client.post(f"/v1/policy-searches/{job['id']}/promote", json={"name": "x"})
        assert none.status_code == 409
        assert none.json()["error"]["target"] == "candidate"
    unknown = client.post(
        f"/v1/policy-searches/{job['id']}/promote", json={"name": "x", "candidate": 99}
    )
    assert unknown.status_code == 400
    assert unknown.json()["error"]["target"] == "candidate"
    bad_name = client.post(
        f"/v1/policy-searches/{job['id']}/promote", json={"name": "Bad Name", "candidate": 0}
    )
    assert bad_name.status_code == 400
    assert bad_name.json()["error"]["target"] == "name"


def test_delete_cancels_and_forgets(client: TestClient) -> None:
    write_log(services(client).store, 50, seed=23)
    job = client.post("/v1/policy-searches", json=GRID).json()
    assert client.delete(f"/v1/policy-searches/{job['id']}").status_code == 204
    missing = client.get(f"/v1/policy-searches/{job['id']}")
    assert missing.status_code == 404
    assert missing.json()["error"]["target"] == "id"
    promote = client.post(f"/v1/policy-searches/{job['id']}/promote", json={"name": "x"})
    assert promote.status_code == 404


def test_cli_searches_the_database(backend: Backend, tmp_path: Path) -> None:
    if backend.name != "embedded":
        pytest.skip("the CLI reads whichever database it is given; one backend is enough")
    url = migrated(f"sqlite:///{tmp_path / 'search.sqlite3'}")
    store = Store.connect(url, pool_size=1)
    write_log(store, 1500, seed=24)
    store.engine.dispose()
    runner = CliRunner()
    env = {"OO_DATABASE_URL": url}
    common = ["search-policies", "--exploration", "epsilon=0.05", "--learning-rate", "default"]
    common += ["--cb-type", "mtr", "--interactions", "none", "--interactions", "::"]

    reply = runner.invoke(cli, [*common, "--json"], env=env)
    assert reply.exit_code == 0, reply.output
    body = json.loads(reply.stdout)
    assert body["n"] == 1500 and len(body["trials"]) == 2
    winner = next(t for t in body["trials"] if t["candidate"]["index"] == body["winner"])
    assert winner["candidate"]["interactions"] == ["::"]

    table = runner.invoke(cli, common, env=env)
    assert table.exit_code == 0, table.output
    assert "online (logged)" in table.stdout and "winner" in table.stdout
    assert "-q ::" in table.stdout

    bad = runner.invoke(cli, ["search-policies", "--exploration", "greedy"], env=env)
    assert bad.exit_code == 2
    assert "algorithm must be one of" in bad.output
