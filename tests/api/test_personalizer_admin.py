"""Personalizer's administration surface, driven by the official SDK's
`PersonalizerAdministrationClient` against a real server, plus direct HTTP for bad input,
the v1.0 evaluation shape and apprentice mode."""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest
from azure.ai.personalizer import PersonalizerAdministrationClient, PersonalizerClient
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from fastapi.testclient import TestClient

from api.services.surfaces import PERSONALIZER
from bandit.surface_config import DEFAULT_EXPLORATION
from rewards.ope.grid import Grid
from tests.api.decision_helpers import actions, personalizer_url
from tests.conftest import LiveServer, wait_until

StartServer = Callable[..., LiveServer]
EPSILON_ARGS = "--cb_explore_adf --epsilon 0.2 --cb_type mtr -q ::"
SQUARECB_ARGS = (
    "--cb_explore_adf --squarecb --gamma_scale 100 --cb_type mtr -q :: -l 2 --clip_p 0.1"
)
ITEMS = ("x", "y", "z")


def _clients(live: LiveServer) -> tuple[PersonalizerAdministrationClient, PersonalizerClient]:
    credential = AzureKeyCredential("any-key")
    return (
        PersonalizerAdministrationClient(live.url, credential, retry_total=0),
        PersonalizerClient(live.url, credential, retry_total=0),
    )


def _config(admin: PersonalizerAdministrationClient, **changes: Any) -> dict[str, Any]:
    config = dict(admin.get_service_configuration())
    config.pop("latestApprenticeModeMetrics", None)
    config.update(changes)
    return dict(admin.update_service_configuration(config))


def _learned(live: LiveServer, event_id: str) -> Any:
    found = live.services.store.get(event_id)
    return found if found is not None and found.learn_seq is not None else None


def _taste_request(rng: np.random.Generator, event_id: str) -> tuple[dict[str, Any], str]:
    liked = ITEMS[int(rng.integers(3))]
    body = {
        "eventId": event_id,
        "contextFeatures": [{"taste": {"likes": liked}}, {"noise": {"n": int(rng.integers(5))}}],
        "actions": [{"id": item, "features": [{"item": {"name": item}}]} for item in ITEMS],
    }
    return body, liked


def _fill_log(live: LiveServer, client: PersonalizerClient, n: int, seed: int) -> None:
    """`n` decisions logged uniformly at random; reward 1 when the item is the liked one."""
    rng = np.random.default_rng(seed)
    before = live.services.store.learned_summary(surface=PERSONALIZER)[0]
    for i in range(n):
        body, liked = _taste_request(rng, f"log-{seed}-{i}")
        answer = client.rank(body)
        client.reward(
            answer["eventId"], {"value": 1.0 if answer["rewardActionId"] == liked else 0.0}
        )
    total = before + n
    wait_until(
        lambda: live.services.store.learned_summary(surface=PERSONALIZER)[0] == total, timeout=120
    )


def test_service_configuration_takes_effect(live_server: StartServer) -> None:
    live = live_server()
    admin, client = _clients(live)
    config = admin.get_service_configuration()
    assert config["rewardWaitTime"] == "PT10M"
    assert config["rewardAggregation"] == "earliest"
    assert config["explorationPercentage"] == DEFAULT_EXPLORATION  # ADR 0011
    assert config["learningMode"] == "Online"
    assert config["logRetentionDays"] == -1

    admin.update_policy({"name": "greedy", "arguments": EPSILON_ARGS})
    changed = _config(
        admin,
        rewardWaitTime="PT5S",
        defaultReward=-0.5,
        rewardAggregation="sum",
        explorationPercentage=0.6,
    )
    assert changed["rewardWaitTime"] == "PT5S"
    assert admin.get_service_configuration()["explorationPercentage"] == 0.6
    assert admin.get_service_configuration()["lastConfigurationEditDate"] is not None

    # Exploration: epsilon-greedy with epsilon 0.6 over four actions.
    answer = client.rank({"actions": actions("a", "b", "c", "d")})
    probabilities = sorted(item["probability"] for item in answer["ranking"])
    assert probabilities == pytest.approx([0.15, 0.15, 0.15, 0.55])

    # Sum aggregation and the default reward, once the 5-second window closes.
    summed = client.rank({"actions": actions("a", "b")})["eventId"]
    client.reward(summed, {"value": 0.25})
    client.reward(summed, {"value": 0.5})
    silent = client.rank({"actions": actions("a", "b")})["eventId"]
    assert _learned(live, summed) is None  # sums wait for the window
    assert wait_until(lambda: _learned(live, summed), timeout=15).learned_reward == 0.75
    assert wait_until(lambda: _learned(live, silent), timeout=15).learned_reward == -0.5


