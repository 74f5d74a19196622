"""Policies and experiments through the API, on both backends.

The tips surface has one person in local single-user mode, so multi-unit statistics use decisions
logged straight into the store (as the tips surface would log them for many people), and live
assignment is exercised on the Personalizer surface, whose unit is the event id.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.cli_experiments import _results_table
from api.schemas.experiments import ExperimentResultsPublic
from api.services.surfaces import PERSONALIZER
from bandit.events import Action, Decision, utcnow
from bandit.store import Learned
from experiments.assignment import assign
from experiments.results import GUARDRAILS
from experiments.stats import AnalysisConfig, ArmData, MinimumData, Moments, results
from tests.conftest import Backend, wait_until

RANK = "/personalizer/v1.0/rank"
ACTIONS = [
    {"id": "a", "features": [{"kind": {"name": "a"}}]},
    {"id": "b", "features": [{"kind": {"name": "b"}}]},
]


def _experiment(
    name: str, surface: str, arms: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    return {"name": name, "surface": surface, "arms": arms, **extra}


ARMS = [
    {"name": "control", "policy": "vw-epsilon", "weight": 1},
    {"name": "softmax", "policy": "vw-softmax", "weight": 1},
]


def test_registration_validates_vw_arguments_and_persists(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client()
    bad = client.post(
        "/v1/policies", json={"name": "typo", "kind": "vw", "args": "--cb_explore_adf --foo 1"}
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["target"] == "--foo"
    assert "unrecognised option '--foo'" in bad.json()["error"]["message"]
    bad_value = client.post(
        "/v1/policies",
        json={"name": "typo", "kind": "vw", "args": "--cb_explore_adf --epsilon lots"},
    )
    assert (bad_value.status_code, bad_value.json()["error"]["target"]) == (400, "--epsilon")
    assert (
        client.post("/v1/policies", json={"name": "Bad Name", "kind": "random"}).json()["error"][
            "target"
        ]
        == "name"
    )

    spec = {"name": "vw-cover", "kind": "vw", "args": "--cb_explore_adf --cover 3 --cb_type mtr"}
    created = client.post("/v1/policies", json=spec)
    assert created.status_code == 201
    assert created.json() == {
        **spec,
        "description": "",
        "version": 1,
        "id": "vw-cover",
        "builtin": False,
    }
    same = client.post("/v1/policies", json=spec)  # the same args again: idempotent
    assert (same.status_code, same.json()) == (200, created.json())
    assert client.get("/v1/policies/nope").status_code == 404
    names = {p["name"]: p["builtin"] for p in client.get("/v1/policies").json()}
    assert names["vw-cover"] is False and names["most-urgent-todo"] is True

    # Registered specs live in the database: another process (here: a second app) serves them.
    again = make_client()
    assert again.get("/v1/policies/vw-cover").json()["args"] == spec["args"]


def test_registering_a_name_again_creates_its_next_version(client: TestClient) -> None:
    first = {"name": "vw-cover", "kind": "vw", "args": "--cb_explore_adf --cover 3"}
    second = {**first, "args": "--cb_explore_adf --cover 5"}
    assert client.post("/v1/policies", json=first).json()["version"] == 1
    created = client.post("/v1/policies", json=second)
    assert created.status_code == 201
    assert (created.json()["version"], created.json()["id"]) == (2, "vw-cover@v2")
    again = client.post("/v1/policies", json=first)  # an older version's args: that version
    assert (again.status_code, again.json()["version"]) == (200, 1)
    bad = client.post("/v1/policies", json={**first, "args": "--cb_explore_adf --cover x"})
    assert (bad.status_code, bad.json()["error"]["target"]) == (400, "--cover")

    latest = client.get("/v1/policies/vw-cover").json()
    assert (latest["version"], latest["args"]) == (2, second["args"])
    assert [(v["version"], v["id"], v["args"]) for v in latest["versions"]] == [
        (1, "vw-cover", first["args"]),
        (2, "vw-cover@v2", second["args"]),
    ]
    assert client.get("/v1/policies/vw-cover/versions/1").json()["args"] == first["args"]
    assert client.get("/v1/policies/vw-cover/versions/3").status_code == 404
    assert client.get("/v1/policies/vw-epsilon").json()["versions"][0]["builtin"] is True
    listed = {p["name"]: p["version"] for p in client.get("/v1/policies").json()}
    assert listed["vw-cover"] == 2

    # An arm naming a policy is pinned to its latest version when the experiment is created.
    arms = [
        {"name": "control", "policy": "vw-cover@v1", "weight": 1},
        {"name": "treatment", "policy": "vw-cover", "weight": 1},
    ]
    assert client.post("/v1/experiments", json=_experiment("pin", "personalizer", arms)).is_success
    third = {**first, "args": "--cb_explore_adf --cover 7"}
    assert client.post("/v1/policies", json=third).json()["id"] == "vw-cover@v3"
    pinned = client.get("/v1/experiments/pin").json()["arms"]
    assert [a["policy"] for a in pinned] == ["vw-cover", "vw-cover@v2"]

    client.post("/v1/experiments/pin/start")
    services = client.app.state.services  # type: ignore[attr-defined]
    seen = set()
    for i in range(20):
        assert client.post(RANK, json={"eventId": f"v-{i}", "actions": ACTIONS}).is_success
        decision = services.store.get(f"v-{i}").decision
        seen.add((decision.arm, decision.policy, decision.model_key))
    assert seen == {
        ("control", "vw-cover", "personalizer:vw-cover:pin/control"),
        ("treatment", "vw-cover@v2", "personalizer:vw-cover@v2:pin/treatment"),
    }
    assert client.get("/v1/experiments/pin/results").json()["arms"][1]["model_key"] == (
        "personalizer:vw-cover@v2:pin/treatment"
    )


@pytest.mark.parametrize(
    ("arms", "status", "target"),
    [
        ([ARMS[0], {**ARMS[1], "weight": 0}], 400, "arms[1].weight"),
        ([ARMS[0], {**ARMS[1], "weight": -1}], 400, "arms[1].weight"),
        ([ARMS[0], {**ARMS[1], "name": "control"}], 400, "arms[1].name"),
        ([ARMS[0], {**ARMS[1], "policy": "unknown"}], 400, "arms[1].policy"),
        ([ARMS[0]], 400, "arms"),
    ],
)
def test_bad_arms_get_a_4xx_naming_the_field(
    client: TestClient, arms: list[dict[str, Any]], status: int, target: str
) -> None:
    reply = client.post("/v1/experiments", json=_experiment("exp", "tips", arms))
    assert reply.status_code == status
    assert reply.json()["error"]["target"] == target
    assert f"`{target}`" in reply.json()["error"]["message"]


def test_lifecycle_conflicts_are_409(client: TestClient) -> None:
    assert client.post("/v1/experiments", json=_experiment("one", "tips", ARMS)).status_code == 201
    assert client.post("/v1/experiments", json=_experiment("two", "tips", ARMS)).status_code == 201
    assert client.post("/v1/experiments/one/start").json()["status"] == "running"
    again = client.post("/v1/experiments/one/start")
    assert (again.status_code, again.json()["error"]["target"]) == (409, "status")
    second = client.post("/v1/experiments/two/start")
    assert (second.status_code, second.json()["error"]["target"]) == (409, "surface")
    edit = client.patch("/v1/experiments/one", json={"arms": ARMS[::-1]})
    assert (edit.status_code, edit.json()["error"]["target"]) == (409, "arms")
    assert client.patch("/v1/experiments/two", json={"arms": ARMS[::-1]}).json()["control"] == (
        "softmax"
    )
    assert client.post("/v1/experiments/nope/start").status_code == 404
    assert client.post("/v1/experiments/two/pause").status_code == 409
    assert [e["name"] for e in client.get("/v1/experiments").json()] == ["one", "two"]


def test_assignment_is_sticky_recorded_and_each_arm_learns_alone(client: TestClient) -> None:
    body = _experiment("pz", "personalizer", ARMS, salt="pz-salt")
    assert client.post("/v1/experiments", json=body).status_code == 201
    client.post("/v1/experiments/pz/start")
    services = client.app.state.services  # type: ignore[attr-defined]
    arms_of: dict[str, str] = {}
    for i in range(40):
        event_id = f"evt-{i}"
        assert client.post(RANK, json={"eventId": event_id, "actions": ACTIONS}).status_code == 201
        decision = services.store.get(event_id).decision
        expected = assign(event_id, "pz-salt", [("control", 1), ("softmax", 1)])
        policy = {"control": "vw-epsilon", "softmax": "vw-softmax"}[expected]
        assert (decision.experiment, decision.arm, decision.policy) == ("pz", expected, policy)
        assert decision.model_key == f"personalizer:{policy}:pz/{expected}"
        arms_of[event_id] = expected
    # A retried event id is answered from the log: same arm, same decision.
    client.post(RANK, json={"eventId": "evt-0", "actions": ACTIONS})
    assert services.store.get("evt-0").decision.arm == arms_of["evt-0"]
    assert set(arms_of.values()) == {"control", "softmax"}

    rewarded = [e for e, arm in arms_of.items() if arm == "softmax"]
    for event_id in rewarded:
        reply = client.post(f"/personalizer/v1.0/events/{event_id}/reward", json={"value": 1})
        assert reply.status_code == 204
    learning = services.hub.get("personalizer:vw-softmax:pz/softmax")
    # The learner updates the model before it marks the log: the results read the log.
    wait_until(
        lambda: (
            learning.version >= len(rewarded)
            and all(services.store.get(e).learned_reward is not None for e in rewarded)
        )
    )
    assert services.hub.get("personalizer:vw-epsilon:pz/control").version == 0
    assert services.default_policy(PERSONALIZER).model_key == "personalizer:vw-squarecb-tuned"

    results = client.get("/v1/experiments/pz/results").json()
    assert [a["model_key"] for a in results["arms"]] == [
        "personalizer:vw-epsilon:pz/control",
        "personalizer:vw-softmax:pz/softmax",
    ]
    by_arm = {a["name"]: a for a in results["results"]["arms"]}
    assert by_arm["softmax"]["units"] == by_arm["softmax"]["decisions"] == len(rewarded)
    assert by_arm["softmax"]["mean"] == 1.0
    assert by_arm["control"]["units"] == 0
    # Control's decisions are unrewarded and not yet learned: far too little data for a claim.
    assert by_arm["softmax"]["verdict"] in {"insufficient_data", "sample_ratio_mismatch"}


def _log(
    services: Any,
    event_id: str,
    principal: str,
    arm: str | None,
    reward: float,
    reaction: str,
    *,
    experiment: str | None = "seeded",
    created_at: datetime | None = None,
) -> None:
    """Log a decision with its reward; `arm=None` is outside any experiment (`experiment=None`)."""
    policy = {"control": "vw-epsilon", "treatment": "random", None: "random"}[arm]
    model_key = f"tips:{policy}" + (f":{experiment}/{arm}" if experiment else "")
    decision = Decision(
        event_id=event_id,
        surface="tips",
        principal=principal,
        context=[],
        actions=(Action("x"), Action("y")),
        pmf=(0.5, 0.5),
        chosen_index=0,
        policy=policy,
        model_key=model_key,
        model_version=0,
        created_at=created_at or utcnow(),
        activated_at=None,  # never activated: the running learner leaves these alone
        experiment=experiment,
        arm=arm,
        example=("shared |c x", "|a x", "|a y"),
    )
    assert services.store.insert_decision(decision)
    services.store.record_reward(event_id, reward, reaction=reaction, window=timedelta(hours=1))


def test_results_match_a_hand_computation(client: TestClient) -> None:
    arms = [
        {"name": "control", "policy": "vw-epsilon", "weight": 1},
        {"name": "treatment", "policy": "random", "weight": 1},
    ]
    body = _experiment("seeded", "tips", arms, min_units_per_arm=2, min_decisions_per_arm=0)
    assert client.post("/v1/experiments", json=body).status_code == 201
    client.post("/v1/experiments/seeded/start")
    services = client.app.state.services  # type: ignore[attr-defined]
    # (unit, arm, [(reward, reaction), ...])
    seeded = [
        ("u1", "control", [(1.0, "done"), (-0.5, "dismiss")]),
        ("u2", "control", [(0.25, "later")]),
        ("u3", "control", [(-0.5, "dismiss"), (-0.5, "dismiss"), (1.0, "useful")]),
        ("u4", "treatment", [(1.0, "done")]),
        ("u5", "treatment", [(1.0, "done"), (0.25, "later")]),
        ("u6", "treatment", [(1.0, "useful"), (-0.5, "dismiss")]),
        ("u7", "treatment", [(0.25, "later")]),
    ]
    marks = []
    for unit, arm, events in seeded:
        for j, (reward, reaction) in enumerate(events):
            event_id = f"{unit}-{j}"
            _log(services, event_id, unit, arm, reward, reaction)
            marks.append(Learned(event_id, 1_000_000 + len(marks), reward))
    _log(services, "unlearned", "u8", "treatment", 1.0, "done")  # not learned: not counted
    services.store.mark_learned(marks)

    reply = client.get("/v1/experiments/seeded/results")
    assert reply.status_code == 200
    got = reply.json()
    assert got["days"] == 1.0

    # By hand: one value per unit (mean reward, dismiss share, decisions per day).
    control_means = [0.25, 0.25, 0.0]
    treatment_means = [1.0, 0.625, 0.25, 0.25]
    expected = results(
        [
            ArmData(
                "control",
                1,
                3,
                6,
                Moments.from_values(control_means),
                {
                    "dismiss_rate": Moments.from_values([0.5, 0.0, 2 / 3]),
                    "tips_per_day": Moments.from_values([2, 1, 3]),
                },
            ),
            ArmData(
                "treatment",
                1,
                4,
                6,
                Moments.from_values(treatment_means),
                {
                    "dismiss_rate": Moments.from_values([0.0, 0.0, 0.5, 0.0]),
                    "tips_per_day": Moments.from_values([1, 2, 2, 1]),
                },
            ),
        ],
        control="control",
        config=AnalysisConfig(minimum=MinimumData(2, 0), guardrails=GUARDRAILS),
    )
    _assert_close(got["results"], json.loads(json.dumps(asdict(expected))))
    control, treatment = got["results"]["arms"]
    assert (control["units"], control["decisions"], control["mean"]) == (3, 6, pytest.approx(1 / 6))
    assert treatment["mean"] == pytest.approx(0.53125)
    assert treatment["comparison"]["difference"] == pytest.approx(0.53125 - 1 / 6)
    assert treatment["sequential"] is not None and treatment["verdict"] is not None
    assert got["results"]["srm"]["observed"] == [3, 4]
    assert {g["metric"] for g in treatment["guardrails"]} == {"dismiss_rate", "tips_per_day"}
    # No unit has pre-period decisions: no CUPED, exactly the unadjusted results.
    assert got["results"]["cuped"] is None and treatment["adjusted_mean"] is None


def test_results_below_the_floors_are_shown_provisional_in_api_and_cli(
    client: TestClient, backend: Backend
) -> None:
    from typer.testing import CliRunner

    from api.cli import app

    arms = [
        {"name": "control", "policy": "vw-epsilon", "weight": 1},
        {"name": "treatment", "policy": "random", "weight": 1},
    ]
    # The default floors: 200 units and 1000 decisions per arm, far above these few.
    created = client.post("/v1/experiments", json=_experiment("early", "tips", arms))
    assert created.status_code == 201
    client.post("/v1/experiments/early/start")
    services = client.app.state.services  # type: ignore[attr-defined]
    marks = []
    for i, (arm, reward) in enumerate(
        [
            *(("control", 0.25), ("control", 0.0), ("control", 0.5)),
            *(("treatment", 1.0), ("treatment", 0.75), ("treatment", 1.0), ("treatment", 0.5)),
        ]
    ):
        _log(services, f"e-{i}", f"u{i}", arm, reward, "done", experiment="early")
        marks.append(Learned(f"e-{i}", 2_000_000 + i, reward))
    services.store.mark_learned(marks)

    got = client.get("/v1/experiments/early/results").json()
    assert got["provisional"] is True
    assert (got["min_units_per_arm"], got["min_decisions_per_arm"]) == (200, 1000)
    control, treatment = got["results"]["arms"]
    assert control["provisional"] and treatment["provisional"]
    assert treatment["verdict"] == "insufficient_data"
    difference = treatment["comparison"]["difference"]
    assert difference == pytest.approx(0.8125 - 0.25)
    assert treatment["sequential"]["always_valid_p"] is not None
    assert {g["metric"] for g in treatment["guardrails"]} == {"dismiss_rate", "tips_per_day"}

    runner = CliRunner()
    for columns in ("80", "220"):
        env = {"OO_DATABASE_URL": backend.database_url, "COLUMNS": columns}
        out = runner.invoke(app, ["experiments", "results", "early"], env=env)
        assert out.exit_code == 0, out.output
        assert "…" not in out.output
        assert max(len(line) for line in out.output.splitlines()) <= int(columns)
        assert f"{difference:+.4f}" in out.output  # the lift, whole
        assert f"{treatment['comparison']['p_value']:.3g}" in out.output
        assert "insufficient_data (provisional figures)" in out.output
        assert "provisional: lift, tests and guardrails are shown" in out.output
        lines = out.output.splitlines()
        lift = [line for line in lines if "lift vs control (CI)" in line]
        if columns == "80":  # folded: one block per arm, one figure per line
            assert any(f"{difference:+.4f}" in line for line in lift)
        else:  # one table, every column in its header line
            assert any("policy" in line and "verdict" in line for line in lift)


def test_cuped_narrows_the_interval_with_pre_period_reward(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each unit's pre-period reward predicts its in-experiment reward: CUPED removes that noise."""
    arms = [
        {"name": "control", "policy": "vw-epsilon", "weight": 1},
        {"name": "treatment", "policy": "random", "weight": 1},
    ]
    body = _experiment("seeded", "tips", arms, min_units_per_arm=2, min_decisions_per_arm=0)
    assert client.post("/v1/experiments", json=body).status_code == 201
    started = client.post("/v1/experiments/seeded/start").json()["started_at"]
    services = client.app.state.services  # type: ignore[attr-defined]
    rng = np.random.default_rng(7)
    effect = 0.3
    before = datetime.fromisoformat(started) - timedelta(days=2)
    marks: list[Learned] = []

    def learned(event_id: str, reward: float) -> None:
        marks.append(Learned(event_id, 2_000_000 + len(marks), reward))

    pre_values = []
    for i in range(60):
        unit, arm = f"u{i}", ("control", "treatment")[i % 2]
        baseline = float(rng.normal(0.0, 1.0))
        if i < 56:  # the last four units have no history: they take the pooled pre-period mean
            pre = baseline + float(rng.normal(0.0, 0.1))
            pre_values.append(pre)
            _log(
                services, f"{unit}-pre", unit, None, pre, "done", experiment=None, created_at=before
            )
            learned(f"{unit}-pre", pre)
        reward = baseline + (effect if arm == "treatment" else 0.0) + float(rng.normal(0.0, 0.1))
        _log(services, f"{unit}-0", unit, arm, reward, "done")
        learned(f"{unit}-0", reward)
    # Older than the 14-day pre-period: ignored, or it would pull the covariate mean to 100.
    _log(
        services,
        "u0-old",
        "u0",
        None,
        100.0,
        "done",
        experiment=None,
        created_at=before - timedelta(days=20),
    )
    learned("u0-old", 100.0)
    services.store.mark_learned(marks)

    reply = client.get("/v1/experiments/seeded/results").json()
    got = reply["results"]
    assert got["cuped"]["covariate_mean"] == pytest.approx(np.mean(pre_values))
    assert all(r > 0.9 for r in got["cuped"]["variance_reduction"])
    control, treatment = got["arms"]
    for arm in (control, treatment):
        raw = arm["mean_ci"]["high"] - arm["mean_ci"]["low"]
        adjusted = arm["adjusted_mean_ci"]["high"] - arm["adjusted_mean_ci"]["low"]
        assert adjusted < raw / 3
    assert treatment["adjusted_mean"] - control["adjusted_mean"] == pytest.approx(effect, abs=0.1)
    # Comparisons run on the adjusted metric: the difference's interval is tight around the effect.
    low, high = (treatment["comparison"]["difference_ci"][k] for k in ("low", "high"))
    assert low < effect < high and high - low < 0.2

    _results_table(ExperimentResultsPublic.model_validate(reply))
    assert "CUPED on pre-period reward" in capsys.readouterr().out


