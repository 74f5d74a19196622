"""Todoist as a candidate source: a person's open tasks become todo candidates.

The client speaks Todoist's unified API v1 (``GET /api/v1/tasks``, cursor-paginated
``{"results": [...], "next_cursor": ...}``) and also accepts the bare task list of the retired
REST v2. How Todoist is asked (HTTP, the deadline, errors, backoff on 429, the cache) is
`integrations.provider_client`'s, shared with Google Calendar; this module keeps the endpoint,
the paging and the task format. A recommend waits at most `deadline_s` for Todoist and goes on
without it otherwise.

Tokens: Todoist's OAuth access tokens do not expire and come without a refresh token, so there
is nothing to refresh; a token stops working only when the person revokes the app (or we revoke
it on disconnect). That shows up here as 401/403, raised as `TokenRevoked`, on which the caller
marks the integration as needing reconnection.

Tasks are never stored: they live in a short per-principal in-memory cache (60 s by default) so
consecutive recommends do not refetch. Task titles are personal text: they are kept beside the
candidates for display (`todo_titles`), never turned into features, and never shown in reprs.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bandit.events import Action, FeatureObject, Features, JSONValue
from integrations.context import effort
from integrations.provider_client import DEFAULT_DEADLINE_S, Deadline, ProviderClient
from integrations.vault import ProviderToken

logger = logging.getLogger(__name__)

PROVIDER = "todoist"
API_BASE = "https://api.todoist.com/api/v1"
PAGE_LIMIT = 200
MAX_PAGES = 5


# ------------------------------------------------------------------------------------- tasks


@dataclass(frozen=True, slots=True)
class Due:
    day: date
    """The due day, in the person's calendar."""
    at: datetime | None = None
    """The due moment when the task has a time: aware for fixed-zone due dates, naive for
    floating ones (read in the person's zone); None for all-day tasks."""
    recurring: bool = False

    def moment(self, zone: tzinfo) -> datetime | None:
        """The due time, aware: a floating one is read in `zone`; None for all-day tasks."""
        if self.at is None or self.at.tzinfo is not None:
            return self.at
        return self.at.replace(tzinfo=zone)


@dataclass(frozen=True, slots=True, repr=False)
class Task:
    """An open Todoist task. `priority` is the API's scale: 4 is the UI's p1 (urgent)."""

    id: str
    title: str
    project_id: str
    priority: int = 1
    labels: tuple[str, ...] = ()
    due: Due | None = None
    duration_minutes: int | None = None

    def __repr__(self) -> str:
        return (
            f"Task(id={self.id!r}, title=<{len(self.title)} chars>, "
            f"project_id={self.project_id!r}, priority={self.priority}, labels={self.labels!r}, "
            f"due={self.due!r}, duration_minutes={self.duration_minutes!r})"
        )


def parse_task(raw: Any) -> Task | None:
    """A task from its JSON object; None for completed or deleted tasks.

    Raises ValueError (naming the field) when the object does not have Todoist's shape.
    """
    if not isinstance(raw, dict):
        raise ValueError(f"task must be an object (got {type(raw).__name__})")
    if raw.get("checked") or raw.get("is_completed") or raw.get("is_deleted"):
        return None
    task_id = _string(raw, "id")
    priority = raw.get("priority", 1)
    if isinstance(priority, bool) or not isinstance(priority, int) or not 1 <= priority <= 4:
        raise ValueError(f"`priority` must be 1..4 (got {priority!r})")
    labels = raw.get("labels") or []
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise ValueError("`labels` must be a list of strings")
    content = raw.get("content")
    return Task(
        id=task_id,
        title=content if isinstance(content, str) else "",
        project_id=_string(raw, "project_id"),
        priority=priority,
        labels=tuple(labels),
        due=_parse_due(raw.get("due")),
        duration_minutes=_parse_duration(raw.get("duration")),
    )


def _string(raw: dict[str, Any], name: str) -> str:
    value = raw.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # the Sync-era API used numeric ids
    if not isinstance(value, str) or not value:
        raise ValueError(f"`{name}` must be a non-empty string")
    return value


