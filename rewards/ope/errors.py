"""Why an evaluation, a search or an importance run does not finish."""

from __future__ import annotations

from bandit.errors import DomainError


class EvaluationError(DomainError, ValueError):
    """An evaluation that cannot run; `target` names the offending argument."""

    target: str

    def __init__(self, message: str, *, target: str = "policies") -> None:
        super().__init__(message, target=target)


class EvaluationCancelled(Exception):
    """The cancel event was set; `done` events of `total` had been evaluated."""

    def __init__(self, done: int, total: int) -> None:
        super().__init__(f"evaluation cancelled after {done} of {total} events")
        self.done = done
        self.total = total
