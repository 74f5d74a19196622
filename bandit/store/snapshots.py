"""Model snapshots: the VW bytes each model version was published as, and their lineage."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from bandit.store.database import Database
from bandit.store.records import Snapshot
from bandit.store.rows import _moment, snapshots


def _row(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "model_key": snapshot.model_key,
        "args": snapshot.args,
        "version": snapshot.version,
        "through_seq": snapshot.through_seq,
        "created_at": snapshot.created_at,
        "data": snapshot.data,
    }


class Snapshots(Database):
    """Save, load, replace and prune the snapshots of a model."""

    def save_snapshot(self, snapshot: Snapshot) -> None:
        with self._write() as conn:
            conn.execute(snapshots.insert(), _row(snapshot))

    def latest_snapshot(self, model_key: str) -> Snapshot | None:
        query = (
            sa.select(snapshots)
            .where(snapshots.c.model_key == model_key)
            .order_by(snapshots.c.version.desc(), snapshots.c.id.desc())
            .limit(1)
        )
        with self.autocommit.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return Snapshot(
            model_key=row.model_key,
            args=row.args,
            version=row.version,
            through_seq=row.through_seq,
            created_at=row.created_at,
            data=row.data,
        )

    def latest_versions(self) -> dict[str, int]:
        query = sa.select(snapshots.c.model_key, sa.func.max(snapshots.c.version)).group_by(
            snapshots.c.model_key
        )
        with self.autocommit.connect() as conn:
            return {r[0]: int(r[1]) for r in conn.execute(query)}

    def replace_snapshots(self, snapshot: Snapshot) -> None:
        """Make `snapshot` the only snapshot of its model (an imported or reset model): the
        older lineage can then never be loaded again, by any process."""
        with self._write() as conn:
            conn.execute(snapshots.delete().where(snapshots.c.model_key == snapshot.model_key))
            conn.execute(snapshots.insert(), _row(snapshot))

    def snapshot_times(self, model_key: str) -> tuple[datetime, datetime] | None:
        """(oldest, newest) creation time of the model's stored snapshots."""
        query = sa.select(
            sa.func.min(snapshots.c.created_at), sa.func.max(snapshots.c.created_at)
        ).where(snapshots.c.model_key == model_key)
        with self.autocommit.connect() as conn:
            row = conn.execute(query).one()
        if row[0] is None:
            return None
        oldest, newest = row[0], row[1]
        return _moment(oldest), _moment(newest)

    def prune_snapshots(self, model_key: str, keep: int = 5) -> None:
        """Keep the newest `keep` snapshots of a model; older ones only cost space."""
        with self._write() as conn:
            ids = conn.execute(
                sa.select(snapshots.c.id)
                .where(snapshots.c.model_key == model_key)
                .order_by(snapshots.c.version.desc(), snapshots.c.id.desc())
                .offset(keep)
            ).all()
            if ids:
                conn.execute(snapshots.delete().where(snapshots.c.id.in_([i[0] for i in ids])))