def _parse_due(raw: Any) -> Due | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError("`due` must be an object or null")
    recurring = bool(raw.get("is_recurring", False))
    # REST v2 put the moment in `datetime`; API v1 puts it in `date` itself.
    text = raw.get("datetime") or raw.get("date")
    if not isinstance(text, str):
        raise ValueError("`due.date` must be a string")
    try:
        if len(text) == 10:
            return Due(day=date.fromisoformat(text), recurring=recurring)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"`due.date` must be ISO 8601 (got {text!r})") from None
    if moment.tzinfo is not None:
        zone = _zone(raw.get("timezone"))
        day = moment.astimezone(zone).date() if zone else moment.date()
        return Due(day=day, at=moment, recurring=recurring)
    return Due(day=moment.date(), at=moment, recurring=recurring)


def _zone(name: Any) -> ZoneInfo | None:
    if not isinstance(name, str) or not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _parse_duration(raw: Any) -> int | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError("`duration` must be an object or null")
    amount, unit = raw.get("amount"), raw.get("unit")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise ValueError(f"`duration.amount` must be a non-negative integer (got {amount!r})")
    if unit == "minute":
        return amount
    if unit == "day":
        return amount * 24 * 60
    raise ValueError(f"`duration.unit` must be 'minute' or 'day' (got {unit!r})")


# ------------------------------------------------------------------------------------ client


class TodoistClient(ProviderClient[tuple[Task, ...]]):
    """Fetches a person's open tasks within a deadline, with a short per-principal cache.

    HTTP, deadline, errors, backoff and cache are `ProviderClient`'s; this reads the pages.
    Thread-safe: api workers share one client (keep it on ``app.state``, close it on shutdown).
    """

    provider = PROVIDER
    api_base = API_BASE

    def fetch_open_tasks(
        self, token: ProviderToken, *, principal: str, deadline_s: float = DEFAULT_DEADLINE_S
    ) -> list[Task]:
        """The person's open tasks, from the cache when fresh, else from Todoist.

        Raises
        ------
        TokenRevoked
            On 401/403; the caller marks the integration needs_reconnect.
        RateLimited
            On 429, and again without asking Todoist until its Retry-After has passed.
        ProviderUnavailable
            On 5xx, network errors, unreadable answers, or when `deadline_s` runs out.
        """
        tasks = self._fetch(
            token,
            principal=principal,
            deadline_s=deadline_s,
            ask=lambda deadline: self._open_tasks(token, deadline),
        )
        return list(tasks)

    def _open_tasks(self, token: ProviderToken, deadline: Deadline) -> tuple[Task, ...]:
        tasks: list[Task] = []
        malformed = 0
        cursor: str | None = None
        for _page in range(MAX_PAGES):
            params: dict[str, str | int] = {"limit": PAGE_LIMIT}
            if cursor:
                params["cursor"] = cursor
            results, cursor = self._request(
                "GET", "/tasks", token, deadline, params=params, parse=_page_of
            )
            for raw in results:
                try:
                    task = parse_task(raw)
                except ValueError as exc:
                    malformed += 1
                    logger.debug("todoist: skipping a malformed task: %s", exc)
                    continue
                if task is not None:
                    tasks.append(task)
            if not cursor:
                break
        else:
            logger.info("todoist: stopped after %d pages of open tasks", MAX_PAGES)
        if malformed:
            logger.warning("todoist: skipped %d malformed tasks", malformed)
        return tuple(tasks)


def _page_of(body: Any) -> tuple[list[Any], str | None]:
    """One page: API v1's ``{"results", "next_cursor"}``, or REST v2's bare list of tasks."""
    if isinstance(body, list):
        return body, None
    if isinstance(body, dict) and isinstance(body.get("results"), list):
        cursor = body.get("next_cursor")
        return body["results"], cursor if isinstance(cursor, str) and cursor else None
    raise ValueError("unexpected JSON shape (neither `results` nor a list of tasks)")


# -------------------------------------------------------------------------------- candidates


def action_id(task: Task) -> str:
    return f"{PROVIDER}:{task.id}"