def _assert_close(got: Any, expected: Any, path: str = "results") -> None:
    """Equal structure, numbers equal to 1e-9 relative."""
    if isinstance(expected, dict):
        assert isinstance(got, dict) and set(got) == set(expected), path
        for key in expected:
            _assert_close(got[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), path
        for i, (g, e) in enumerate(zip(got, expected, strict=True)):
            _assert_close(g, e, f"{path}[{i}]")
    elif isinstance(expected, float) and not isinstance(expected, bool):
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-12), path
    else:
        assert got == expected, path


def test_shipping_makes_the_arm_the_default_policy(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    arms = [
        {"name": "control", "policy": "vw-epsilon", "weight": 1},
        {"name": "rule", "policy": "most-urgent-todo", "weight": 1},
    ]
    client.post("/v1/experiments", json=_experiment("ship-me", "tips", arms))
    client.post("/v1/experiments/ship-me/start")
    during = client.post("/v1/recommend").json()
    services = client.app.state.services  # type: ignore[attr-defined]
    logged = services.store.get(during["event_id"]).decision
    assert logged.experiment == "ship-me" and logged.arm in {"control", "rule"}

    client.post("/v1/experiments/ship-me/pause")
    paused = services.store.get(client.post("/v1/recommend").json()["event_id"]).decision
    assert (paused.experiment, paused.arm, paused.policy) == (None, None, "vw-squarecb-tuned")

    no_winner = client.post("/v1/experiments/ship-me/ship")
    assert (no_winner.status_code, no_winner.json()["error"]["target"]) == (409, "arm")
    shipped = client.post("/v1/experiments/ship-me/ship", json={"arm": "rule"})
    assert (shipped.json()["status"], shipped.json()["shipped_arm"]) == ("shipped", "rule")
    after = client.post("/v1/recommend").json()
    assert after["policy"] == "most-urgent-todo"
    assert services.store.get(after["event_id"]).decision.experiment is None

    # The default persists: a restarted process serves the shipped policy.
    restarted = make_client()
    assert restarted.post("/v1/recommend").json()["policy"] == "most-urgent-todo"


def test_cli_drives_the_lifecycle_against_the_database(backend: Backend) -> None:
    from typer.testing import CliRunner

    from api.cli import app

    runner = CliRunner()
    env = {"OO_DATABASE_URL": backend.database_url}

    def oo(*args: str) -> Any:
        return runner.invoke(app, ["experiments", *args], env=env)

    created = oo(
        "create", "cli-exp", "--arm", "control=vw-epsilon", "--arm", "b=random:3", "--json"
    )
    assert created.exit_code == 0, created.output
    assert json.loads(created.output)["arms"][1] == {"name": "b", "policy": "random", "weight": 3}
    assert oo("start", "cli-exp").exit_code == 0
    again = oo("start", "cli-exp")
    assert again.exit_code == 1 and "already running" in again.output
    listed = json.loads(oo("list", "--json").output)
    assert [(e["name"], e["status"]) for e in listed] == [("cli-exp", "running")]
    assert json.loads(oo("results", "cli-exp", "--json").output)["results"]["control"] == "control"
    assert "sample ratio" in oo("results", "cli-exp").output
    shipped = json.loads(oo("ship", "cli-exp", "--arm", "b", "--json").output)
    assert shipped["status"] == "shipped"
