"""The "is it learning?" service behind `GET /v1/diagnostics`, the analyst page's panel and
`oo doctor`: the window's defaults and checks, which policies learn, then `rewards.doctor`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bandit.store import Store
from policies.registry import Registry
from rewards.doctor import DEFAULT_SAMPLE, Diagnosis, diagnose

DEFAULT_WINDOW = timedelta(hours=24)
MIN_SAMPLE, MAX_SAMPLE = 1_000, 200_000


class WindowError(ValueError):
    """A window that cannot be checked; `target` names the argument."""

    def __init__(self, message: str, target: str) -> None:
        super().__init__(message)
        self.target = target


def window(
    start: datetime | None, end: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """[start, end): `end` defaults to now, `start` to a day before `end`."""
    until = end or now
    if start is not None:
        since = start
    else:
        try:
            since = until - DEFAULT_WINDOW
        except OverflowError:  # an `end` in year 1: the window starts where time does
            since = datetime.min.replace(tzinfo=UTC)
    if since >= until:
        raise WindowError(
            f"`start` ({since.isoformat()}) must be before `end` ({until.isoformat()})", "start"
        )
    return since, until


def learning_policies(registry: Registry) -> Callable[[str], bool]:
    """Whether a policy, by the name decisions log, learns a model: VW policies do, random and
    rule policies do not. A policy the registry does not know is taken to learn."""

    def learns(policy: str) -> bool:
        spec = registry.find(policy)
        return spec is None or spec.kind == "vw"

    return learns


def checkup(
    store: Store,
    registry: Registry,
    surface: str,
    *,
    start: datetime | None,
    end: datetime | None,
    now: datetime,
    sample: int = DEFAULT_SAMPLE,
    on_progress: Callable[[int, int], None] | None = None,
) -> Diagnosis:
    """`rewards.doctor.diagnose` over [start, end) (by default the last 24 hours).

    Raises
    ------
    WindowError
        When `start` is not before `end`, or `sample` is out of range; `target` names which.
    """
    since, until = window(start, end, now)
    if not MIN_SAMPLE <= sample <= MAX_SAMPLE:
        raise WindowError(
            f"`sample` must be between {MIN_SAMPLE:,} and {MAX_SAMPLE:,} (got {sample:,})",
            "sample",
        )
    return diagnose(
        store,
        surface,
        since,
        until,
        now=now,
        learns=learning_policies(registry),
        sample=sample,
        on_progress=on_progress,
    )
