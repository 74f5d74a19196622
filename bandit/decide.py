"""One decision: ask the policy for a pmf, draw with the event id's randomness, log it durably.

The decision is written before the caller answers, and a decision for an event id that is
already logged is never logged twice: the logged one is returned, so a retried request gets the
same answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Required, TypedDict, Unpack

from bandit.errors import DomainError
from bandit.events import Action, Decision, Features, utcnow, validate_pmf
from bandit.features import action_lines as lines_of
from bandit.features import adf_example
from bandit.metrics import DECISIONS
from bandit.policy import Policy
from bandit.sampling import sample_index
from bandit.store import LoggedDecision, Store


class EventIdConflict(DomainError, ValueError):
    """The event id is logged for another principal or surface (a bad request: the caller
    chose the id)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    decision: Decision
    replayed: bool
    """True when the event id was already logged and the logged decision is returned."""


class DecisionRequest(TypedDict, total=False):
    """What `Decider.decide` takes, by keyword."""

    policy: Required[Policy]
    surface: Required[str]
    principal: Required[str]
    event_id: Required[str]
    context: Required[Features]
    actions: Required[Sequence[Action]]
    activate: bool
    action_lines: Sequence[str] | None
    excluded: Sequence[str]
    experiment: str | None
    arm: str | None
    missing_sources: Sequence[str]


class Decider:
    def __init__(self, store: Store) -> None:
        self.store = store

    def decide(self, **request: Unpack[DecisionRequest]) -> Outcome:
        """Choose, log durably, and return the decision (or the logged one for a known event
        id). Blocks until the decision's transaction is committed."""
        decision = self._choose(**request)
        if self.store.insert_decision(decision):
            return self._logged(decision)
        return self._replayed(decision, self.store.get(decision.event_id))

    async def decide_async(self, **request: Unpack[DecisionRequest]) -> Outcome:
        """`decide` on the event loop: choosing is CPU work only (the policy's model is in
        memory), and the commit is awaited, not waited for on a worker thread (ADR 0016)."""
        decision = self._choose(**request)
        if await self.store.insert_decision_async(decision):
            return self._logged(decision)
        # A retried event id: rare, and a read, so it goes to a thread.
        logged = await asyncio.to_thread(self.store.get, decision.event_id)
        return self._replayed(decision, logged)

    @staticmethod
    def _choose(
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
    ) -> Decision:
        lines = list(action_lines) if action_lines is not None else lines_of(actions)
        pmf = policy.pmf(context, actions, lines)
        validate_pmf(pmf, len(actions))
        now = utcnow()
        return Decision(
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

    @staticmethod
    def _logged(decision: Decision) -> Outcome:
        DECISIONS.labels(decision.surface, decision.policy).inc()
        return Outcome(decision, False)

    def _replayed(self, decision: Decision, logged: LoggedDecision | None) -> Outcome:
        """The event id was logged already (a retry, or a concurrent twin): answer with the
        log."""
        if logged is None:  # pragma: no cover - insert failed for another reason
            raise RuntimeError(f"decision {decision.event_id!r} could not be logged")
        owned = self._same_owner(logged.decision, decision.surface, decision.principal)
        return Outcome(owned, True)

    @staticmethod
    def _same_owner(decision: Decision, surface: str, principal: str) -> Decision:
        if decision.surface != surface or decision.principal != principal:
            raise EventIdConflict("`eventId` is already used by another decision", target="eventId")
        return decision
