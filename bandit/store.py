"""The decision log: durable decisions, rewards, learning state and model snapshots.

SQLAlchemy Core on the SQLModel tables keeps the hot path to one statement per call. The same
code runs on SQLite (embedded default) and PostgreSQL (production).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from psycopg.types.json import Json
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from bandit.clock import as_utc
from bandit.events import Action, Decision, Features, utcnow
from bandit.private_files import private_sqlite
from bandit.tables import DecisionRow, ModelSnapshotRow, RewardRow

decisions = DecisionRow.__table__  # type: ignore[attr-defined]
rewards = RewardRow.__table__  # type: ignore[attr-defined]
snapshots = ModelSnapshotRow.__table__  # type: ignore[attr-defined]


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine for `url`; SQLite gets WAL, full fsync and a busy timeout."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            private_sqlite(Path(path))  # people's data: owner-only folder and files
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=pool_size
        )

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping: it costs a round trip per checkout. A dropped connection raises a
        # disconnect error, which invalidates the pool, and the next request reconnects.
        pool_timeout=5,
        connect_args={"connect_timeout": 3},
    )


@dataclass(frozen=True, slots=True)
class LoggedDecision:
    """A decision as logged, with its activation, reward and learning state."""

    decision: Decision
    deferred: bool
    reward: float | None
    reaction: str | None
    reward_late: bool
    learn_seq: int | None
    learned_reward: float | None


@dataclass(frozen=True, slots=True)
class RewardOutcome:
    """What `record_reward` did: `created` is False when a reward was already recorded."""

    created: bool
    value: float
    reaction: str | None
    late: bool


@dataclass(frozen=True, slots=True)
class Snapshot:
    model_key: str
    args: str
    version: int
    through_seq: int
    created_at: datetime
    data: bytes


@dataclass(frozen=True, slots=True)
class Learnable:
    """The lean view of a decision the learner needs: no feature JSON, the logged VW example."""

    event_id: str
    model_key: str
    chosen_index: int
    propensity: float
    activated_at: datetime | None
    reward: float | None
    reward_late: bool
    learn_seq: int | None
    learned_reward: float | None
    example: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Learned:
    """A learning mark: decision `event_id` learned as example `seq` with `reward`."""

    event_id: str
    seq: int
    reward: float


def _row(decision: Decision) -> dict[str, Any]:
    return {
        "event_id": decision.event_id,
        "surface": decision.surface,
        "principal": decision.principal,
        "created_at": decision.created_at,
        "context": decision.context,
        "actions": [{"id": a.id, "features": a.features} for a in decision.actions],
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


_JSON_COLUMNS = frozenset({"context", "actions", "pmf", "missing_sources", "excluded"})


@lru_cache(maxsize=4)
def _insert_sql(columns: tuple[str, ...]) -> str:
    placeholders = ", ".join(["%s"] * len(columns))
    return (
        f"INSERT INTO decisions ({', '.join(columns)}) VALUES ({placeholders}) "
        "ON CONFLICT (event_id) DO NOTHING"
    )


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


class Store:
    """Reads and writes the decision log. Thread-safe; one instance per process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Reads and single-statement writes run in autocommit: no BEGIN/COMMIT round trips, and
        # one statement is atomic on its own.
        self.autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.is_sqlite = engine.dialect.name == "sqlite"
        # SQLite allows one writer at a time; serializing here avoids busy-waiting in SQLite.
        self._write_lock = threading.Lock() if self.is_sqlite else None

    @contextmanager
    def raw(self) -> Iterator[Any]:
        """A pooled psycopg connection in autocommit, for the hot path on PostgreSQL.

        SQLAlchemy's per-statement overhead is several times a loopback round trip; the decision
        path issues a handful of fixed statements, so it talks to psycopg directly (and can
        pipeline its reads). The connection goes back to the pool as it came (autocommit off).
        """
        proxy = self.engine.raw_connection()
        try:
            connection: Any = proxy.driver_connection
            connection.autocommit = True
            try:
                yield connection
            finally:
                connection.autocommit = False
        finally:
            proxy.close()

    @classmethod
    def connect(cls, url: str, *, pool_size: int = 10) -> Store:
        return cls(make_engine(url, pool_size=pool_size))

    @contextmanager
    def _write(self, *, single: bool = False) -> Iterator[Connection]:
        """A connection for writing: one transaction, or autocommit for a `single` statement."""
        if self._write_lock is None:
            if single:
                with self.autocommit.connect() as conn:
                    yield conn
            else:
                with self.engine.begin() as conn:
                    yield conn
        else:
            with self._write_lock, self.engine.begin() as conn:
                yield conn

    def ping(self) -> None:
        with self.autocommit.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    # decisions --------------------------------------------------------------------------

    def insert_decision(self, decision: Decision) -> bool:
        """Log `decision` durably; False when its event id was already logged."""
        if not self.is_sqlite:
            row = _row(decision)
            values = [Json(v) if k in _JSON_COLUMNS else v for k, v in row.items()]
            with self.raw() as conn:
                cursor = conn.execute(_insert_sql(tuple(row)), values)
                return bool(cursor.rowcount)
        try:
            with self._write(single=True) as conn:
                conn.execute(decisions.insert(), _row(decision))
        except IntegrityError:
            return False
        return True

    def get(self, event_id: str) -> LoggedDecision | None:
        with self.autocommit.connect() as conn:
            row = conn.execute(_LOGGED.where(decisions.c.event_id == event_id)).first()
        return None if row is None else _logged(row)

    def get_many(self, event_ids: Sequence[str]) -> list[LoggedDecision]:
        if not event_ids:
            return []
        with self.autocommit.connect() as conn:
            rows = conn.execute(_LOGGED.where(decisions.c.event_id.in_(list(event_ids))))
            return [_logged(r) for r in rows]

    def learnables(self, event_ids: Sequence[str]) -> list[Learnable]:
        if not event_ids:
            return []
        with self.autocommit.connect() as conn:
            rows = conn.execute(_LEARNABLE.where(decisions.c.event_id.in_(list(event_ids))))
            return [_learnable(r) for r in rows]

    def activate(self, event_id: str, at: datetime | None = None) -> bool:
        """Mark a deferred decision activated (first activation wins); False if unknown."""
        with self._write() as conn:
            result = conn.execute(
                decisions.update()
                .where(decisions.c.event_id == event_id, decisions.c.activated_at.is_(None))
                .values(activated_at=at or utcnow())
            )
            if result.rowcount:
                return True
            exists = conn.execute(
                sa.select(decisions.c.event_id).where(decisions.c.event_id == event_id)
            ).first()
            return exists is not None

    def recent_choices(self, principal: str, surface: str, since: datetime) -> dict[str, datetime]:
        """Action id -> last time it was chosen for `principal` since `since`."""
        query = (
            sa.select(decisions.c.chosen_action, sa.func.max(decisions.c.created_at))
            .where(
                decisions.c.principal == principal,
                decisions.c.surface == surface,
                decisions.c.created_at >= since,
            )
            .group_by(decisions.c.chosen_action)
        )
        with self.autocommit.connect() as conn:
            rows = conn.execute(query).all()
        tz = since.tzinfo
        return {r[0]: (r[1] if r[1].tzinfo else r[1].replace(tzinfo=tz)) for r in rows}

    # rewards ----------------------------------------------------------------------------

    def record_reward(
        self,
        event_id: str,
        value: float,
        *,
        reaction: str | None,
        window: timedelta,
        at: datetime | None = None,
        aggregation: str = "earliest",
    ) -> RewardOutcome | None:
        """Record the first reward of a decision ("earliest" aggregation).

        Returns None for an unknown event id. A reward that arrives after the reward window
        of an activated decision is recorded as late: kept for the record, never learned.
        A second reward for the same event id changes nothing and returns the first, unless
        `aggregation` is "sum": then a second on-time reward of a decision not yet learned is
        added to the first (the outcome's `value` is the sum, `created` stays False).
        """
        now = at or utcnow()
        with self._write() as conn:
            decision = conn.execute(
                sa.select(decisions.c.activated_at, decisions.c.learn_seq).where(
                    decisions.c.event_id == event_id
                )
            ).first()
            if decision is None:
                return None
            existing = conn.execute(
                sa.select(rewards.c.value, rewards.c.reaction, rewards.c.late).where(
                    rewards.c.event_id == event_id
                )
            ).first()
            activated_at = decision.activated_at
            if activated_at is not None and activated_at.tzinfo is None:
                activated_at = activated_at.replace(tzinfo=now.tzinfo)
            late = decision.learn_seq is not None or (
                activated_at is not None and now > activated_at + window
            )
            if existing is not None:
                if aggregation == "sum" and not late and not existing.late:
                    conn.execute(
                        rewards.update()
                        .where(rewards.c.event_id == event_id)
                        .values(value=rewards.c.value + value)
                    )
                    return RewardOutcome(False, existing.value + value, existing.reaction, False)
                return RewardOutcome(False, existing.value, existing.reaction, existing.late)
            try:
                with conn.begin_nested():
                    conn.execute(
                        rewards.insert(),
                        {
                            "event_id": event_id,
                            "value": value,
                            "reaction": reaction,
                            "received_at": now,
                            "late": late,
                        },
                    )
            except IntegrityError:
                # A concurrent writer recorded the first reward between our read and insert.
                first = conn.execute(
                    sa.select(rewards.c.value, rewards.c.reaction, rewards.c.late).where(
                        rewards.c.event_id == event_id
                    )
                ).one()
                return RewardOutcome(False, first.value, first.reaction, first.late)
            return RewardOutcome(True, value, reaction, late)

    # learning ---------------------------------------------------------------------------

    def max_learn_seq(self) -> int:
        """The highest learning mark ever issued. Snapshots count too: their decisions may
        have been deleted since (DELETE /logs), and a mark must never be issued twice."""
        with self.autocommit.connect() as conn:
            value = conn.execute(sa.select(sa.func.max(decisions.c.learn_seq))).scalar()
            covered = conn.execute(sa.select(sa.func.max(snapshots.c.through_seq))).scalar()
        return max(int(value or 0), int(covered or 0))

    def rewarded_unlearned(
        self, since: datetime, limit: int, *, exclude: Sequence[str] = ()
    ) -> list[str]:
        """Event ids with an on-time reward, activated, not yet learned (missed notifications);
        decisions on the `exclude` surfaces are left out."""
        filters = [
            rewards.c.received_at >= since,
            rewards.c.late.is_(False),
            decisions.c.learn_seq.is_(None),
            decisions.c.activated_at.is_not(None),
        ]
        if exclude:
            filters.append(decisions.c.surface.not_in(list(exclude)))
        query = (
            sa.select(rewards.c.event_id)
            .select_from(rewards.join(decisions, rewards.c.event_id == decisions.c.event_id))
            .where(*filters)
            .order_by(rewards.c.received_at)
            .limit(limit)
        )
        with self.autocommit.connect() as conn:
            return [r[0] for r in conn.execute(query)]

    def expired_unrewarded(
        self,
        before: datetime,
        limit: int,
        *,
        surfaces: Sequence[str] = (),
        exclude: Sequence[str] = (),
    ) -> list[str]:
        """Activated, unlearned decisions whose reward window closed before `before`, on
        `surfaces` (all when empty) except `exclude`."""
        filters = [
            decisions.c.learn_seq.is_(None),
            decisions.c.activated_at.is_not(None),
            decisions.c.activated_at < before,
        ]
        if surfaces:
            filters.append(decisions.c.surface.in_(list(surfaces)))
        if exclude:
            filters.append(decisions.c.surface.not_in(list(exclude)))
        query = (
            sa.select(decisions.c.event_id)
            .select_from(decisions.outerjoin(rewards, rewards.c.event_id == decisions.c.event_id))
            .where(*filters)
            .order_by(decisions.c.activated_at)
            .limit(limit)
        )
        with self.autocommit.connect() as conn:
            return [r[0] for r in conn.execute(query)]

    def mark_learned(self, marks: Sequence[Learned], at: datetime | None = None) -> None:
        """Record learning marks; a decision already marked keeps its first mark."""
        if not marks:
            return
        now = at or utcnow()
        if not self.is_sqlite:
            # One statement for the whole batch: unnest the marks into a join.
            with self._write() as conn:
                conn.execute(
                    sa.text(
                        "UPDATE decisions AS d SET learn_seq = m.seq, learned_reward = m.reward, "
                        "learned_at = :now FROM unnest(CAST(:ids AS text[]), "
                        "CAST(:seqs AS bigint[]), CAST(:rewards AS float8[])) "
                        "AS m(id, seq, reward) WHERE d.event_id = m.id AND d.learn_seq IS NULL"
                    ),
                    {
                        "ids": [m.event_id for m in marks],
                        "seqs": [m.seq for m in marks],
                        "rewards": [m.reward for m in marks],
                        "now": now,
                    },
                )
            return
        statement = (
            decisions.update()
            .where(
                decisions.c.event_id == sa.bindparam("b_event_id"),
                decisions.c.learn_seq.is_(None),
            )
            .values(
                learn_seq=sa.bindparam("b_seq"),
                learned_reward=sa.bindparam("b_reward"),
                learned_at=now,
            )
        )
        with self._write() as conn:
            conn.execute(
                statement,
                [{"b_event_id": m.event_id, "b_seq": m.seq, "b_reward": m.reward} for m in marks],
            )

    def learned_after(self, model_key: str, seq: int, batch: int = 2000) -> Iterator[Learnable]:
        """Decisions of `model_key` learned after mark `seq`, in learning order (for replay)."""
        last = seq
        while True:
            query = (
                _LEARNABLE.where(decisions.c.model_key == model_key, decisions.c.learn_seq > last)
                .order_by(decisions.c.learn_seq)
                .limit(batch)
            )
            with self.autocommit.connect() as conn:
                rows = [_learnable(r) for r in conn.execute(query)]
            if not rows:
                return
            yield from rows
            last = rows[-1].learn_seq or last

    # snapshots --------------------------------------------------------------------------

    def save_snapshot(self, snapshot: Snapshot) -> None:
        with self._write() as conn:
            conn.execute(
                snapshots.insert(),
                {
                    "model_key": snapshot.model_key,
                    "args": snapshot.args,
                    "version": snapshot.version,
                    "through_seq": snapshot.through_seq,
                    "created_at": snapshot.created_at,
                    "data": snapshot.data,
                },
            )

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
            conn.execute(
                snapshots.insert(),
                {
                    "model_key": snapshot.model_key,
                    "args": snapshot.args,
                    "version": snapshot.version,
                    "through_seq": snapshot.through_seq,
                    "created_at": snapshot.created_at,
                    "data": snapshot.data,
                },
            )

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
        return _aware(oldest), _aware(newest)

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

    # surface logs -----------------------------------------------------------------------

    def date_range(self, surface: str) -> tuple[datetime, datetime] | None:
        """(first, last) decision time on `surface`, or None when it has no decisions."""
        query = sa.select(
            sa.func.min(decisions.c.created_at), sa.func.max(decisions.c.created_at)
        ).where(decisions.c.surface == surface)
        with self.autocommit.connect() as conn:
            row = conn.execute(query).one()
        if row[0] is None:
            return None
        return _aware(row[0]), _aware(row[1])

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

    # export -----------------------------------------------------------------------------

    def iter_logged(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        surface: str | None = None,
        batch: int = 1000,
    ) -> Iterator[LoggedDecision]:
        """Decisions created in [start, end), oldest first, fetched `batch` rows at a time.

        One streamed query (see `_stream`), so memory is one batch whatever the size of the log.
        """
        query = _LOGGED.where(*_range_filters(start, end, surface)).order_by(
            decisions.c.created_at, decisions.c.event_id
        )
        for rows in self._stream(query, batch):
            yield from (_logged(r) for r in rows)

    def iter_settled(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        surface: str | None = None,
        batch: int = 1000,
    ) -> Iterator[list[SettledRow]]:
        """Decisions of [start, end) whose label is settled, oldest first, in lists of `batch`.

        Settled: learned (`learn_seq` and `learned_reward` set), or deferred and never
        activated. Rows are `SettledRow`s: `context`, `actions` and `pmf` as their stored JSON text,
        for exports that re-encode them without parsing repeated candidate lists each time.
        One streamed query, as `iter_logged`.
        """
        query = (
            sa.select(
                decisions.c.event_id,
                sa.type_coerce(decisions.c.created_at, sa.Text),
                sa.cast(decisions.c.context, sa.Text),
                sa.cast(decisions.c.actions, sa.Text),
                sa.cast(decisions.c.pmf, sa.Text),
                decisions.c.chosen_index,
                decisions.c.learn_seq,
                decisions.c.learned_reward,
            )
            .where(
                sa.or_(
                    sa.and_(
                        decisions.c.learn_seq.is_not(None), decisions.c.learned_reward.is_not(None)
                    ),
                    decisions.c.activated_at.is_(None),
                ),
                *_range_filters(start, end, surface),
            )
            .order_by(decisions.c.created_at, decisions.c.event_id)
        )
        for raw in self._stream(query, batch):
            yield [(event_id, _moment(created), *rest) for event_id, created, *rest in raw]

    def _stream(self, query: sa.Select[Any], batch: int) -> Iterator[Sequence[Any]]:
        """The rows of `query`, `batch` at a time, from one statement.

        PostgreSQL reads through a server-side cursor and SQLite steps its cursor, so one batch
        is in memory at a time. One statement means one sort: paging with LIMIT re-sorted the
        whole range for every page (quadratic without an index on the order), and the result
        is one consistent snapshot. The price: a pooled connection (on PostgreSQL, an open read
        transaction) is held until the caller has read the rest or closed the iterator.
        """
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch).execute(query)
            yield from result.partitions()

    # evaluation -------------------------------------------------------------------------

    def _learned_filters(
        self,
        start: datetime | None,
        end: datetime | None,
        surface: str | None,
        model_key: str | None,
        through_seq: int | None = None,
    ) -> list[Any]:
        filters = [decisions.c.learn_seq.is_not(None), *_range_filters(start, end, surface)]
        if through_seq is not None:
            filters.append(decisions.c.learn_seq <= through_seq)
        if model_key is not None:
            filters.append(decisions.c.model_key == model_key)
        return filters

    def learned_summary(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        surface: str | None = None,
        model_key: str | None = None,
    ) -> tuple[int, float | None, float | None, float | None, int | None]:
        """(count, min reward, max reward, min propensity, max learn_seq) of the learned
        decisions of [start, end); pass the last to `iter_learned` to read exactly these."""
        query = sa.select(
            sa.func.count(),
            sa.func.min(decisions.c.learned_reward),
            sa.func.max(decisions.c.learned_reward),
            sa.func.min(decisions.c.propensity),
            sa.func.max(decisions.c.learn_seq),
        ).where(*self._learned_filters(start, end, surface, model_key))
        with self.autocommit.connect() as conn:
            row = conn.execute(query).one()
        return int(row[0]), row[1], row[2], row[3], row[4]

    def iter_learned(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        surface: str | None = None,
        model_key: str | None = None,
        through_seq: int | None = None,
        batch: int = 1000,
    ) -> Iterator[list[LearnedRow]]:
        """Learned decisions of [start, end), oldest first, in lists of `batch` rows.

        Each row is `(event_id, created_at, pmf, chosen_index, learned_reward, vw_example)`
        (no feature JSON): what counterfactual evaluation replays. One streamed query, as
        `iter_logged`.

        Replay reads every learned decision, so the rows skip SQLAlchemy's per-value result
        processing: the driver's values are converted here in one pass, and each distinct pmf
        text is parsed once.
        """
        filters = self._learned_filters(start, end, surface, model_key, through_seq)
        columns = (
            decisions.c.event_id,
            sa.type_coerce(decisions.c.created_at, sa.Text),
            sa.cast(decisions.c.pmf, sa.Text),
            decisions.c.chosen_index,
            decisions.c.learned_reward,
            decisions.c.vw_example,
        )
        # A logging policy writes few distinct pmfs: parse each once.
        pmfs: dict[str, tuple[float, ...]] = {}
        query = (
            sa.select(*columns)
            .where(*filters)
            .order_by(decisions.c.created_at, decisions.c.event_id)
        )
        for raw in self._stream(query, batch):
            if len(pmfs) > 1024:
                pmfs.clear()
            yield [
                (event_id, _moment(created), pmfs.get(pmf) or _pmf(pmfs, pmf), chosen, reward, ex)
                for event_id, created, pmf, chosen, reward, ex in raw
            ]


SettledRow = tuple[str, datetime, str, str, str, int, int | None, float | None]
"""`(event_id, created_at, context JSON, actions JSON, pmf JSON, chosen_index, learn_seq,
learned_reward)`, see `iter_settled`."""

LearnedRow = tuple[str, datetime, tuple[float, ...], int, float, str]
"""`(event_id, created_at, pmf, chosen_index, learned_reward, vw_example)`, see `iter_learned`."""


def _moment(value: str | datetime) -> datetime:
    """A driver's timestamp as an aware UTC datetime: SQLite returns naive UTC text."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return as_utc(value, "created_at")


def _pmf(known: dict[str, tuple[float, ...]], text: str) -> tuple[float, ...]:
    pmf = known[text] = tuple(map(float, json.loads(text)))
    return pmf


def _aware(moment: datetime) -> datetime:
    """SQLite aggregates lose the column type: read naive values as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
