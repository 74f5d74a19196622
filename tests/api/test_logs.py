"""`GET /v1/logs/export` and `oo logs`: decisions made through the running app, exported as
DSJSON, parsed and learned by VW, and read back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import vowpalwabbit
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.cli import app as cli
from rewards.logs.dsjson_import import read_dsjson
from tests.conftest import Backend, wait_until

NDJSON = "application/x-ndjson"


def _rank(client: TestClient, event_id: str, *, defer: bool = False) -> str:
    body = {
        "eventId": event_id,
        "contextFeatures": [{"user": {"tier": "gold"}}, {"time": {"hour": 9}}],
        "actions": [
            {"id": "news", "features": [{"topic": {"kind": "news"}}]},
            {"id": "sport", "features": [{"topic": {"kind": "sport"}}, {"len": {"min": 3}}]},
            {"id": "music", "features": [{"topic": {"kind": "music"}}]},
        ],
        "deferActivation": defer,
    }
    response = client.post("/personalizer/v1.0/rank", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["rewardActionId"])


def _drive(client: TestClient) -> dict[str, float]:
    """Recommend + feedback and rank + reward until learned; returns rewards by event id."""
    rewards: dict[str, float] = {}
    for reaction, value in (("done", 1.0), ("dismiss", -0.5)):
        tip = client.post("/v1/recommend", json={})
        assert tip.status_code == 200, tip.text
        event_id = tip.json()["event_id"]
        answer = client.post("/v1/feedback", json={"event_id": event_id, "reaction": reaction})
        assert answer.status_code == 200, answer.text
        rewards[event_id] = value
    for i, value in enumerate((1.0, 0.0, 0.5)):
        _rank(client, f"rank-{i}")
        reply = client.post(f"/personalizer/v1.0/events/rank-{i}/reward", json={"value": value})
        assert reply.status_code == 204, reply.text
        rewards[f"rank-{i}"] = value
    store = client.app.state.services.store  # type: ignore[attr-defined]
    wait_until(lambda: all(x.learn_seq is not None for x in store.get_many(list(rewards))))
    return rewards


def test_exported_decisions_parse_and_learn_in_vw(client: TestClient) -> None:
    rewards = _drive(client)
    _rank(client, "deferred", defer=True)  # never activated: _skipLearn
    _rank(client, "pending")  # reward window still open: left out

    response = client.get("/v1/logs/export", params={"format": "dsjson"})

    assert response.status_code == 200
    assert response.headers["content-type"] == NDJSON
    lines = response.text.splitlines()
    records = {json.loads(line)["EventId"]: json.loads(line) for line in lines}
    assert set(records) == {*rewards, "deferred"}
    assert records["deferred"]["_skipLearn"] is True
    for event_id, reward in rewards.items():
        assert records[event_id]["_label_cost"] == pytest.approx(-reward)

    workspace = vowpalwabbit.Workspace("--cb_explore_adf --dsjson --quiet")
    try:
        for line in lines:
            record = json.loads(line)
            examples = workspace.parse(line)
            if not record.get("_skipLearn"):
                assert len(examples) == 1 + len(record["c"]["_multi"]), line
                chosen = examples[1 + record["_labelIndex"]]
                (cost,) = chosen.get_label(vowpalwabbit.LabelType.CONTEXTUAL_BANDIT).costs
                assert cost.action == record["_label_Action"]
                assert cost.cost == pytest.approx(record["_label_cost"])
                assert cost.probability == pytest.approx(record["_label_probability"])
                workspace.learn(examples)
            workspace.finish_example(examples)
    finally:
        workspace.finish()

    events = {e.event_id: e for e in read_dsjson(lines)}
    store = client.app.state.services.store  # type: ignore[attr-defined]
    for logged in store.get_many(list(rewards)):
        event = events[logged.decision.event_id]
        assert event.pmf == pytest.approx(logged.decision.pmf)
        assert event.chosen.id == logged.decision.chosen.id
        assert event.reward == pytest.approx(rewards[event.event_id])


def test_export_filters_by_range_and_surface(client: TestClient) -> None:
    rewards = _drive(client)
    store = client.app.state.services.store  # type: ignore[attr-defined]
    logged = sorted(store.get_many(list(rewards)), key=lambda x: x.decision.created_at)
    second = logged[1].decision.created_at
    last = logged[-1].decision.created_at

    def exported(**params: str) -> list[str]:
        response = client.get("/v1/logs/export", params=params)
        assert response.status_code == 200, response.text
        return [json.loads(line)["EventId"] for line in response.text.splitlines()]

    ranged = exported(start=second.isoformat(), end=last.isoformat())
    assert ranged == [x.decision.event_id for x in logged[1:-1]]
    assert set(exported(surface="personalizer")) == {"rank-0", "rank-1", "rank-2"}
    later = (last + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")  # naive: UTC
    assert exported(start=later) == []

    wrong = client.get("/v1/logs/export", params={"start": later, "end": later})
    assert wrong.status_code == 400
    assert wrong.json()["error"]["message"].startswith("`start`")
    assert client.get("/v1/logs/export", params={"format": "csv"}).status_code == 400


def test_cli_exports_and_imports(client: TestClient, backend: Backend, tmp_path: Path) -> None:
    rewards = _drive(client)
    out = tmp_path / "log.dsjson"
    runner = CliRunner()

    exported = runner.invoke(
        cli, ["logs", "export", "--out", str(out), "--database-url", backend.database_url]
    )
    assert exported.exit_code == 0, exported.output
    assert len(out.read_text().splitlines()) == len(rewards)

    summary = runner.invoke(cli, ["logs", "import", str(out), "--json"])
    assert summary.exit_code == 0, summary.output
    body = json.loads(summary.stdout)
    assert body["events"] == len(rewards)
    assert body["malformed"] == 0
    assert body["mean_reward"] == pytest.approx(sum(rewards.values()) / len(rewards))
    assert body["actions_min"] >= 2
    assert datetime.fromisoformat(body["first"]) <= datetime.now(UTC)

    with out.open("a") as handle:
        handle.write('{"a": [1], "p": [1.0]}\n')
    table = runner.invoke(cli, ["logs", "import", str(out)])
    assert table.exit_code == 1
    assert f"line {len(rewards) + 1}: `c` must be an object" in table.output
