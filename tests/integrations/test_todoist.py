"""The Todoist client against a real local HTTP server, its cache, and todo candidates."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bandit.events import Action
from bandit.features import line
from bandit.store import make_engine
from integrations.providers import ProviderUnavailable, RateLimited, TokenRevoked, retry_after
from integrations.todoist import Due, Task, TodoistClient, parse_task, todo_candidates, todo_titles
from integrations.token_store import TokenStore
from integrations.vault import ProviderToken, Vault, VaultKey
from tests.conftest import free_port
from tests.integrations.conftest import FakeTodoist, Reply, todoist_task
from tests.schema import migrated

SECRET = "tdst-9a8b7c6d5e4f30211203f4e5d6c7b8a9"
TOKEN = ProviderToken(SECRET)
ALICE = "person:alice"
BERLIN = ZoneInfo("Europe/Berlin")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(todoist: FakeTodoist, clock: Clock) -> Iterator[TodoistClient]:
    todoist.tokens.add(SECRET)
    client = TodoistClient(base_url=todoist.base_url, clock=clock)
    yield client
    client.close()


# ------------------------------------------------------------------------------------ fetch


def test_fetches_open_tasks_as_typed_tasks(todoist: FakeTodoist, client: TodoistClient) -> None:
    todoist.tasks = [
        todoist_task(
            "6X7rM8997g3RQmvh",
            "Call the dentist",
            priority=4,
            labels=["errand", "phone"],
            due={
                "date": "2026-11-26T09:00:00Z",
                "timezone": "Europe/Berlin",
                "string": "tomorrow at 10",
                "lang": "en",
                "is_recurring": False,
            },
            duration={"amount": 15, "unit": "minute"},
        ),
        todoist_task("6X7rfFVPjhvv84XG", "Plan the week", due={"date": "2026-11-27"}),
        todoist_task("6X7rfEVP8hvv25ZQ", "Done already", checked=True),
    ]
    tasks = client.fetch_open_tasks(TOKEN, principal=ALICE)
    assert [t.id for t in tasks] == ["6X7rM8997g3RQmvh", "6X7rfFVPjhvv84XG"]
    first, second = tasks
    assert first.title == "Call the dentist"
    assert first.priority == 4
    assert first.labels == ("errand", "phone")
    assert first.duration_minutes == 15
    assert first.due == Due(
        day=date(2026, 11, 26), at=datetime(2026, 11, 26, 9, tzinfo=UTC), recurring=False
    )
    assert second.due == Due(day=date(2026, 11, 27))
    [request] = todoist.seen
    assert request.path == "/api/v1/tasks"
    assert request.authorization == f"Bearer {SECRET}"
    assert request.query == {"limit": "200"}


def test_follows_cursor_pages(todoist: FakeTodoist, client: TodoistClient) -> None:
    todoist.page_size = 2
    todoist.tasks = [todoist_task(str(i)) for i in range(5)]
    tasks = client.fetch_open_tasks(TOKEN, principal=ALICE)
    assert [t.id for t in tasks] == ["0", "1", "2", "3", "4"]
    assert [r.query.get("cursor") for r in todoist.seen] == [None, "2", "4"]


def test_accepts_rest_v2_bare_lists(todoist: FakeTodoist, client: TodoistClient) -> None:
    todoist.script.append(Reply(200, [todoist_task("1", due={"date": "2026-11-27"})]))
    [task] = client.fetch_open_tasks(TOKEN, principal=ALICE)
    assert task.id == "1"


def test_skips_malformed_tasks(
    todoist: FakeTodoist, client: TodoistClient, caplog: pytest.LogCaptureFixture
) -> None:
    todoist.tasks = [
        todoist_task("1"),
        todoist_task("2", priority=9),
        {"content": "no id"},
        todoist_task("3", due={"date": "someday"}),
    ]
    with caplog.at_level(logging.WARNING):
        tasks = client.fetch_open_tasks(TOKEN, principal=ALICE)
    assert [t.id for t in tasks] == ["1"]
    assert "skipped 3 malformed tasks" in caplog.text


@pytest.mark.parametrize("status", [401, 403])
def test_refused_token_is_revoked(todoist: FakeTodoist, client: TodoistClient, status: int) -> None:
    todoist.script.append(Reply(status, {"error": "Forbidden"}))
    with pytest.raises(TokenRevoked, match=f"refused the token \\({status}\\)") as caught:
        client.fetch_open_tasks(TOKEN, principal=ALICE)
    assert SECRET not in str(caught.value)


def test_unknown_token_is_revoked(todoist: FakeTodoist, client: TodoistClient) -> None:
    with pytest.raises(TokenRevoked):
        client.fetch_open_tasks(ProviderToken("someone-else"), principal=ALICE)


def test_rate_limit_honours_retry_after(
    todoist: FakeTodoist, client: TodoistClient, clock: Clock
) -> None:
    todoist.tasks = [todoist_task("1")]
    todoist.script.append(Reply(429, {"error": "Too many requests"}, {"Retry-After": "7"}))
    with pytest.raises(RateLimited) as caught:
        client.fetch_open_tasks(TOKEN, principal=ALICE)
    assert caught.value.retry_after == 7
    assert len(todoist.seen) == 1

    clock.now += 5
    with pytest.raises(RateLimited) as again:
        client.fetch_open_tasks(TOKEN, principal=ALICE)
    assert again.value.retry_after == pytest.approx(2)
    assert len(todoist.seen) == 1, "no request while Todoist asked us to wait"

    clock.now += 2.5
    assert [t.id for t in client.fetch_open_tasks(TOKEN, principal=ALICE)] == ["1"]
    assert len(todoist.seen) == 2


def test_retry_after_forms() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert retry_after("30") == 30
    assert retry_after("Wed, 25 Nov 2026 12:00:45 GMT", now=now) == 45
    assert retry_after("Wed, 25 Nov 2026 11:00:00 GMT", now=now) == 0
    assert retry_after(None) == 60
    assert retry_after("soon") == 60
    assert retry_after("999999") == 3600


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_unavailable(
    todoist: FakeTodoist, client: TodoistClient, status: int
) -> None:
    todoist.script.append(Reply(status, {"error": "Service unavailable"}))
    with pytest.raises(ProviderUnavailable, match=f"todoist answered {status}"):
        client.fetch_open_tasks(TOKEN, principal=ALICE)
    # Failures are not cached: the next recommend asks again.
    todoist.tasks = [todoist_task("1")]
    assert len(client.fetch_open_tasks(TOKEN, principal=ALICE)) == 1


def test_unexpected_answers_are_unavailable(todoist: FakeTodoist, client: TodoistClient) -> None:
    todoist.script.extend([Reply(200, {"items": []}), Reply(410, {"error": "Gone"}), Reply(200)])
    with pytest.raises(ProviderUnavailable, match="unexpected JSON shape"):
        client.fetch_open_tasks(TOKEN, principal=ALICE)
    with pytest.raises(ProviderUnavailable, match="answered 410"):
        client.fetch_open_tasks(TOKEN, principal=ALICE)
    with pytest.raises(ProviderUnavailable, match="without a JSON body"):
        client.fetch_open_tasks(TOKEN, principal=ALICE)


def test_a_slow_answer_gives_up_at_the_deadline(
    todoist: FakeTodoist, client: TodoistClient
) -> None:
    # The answer would come after the deadline, and would be a task: waiting for it would
    # return that task instead of raising.
    late = {"results": [todoist_task("late")], "next_cursor": None}
    todoist.script.append(Reply(200, late, delay_s=2.0))
    with pytest.raises(ProviderUnavailable, match=r"did not answer within 0\.3s"):
        client.fetch_open_tasks(TOKEN, principal=ALICE, deadline_s=0.3)
    # The give-up is not cached: the next recommend asks again and gets its answer.
    todoist.tasks = [todoist_task("1")]
    assert [t.id for t in client.fetch_open_tasks(TOKEN, principal=ALICE)] == ["1"]


def test_the_deadline_covers_all_pages(
    todoist: FakeTodoist, client: TodoistClient, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    todoist.page_size = 1
    todoist.tasks = [todoist_task(str(i)) for i in range(3)]
    answer = todoist.answer

    def six_seconds_a_page(path: str, query: dict[str, str], authorization: str | None) -> Reply:
        clock.now += 6  # on the client's clock; each page alone is well within the deadline
        return answer(path, query, authorization)

    monkeypatch.setattr(todoist, "answer", six_seconds_a_page)
    with pytest.raises(ProviderUnavailable, match=r"within 10s"):
        client.fetch_open_tasks(TOKEN, principal=ALICE, deadline_s=10)
    # Two pages took 12 of the 10 seconds: the third page was never asked for.
    assert [r.query.get("cursor") for r in todoist.seen] == [None, "1"]


def test_an_unreachable_server_is_unavailable() -> None:
    client = TodoistClient(base_url=f"http://127.0.0.1:{free_port()}/api/v1")
    with pytest.raises(ProviderUnavailable, match="unreachable"):
        client.fetch_open_tasks(TOKEN, principal=ALICE)
    client.close()


# ------------------------------------------------------------------------------------ cache


def test_cache_per_principal_and_ttl(
    todoist: FakeTodoist, client: TodoistClient, clock: Clock
) -> None:
    todoist.tasks = [todoist_task("1")]
    client.fetch_open_tasks(TOKEN, principal=ALICE)
    client.fetch_open_tasks(TOKEN, principal=ALICE)
    assert len(todoist.seen) == 1

    client.fetch_open_tasks(TOKEN, principal="person:bob")
    assert len(todoist.seen) == 2

    clock.now += 59
    client.fetch_open_tasks(TOKEN, principal=ALICE)
    assert len(todoist.seen) == 2
    clock.now += 2
    client.fetch_open_tasks(TOKEN, principal=ALICE)
    assert len(todoist.seen) == 3


def test_cache_is_dropped_on_forget_and_on_a_new_token(
    todoist: FakeTodoist, client: TodoistClient
) -> None:
    todoist.tasks = [todoist_task("1")]
    client.fetch_open_tasks(TOKEN, principal=ALICE)
    client.forget(ALICE)
    client.fetch_open_tasks(TOKEN, principal=ALICE)
    assert len(todoist.seen) == 2

    todoist.tokens.add("reconnected")
    client.fetch_open_tasks(ProviderToken("reconnected"), principal=ALICE)
    assert len(todoist.seen) == 3


def test_cached_tasks_are_copies(todoist: FakeTodoist, client: TodoistClient) -> None:
    todoist.tasks = [todoist_task("1")]
    first = client.fetch_open_tasks(TOKEN, principal=ALICE)
    first.clear()
    assert len(client.fetch_open_tasks(TOKEN, principal=ALICE)) == 1


def test_cache_is_bounded(todoist: FakeTodoist, clock: Clock) -> None:
    todoist.tokens.add(SECRET)
    client = TodoistClient(base_url=todoist.base_url, clock=clock, max_cached=2)
    for principal in ("a", "b", "c"):
        client.fetch_open_tasks(TOKEN, principal=principal)
    client.fetch_open_tasks(TOKEN, principal="a")  # evicted as the least recently used
    assert len(todoist.seen) == 4
    client.close()


# ------------------------------------------------------------------------------- candidates

NOW = datetime(2026, 11, 25, 14, 0, tzinfo=BERLIN)


def task(task_id: str, **fields: object) -> Task:
    values: dict[str, object] = {"id": task_id, "title": f"Secret title {task_id}"}
    values.setdefault("project_id", "6Jf8VQXxpwv56VQ7")
    values.update(fields)
    return Task(**values)  # type: ignore[arg-type]


def features_of(action: Action) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for obj in action.features:
        for namespace, value in obj.items():
            assert isinstance(value, dict)
            merged[namespace] = value
    return merged


def test_candidate_features() -> None:
    tasks = [
        task(
            "a",
            priority=4,
            labels=("Errand",),
            duration_minutes=15,
            due=Due(NOW.date(), at=(NOW + timedelta(minutes=90)).astimezone(UTC)),
        ),
        task("b", priority=1, due=Due(NOW.date() - timedelta(days=1))),
        task("c", priority=2),
        task("d", priority=3, due=Due(NOW.date()), duration_minutes=3 * 24 * 60),
        task("e", due=Due(date(2026, 11, 25), at=datetime(2026, 11, 25, 13, 30))),  # floating
        task("f", due=Due(date(2026, 12, 24), recurring=True), duration_minutes=2),
    ]
    actions = todo_candidates(tasks, NOW)
    by_id = {a.id: features_of(a) for a in actions}
    assert set(by_id) == {f"todoist:{x}" for x in "abcdef"}

    a = by_id["todoist:a"]
    assert a["tip"] == {"kind": "todo", "source": "todoist", "effort": "short"}
    assert a["todo"]["priority"] == "p1"
    assert a["todo"]["due"] == "h0-2"
    assert a["todo"]["overdue"] is False
    assert a["todo"]["project"] == "6Jf8VQXxpwv56VQ7"
    [label] = a["todo"]["label"]
    assert isinstance(label, str) and "errand" not in label.lower()

    b = by_id["todoist:b"]["todo"]
    assert (b["priority"], b["due"], b["overdue"]) == ("p4", "overdue", True)
    c = by_id["todoist:c"]
    assert (c["todo"]["priority"], c["todo"]["due"]) == ("p3", "none")
    assert c["tip"]["effort"] == "unknown"
    d = by_id["todoist:d"]
    assert (d["todo"]["due"], d["todo"]["overdue"], d["tip"]["effort"]) == ("h6-24", False, "long")
    e = by_id["todoist:e"]["todo"]
    assert (e["due"], e["overdue"]) == ("overdue", True), "13:30 Berlin is before 14:00 Berlin"
    f = by_id["todoist:f"]
    assert (f["todo"]["due"], f["todo"]["recurring"], f["tip"]["effort"]) == (
        "later",
        True,
        "instant",
    )

    # Titles are personal text: never features, only in the side mapping.
    everything = json.dumps([a.features for a in actions])
    assert "Secret title" not in everything
    assert todo_titles(tasks)["todoist:a"] == "Secret title a"
    for action in actions:
        assert line(action.features)


def test_same_label_same_feature_across_case() -> None:
    one = features_of(todo_candidates([task("a", labels=("Home",))], NOW)[0])
    two = features_of(todo_candidates([task("b", labels=("home",))], NOW)[0])
    assert one["todo"]["label"] == two["todo"]["label"]


def test_candidates_most_urgent_first_with_limit() -> None:
    tasks = [
        task("undated-high", priority=4),
        task("later", due=Due(NOW.date() + timedelta(days=3))),
        task("overdue", due=Due(NOW.date() - timedelta(days=2))),
        task("today", due=Due(NOW.date())),
    ]
    ids = [a.id for a in todo_candidates(tasks, NOW)]
    assert ids == ["todoist:overdue", "todoist:today", "todoist:later", "todoist:undated-high"]
    assert [a.id for a in todo_candidates(tasks, NOW, limit=2)] == ids[:2]


def test_the_person_zone_reads_all_day_dates() -> None:
    late_utc = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)  # already the 26th in Berlin
    [action] = todo_candidates([task("a", due=Due(date(2026, 11, 25)))], late_utc, tz=BERLIN)
    assert features_of(action)["todo"]["overdue"] is True
    [action] = todo_candidates([task("a", due=Due(date(2026, 11, 25)))], late_utc)
    assert features_of(action)["todo"]["overdue"] is False


def test_candidates_need_an_aware_now() -> None:
    with pytest.raises(ValueError, match="`now` must be timezone-aware"):
        todo_candidates([], datetime(2026, 11, 25, 12))


def test_parse_task_fields() -> None:
    parsed = parse_task(todoist_task("1", duration={"amount": 2, "unit": "day"}))
    assert parsed is not None and parsed.duration_minutes == 2880
    assert parse_task(todoist_task("2", is_deleted=True)) is None
    with pytest.raises(ValueError, match=r"`duration.unit` must be 'minute' or 'day'"):
        parse_task(todoist_task("3", duration={"amount": 2, "unit": "week"}))
    with pytest.raises(ValueError, match="`project_id` must be a non-empty string"):
        parse_task(todoist_task("4", project_id=None))


def test_task_repr_hides_the_title() -> None:
    text = repr(task("a"))
    assert "Secret title" not in text and "title=<14 chars>" in text


# ----------------------------------------------------------------- a whole cycle, in the logs


def test_connect_fetch_revoke_disconnect_cycle_never_logs_the_token(
    todoist: FakeTodoist, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    engine = make_engine(migrated(f"sqlite:///{tmp_path / 'oo.sqlite3'}"), pool_size=1)
    old, new = VaultKey("old", os.urandom(32)), VaultKey("new", os.urandom(32))
    store = TokenStore(engine, Vault([old]))
    client = TodoistClient(base_url=todoist.base_url, cache_ttl_s=0)
    todoist.tokens.add(SECRET)
    todoist.tasks = [todoist_task("1", "Private errand")]
    errors: list[str] = []

    store.save(ALICE, "todoist", ProviderToken(SECRET))  # connect
    stored = store.load(ALICE, "todoist")
    assert stored is not None
    tasks = client.fetch_open_tasks(stored.token, principal=ALICE)  # recommend
    logging.getLogger("test").info("candidates %r, stored %r", tasks, stored)

    todoist.script.append(Reply(429, {"error": "slow down"}, {"Retry-After": "0"}))
    todoist.script.append(Reply(503, {"error": "down"}))
    for _ in range(2):
        try:
            client.fetch_open_tasks(stored.token, principal=ALICE)
        except (RateLimited, ProviderUnavailable) as exc:
            errors.append(str(exc))
            logging.getLogger("test").warning("todoist skipped: %s", exc)

    todoist.tokens.clear()  # the person revokes oO in Todoist
    try:
        client.fetch_open_tasks(stored.token, principal=ALICE)
    except TokenRevoked as exc:
        errors.append(str(exc))
        logging.getLogger("test").warning("todoist: %r", exc)
        store.mark_needs_reconnect(ALICE, "todoist")

    rotated = TokenStore(engine, Vault([new, old]))  # key rotation in between
    rotated.rotate()
    rotated.save(ALICE, "todoist", ProviderToken(SECRET))  # reconnect
    rotated.delete(ALICE, "todoist")  # disconnect
    client.forget(ALICE)
    client.close()
    engine.dispose()

    assert len(errors) == 3
    assert any(r.name.startswith("httpx") for r in caplog.records), "httpx logs were captured"
    assert "Private errand" not in caplog.text
    for text in [caplog.text, *errors, *(r.getMessage() for r in caplog.records)]:
        assert SECRET not in text
