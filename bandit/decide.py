"""One decision: ask the policy for a pmf, draw with the event id's randomness, log it durably.

The decision is written before the caller answers, and a decision for an event id that is
already logged is never logged twice: the logged one is returned, so a retried request gets the
same answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bandit.errors import DomainError
from bandit.events import Action, Decision, Features, utcnow, validate_pmf
from bandit.features import action_lines as lines_of
from bandit.features import adf_example
from bandit.metrics import DECISIONS
from bandit.policy import Policy
from bandit.sampling import sample_index
from bandit.store import Store


class EventIdConflict(DomainError, ValueError):
    """The event id is logged for another principal or surface (a bad request: the caller
    chose the id)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    decision: Decision
    replayed: bool
    """True when the event id was already logged and the logged decision is returned."""


class Decider:
    def __init__(self, store: Store) -> None:
        self.store = store

    def decide(
        self,
        *,
        policy: Policy,
        surface: str,
        principal: str,
        event_id: str,
        context: Features,
        actions: Sequence[Action],
        activate: bool = True,
        action_lines: Sequence[str] | None = None,
        excluded: Sequence[str] = (),
        experiment: str | None = None,
        arm: str | None = None,
        missing_sources: Sequence[str] = (),
    ) -> Outcome:
        lines = list(action_lines) if action_lines is not None else lines_of(actions)
        pmf = policy.pmf(context, actions, lines)
        validate_pmf(pmf, len(actions))
        now = utcnow()
        decision = Decision(
            event_id=event_id,
            surface=surface,
            principal=principal,
            context=context,
            actions=tuple(actions),
            pmf=tuple(pmf),
            chosen_index=sample_index(pmf, event_id),
            policy=policy.name,
            model_key=policy.model_key,
            model_version=policy.model_version,
            created_at=now,
            activated_at=now if activate else None,
            experiment=experiment,
            arm=arm,
            missing_sources=tuple(missing_sources),
            excluded=tuple(excluded),
            example=tuple(adf_example(context, lines)),
        )
        if not self.store.insert_decision(decision):
            # The event id is logged (a retry, or a concurrent twin): answer with the log.
            logged = self.store.get(event_id)
            if logged is None:  # pragma: no cover - insert failed for another reason
                raise RuntimeError(f"decision {event_id!r} could not be logged")
            return Outcome(self._same_owner(logged.decision, surface, principal), True)
        DECISIONS.labels(surface, policy.name).inc()
        return Outcome(decision, False)

    @staticmethod
    def _same_owner(decision: Decision, surface: str, principal: str) -> Decision:
        if decision.surface != surface or decision.principal != principal:
            raise EventIdConflict("`eventId` is already used by another decision", target="eventId")
        return decision
