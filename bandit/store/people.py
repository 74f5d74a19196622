"""A person's decisions: reading them out for their data export, and pseudonymizing them when
they erase themselves (docs/personal-data.md)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from bandit.store.database import Database
from bandit.store.records import PersonalDecision, PersonalReaction
from bandit.store.rows import decisions, rewards

PSEUDONYM_PREFIX = "erased:"

_PERSONAL = sa.select(
    decisions.c.event_id,
    decisions.c.surface,
    decisions.c.created_at,
    decisions.c.context,
    decisions.c.actions,
    decisions.c.pmf,
    decisions.c.chosen_action,
    decisions.c.propensity,
    decisions.c.policy,
    decisions.c.model_version,
    decisions.c.experiment,
    decisions.c.arm,
    decisions.c.missing_sources,
    decisions.c.activated_at,
    rewards.c.value.label("reward"),
    rewards.c.reaction,
    rewards.c.received_at.label("reacted_at"),
    rewards.c.late,
).select_from(decisions.outerjoin(rewards, rewards.c.event_id == decisions.c.event_id))


class PersonLog(Database):
    """The decision log, person by person."""

    def person_decisions(self, principal: str, *, batch: int = 1000) -> Iterator[PersonalDecision]:
        """The decisions of `principal` with their reactions, oldest first (keyset-paginated
        reads of `batch` rows, each its own short read)."""
        key = sa.tuple_(decisions.c.created_at, decisions.c.event_id)
        after: tuple[Any, str] | None = None
        while True:
            query = _PERSONAL.where(decisions.c.principal == principal)
            if after is not None:
                query = query.where(key > sa.tuple_(sa.literal(after[0]), sa.literal(after[1])))
            query = query.order_by(decisions.c.created_at, decisions.c.event_id).limit(batch)
            with self.autocommit.connect() as conn:
                rows = list(conn.execute(query))
            yield from (_personal(row) for row in rows)
            if len(rows) < batch:
                return
            after = (rows[-1].created_at, rows[-1].event_id)

    def pseudonymize(self, principal: str) -> int:
        """Give every decision of `principal` one fresh random pseudonym, in one statement;
        returns how many decisions it renamed.

        The pseudonym is drawn at random (not derived from the principal), so nothing links it
        back; one per person keeps a person's decisions one unit for experiment statistics
        (per-unit variance, CUPED's pre-period). One statement: a retried erasure never splits
        a person in two.
        """
        pseudonym = PSEUDONYM_PREFIX + secrets.token_hex(16)
        with self._write() as conn:
            updated = conn.execute(
                decisions.update()
                .where(decisions.c.principal == principal)
                .values(principal=pseudonym)
            )
        return int(updated.rowcount or 0)


def _personal(row: Any) -> PersonalDecision:
    return PersonalDecision(
        event_id=row.event_id,
        surface=row.surface,
        created_at=row.created_at,
        context=row.context,
        action_ids=[action["id"] for action in row.actions],
        pmf=row.pmf,
        chosen_action=row.chosen_action,
        propensity=row.propensity,
        policy=row.policy,
        model_version=row.model_version,
        experiment=row.experiment,
        arm=row.arm,
        missing_sources=row.missing_sources,
        activated_at=row.activated_at,
        reaction=None
        if row.reward is None
        else PersonalReaction(row.reaction, row.reward, row.reacted_at, row.late),
    )