def test_logging_only_serves_but_never_learns(live_server: StartServer) -> None:
    live = live_server()
    admin, client = _clients(live)
    _config(admin, learningMode="LoggingOnly")
    model = live.services.hub.get(live.services.default_policy(PERSONALIZER).model_key)
    before = model.version
    answer = client.rank({"actions": actions("a", "b", "c")})
    client.reward(answer["eventId"], {"value": 1.0})
    logged = wait_until(lambda: _learned(live, answer["eventId"]))
    assert logged.decision.model_key == "personalizer:LoggingOnly"
    assert logged.learned_reward == 1.0  # kept for evaluation ...
    assert (
        live.services.hub.get(live.services.default_policy(PERSONALIZER).model_key).version
        == before
    )


def test_policy_update_and_reset(live_server: StartServer) -> None:
    live = live_server()
    admin, client = _clients(live)
    policy = admin.get_policy()
    assert policy == {"name": "vw-squarecb-tuned", "arguments": SQUARECB_ARGS}  # ADR 0011

    # Only the exploration changes: same model, new epsilon.
    admin.update_policy({"name": "greedy", "arguments": EPSILON_ARGS})
    assert admin.get_service_configuration()["explorationPercentage"] == 0.2
    key = live.services.default_policy(PERSONALIZER).model_key
    updated = admin.update_policy(
        {"name": "calm", "arguments": "--cb_explore_adf --epsilon 0.1 --cb_type mtr -q ::"}
    )
    assert updated == {
        "name": "calm",
        "arguments": "--cb_explore_adf --epsilon 0.1 --cb_type mtr -q ::",
    }
    assert admin.get_service_configuration()["explorationPercentage"] == 0.1
    assert live.services.default_policy(PERSONALIZER).model_key == key

    # Other arguments: a new policy version with its own model, under the default floor.
    args = "--cb_explore_adf --softmax --lambda 10 --cb_type mtr -q ::"
    assert admin.update_policy({"name": "soft", "arguments": args})["arguments"] == args
    assert live.services.default_policy(PERSONALIZER).model_key != key
    assert admin.get_service_configuration()["explorationPercentage"] == DEFAULT_EXPLORATION
    answer = client.rank({"actions": actions("a", "b")})
    assert live.services.store.get(answer["eventId"]).decision.policy.startswith("personalizer")

    # For an explorer other than epsilon-greedy the percentage is its uniform floor.
    _config(admin, explorationPercentage=0.3)
    assert admin.get_service_configuration()["explorationPercentage"] == 0.3
    for _ in range(5):
        answer = client.rank({"actions": actions("a", "b", "c")})
        assert min(item["probability"] for item in answer["ranking"]) >= 0.1 - 1e-12

    with pytest.raises(HttpResponseError, match="--cb_explore_adf") as refused:
        admin.update_policy({"name": "bad", "arguments": "--cb_adf"})
    assert refused.value.error.code == "InvalidPolicyConfiguration"
    with pytest.raises(HttpResponseError, match="--no_such_option"):
        admin.update_policy({"name": "bad", "arguments": "--cb_explore_adf --no_such_option 3"})

    assert admin.reset_policy() == policy
    answer = client.rank({"actions": actions("a", "b")})
    assert live.services.store.get(answer["eventId"]).decision.policy == "vw-squarecb-tuned"


