"""Retention: how much of a surface's log there is, and deleting what no model still needs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa

from bandit.store.rows import _moment, decisions, rewards
from bandit.store.snapshots import Snapshots


class Retention(Snapshots):
    """A surface's log range and its deletion (which must keep what snapshots still need)."""

    def date_range(self, surface: str) -> tuple[datetime, datetime] | None:
        """(first, last) decision time on `surface`, or None when it has no decisions."""
        query = sa.select(
            sa.func.min(decisions.c.created_at), sa.func.max(decisions.c.created_at)
        ).where(decisions.c.surface == surface)
        with self.autocommit.connect() as conn:
            row = conn.execute(query).one()
        if row[0] is None:
            return None
        return _moment(row[0]), _moment(row[1])

    def model_keys(self, surface: str) -> list[str]:
        """The model keys decisions on `surface` were logged with."""
        query = sa.select(decisions.c.model_key).where(decisions.c.surface == surface).distinct()
        with self.autocommit.connect() as conn:
            return [r[0] for r in conn.execute(query)]

    def needed_marks(self, surface: str, learnable: Callable[[str], bool]) -> dict[str, int]:
        """For each model of `surface` that learns (`learnable(model_key)`), the last mark its
        newest snapshot covers (0 without a snapshot): decisions marked after it are needed to
        rebuild the model. Pass the result to `delete_logs`."""
        needed: dict[str, int] = {}
        for key in self.model_keys(surface):
            if learnable(key):
                snapshot = self.latest_snapshot(key)
                needed[key] = snapshot.through_seq if snapshot is not None else 0
        return needed

    def delete_logs(
        self, surface: str, keep_after: dict[str, int], *, before: datetime | None = None
    ) -> int:
        """Delete the decisions of `surface` (with their rewards) that no model still needs,
        all of them or those created before `before`.

        A model is rebuilt from its newest snapshot plus the decisions learned after it
        (`keep_after[model_key]` = that snapshot's `through_seq`), so those decisions stay.
        Model keys absent from `keep_after` have no model to rebuild. Returns how many
        decisions were deleted.
        """
        needed = [
            sa.and_(decisions.c.model_key == key, decisions.c.learn_seq > through)
            for key, through in keep_after.items()
        ]
        filters = [decisions.c.surface == surface]
        if needed:
            filters.append(sa.not_(sa.or_(*needed)))
        if before is not None:
            filters.append(decisions.c.created_at < before)
        doomed = sa.select(decisions.c.event_id).where(*filters)
        with self._write() as conn:
            conn.execute(rewards.delete().where(rewards.c.event_id.in_(doomed)))
            result = conn.execute(decisions.delete().where(decisions.c.event_id.in_(doomed)))
            return int(result.rowcount or 0)