def todo_candidates(
    tasks: Iterable[Task],
    now: datetime,
    *,
    tz: tzinfo | None = None,
    limit: int | None = None,
) -> list[Action]:
    """Open tasks as todo candidates, most urgent first, at most `limit` of them.

    `now` must be aware; `tz` is the person's zone (default: `now`'s), used to read all-day
    and floating due dates. Titles are not features: pair the actions with `todo_titles`.
    """
    if now.tzinfo is None:
        raise ValueError("`now` must be timezone-aware")
    zone = tz if tz is not None else now.tzinfo
    timed = [(task, _due_moment(task.due, zone)) for task in tasks]
    timed.sort(key=lambda pair: _urgency(pair[0], pair[1]))
    if limit is not None:
        if limit < 0:
            raise ValueError(f"`limit` must be >= 0 (got {limit})")
        timed = timed[:limit]
    return [Action(action_id(task), task_features(task, now, zone)) for task, _ in timed]


def todo_titles(tasks: Iterable[Task]) -> dict[str, str]:
    """Display titles by action id; kept beside the decision, never logged or stored."""
    return {action_id(task): task.title for task in tasks}


def task_features(task: Task, now: datetime, tz: tzinfo) -> Features:
    """Feature objects of one task, in the style of `integrations.context.tip_features`.

    ``tip`` shares kind and effort with catalog tips so the policy generalizes across both;
    ``todo`` carries what only tasks have. Labels are hashed: they are the person's own words
    and the decision log must not copy them.
    """
    moment = _due_moment(task.due, tz)
    overdue = _overdue(task.due, moment, now, tz)
    labels: list[JSONValue] = [_pseudonym(label) for label in task.labels]
    tip: FeatureObject = {
        "tip": {"kind": "todo", "source": PROVIDER, "effort": _effort(task.duration_minutes)}
    }
    todo: FeatureObject = {
        "todo": {
            "priority": f"p{5 - task.priority}",
            "due": _due_bucket(moment, now, overdue),
            "overdue": overdue,
            "recurring": task.due.recurring if task.due else False,
            "label": labels,
            "project": task.project_id,
        }
    }
    return [tip, todo]


def _due_moment(due: Due | None, tz: tzinfo) -> datetime | None:
    """When the task falls due: its time, or the end of its day for all-day tasks."""
    if due is None:
        return None
    at = due.moment(tz)
    if at is not None:
        return at
    return datetime.combine(due.day + timedelta(days=1), datetime.min.time(), tzinfo=tz)


def _overdue(due: Due | None, moment: datetime | None, now: datetime, tz: tzinfo) -> bool:
    if due is None or moment is None:
        return False
    if due.at is None:
        return due.day < now.astimezone(tz).date()
    return moment < now


def _due_bucket(moment: datetime | None, now: datetime, overdue: bool) -> str:
    if moment is None:
        return "none"
    if overdue:
        return "overdue"
    hours = (moment - now).total_seconds() / 3600
    for limit, label in ((2, "h0-2"), (6, "h2-6"), (24, "h6-24"), (72, "d1-3"), (168, "d3-7")):
        if hours <= limit:
            return label
    return "later"


def _effort(minutes: int | None) -> str:
    # The catalog's effort words, so `tip_effort` means the same for tips and tasks.
    return "unknown" if minutes is None else effort(max(1, minutes))


def _pseudonym(label: str) -> str:
    digest = hashlib.blake2b(label.casefold().encode(), digest_size=5).hexdigest()
    return f"l{digest}"


def _urgency(task: Task, moment: datetime | None) -> tuple[int, float, int, str]:
    # Undated tasks sort after dated ones; then higher priority, then a stable id order.
    if moment is None:
        return (1, 0.0, -task.priority, task.id)
    return (0, moment.timestamp(), -task.priority, task.id)


def due_soon(tasks: Iterable[Task], now: datetime, tz: tzinfo) -> FeatureObject:
    """The ``todos`` namespace of the timing surface: how pressing the open tasks are now.

    ``due_2h``: tasks falling due within two hours; ``overdue``: tasks past due. Both bucketed
    ``0`` / ``1`` / ``2+``, read with the same due rules as the todo candidates' features.
    """
    soon = overdue = 0
    for task in tasks:
        moment = _due_moment(task.due, tz)
        if _overdue(task.due, moment, now, tz):
            overdue += 1
        elif _due_bucket(moment, now, False) == "h0-2":
            soon += 1
    return {"todos": {"due_2h": _count_bucket(soon), "overdue": _count_bucket(overdue)}}


def _count_bucket(count: int) -> str:
    return str(count) if count <= 1 else "2+"