def test_model_export_import_reset(live_server: StartServer) -> None:
    live = live_server()
    admin, client = _clients(live)
    _fill_log(live, client, 40, seed=3)
    hub, key = live.services.hub, live.services.default_policy(PERSONALIZER).model_key
    trained = b"".join(admin.export_model())
    learned_version = hub.get(key).version
    assert learned_version == 40
    properties = admin.get_model_properties()
    assert set(properties) == {"creationTime", "lastModifiedTime"}

    probe = ([{"taste": {"likes": "y"}}], ["|item name=x", "|item name=y", "|item name=z"])
    trained_pmf = hub.get(key).predict(*probe)
    admin.reset_model()
    assert hub.get(key).predict(*probe) != trained_pmf
    reset_properties = admin.get_model_properties()
    assert reset_properties["creationTime"] > properties["creationTime"]

    admin.import_model(io.BytesIO(trained))
    assert hub.get(key).predict(*probe) == pytest.approx(trained_pmf)
    imported = hub.get(key).version
    # The learner rebuilds from the imported snapshot: nothing learned twice.
    _fill_log(live, client, 3, seed=4)
    wait_until(lambda: hub.get(key).version == imported + 3)
    live.services.learner.publish_snapshots(force=True)
    hub.forget(key)
    assert hub.get(key).version == imported + 3

    with pytest.raises(HttpResponseError, match="`body`") as garbage:
        admin.import_model(io.BytesIO(b"not a model"))
    assert garbage.value.status_code == 400


def test_logs_properties_and_delete(live_server: StartServer) -> None:
    live = live_server()
    admin, client = _clients(live)
    assert admin.get_log_properties() == {"dateRange": {"from": None, "to": None}}
    _fill_log(live, client, 5, seed=5)
    span = admin.get_log_properties()["dateRange"]
    assert span["from"] <= span["to"]
    key = live.services.default_policy(PERSONALIZER).model_key
    version = live.services.hub.get(key).version

    admin.delete_logs()
    assert admin.get_log_properties() == {"dateRange": {"from": None, "to": None}}
    # The model keeps what it learned, also when rebuilt from the store, and learning marks
    # are never issued twice after a restart (the deleted decisions' marks are in the snapshot).
    live.services.hub.forget(key)
    assert live.services.hub.get(key).version == version
    assert live.services.store.max_learn_seq() == 5
    with pytest.raises(ResourceNotFoundError):
        client.reward("log-5-0", {"value": 1.0})


