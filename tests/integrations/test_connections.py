"""Live candidates: tasks and free/busy turned into what one decision sees."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from integrations.calendar import Busy, FreeBusy, window
from integrations.connections import Gathered, fetches, live_candidates, todo_note
from integrations.todoist import Due, Task

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)  # 10:00 in Berlin


def task(task_id: str, title: str, due: Due | None = None, priority: int = 1) -> Task:
    return Task(id=task_id, title=title, project_id="p1", priority=priority, due=due)


def test_tasks_become_todos_without_their_titles_and_recent_ones_sit_out() -> None:
    tasks = (
        task("1", "Call the dentist", Due(date(2026, 11, 24))),
        task("2", "Renew passport", Due(date(2026, 11, 25)), priority=4),
        task("3", "Shown an hour ago"),
        task("4", "Someday"),
    )
    start, end = window(NOW, BERLIN)
    busy = FreeBusy(start, end, (Busy(datetime(2026, 11, 25, 8, 30, tzinfo=UTC), NOW),))
    live = live_candidates(
        Gathered(tasks=tasks, free_busy=busy, used=("todoist", "google-calendar")),
        NOW,
        BERLIN,
        recent={"todoist:3": NOW},
        limit=2,
    )
    assert [a.id for a in live.actions] == ["todoist:1", "todoist:2"]  # most urgent first
    assert set(live.tasks) == {"todoist:1", "todoist:2"}
    assert live.tasks["todoist:2"].title == "Renew passport"
    assert not any("Call the dentist" in text or "passport" in text for text in live.lines)
    assert live.context == [{"calendar": {"busy_2h": False, "meetings": "1", "free_in": "now"}}]


def test_nothing_gathered_adds_nothing() -> None:
    live = live_candidates(Gathered(missing=("todoist",)), NOW, BERLIN, recent={}, limit=10)
    assert (live.context, live.actions, live.lines, live.tasks) == ([], [], [], {})


def test_todo_note_says_when_it_is_due() -> None:
    assert todo_note(task("1", "x"), NOW, BERLIN) == "No due date · from Todoist"
    assert todo_note(task("1", "x", Due(date(2026, 11, 24))), NOW, BERLIN).startswith("Overdue")
    assert todo_note(task("1", "x", Due(date(2026, 11, 25))), NOW, BERLIN).startswith("Due today")
    timed = Due(date(2026, 11, 25), datetime(2026, 11, 25, 15, 30))  # floating: Berlin time
    assert todo_note(task("1", "x", timed), NOW, BERLIN).startswith("Due today at 15:30")
    assert todo_note(task("1", "x", Due(date(2026, 11, 26))), NOW, BERLIN).startswith(
        "Due tomorrow"
    )
    assert todo_note(task("1", "x", Due(date(2026, 12, 1))), NOW, BERLIN).startswith(
        "Due Tue 01 Dec"
    )


def test_a_gather_fetches_only_when_a_provider_it_consults_is_connected() -> None:
    assert not fetches({})
    assert not fetches({"todoist": "needs_reconnect", "google-calendar": "needs_reconnect"})
    assert fetches({"todoist": "connected"})
    assert fetches({"google-calendar": "connected", "todoist": "needs_reconnect"})
    # Todoist is consulted only for a person who wants todos; the calendar always.
    assert not fetches({"todoist": "connected"}, todos=False)
    assert fetches({"todoist": "connected", "google-calendar": "connected"}, todos=False)
    assert not fetches({"todoist": "connected", "google-calendar": "needs_reconnect"}, todos=False)
