"""The decision log's tables and how records map to and from their rows.

Private to `bandit.store`: no other package names these tables (tests/bandit/test_ownership.py
holds them to it); they call the store instead.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from bandit.clock import as_utc
from bandit.events import Action, Decision, Features
from bandit.store.records import Learnable, LoggedDecision
from bandit.tables import DecisionRow, ModelSnapshotRow, RewardRow

decisions: sa.Table = DecisionRow.__table__  # type: ignore[attr-defined]
rewards: sa.Table = RewardRow.__table__  # type: ignore[attr-defined]
snapshots: sa.Table = ModelSnapshotRow.__table__  # type: ignore[attr-defined]

_JSON_COLUMNS = frozenset({"context", "actions", "pmf", "missing_sources", "excluded"})
"""The columns stored as JSON (psycopg needs them wrapped when it writes them directly)."""


def _row(decision: Decision) -> dict[str, Any]:
    return {
        "event_id": decision.event_id,
        "surface": decision.surface,
        "principal": decision.principal,
        "created_at": decision.created_at,
        "context": decision.context,
        "actions": decision.actions,  # written as {"id", "features"} by `decision_json`
        "pmf": list(decision.pmf),
        "chosen_index": decision.chosen_index,
        "chosen_action": decision.chosen.id,
        "propensity": decision.propensity,
        "policy": decision.policy,
        "model_key": decision.model_key,
        "model_version": decision.model_version,
        "experiment": decision.experiment,
        "arm": decision.arm,
        "missing_sources": list(decision.missing_sources),
        "excluded": list(decision.excluded),
        "vw_example": "\n".join(decision.example),
        "deferred": decision.activated_at is None,
        "activated_at": decision.activated_at,
    }


def _decision(row: Any) -> Decision:
    actions: list[Any] = row.actions
    context: Features = row.context
    return Decision(
        event_id=row.event_id,
        surface=row.surface,
        principal=row.principal,
        context=context,
        actions=tuple(Action(id=a["id"], features=a["features"]) for a in actions),
        pmf=tuple(row.pmf),
        chosen_index=row.chosen_index,
        policy=row.policy,
        model_key=row.model_key,
        model_version=row.model_version,
        created_at=row.created_at,
        activated_at=row.activated_at,
        experiment=row.experiment,
        arm=row.arm,
        missing_sources=tuple(row.missing_sources),
        excluded=tuple(row.excluded),
        example=tuple(row.vw_example.split("\n")) if row.vw_example else (),
    )


_LOGGED = sa.select(
    decisions,
    rewards.c.value.label("reward_value"),
    rewards.c.reaction.label("reward_reaction"),
    rewards.c.late.label("reward_late"),
).select_from(decisions.outerjoin(rewards, rewards.c.event_id == decisions.c.event_id))


def _logged(row: Any) -> LoggedDecision:
    return LoggedDecision(
        decision=_decision(row),
        deferred=row.deferred,
        reward=row.reward_value,
        reaction=row.reward_reaction,
        reward_late=bool(row.reward_late),
        learn_seq=row.learn_seq,
        learned_reward=row.learned_reward,
    )


_LEARNABLE = sa.select(
    decisions.c.event_id,
    decisions.c.model_key,
    decisions.c.chosen_index,
    decisions.c.propensity,
    decisions.c.activated_at,
    decisions.c.learn_seq,
    decisions.c.learned_reward,
    decisions.c.vw_example,
    rewards.c.value.label("reward_value"),
    rewards.c.late.label("reward_late"),
).select_from(decisions.outerjoin(rewards, rewards.c.event_id == decisions.c.event_id))


def _learnable(row: Any) -> Learnable:
    activated_at = row.activated_at
    return Learnable(
        event_id=row.event_id,
        model_key=row.model_key,
        chosen_index=row.chosen_index,
        propensity=row.propensity,
        activated_at=activated_at,
        reward=row.reward_value,
        reward_late=bool(row.reward_late),
        learn_seq=row.learn_seq,
        learned_reward=row.learned_reward,
        example=tuple(row.vw_example.split("\n")),
    )


def _range_filters(start: datetime | None, end: datetime | None, surface: str | None) -> list[Any]:
    """Decisions created in [start, end) on `surface`; None leaves that side open."""
    filters: list[Any] = []
    if start is not None:
        filters.append(decisions.c.created_at >= start)
    if end is not None:
        filters.append(decisions.c.created_at < end)
    if surface is not None:
        filters.append(decisions.c.surface == surface)
    return filters


def _moment(value: str | datetime) -> datetime:
    """A driver's timestamp as an aware UTC datetime, where the column type did not convert it:
    SQLite returns naive UTC text for a text-cast column and naive values from aggregates."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return as_utc(value, "a stored time")


def _pmf(known: dict[str, tuple[float, ...]], text: str) -> tuple[float, ...]:
    pmf = known[text] = tuple(map(float, json.loads(text)))
    return pmf
