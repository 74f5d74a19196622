"""`GET /v1/diagnostics` and `oo doctor`: one service, the same figures, readable at 80 columns."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.cli import app as cli
from bandit.events import Features
from tests.api.decision_helpers import assert_error, services
from tests.conftest import Backend
from tests.rewards.doctor_log import T0, WINDOW, Log, healthy_context

WINDOW_QUERY = {
    "surface": "tips",
    "start": T0.isoformat(),
    "end": (T0 + WINDOW).isoformat(),
}


def _identifiers(i: int) -> Features:
    return [*healthy_context(i), {"user": {"id": f"u-{i:05d}"}}]


def _without_age(body: dict[str, Any]) -> dict[str, Any]:
    """The document without what depends on the clock (the model's age)."""
    body = dict(body)
    body.pop("model_age_seconds")
    body["models"] = [{k: v for k, v in m.items() if k != "age_seconds"} for m in body["models"]]
    return body


def test_the_api_and_the_cli_report_the_same_checkup(
    make_client: Callable[..., TestClient], backend: Backend
) -> None:
    # An api-only app: an in-process learner would learn the seeded log's closed windows and
    # publish a new model between the two reads, whenever the machine lets it run.
    client = make_client(role="api")
    log = Log(services(client).store, np.random.default_rng(4))
    log.healthy(context=_identifiers, rewarded=lambda i: i % 20 == 0)

    reply = client.get("/v1/diagnostics", params=WINDOW_QUERY)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["decisions"] == 120 and body["sampled"] == 120
    assert body["rewarded_share"] == pytest.approx(6 / 120)
    assert [(w["code"], w["namespace"], w["feature"]) for w in body["warnings"]] == [
        ("few_rewards", None, None),
        ("identifier_feature", "user", "id"),
    ]
    assert body["start"] == "2026-11-02T08:00:00Z"
    assert body["online"]["n"] == 120
    assert body["online"]["effective_n"] == pytest.approx(120)

    runner = CliRunner()
    env = {"OO_DATABASE_URL": backend.database_url}
    args = ["doctor", "--surface", "tips", "--start", WINDOW_QUERY["start"]]
    args += ["--end", WINDOW_QUERY["end"]]
    printed = runner.invoke(cli, [*args, "--json"], env=env)
    assert printed.exit_code == 0, printed.output
    assert _without_age(json.loads(printed.stdout)) == _without_age(body)

    for width in (80, 200):
        table = runner.invoke(cli, args, env={**env, "COLUMNS": str(width)})
        assert table.exit_code == 0, table.output
        assert "…" not in table.stdout
        assert max(len(line) for line in table.stdout.splitlines()) <= width
        assert "identifier_feature user.id" in table.stdout
        assert "5.0%" in table.stdout  # the reward share, whole
        assert "what to do: drop it" in table.stdout


def test_the_window_defaults_to_the_last_day_and_is_checked(client: TestClient) -> None:
    body = client.get("/v1/diagnostics", params={"surface": "tips"}).json()
    assert body["decisions"] == 0
    assert [w["code"] for w in body["warnings"]] == ["no_decisions"]
    start, end = (np.datetime64(body[k].rstrip("Z")) for k in ("start", "end"))
    assert end - start == np.timedelta64(timedelta(hours=24))

    backwards = {**WINDOW_QUERY, "start": WINDOW_QUERY["end"], "end": WINDOW_QUERY["start"]}
    assert_error(client.get("/v1/diagnostics", params=backwards), 400, "BadRequest", target="start")
    no_utc = {**WINDOW_QUERY, "start": "0001-01-01T00:00+14:00"}
    assert_error(client.get("/v1/diagnostics", params=no_utc), 400, "BadRequest", target="start")
    assert_error(
        client.get("/v1/diagnostics", params={"surface": "email"}),
        400,
        "BadRequest",
        target="surface",
    )
    small = {**WINDOW_QUERY, "sample": 10}
    assert_error(client.get("/v1/diagnostics", params=small), 400, "BadRequest", target="sample")


def test_the_cli_refuses_what_it_cannot_check(backend: Backend) -> None:
    runner = CliRunner()
    env = {"OO_DATABASE_URL": backend.database_url}
    bad = runner.invoke(cli, ["doctor", "--surface", "email"], env=env)
    assert bad.exit_code == 2 and "--surface" in bad.output
    backwards = runner.invoke(
        cli,
        ["doctor", "--surface", "tips", "--start", "2026-11-03", "--end", "2026-11-02"],
        env=env,
    )
    assert backwards.exit_code == 2
    assert "Invalid value for --start: `start` (2026-11-03T00:00:00+00:00) must be" in (
        backwards.output
    )
