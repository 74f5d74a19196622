"""The Personalizer-compatible decision surface: rank, reward and activate on both path forms,
the logged decision behind every answer, deferred activation, keys, reproducibility and retries.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.services.surfaces import PERSONALIZER
from api.settings import Settings
from bandit.events import Action
from tests.api.decision_helpers import (
    FORMS,
    Form,
    actions,
    assert_error,
    assert_pmf,
    event_url,
    learned,
    logged,
    personalizer_url,
    rank,
    recommend,
    row_counts,
    services,
)
from tests.conftest import fast_learner, wait_until

CONTEXT = [{"user": {"tier": "gold", "visits": 3}}, {"time": {"part": "morning"}}]


@pytest.mark.parametrize("form", FORMS)
def test_rank_answers_201_and_logs_the_full_decision(client: TestClient, form: Form) -> None:
    body = {
        "contextFeatures": CONTEXT,
        "actions": actions("news", "sport", "music", "films"),
        "excludedActions": ["news", "music"],
    }
    answer = rank(client, body, form=form)

    assert set(answer) == {"eventId", "rewardActionId", "ranking"}
    probability = {item["id"]: item["probability"] for item in answer["ranking"]}
    assert sorted(probability) == ["films", "music", "news", "sport"]
    assert len(answer["ranking"]) == 4
    ordered = [item["probability"] for item in answer["ranking"]]
    assert ordered == sorted(ordered, reverse=True)
    assert probability["news"] == probability["music"] == 0.0
    assert math.isclose(probability["sport"] + probability["films"], 1.0)
    assert answer["rewardActionId"] in ("sport", "films")

    decision = logged(client, answer["eventId"]).decision
    # The first action that is not excluded is the baseline: index 0 of the logged actions.
    assert [a.id for a in decision.actions] == ["sport", "films"]
    assert [a.features for a in decision.actions] == [
        body["actions"][1]["features"],
        body["actions"][3]["features"],
    ]
    assert decision.excluded == ("news", "music")
    assert decision.context == CONTEXT
    assert_pmf(decision.pmf)
    assert list(decision.pmf) == [probability["sport"], probability["films"]]
    assert decision.chosen.id == answer["rewardActionId"]
    assert decision.propensity == probability[answer["rewardActionId"]]
    assert (decision.surface, decision.principal) == (PERSONALIZER, PERSONALIZER)
    policy = services(client).default_policy(PERSONALIZER)
    assert (decision.policy, decision.model_key) == (
        "vw-squarecb-tuned",
        "personalizer:vw-squarecb-tuned",
    )
    assert decision.model_version == policy.model_version
    assert decision.activated_at is not None


def test_excluded_actions_are_never_chosen(make_client: Callable[..., TestClient]) -> None:
    client = make_client(personalizer_policy="random")
    body = {"actions": actions("a", "b", "c", "d"), "excludedActions": ["a", "c"]}
    chosen = [rank(client, {**body, "eventId": f"x-{i}"})["rewardActionId"] for i in range(24)]
    assert set(chosen) == {"b", "d"}  # both remaining actions drawn, an excluded one never


@pytest.mark.parametrize("form", FORMS)
def test_reward_and_activate_answer_204_and_the_reward_is_learned(
    client: TestClient, form: Form
) -> None:
    low, high = (
        rank(client, {"actions": actions("a", "b")}),
        rank(client, {"actions": actions("a")}),
    )
    for event_id, value in ((low["eventId"], -1.0), (high["eventId"], 1)):
        assert (
            client.post(event_url(event_id, "reward", form), json={"value": value}).status_code
            == 204
        )
        # Activating an event that is already active changes nothing.
        assert client.post(event_url(event_id, "activate", form)).status_code == 204

    for event_id, value in ((low["eventId"], -1.0), (high["eventId"], 1.0)):
        done = wait_until(lambda event_id=event_id: learned(client, event_id))
        assert (done.reward, done.learned_reward, done.reward_late) == (value, value, False)

    # The first reward counts ("earliest"); a repeat is accepted and changes nothing.
    again = client.post(event_url(low["eventId"], "reward", form), json={"value": 0.5})
    assert again.status_code == 204
    assert logged(client, low["eventId"]).reward == -1.0


def test_deferred_event_is_learned_only_after_activation(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(learner=fast_learner(reward_wait_seconds=1))
    deferred = rank(client, {"actions": actions("a", "b"), "deferActivation": True}, form="preview")
    event_id = deferred["eventId"]
    assert logged(client, event_id).decision.activated_at is None
    reply = client.post(event_url(event_id, "reward", "preview"), json={"value": 0.75})
    assert reply.status_code == 204

    # A sentinel decision, active and unrewarded, is learned with the default reward once its
    # window closes: by then the learner has seen the deferred event's reward and passed it by.
    sentinel = rank(client, {"actions": actions("a", "b")})["eventId"]
    assert wait_until(lambda: learned(client, sentinel)).learned_reward == 0.0
    waiting = logged(client, event_id)
    assert (waiting.learn_seq, waiting.reward, waiting.decision.activated_at) == (None, 0.75, None)

    assert client.post(event_url(event_id, "activate", "v1")).status_code == 204
    done = wait_until(lambda: learned(client, event_id))
    assert done.decision.activated_at is not None
    assert (done.learned_reward, done.reward_late) == (0.75, False)


def test_unknown_event_id_is_404(client: TestClient) -> None:
    rank(client, {"actions": actions("a")})
    before = row_counts(client)
    for form in FORMS:
        assert_error(
            client.post(event_url("no-such-event", "reward", form), json={"value": 1}),
            404,
            "ResourceNotFound",
            target="event_id",
            match="no decision has event id 'no-such-event'",
        )
        assert_error(
            client.post(event_url("no-such-event", "activate", form)), 404, "ResourceNotFound"
        )
    assert row_counts(client) == before


def test_subscription_key_is_enforced_when_configured(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(personalizer_key="s3cret")
    good = {"Ocp-Apim-Subscription-Key": "s3cret"}
    body = {"actions": actions("a", "b")}
    event_id = rank(client, body, headers=good)["eventId"]
    before = row_counts(client)

    for headers in ({}, {"Ocp-Apim-Subscription-Key": "wrong"}, {"Ocp-Apim-Subscription-Key": ""}):
        for reply in (
            client.post(personalizer_url("/rank"), json=body, headers=headers),
            client.post(personalizer_url("/rank", "preview"), json={}, headers=headers),
            client.post(event_url(event_id, "reward"), json={"value": 1}, headers=headers),
            client.post(event_url(event_id, "activate", "preview"), headers=headers),
            # An unknown event id answers 401 too: no key, no hint of what exists.
            client.post(event_url("unknown", "activate"), headers=headers),
        ):
            assert_error(
                reply,
                401,
                "Unauthorized",
                target="Ocp-Apim-Subscription-Key",
                match="`Ocp-Apim-Subscription-Key`",
            )
    assert row_counts(client) == before

    reply = client.post(event_url(event_id, "reward", "preview"), json={"value": 1}, headers=good)
    assert reply.status_code == 204
    assert client.post(event_url(event_id, "activate"), headers=good).status_code == 204
    # The key guards the Personalizer surface only.
    recommend(client)


def test_any_key_is_accepted_when_none_is_configured(client: TestClient) -> None:
    rank(client, {"actions": actions("a")}, headers={"Ocp-Apim-Subscription-Key": "anything"})


def test_same_event_id_draws_the_same_action_on_fresh_servers(tmp_path: Path) -> None:
    """Pure: two servers with their own SQLite files share nothing but the event ids."""
    event_ids = [f"reproducible-{i}" for i in range(12)]
    body = {"contextFeatures": CONTEXT, "actions": actions(*"abcdefgh")}
    answers = []
    for name in ("one", "two"):
        settings = Settings(
            database_url=f"sqlite:///{tmp_path / name}.sqlite3", personalizer_policy="random"
        )
        with TestClient(create_app(settings, fast_learner())) as client:
            answers.append([rank(client, {**body, "eventId": e}) for e in event_ids])
    assert answers[0] == answers[1]
    chosen = {answer["rewardActionId"] for answer in answers[0]}
    assert len(chosen) > 2, "the draw must depend on the event id"


def test_retried_rank_returns_the_logged_decision_without_logging_again(
    client: TestClient,
) -> None:
    body = {
        "eventId": "retry-me",
        "contextFeatures": CONTEXT,
        "actions": actions("a", "b", "c"),
        "excludedActions": ["b"],
        "deferActivation": True,
    }
    first = rank(client, body)
    before = row_counts(client)
    assert rank(client, body) == first
    assert rank(client, body, form="preview") == first
    # A retry is answered from the log, whatever else changed in the body.
    changed = {**body, "actions": actions("x", "y"), "excludedActions": [], "contextFeatures": []}
    assert rank(client, changed) == first
    assert row_counts(client) == before
    assert logged(client, "retry-me").decision.activated_at is None


def test_event_id_of_another_surface_or_principal_is_refused(client: TestClient) -> None:
    tips_event = recommend(client)["event_id"]
    services(client).decider.decide(
        policy=services(client).default_policy(PERSONALIZER),
        surface=PERSONALIZER,
        principal="another-integrator",
        event_id="theirs",
        context=[],
        actions=[Action("a")],
    )
    before = row_counts(client)
    for event_id in (tips_event, "theirs"):
        for form in FORMS:
            reply = client.post(
                personalizer_url("/rank", form),
                json={"eventId": event_id, "actions": actions("a", "b")},
            )
            assert_error(
                reply,
                400,
                "InvalidRankRequest",
                target="eventId",
                match=r"^`eventId` is already used by another decision$",
            )
        for reply in (
            client.post(event_url(event_id, "reward"), json={"value": 1}),
            client.post(event_url(event_id, "activate", "preview")),
        ):
            assert_error(reply, 404, "ResourceNotFound", target="event_id", match="no decision")
    assert row_counts(client) == before
    assert logged(client, tips_event).reward is None
