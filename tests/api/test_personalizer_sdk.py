"""Personalizer's official Python SDK (`azure-ai-personalizer`), unchanged, against a real server.

The SDK talks the 2022-09-01-preview paths. `retry_total=0` keeps a failing call from being
retried, so an error surfaces at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from azure.ai.personalizer import PersonalizerClient
from azure.ai.personalizer.aio import PersonalizerClient as AsyncPersonalizerClient
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.core.pipeline.transport import AsyncioRequestsTransport

from bandit.store import LoggedDecision
from tests.api.decision_helpers import actions, assert_pmf
from tests.conftest import LiveServer, wait_until

StartServer = Callable[..., LiveServer]


def _sdk(live: LiveServer, key: str = "any-key") -> PersonalizerClient:
    return PersonalizerClient(live.url, AzureKeyCredential(key), retry_total=0)


def _learned(live: LiveServer, event_id: str) -> LoggedDecision | None:
    found = live.services.store.get(event_id)
    return found if found is not None and found.learn_seq is not None else None


def _request(**extra: Any) -> dict[str, Any]:
    return {
        "contextFeatures": [{"user": {"tier": "gold"}}, {"time": {"part": "morning"}}],
        "actions": actions("news", "sport", "music"),
        **extra,
    }


def test_rank_reward_activate(live_server: StartServer) -> None:
    live = live_server()
    client = _sdk(live)
    result = client.rank(_request(excludedActions=["news"]))

    assert set(result) == {"eventId", "rewardActionId", "ranking"}
    probability = {item["id"]: item["probability"] for item in result["ranking"]}
    assert probability["news"] == 0.0
    assert result["rewardActionId"] in ("sport", "music")
    decision = live.services.store.get(result["eventId"]).decision
    assert_pmf(decision.pmf)
    assert decision.propensity == probability[result["rewardActionId"]]

    assert client.reward(result["eventId"], {"value": 0.5}) is None
    assert client.activate(result["eventId"]) is None
    done = wait_until(lambda: _learned(live, result["eventId"]))
    assert done.learned_reward == 0.5


def test_deferred_activation_with_a_client_event_id(live_server: StartServer) -> None:
    live = live_server()
    client = _sdk(live)
    result = client.rank(_request(eventId="sdk-event-1", deferActivation=True))
    assert result["eventId"] == "sdk-event-1"
    # A retried call with the same event id answers from the log.
    assert client.rank(_request(eventId="sdk-event-1", deferActivation=True)) == result

    client.reward("sdk-event-1", {"value": 1.0})
    waiting = live.services.store.get("sdk-event-1")
    assert (waiting.reward, waiting.decision.activated_at, waiting.learn_seq) == (1.0, None, None)
    client.activate("sdk-event-1")
    assert wait_until(lambda: _learned(live, "sdk-event-1")).learned_reward == 1.0


def test_errors_map_to_the_sdk_exceptions(live_server: StartServer) -> None:
    live = live_server()
    client = _sdk(live)

    with pytest.raises(HttpResponseError) as duplicate:
        client.rank({"actions": [*actions("a", "b"), {"id": "a", "features": []}]})
    assert duplicate.value.status_code == 400
    assert duplicate.value.error is not None
    assert duplicate.value.error.code == "InvalidRankRequest"
    assert duplicate.value.error.message == "`actions[2].id` 'a' is a duplicate action id"

    event_id = client.rank(_request())["eventId"]
    with pytest.raises(HttpResponseError, match=r"InvalidRewardRequest.*`value`") as out_of_range:
        client.reward(event_id, {"value": 1.5})
    assert out_of_range.value.status_code == 400

    with pytest.raises(ResourceNotFoundError, match="no decision has event id 'missing'"):
        client.reward("missing", {"value": 1.0})
    with pytest.raises(ResourceNotFoundError):
        client.activate("missing")


def test_wrong_key_is_an_authentication_error(live_server: StartServer) -> None:
    live = live_server(personalizer_key="s3cret")
    with pytest.raises(ClientAuthenticationError, match="Ocp-Apim-Subscription-Key"):
        _sdk(live, "wrong").rank(_request())
    result = _sdk(live, "s3cret").rank(_request())
    with pytest.raises(ClientAuthenticationError):
        _sdk(live, "wrong").reward(result["eventId"], {"value": 1.0})
    _sdk(live, "s3cret").reward(result["eventId"], {"value": 1.0})
    assert live.services.store.get(result["eventId"]).reward == 1.0


def test_async_client(live_server: StartServer) -> None:
    """The aio client, on azure-core's requests-based transport (aiohttp is not installed)."""
    live = live_server()

    async def exchange() -> str:
        async with AsyncPersonalizerClient(
            live.url,
            AzureKeyCredential("any-key"),
            retry_total=0,
            transport=AsyncioRequestsTransport(),
        ) as client:
            result = await client.rank(_request(deferActivation=True))
            await client.reward(result["eventId"], {"value": -0.5})
            await client.activate(result["eventId"])
            with pytest.raises(ResourceNotFoundError):
                await client.activate("missing")
            return str(result["eventId"])

    event_id = asyncio.run(exchange())
    assert wait_until(lambda: _learned(live, event_id)).learned_reward == -0.5