def test_evaluation_feature_importance_and_apply(live_server: StartServer) -> None:
    live = live_server(personalizer_search_candidates=4)
    admin, client = _clients(live)
    _config(admin, explorationPercentage=1.0)  # log uniformly: every policy is evaluable
    start = datetime.now(UTC) - timedelta(minutes=1)
    _fill_log(live, client, 240, seed=11)
    end = datetime.now(UTC) + timedelta(minutes=1)
    candidate = "--cb_explore_adf --epsilon 0.05 --cb_type mtr -q ::"
    admin.create_evaluation(
        "eval-1",
        {
            "name": "greedier",
            "startTime": start.isoformat(),
            "endTime": end.isoformat(),
            "policies": [{"name": "greedier", "arguments": candidate}],
            "enablePolicyOptimization": True,
        },
    )
    admin.create_feature_importance(
        "fi-1", {"name": "what matters", "startTime": start.isoformat(), "endTime": end.isoformat()}
    )

    def finished(get: Callable[[], Any]) -> Any:
        found = get()
        return found if found["status"] != "Running" else None

    result = wait_until(
        lambda: finished(lambda: admin.get_evaluation("eval-1", start_time=start, end_time=end)),
        timeout=30,
    )
    assert result["status"] == "Succeeded", result.get("description")
    by_source = {p["policySource"]: p for p in result["content"]["value"]}
    assert set(by_source) == {"Online", "Baseline", "Random", "Custom", "OfflineExperimentation"}
    optimized = [
        p for p in result["content"]["value"] if p["policySource"] == "OfflineExperimentation"
    ]
    # A policy search within the budget, in the order the evaluation's id seeds.
    searched = Grid().candidates(seed=zlib.crc32(b"eval-1"))[:4]
    assert [(p["name"], p["arguments"]) for p in optimized] == [
        (f"optimized-{c.index}", c.args) for c in searched
    ]
    assert by_source["Custom"]["name"] == "greedier"
    online = by_source["Online"]["summary"]
    low, high = online["confidenceInterval"]
    assert low <= online["expectedReward"] <= high
    # Logged uniformly, the online policy earns what random does (one in three).
    assert online["expectedReward"] == pytest.approx(1 / 3, abs=0.1)
    assert by_source["Custom"]["summary"]["expectedReward"] > 0.5
    best = max(
        (
            p
            for p in result["content"]["value"]
            if p["policySource"] not in ("Online", "Baseline", "Random")  # references
        ),
        key=lambda p: p["summary"]["expectedReward"],
    )
    assert result["optimalPolicy"] == best["name"]  # it beats the online policy clearly
    assert [e["id"] for e in admin.list_evaluations()] == ["eval-1"]

    admin.apply_from_evaluation({"evaluationId": "eval-1", "policyName": "greedier"})
    assert admin.get_policy() == {"name": "greedier", "arguments": candidate}
    with pytest.raises(HttpResponseError, match="`policyName` 'nope'"):
        admin.apply_from_evaluation({"evaluationId": "eval-1", "policyName": "nope"})

    importance = wait_until(
        lambda: finished(lambda: admin.get_feature_importance("fi-1")), timeout=30
    )
    assert importance["status"] == "Succeeded", importance.get("description")
    scores = importance["featureScores"]
    assert [s["score"] for s in scores] == sorted((s["score"] for s in scores), reverse=True)
    named = {(s["featureName"], s["namespace"]): s["score"] for s in scores}
    assert set(named) == {("context", "taste"), ("context", "noise"), ("action", "item")}
    # The reward needs both the taste and the item; the noise carries nothing.
    assert named[("context", "taste")] + named[("action", "item")] > 90.0
    assert named[("context", "noise")] < 10.0
    assert [f["id"] for f in admin.list_feature_importances()] == ["fi-1"]

    admin.delete_feature_importance("fi-1")
    admin.delete_evaluation("eval-1")
    with pytest.raises(ResourceNotFoundError):
        admin.get_evaluation("eval-1", start_time=start, end_time=end)
    with pytest.raises(ResourceNotFoundError):
        admin.get_feature_importance("fi-1")


def test_v1_evaluation_is_created_with_location(live_server: StartServer) -> None:
    live = live_server()
    now = datetime.now(UTC)
    body = {
        "name": "empty window",
        "startTime": (now - timedelta(hours=1)).isoformat(),
        "endTime": now.isoformat(),
    }
    with httpx.Client(base_url=live.url, headers={"Ocp-Apim-Subscription-Key": "k"}) as http:
        created = http.post("/personalizer/v1.0/evaluations", json=body)
        assert created.status_code == 201
        location = created.headers["Location"]
        assert location.endswith(f"/personalizer/v1.0/evaluations/{created.json()['id']}")
        assert created.json()["status"] in ("Running", "Succeeded", "Failed")
        assert http.get(location).json()["name"] == "empty window"
        listed = http.get("/personalizer/v1.0/evaluations", params={"top": 1}).json()
        assert [e["id"] for e in listed["value"]] == [created.json()["id"]]
        assert listed["nextLink"] is None
        assert http.delete(location).status_code == 204
        missing = http.get(location)
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "EvaluationNotFound"


# --- bad input names the field ----------------------------------------------------------------


def _put_config(client: TestClient, **changes: Any) -> httpx.Response:
    current = client.get(personalizer_url("/configurations/service", "preview")).json()
    current.pop("latestApprenticeModeMetrics", None)
    current.update(changes)
    return client.put(personalizer_url("/configurations/service", "preview"), json=current)


