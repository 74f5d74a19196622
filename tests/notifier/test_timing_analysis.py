"""Timing decisions are ordinary logged decisions, on both backends: `oo evaluate --surface
timing` estimates policies over them, and an experiment on the `timing` surface (the learned
policy against a random-time arm) assigns each person an arm whose policy decides their points.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.cli import app as cli
from integrations.timing import SEND, TIMING, WAIT
from policies.registry import TIMING_POLICY
from tests.conftest import Backend, wait_until
from tests.notifier.push_service import PushService
from tests.notifier.test_push_api import client, make_push_client  # noqa: F401 - fixtures
from tests.notifier.test_timing import MORNING, _day, _services, _subscribed, salt_assigning

PERSON = "local"  # local single-user mode: the one person, the experiment's unit
ARMS = [
    {"name": "learned", "policy": TIMING_POLICY, "weight": 1},
    {"name": "random_time", "policy": "random", "weight": 1},
]


def _closed(services: Any, outcomes: list[Any]) -> None:
    """The windows of `outcomes` close: the learner learns their sums (as its sweep does 30
    minutes later on the real clock)."""
    event_ids = [o.event_id for o in outcomes]
    assert services.learner.learn_events(event_ids, allow_default=True) == len(event_ids)


def test_oo_evaluate_estimates_policies_over_the_timing_surface(
    client: TestClient,  # noqa: F811
    push_service: PushService,
    backend: Backend,
) -> None:
    _subscribed(client, push_service)
    services = _services(client)
    outcomes = _day(services.timing)
    sends = [o for o in outcomes if o.action == SEND]
    assert client.post("/v1/push/opened", json={"event_id": sends[0].tip_event_id}).is_success
    _closed(services, outcomes)
    # A Personalizer decision beside them is not a timing decision.
    rank = {"eventId": "pz-1", "actions": [{"id": "a", "features": [{"x": {"a": 1}}]}]}
    assert client.post("/personalizer/v1.0/rank", json=rank).status_code == 201
    services.learner.learn_events(["pz-1"], allow_default=True)

    reply = CliRunner().invoke(
        cli,
        ["evaluate", "--surface", TIMING, "--policy", "random", "--json"],
        env={"OO_DATABASE_URL": backend.database_url},
    )
    assert reply.exit_code == 0, reply.output
    body = json.loads(reply.stdout)
    assert body["n"] == len(outcomes)
    assert [p["name"] for p in body["policies"]] == ["online", "random"]
    # The online policy's value is the mean of the sums learned: -cost per push, +1 per open.
    online = body["policies"][0]["estimates"][0]
    assert online["estimator"] == "ips"
    learned = [services.store.get(o.event_id).learned_reward for o in outcomes]
    assert online["value"] == pytest.approx(sum(learned) / len(learned))
    assert sorted(learned)[-1] == 0.9  # the opened push: 1 less its cost

    # The same surface on the wire: a job over the same decisions.
    job = client.post("/v1/evaluations", json={"surface": TIMING, "policies": ["random"]})
    assert job.status_code == 201, job.text

    def finished() -> dict[str, Any] | None:
        answer: dict[str, Any] = client.get(f"/v1/evaluations/{job.json()['id']}").json()
        return answer if answer["status"] != "running" else None

    done = wait_until(finished, timeout=60)
    assert done["status"] == "succeeded", done["error"]
    assert done["result"]["n"] == len(outcomes)


def test_a_timing_experiment_assigns_the_person_an_arm_that_decides_their_points(
    client: TestClient,  # noqa: F811
    push_service: PushService,
) -> None:
    _subscribed(client, push_service)
    services = _services(client)
    salt = salt_assigning(PERSON, ARMS, "random_time")
    body = {"name": "when", "surface": TIMING, "arms": ARMS, "salt": salt}
    created = client.post("/v1/experiments", json=body)
    assert created.status_code == 201, created.text
    assert client.post("/v1/experiments/when/start").json()["status"] == "running"

    outcomes = _day(services.timing)
    assert [o.action for o in outcomes].count(SEND) == 3  # the same daily dose in every arm
    for outcome in outcomes:
        logged = services.store.get(outcome.event_id).decision
        assert (logged.experiment, logged.arm, logged.policy) == ("when", "random_time", "random")
        assert logged.model_key == "timing:random:when/random_time"
        assert logged.pmf == (0.5, 0.5)  # uniform over send and wait
    _closed(services, outcomes)

    results = client.get("/v1/experiments/when/results")
    assert results.status_code == 200, results.text
    by_arm = {a["name"]: a for a in results.json()["results"]["arms"]}
    assert by_arm["random_time"]["decisions"] == len(outcomes)
    assert by_arm["learned"]["decisions"] == 0


def test_the_learned_arm_serves_the_timing_policy_under_the_experiment(
    client: TestClient,  # noqa: F811
    push_service: PushService,
) -> None:
    _subscribed(client, push_service)
    services = _services(client)
    salt = salt_assigning(PERSON, ARMS, "learned")
    body = {"name": "when", "surface": TIMING, "arms": ARMS, "salt": salt}
    assert client.post("/v1/experiments", json=body).status_code == 201
    client.post("/v1/experiments/when/start")
    outcomes = services.timing.run_once(MORNING)
    assert len(outcomes) == 1 and outcomes[0].action in (SEND, WAIT)
    logged = services.store.get(outcomes[0].event_id).decision
    assert (logged.experiment, logged.arm) == ("when", "learned")
    assert logged.model_key == f"timing:{TIMING_POLICY}:when/learned"
