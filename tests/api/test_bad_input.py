"""Bad input gets a 4xx whose message names the field; never a 5xx, never a half-written row.

Every case runs against one server per backend (module scope): a refused request must not
change anything, so the cases cannot disturb each other, and the row counts before and after
each one prove it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import create_app
from tests.api.decision_helpers import (
    FORMS,
    Form,
    actions,
    assert_error,
    event_url,
    logged,
    personalizer_url,
    rank,
    recommend,
    row_counts,
)
from tests.conftest import PG_URL, REDIS_URL, Backend, _pg_schema_url, fast_learner

MAX_BODY = 256 * 1024
JSON = "application/json"
EVENT = "bad-input-event"  # a Personalizer decision logged once per server
TIP = "{tip}"  # replaced by the event id of a logged tip
A = actions("a", "b")


@dataclass(frozen=True)
class Raw:
    """A body sent as these bytes, verbatim (NaN, Infinity, broken JSON, other encodings)."""

    content: bytes
    content_type: str = JSON


@pytest.fixture(scope="module", params=["embedded", "postgres"])
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    schema = None
    if request.param == "embedded":
        path = tmp_path_factory.mktemp("bad-input") / "oo.sqlite3"
        backend = Backend("embedded", f"sqlite:///{path}", None)
    else:
        if not (PG_URL and REDIS_URL):
            pytest.skip("PostgreSQL + Redis not configured (run through `make test`)")
        schema = f"t_{uuid.uuid4().hex[:12]}"
        redis.Redis.from_url(REDIS_URL).flushdb()
        backend = Backend("postgres", _pg_schema_url(schema), REDIS_URL)
    with TestClient(create_app(backend.settings(), fast_learner())) as client:
        rank(client, {"eventId": EVENT, "actions": A})
        yield client
    if schema is not None and PG_URL:
        engine = sa.create_engine(PG_URL)
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(scope="module")
def tip(api: TestClient) -> str:
    return str(recommend(api)["event_id"])


def _send(api: TestClient, method: str, url: str, body: Any, tip: str) -> httpx.Response:
    if isinstance(body, Raw):
        content = body.content.replace(TIP.encode(), tip.encode())
        return api.request(
            method, url, content=content, headers={"content-type": body.content_type}
        )
    if body is None:
        return api.request(method, url)
    return api.request(method, url, json=json.loads(json.dumps(body).replace(TIP, tip)))


def _refused(
    api: TestClient,
    tip: str,
    method: str,
    url: str,
    body: Any,
    *,
    code: str = "BadRequest",
    target: str | None = None,
    match: str | None = None,
) -> None:
    before = row_counts(api), api.get("/v1/me").json()
    assert_error(_send(api, method, url, body, tip), 400, code, target=target, match=match)
    assert (row_counts(api), api.get("/v1/me").json()) == before


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        value = {"n": value}
    return value


LONG_ID = "x" * 257
DEEP_JSON = b'{"contextFeatures": [{"x": ' + b"[" * 5000 + b"]" * 5000 + b'}], "actions": []}'

RANK_CASES = [
    pytest.param({}, "actions", r"^`actions`: Field required$", id="missing-actions"),
    pytest.param(
        {"actions": [{"id": "a"}, {"features": []}]},
        "actions[1].id",
        r"^`actions\[1\]\.id`: Field required$",
        id="missing-action-id",
    ),
    pytest.param({"actions": {"id": "a"}}, "actions", "valid list", id="actions-not-a-list"),
    pytest.param(
        {"actions": [{"id": "a"}, {"id": 7}]},
        "actions[1].id",
        r"^`actions\[1\]\.id`: Input should be a valid string$",
        id="action-id-not-a-string",
    ),
    pytest.param(
        {"actions": [{"id": "a", "features": {"x": 1}}]},
        "actions[0].features",
        r"^`actions\[0\]\.features`: Input should be a valid list$",
        id="features-not-a-list",
    ),
    pytest.param(
        {"actions": [{"id": "a", "features": ["x"]}]},
        "actions[0].features[0]",
        r"^`actions\[0\]\.features\[0\]`: Input should be a valid dictionary$",
        id="feature-not-an-object",
    ),
    pytest.param(
        {"contextFeatures": {"user": {}}, "actions": A},
        "contextFeatures",
        "^`contextFeatures`: Input should be a valid list$",
        id="context-not-a-list",
    ),
    pytest.param(
        {"excludedActions": "a", "actions": A},
        "excludedActions",
        "^`excludedActions`: Input should be a valid list$",
        id="excluded-not-a-list",
    ),
    pytest.param(
        {"deferActivation": "maybe", "actions": A},
        "deferActivation",
        "^`deferActivation`: Input should be a valid boolean",
        id="defer-not-a-boolean",
    ),
    pytest.param(
        {"eventId": 5, "actions": A},
        "eventId",
        "^`eventId`: Input should be a valid string$",
        id="event-id-not-a-string",
    ),
    pytest.param(
        {"actions": []}, "actions", "^`actions`: List should have at least 1 item", id="no-actions"
    ),
    pytest.param(
        {"actions": actions(*(f"a{i}" for i in range(51)))},
        "actions",
        r"^`actions` must hold at most 50 actions \(got 51\)$",
        id="51-actions",
    ),
    pytest.param(
        {"actions": actions("a", "b", "a")},
        "actions[2].id",
        r"^`actions\[2\]\.id` 'a' is a duplicate action id$",
        id="duplicate-ids",
    ),
    pytest.param(
        {"actions": A, "excludedActions": ["a", "zz"]},
        "excludedActions[1]",
        r"^`excludedActions\[1\]` 'zz' is not one of the actions$",
        id="excluded-not-an-action",
    ),
    pytest.param(
        {"actions": A, "excludedActions": ["b", "a"]},
        "excludedActions",
        r"^`excludedActions` excludes every action; at least one must remain$",
        id="all-excluded",
    ),
    pytest.param(
        {"actions": [{"id": "a"}, {"id": LONG_ID}]},
        "actions[1].id",
        r"^`actions\[1\]\.id`: String should have at most 256 characters$",
        id="action-id-257-chars",
    ),
    pytest.param(
        {"eventId": LONG_ID, "actions": A},
        "eventId",
        "^`eventId`: String should have at most 256 characters$",
        id="event-id-257-chars",
    ),
    pytest.param(
        {"eventId": "", "actions": A},
        "eventId",
        "^`eventId`: String should have at least 1 character$",
        id="event-id-empty",
    ),
    pytest.param(
        {"eventId": "a\x00b", "actions": A},
        "eventId",
        r"^`eventId`: must not contain a NUL character",
        id="event-id-nul",
    ),
    pytest.param(
        {"actions": [{"id": "a\x00"}]},
        "actions[0].id",
        r"^`actions\[0\]\.id`: must not contain a NUL character",
        id="action-id-nul",
    ),
    pytest.param(
        Raw(b'{"contextFeatures": [{"user": {"age": NaN}}], "actions": [{"id": "a"}]}'),
        "contextFeatures[0].user.age",
        r"^`contextFeatures\[0\]\.user\.age` must be a finite number \(got nan\)$",
        id="nan-in-context",
    ),
    pytest.param(
        Raw(b'{"actions": [{"id": "a"}, {"id": "b", "features": [{"size": {"w": Infinity}}]}]}'),
        "actions[1].features[0].size.w",
        r"^`actions\[1\]\.features\[0\]\.size\.w` must be a finite number \(got inf\)$",
        id="infinity-in-features",
    ),
    pytest.param(
        Raw(b'{"actions": [{"id": "a", "features": [{"t": -Infinity}]}]}'),
        "actions[0].features[0].t",
        r"\(got -inf\)$",
        id="minus-infinity-in-features",
    ),
    pytest.param(
        Raw(b'{"actions": [{"id": "a", "features": [{"v": [1, 1e999]}]}]}'),
        "actions[0].features[0].v[1]",
        r"^`actions\[0\]\.features\[0\]\.v\[1\]` must be a finite number \(got inf\)$",
        id="1e999-in-features",
    ),
    pytest.param(
        {"actions": [{"id": "a", "features": [_nested(9)]}]},
        "actions[0].features[0]" + ".n" * 9,
        r"^`actions\[0\]\.features\[0\](\.n){9}` nests deeper than 8 levels$",
        id="features-nested-9-deep",
    ),
    pytest.param(
        Raw(DEEP_JSON),
        "body",
        "^the body is not valid JSON: maximum recursion",
        id="json-5000-deep",
    ),
    pytest.param(
        Raw(b'{"actions": [{"id": "a", "features": [{"n": 1' + b"0" * 5000 + b"}]}]}"),
        "body",
        r"^the body is not valid JSON: Exceeds the limit \(4300 digits\)",
        id="integer-of-5000-digits",
    ),
    pytest.param(Raw(b'{"actions": [{"id": "\xff"}]}'), "body", "utf-8", id="not-utf-8"),
    pytest.param(
        Raw(b'{"actions": [{"id": "a"}'),
        "body",
        "^the body is not valid JSON: Expecting",
        id="invalid-json",
    ),
    pytest.param(
        [{"actions": A}],
        "body",
        "^`body`: Input should be a valid dictionary",
        id="body-an-array",
    ),
    pytest.param(
        "actions", "body", "^`body`: Input should be a valid dictionary", id="body-a-string"
    ),
    pytest.param(
        Raw(b"null"), "body", "^`body`: Input should be a valid dictionary", id="body-null"
    ),
    pytest.param(
        Raw(json.dumps({"actions": A}).encode(), "text/plain"),
        "body",
        r"^`body` must be JSON, sent with `Content-Type: application/json`$",
        id="content-type-text",
    ),
    pytest.param(
        Raw(b"actions=a", "application/x-www-form-urlencoded"),
        "body",
        "^`body` must be JSON",
        id="content-type-form",
    ),
]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(("body", "target", "match"), RANK_CASES)
def test_rank(api: TestClient, tip: str, form: Form, body: Any, target: str, match: str) -> None:
    url = personalizer_url("/rank", form)
    _refused(api, tip, "POST", url, body, code="InvalidRankRequest", target=target, match=match)


REWARD_CASES = [
    pytest.param(
        {"value": 1.5}, "value", "^`value`: Input should be less than or equal to 1$", id="above-1"
    ),
    pytest.param(
        {"value": -2},
        "value",
        "^`value`: Input should be greater than or equal to -1$",
        id="below-minus-1",
    ),
    pytest.param(
        Raw(b'{"value": NaN}'), "value", "^`value`: Input should be a finite number$", id="nan"
    ),
    pytest.param(Raw(b'{"value": Infinity}'), "value", "finite number", id="infinity"),
    pytest.param(Raw(b'{"value": -1e999}'), "value", "finite number", id="minus-1e999"),
    pytest.param(
        {"value": "0.5"}, "value", "^`value`: Input should be a valid number$", id="numeric-string"
    ),
    pytest.param(
        {"value": True}, "value", "^`value`: Input should be a valid number$", id="boolean"
    ),
    pytest.param({"value": None}, "value", "^`value`: Input should be a valid number$", id="null"),
    pytest.param({}, "value", "^`value`: Field required$", id="missing-value"),
    pytest.param([0.5], "body", "^`body`: Input should be a valid dictionary", id="array"),
    pytest.param(Raw(b'{"value": '), "body", "^the body is not valid JSON", id="invalid-json"),
    pytest.param(Raw(b'{"value": 1}', "text/plain"), "body", "^`body` must be JSON", id="text"),
]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(("body", "target", "match"), REWARD_CASES)
def test_reward(api: TestClient, tip: str, form: Form, body: Any, target: str, match: str) -> None:
    url = event_url(EVENT, "reward", form)
    _refused(api, tip, "POST", url, body, code="InvalidRewardRequest", target=target, match=match)
    assert logged(api, EVENT).reward is None


def test_event_id_in_the_path_longer_than_256(api: TestClient, tip: str) -> None:
    long_id = "x" * 257
    match = "^`event_id`: String should have at most 256 characters$"
    for url, code in (
        (event_url(long_id, "reward"), "InvalidRewardRequest"),
        (event_url(long_id, "activate", "preview"), "InvalidEventIdToActivate"),
        (f"/v1/decisions/{long_id}/activate", "BadRequest"),
    ):
        body = {"value": 1} if url.endswith("reward") else None
        _refused(api, tip, "POST", url, body, code=code, target="event_id", match=match)


FEEDBACK_CASES = [
    pytest.param(
        {"reaction": "done"}, "event_id", "^`event_id`: Field required$", id="missing-event-id"
    ),
    pytest.param(
        {"event_id": TIP}, "reaction", "^`reaction`: Field required$", id="missing-reaction"
    ),
    pytest.param(
        {"event_id": TIP, "reaction": "love"},
        "reaction",
        "^`reaction`: Input should be 'done', 'useful', 'later' or 'dismiss'$",
        id="unknown-reaction",
    ),
    pytest.param(
        {"event_id": TIP, "reaction": 1},
        "reaction",
        "^`reaction`: Input should be",
        id="reaction-not-a-string",
    ),
    pytest.param(
        {"event_id": 5, "reaction": "done"},
        "event_id",
        "^`event_id`: Input should be a valid string$",
        id="event-id-not-a-string",
    ),
    pytest.param(
        {"event_id": LONG_ID, "reaction": "done"},
        "event_id",
        "^`event_id`: String should have at most 256 characters$",
        id="event-id-257-chars",
    ),
    pytest.param(
        {"event_id": "a\x00", "reaction": "done"},
        "event_id",
        "^`event_id`: must not contain a NUL character",
        id="event-id-nul",
    ),
    pytest.param(
        {"event_id": TIP, "reaction": "done", "stars": 5},
        "stars",
        "^`stars`: Extra inputs are not permitted$",
        id="extra-field",
    ),
    pytest.param([TIP, "done"], "body", "^`body`: Input should be a valid dictionary", id="array"),
    pytest.param(Raw(b'{"event_id": "'), "body", "^the body is not valid JSON", id="invalid-json"),
    pytest.param(
        Raw(b'{"event_id": "{tip}", "reaction": "done"}', "text/plain"),
        "body",
        "^`body` must be JSON",
        id="text",
    ),
]


@pytest.mark.parametrize(("body", "target", "match"), FEEDBACK_CASES)
def test_feedback(api: TestClient, tip: str, body: Any, target: str, match: str) -> None:
    _refused(api, tip, "POST", "/v1/feedback", body, target=target, match=match)


RECOMMEND_CASES = [
    pytest.param(
        {"defer_activation": "soon"},
        "defer_activation",
        "^`defer_activation`: Input should be",
        id="defer-not-a-boolean",
    ),
    pytest.param(
        {"count": 3}, "count", "^`count`: Extra inputs are not permitted$", id="extra-field"
    ),
    pytest.param([], "body", "^`body`: Input should be a valid dictionary", id="array"),
    pytest.param(Raw(b"{"), "body", "^the body is not valid JSON", id="invalid-json"),
    pytest.param(Raw(b"{}", "text/plain"), "body", "^`body` must be JSON", id="text"),
]


@pytest.mark.parametrize(("body", "target", "match"), RECOMMEND_CASES)
def test_recommend(api: TestClient, tip: str, body: Any, target: str, match: str) -> None:
    _refused(api, tip, "POST", "/v1/recommend", body, target=target, match=match)


SIGNAL_CASES = [
    pytest.param({"value": 3}, "type", "^`type`: Field required$", id="missing-type"),
    pytest.param({"type": "mood"}, "value", "^`value`: Field required$", id="missing-value"),
    pytest.param(
        {"type": "Mood", "value": 3},
        "type",
        "^`type`: String should match pattern",
        id="type-uppercase",
    ),
    pytest.param(
        {"type": "steps", "value": 3},
        "type",
        r"^`type` 'steps' is neither a built-in type \(mood, energy, habit_done\) nor a custom "
        r"type named `<namespace>\.<name>`",
        id="custom-type-without-namespace",
    ),
    pytest.param(
        {"type": "fitness..steps", "value": 3},
        "type",
        "^`type` 'fitness..steps' is neither",
        id="custom-type-empty-segment",
    ),
    pytest.param(
        {"type": "<script>alert(1)</script>", "value": 3},
        "type",
        "^`type`: String should match pattern",
        id="type-markup",
    ),
    pytest.param(
        {"type": "habit_done", "value": 2},
        "value",
        r"^`value` of a habit_done signal must be 1 \(done\) or 0 \(skipped\) \(got 2.0\)$",
        id="habit-done-2",
    ),
    pytest.param(
        {"type": "mood", "value": 3, "occurred_at": "2999-01-01T00:00:00Z"},
        "occurred_at",
        r"^`occurred_at` is in the future \(got 2999-01-01T00:00:00\+00:00\)",
        id="occurred-at-future",
    ),
    pytest.param(
        {"type": "mood", "value": 3, "occurred_at": "2001-01-01T00:00:00Z"},
        "occurred_at",
        r"^`occurred_at` is older than the signal retention period of 90 days",
        id="occurred-at-past-retention",
    ),
    pytest.param(
        {"type": 4, "value": 3},
        "type",
        "^`type`: Input should be a valid string$",
        id="type-not-a-string",
    ),
    pytest.param(
        {"type": "mood", "value": "high"},
        "value",
        "^`value`: Input should be a valid",
        id="value-not-a-number",
    ),
    pytest.param(
        {"type": "mood", "value": 6},
        "value",
        r"^`value` of a mood signal must be in \[1, 5\] \(got 6.0\)$",
        id="mood-above-5",
    ),
    pytest.param(
        {"type": "energy", "value": 0.5},
        "value",
        r"^`value` of a energy signal must be in \[1, 5\] \(got 0.5\)$",
        id="energy-below-1",
    ),
    pytest.param(
        Raw(b'{"type": "fitness.steps", "value": NaN}'), "value", "finite number", id="nan"
    ),
    pytest.param(
        Raw(b'{"type": "fitness.steps", "value": 1e999}'), "value", "finite number", id="1e999"
    ),
    pytest.param(
        {"type": "mood", "value": 3, "occurred_at": "2026-11-25T09:00:00"},
        "occurred_at",
        "^`occurred_at` must carry a timezone offset",
        id="naive-occurred-at",
    ),
    pytest.param(
        {"type": "mood", "value": 3, "occurred_at": "yesterday"},
        "occurred_at",
        "^`occurred_at`: Input should be a valid datetime",
        id="occurred-at-not-a-time",
    ),
    pytest.param(
        {"type": "mood", "value": 3, "occurred_at": "9999-12-31T23:00:00-05:00"},
        "occurred_at",
        r"^`occurred_at` is out of range in UTC \(got 9999-12-31T23:00:00-05:00\)$",
        id="occurred-at-beyond-year-9999-in-utc",
    ),
    pytest.param(
        {"type": "mood", "value": 3, "source": ""},
        "source",
        "^`source`: String should",
        id="source-empty",
    ),
    pytest.param(
        {"type": "mood", "value": 3, "source": "a\x00"},
        "source",
        "^`source`: must not contain a NUL character",
        id="source-nul",
    ),
    pytest.param(
        {"type": "mood", "value": 3, "at": 1}, "at", "^`at`: Extra inputs", id="extra-field"
    ),
]


@pytest.mark.parametrize(("body", "target", "match"), SIGNAL_CASES)
def test_signal(api: TestClient, tip: str, body: Any, target: str, match: str) -> None:
    _refused(api, tip, "POST", "/v1/signals", body, target=target, match=match)


PROFILE_CASES = [
    pytest.param(
        {"timezone": "Mars/Olympus"},
        "timezone",
        r"^`timezone` must be an IANA zone like Europe/Paris \(got 'Mars/Olympus'\)$",
        id="unknown-timezone",
    ),
    pytest.param(
        {"timezone": "../etc/passwd"},
        "timezone",
        "^`timezone` must be an IANA zone",
        id="timezone-a-path",
    ),
    pytest.param(
        {"timezone": 2},
        "timezone",
        "^`timezone`: Input should be a valid string$",
        id="timezone-not-a-string",
    ),
    pytest.param(
        {"quiet_hours": {"start": "25:00", "end": "07:00"}},
        "quiet_hours.start",
        r"^`quiet_hours\.start`: must be a local time HH:MM \(got '25:00'\)$",
        id="quiet-start-25h",
    ),
    pytest.param(
        {"quiet_hours": {"start": "22:00", "end": "7:30"}},
        "quiet_hours.end",
        r"^`quiet_hours\.end`: must be a local time HH:MM \(got '7:30'\)$",
        id="quiet-end-without-leading-zero",
    ),
    pytest.param(
        {"quiet_hours": {"start": "22:00"}},
        "quiet_hours.end",
        r"^`quiet_hours\.end`: Field required$",
        id="quiet-end-missing",
    ),
    pytest.param(
        {"quiet_hours": "22:00-07:00"},
        "quiet_hours",
        r"^`quiet_hours`: Input should be a valid dictionary",
        id="quiet-hours-not-an-object",
    ),
    pytest.param(
        {"interests": ["x" * 41]},
        "interests[0]",
        r"^`interests\[0\]`: String should have at most 40 characters$",
        id="interest-41-chars",
    ),
    pytest.param(
        {"interests": ["ok", "a\x00"]},
        "interests[1]",
        r"^`interests\[1\]`: must not contain a NUL character",
        id="interest-nul",
    ),
    pytest.param(
        {"interests": ["a"] * 21},
        "interests",
        "^`interests`: List should have at most",
        id="21-interests",
    ),
    pytest.param(
        {"kinds": []}, "kinds", "^`kinds`: List should have at least 1 item", id="no-kinds"
    ),
    pytest.param(
        {"kinds": ["video"]},
        "kinds[0]",
        r"^`kinds\[0\]`: Input should be 'advice'",
        id="unknown-kind",
    ),
    pytest.param(
        {"name": "me"}, "name", "^`name`: Extra inputs are not permitted$", id="extra-field"
    ),
]


@pytest.mark.parametrize(("body", "target", "match"), PROFILE_CASES)
def test_profile(api: TestClient, tip: str, body: Any, target: str, match: str) -> None:
    _refused(api, tip, "PATCH", "/v1/me", body, target=target, match=match)


def _chunks(size: int) -> Iterator[bytes]:
    yield b'{"actions": [{"id": "a", "features": [{"blob": "'
    for _ in range(size // 4096 + 1):
        yield b"x" * 4096
    yield b'"}]}]}'


@pytest.mark.parametrize(
    "url",
    [
        "/personalizer/v1.0/rank",
        f"/personalizer/v1.0/events/{EVENT}/reward",
        "/v1/feedback",
        "/v1/signals",
    ],
)
def test_oversized_body_is_413(api: TestClient, tip: str, url: str) -> None:
    match = f"^the body exceeds {MAX_BODY} bytes$"
    before = row_counts(api)
    oversized = b"".join(_chunks(MAX_BODY))
    declared = api.post(url, content=oversized, headers={"content-type": JSON})
    assert declared.request.headers["content-length"] == str(len(oversized))
    assert_error(declared, 413, "PayloadSizeExceeded", match=match)
    # The same body streamed in chunks, without a Content-Length, is counted as it arrives.
    chunked = api.post(url, content=_chunks(MAX_BODY), headers={"content-type": JSON})
    assert "content-length" not in chunked.request.headers
    assert chunked.request.headers["transfer-encoding"] == "chunked"
    assert_error(chunked, 413, "PayloadSizeExceeded", match=match)
    assert row_counts(api) == before
    # A small body gets through to validation.
    assert api.post(url, content=b'{"x": 1}', headers={"content-type": JSON}).status_code == 400


# --- input PostgreSQL cannot store: NUL characters, numbers beyond a float -------------------


@pytest.mark.parametrize(
    ("body", "target"),
    [
        pytest.param(
            {"actions": [{"id": "a", "features": [{"tag": "x\x00y"}]}]},
            "actions[0].features[0].tag",
            id="nul-in-a-feature-value",
        ),
        pytest.param(
            {"contextFeatures": [{"user\x00": {"tier": "gold"}}], "actions": A},
            "contextFeatures[0]",
            id="nul-in-a-feature-name",
        ),
        pytest.param(
            Raw(b'{"actions": [{"id": "a", "features": [{"n": 1' + b"0" * 400 + b"}]}]}"),
            "actions[0].features[0].n",
            id="integer-beyond-float",
        ),
    ],
)
def test_rank_features_that_cannot_be_stored(
    api: TestClient, tip: str, body: Any, target: str
) -> None:
    before = row_counts(api)
    reply = _send(api, "POST", "/personalizer/v1.0/rank", body, tip)
    error = assert_error(reply, 400, "InvalidRankRequest")
    assert error["target"].startswith(target), error
    assert row_counts(api) == before


@pytest.mark.parametrize(
    "url",
    [
        event_url("a%00b", "reward"),
        event_url("a%00b", "activate"),
        "/v1/decisions/a%00b/activate",
    ],
)
def test_event_id_in_the_path_with_a_nul(
    api: TestClient, tip: str, url: str, request: pytest.FixtureRequest
) -> None:
    body = {"value": 1} if url.endswith("reward") else None
    reply = _send(api, "POST", url, body, tip)
    assert 400 <= reply.status_code < 500, reply.text
    assert reply.json()["error"]["target"] == "event_id"