BAD_CONFIGURATIONS: list[tuple[dict[str, Any], str, str]] = [
    ({"rewardWaitTime": "PT1S"}, "rewardWaitTime", "between 5 seconds and 2 days"),
    ({"rewardWaitTime": "P3D"}, "rewardWaitTime", "between 5 seconds and 2 days"),
    ({"rewardWaitTime": "ten minutes"}, "rewardWaitTime", "ISO 8601 duration"),
    ({"rewardWaitTime": None}, "rewardWaitTime", "string"),
    ({"defaultReward": 1.5}, "defaultReward", r"\[-1, 1\]"),
    ({"defaultReward": "1"}, "defaultReward", "number"),
    ({"rewardAggregation": "average"}, "rewardAggregation", "earliest, sum"),
    ({"explorationPercentage": -0.1}, "explorationPercentage", r"\[0, 1\]"),
    ({"learningMode": "Sometimes"}, "learningMode", "Online"),
    ({"logRetentionDays": 0}, "logRetentionDays", "-1"),
    ({"modelExportFrequency": "P1M"}, "modelExportFrequency", "ISO 8601"),
    ({"autoOptimizationFrequency": "PT0S"}, "autoOptimizationFrequency", "positive"),
]


def test_bad_service_configuration_names_the_field(client: TestClient) -> None:
    for changes, field, message in BAD_CONFIGURATIONS:
        response = _put_config(client, **changes)
        assert response.status_code == 400, (changes, response.text)
        error = response.json()["error"]
        assert error["code"] == "InvalidServiceConfiguration", changes
        assert response.headers["x-ms-error-code"] == "InvalidServiceConfiguration"
        assert error["target"] == field, changes
        assert f"`{field}`" in error["message"], error["message"]
        assert re.search(message, error["message"]), error["message"]
    # Nothing changed.
    current = client.get(personalizer_url("/configurations/service")).json()
    assert (current["rewardWaitTime"], current["defaultReward"]) == ("PT10M", 0.0)


def test_bad_policy_evaluation_and_importance_input(client: TestClient) -> None:
    url = personalizer_url("/configurations/policy", "preview")
    missing = client.put(url, json={"name": "p"})
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "InvalidPolicyConfiguration"
    assert "`arguments`" in missing.json()["error"]["message"]

    epsilon = client.put(url, json={"name": "p", "arguments": "--cb_explore_adf --epsilon 2"})
    assert (epsilon.status_code, epsilon.json()["error"]["target"]) == (400, "--epsilon")
    for option in ("-f /tmp/owned.vw", "--readable_model=/tmp/owned.txt", "-d /etc/passwd"):
        files = client.put(url, json={"name": "p", "arguments": f"--cb_explore_adf {option}"})
        assert files.status_code == 400
        assert files.json()["error"]["target"] == option.split()[0].split("=")[0]
        assert "reads or writes files" in files.json()["error"]["message"]

    now = datetime.now(UTC)
    backwards = client.put(
        personalizer_url("/evaluations/e1", "preview"),
        json={
            "name": "e",
            "startTime": now.isoformat(),
            "endTime": (now - timedelta(1)).isoformat(),
        },
    )
    assert backwards.status_code == 400
    assert backwards.json()["error"] == {
        "code": "InvalidEvaluationContract",
        "message": backwards.json()["error"]["message"],
        "target": "startTime",
    }
    assert "`startTime`" in backwards.json()["error"]["message"]
    bad_args = client.put(
        personalizer_url("/evaluations/e2", "preview"),
        json={
            "name": "e",
            "startTime": (now - timedelta(1)).isoformat(),
            "endTime": now.isoformat(),
            "policies": [{"name": "p", "arguments": "--cb_adf"}],
        },
    )
    assert bad_args.status_code == 400
    assert bad_args.json()["error"]["target"] == "policies[0].arguments"
    writes = client.put(
        personalizer_url("/evaluations/e3", "preview"),
        json={
            "name": "e",
            "startTime": (now - timedelta(1)).isoformat(),
            "endTime": now.isoformat(),
            "policies": [{"name": "p", "arguments": "--cb_explore_adf -f /tmp/owned.vw"}],
        },
    )
    assert writes.status_code == 400
    assert "-f reads or writes files" in writes.json()["error"]["message"]
    window = {"startTime": (now - timedelta(1)).isoformat(), "endTime": now.isoformat()}
    first = client.put(
        personalizer_url("/evaluations/twice", "preview"), json={"name": "a", **window}
    )
    assert (first.status_code, first.content) == (200, b"")
    again = client.put(
        personalizer_url("/evaluations/twice", "preview"), json={"name": "b", **window}
    )
    assert (again.status_code, again.json()["error"]["target"]) == (409, "id")
    no_times = client.put(personalizer_url("/featureImportances/f1", "preview"), json={"name": "f"})
    assert no_times.status_code == 400
    assert "`startTime`" in no_times.json()["error"]["message"]
    unknown = client.post(
        personalizer_url("/configurations/applyFromEvaluation", "preview"),
        json={"evaluationId": "nope", "policyName": "p"},
    )
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "EvaluationNotFound")


