"""Google Calendar free/busy: the client against a local server, and the context features."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from integrations.calendar import (
    Busy,
    CalendarClient,
    FreeBusy,
    calendar_features,
    parse_free_busy,
    window,
)
from integrations.providers import ProviderUnavailable, RateLimited, TokenRevoked
from integrations.vault import ProviderToken
from tests.integrations.conftest import Reply
from tests.integrations.providers import (  # noqa: F401 - the fixture
    FakeProviders,
    providers_fixture,
)

FREEBUSY = "/google/calendar/v3/freeBusy"
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)  # 10:00 in Berlin


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, 25, hour, minute, tzinfo=UTC)


def free_busy(*intervals: tuple[datetime, datetime]) -> FreeBusy:
    start, end = window(NOW, BERLIN)
    return FreeBusy(start, end, tuple(Busy(s, e) for s, e in intervals))


def test_window_is_the_local_day_and_two_hours_ahead() -> None:
    start, end = window(NOW, BERLIN)
    assert start == datetime(2026, 11, 24, 23, 0, tzinfo=UTC)
    assert end == datetime(2026, 11, 25, 23, 0, tzinfo=UTC)
    late = datetime(2026, 11, 25, 22, 30, tzinfo=UTC)  # 23:30 local
    assert window(late, BERLIN)[1] == late + timedelta(hours=3)


def test_a_cached_answer_serves_late_evenings_too(
    providers: FakeProviders, client: CalendarClient
) -> None:
    token = _token(providers)
    late = datetime(2026, 11, 25, 22, 30, tzinfo=UTC)
    client.free_busy(token, principal="p", now=late, tz=BERLIN)
    client.free_busy(token, principal="p", now=late + timedelta(seconds=30), tz=BERLIN)
    assert len(providers.calls_to(FREEBUSY)) == 1


def test_features_of_a_busy_morning() -> None:
    features = calendar_features(
        free_busy((at(8, 30), at(9, 20)), (at(9, 20), at(9, 40)), (at(13), at(14))), NOW, BERLIN
    )["calendar"]
    # Back-to-back meetings count as one block in free/busy; the parser merges them.
    assert features == {"busy_2h": True, "meetings": "2-3", "free_in": "m15-60"}


def test_features_of_a_free_day() -> None:
    assert calendar_features(free_busy(), NOW, BERLIN)["calendar"] == {
        "busy_2h": False,
        "meetings": "0",
        "free_in": "now",
    }


def test_busy_past_the_window_is_beyond() -> None:
    start, end = window(NOW, BERLIN)
    features = calendar_features(FreeBusy(start, end, (Busy(at(8), end),)), NOW, BERLIN)
    assert features["calendar"]["free_in"] == "beyond"


def test_parse_merges_and_validates() -> None:
    body = {
        "kind": "calendar#freeBusy",
        "calendars": {
            "primary": {
                "busy": [
                    {"start": "2026-11-25T10:00:00+01:00", "end": "2026-11-25T11:00:00+01:00"},
                    {"start": "2026-11-25T09:30:00Z", "end": "2026-11-25T10:30:00Z"},
                ]
            }
        },
    }
    assert parse_free_busy(body) == [Busy(at(9), at(10, 30))]
    with pytest.raises(ValueError, match=r"`calendars.primary.errors`: notFound"):
        parse_free_busy({"calendars": {"primary": {"errors": [{"reason": "notFound"}]}}})
    with pytest.raises(ValueError, match=r"busy\[0\]"):
        parse_free_busy({"calendars": {"primary": {"busy": [{"start": "soon"}]}}})


@pytest.fixture
def client(providers: FakeProviders) -> Iterator[CalendarClient]:
    calendar = CalendarClient(base_url=f"{providers.url}/google/calendar/v3")
    yield calendar
    calendar.close()


def _token(providers: FakeProviders) -> ProviderToken:
    providers.access_tokens.add("google-access-test")
    return ProviderToken("google-access-test", refresh_token="r")


def test_client_reads_busy_and_caches(providers: FakeProviders, client: CalendarClient) -> None:
    providers.busy = [{"start": "2026-11-25T09:30:00Z", "end": "2026-11-25T10:00:00Z"}]
    token = _token(providers)
    result = client.free_busy(token, principal="p", now=NOW, tz=BERLIN, deadline_s=2)
    assert result.busy == (Busy(at(9, 30), at(10)),)
    asked = providers.calls_to(FREEBUSY)[0]
    assert asked.json["timeMin"] == "2026-11-24T23:00:00Z"
    assert asked.authorization == "Bearer google-access-test"
    client.free_busy(token, principal="p", now=NOW, tz=BERLIN, deadline_s=2)
    assert len(providers.calls_to(FREEBUSY)) == 1


@pytest.mark.parametrize(
    ("reply", "error", "match"),
    [
        (Reply(401, {"error": {"code": 401}}), TokenRevoked, "refused the token"),
        (Reply(403, {"error": {"code": 403}}), TokenRevoked, "refused the token"),
        (Reply(429, {}, {"Retry-After": "30"}), RateLimited, "retry after 30s"),
        (Reply(500, {}), ProviderUnavailable, "answered 500"),
        (Reply(200, {"calendars": {}}), ProviderUnavailable, "unreadable"),
        (Reply(200, {}, delay_s=1.0), ProviderUnavailable, "within 0.2s"),
    ],
    ids=["401", "403", "429", "500", "shape", "timeout"],
)
def test_client_errors(
    providers: FakeProviders,
    client: CalendarClient,
    reply: Reply,
    error: type[Exception],
    match: str,
) -> None:
    providers.script(FREEBUSY, reply)
    with pytest.raises(error, match=match):
        client.free_busy(_token(providers), principal="p", now=NOW, tz=BERLIN, deadline_s=0.2)


def test_rate_limit_is_honoured_without_asking(
    providers: FakeProviders, client: CalendarClient
) -> None:
    providers.script(FREEBUSY, Reply(429, {}, {"Retry-After": "60"}))
    token = _token(providers)
    for _ in range(2):
        with pytest.raises(RateLimited):
            client.free_busy(token, principal="p", now=NOW, tz=BERLIN)
    assert len(providers.calls_to(FREEBUSY)) == 1