# --- apprentice mode --------------------------------------------------------------------------


def _apprentice(client: TestClient) -> dict[str, Any]:
    body = client.get(personalizer_url("/configurations/service", "preview")).json()
    metrics: dict[str, Any] = body["latestApprenticeModeMetrics"]
    return metrics


def test_apprentice_mode_imitates_the_baseline(client: TestClient) -> None:
    """The policy first learns that `z` is worth 0.5 whoever asks. Then an existing system
    (the baseline, listed first) shows most users the item they like, worth 1 (other items are
    worth 0). Apprentice mode serves the baseline, learns from it, and the policy's would-be
    choice comes to match the baseline's."""
    services = client.app.state.services  # type: ignore[attr-defined]
    rng = np.random.default_rng(2026)
    rank_url, store = personalizer_url("/rank"), services.store

    assert _put_config(client, explorationPercentage=1.0).status_code == 200
    for i in range(150):
        body, _ = _taste_request(rng, f"online-{i}")
        answer = client.post(rank_url, json=body).json()
        value = 0.5 if answer["rewardActionId"] == "z" else 0.0
        client.post(personalizer_url(f"/events/online-{i}/reward"), json={"value": value})
    # Waits are on state (marks, apprentice counts); the timeouts only bound a stuck learner.
    wait_until(lambda: store.learned_summary(surface=PERSONALIZER)[0] == 150, timeout=120)

    assert _put_config(client, learningMode="Apprentice").status_code == 200
    start = _apprentice(client)
    assert (start["numberOfEvents"], start["numberOfImitatedEvents"]) == (0, 0)
    earned = 0.0

    def apprentice_round(first: int, count: int) -> dict[str, Any]:
        nonlocal earned
        for i in range(first, first + count):
            body, liked = _taste_request(rng, f"apprentice-{i}")
            baseline = liked if rng.random() < 0.8 else ITEMS[int(rng.integers(3))]
            others = [a for a in body["actions"] if a["id"] != baseline]
            body["actions"] = [next(a for a in body["actions"] if a["id"] == baseline), *others]
            answer = client.post(rank_url, json=body).json()
            assert answer["rewardActionId"] == baseline  # the baseline is served
            assert answer["ranking"][0] == {"id": baseline, "probability": 1.0}
            value = 1.0 if baseline == liked else 0.0
            earned += value
            client.post(personalizer_url(f"/events/apprentice-{i}/reward"), json={"value": value})
        # Every event of the round learned as an apprentice (counted after its mark).
        return wait_until(
            lambda: (m := _apprentice(client))["numberOfEvents"] == first + count and m,
            timeout=120,
        )

    early = apprentice_round(0, 60)
    middle = apprentice_round(60, 120)
    late = apprentice_round(180, 120)
    early_rate = early["numberOfImitatedEvents"] / early["numberOfEvents"]
    late_rate = (late["numberOfImitatedEvents"] - middle["numberOfImitatedEvents"]) / 120
    print(f"apprentice match rate: first 60 events {early_rate:.2f}, last 120 {late_rate:.2f}")
    assert early_rate < 0.6
    assert late_rate > 0.75
    assert late_rate > early_rate + 0.25
    assert late["sumOfRewards"] == pytest.approx(earned)
    assert 0.0 < late["sumOfImitatedRewards"] <= late["sumOfRewards"]
    assert late["lastProcessedEventTime"] is not None
    assert late["lastBatchMetrics"]["numberOfEvents"] >= 1
