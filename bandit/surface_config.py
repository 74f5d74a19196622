"""Run-time settings of one decision surface, shared by every process through the database.

What the loop acts on can change while it runs: the reward wait, the default reward, how several
rewards of one event combine, the exploration share, the learning mode and the log retention.
Those settings live in one row per surface (`surface_configs`), so the api workers (which apply
exploration and the learning mode when they rank, and the reward window when a reward arrives)
and the learner (which closes windows, applies the default reward, aggregates rewards and prunes
logs) read the same values. Processes cache a row for `ttl` seconds. Errors name the field as
this module spells it (`reward_wait`); a front door maps them to its own wire names.

The row's JSON also keeps what a front door stores beside the settings without the loop acting
on it (:meth:`SurfaceConfigs.extra`: the Personalizer API's echo-only fields, see
`api.personalizer.config`); this module stores those keys and never reads them.

The row also carries the model *generation*: a counter bumped whenever the surface's model is
replaced from outside the learner (`bandit.hub.ModelHub.install`). A learner in another process
sees the counter move and rebuilds its models from the newest snapshot (see `bandit.learner`),
so an imported model is never overwritten by the old one and no example is learned twice.

Apprentice-mode metrics (`bandit.apprentice`) are counters in the same row, incremented
atomically, restarted whenever apprentice mode is entered.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel

from bandit.apprentice import ApprenticeCounts, ApprenticeMetrics
from bandit.errors import DomainError
from bandit.events import utcnow
from bandit.tables import UTCDateTime

LearningMode = Literal["Online", "Apprentice", "LoggingOnly"]
LEARNING_MODES: tuple[LearningMode, ...] = ("Online", "Apprentice", "LoggingOnly")
Aggregation = Literal["earliest", "sum"]
AGGREGATIONS: tuple[Aggregation, ...] = ("earliest", "sum")

DEFAULT_EXPLORATION = 0.02
"""The exploration share of a surface nobody configured (Personalizer's `explorationPercentage`):
epsilon for epsilon-greedy policies, the uniform floor of other explorers, so every logged
propensity is >= 0.02 / K. Chosen by the simulation suite (ADR 0011, docs/learning-suite.md);
Personalizer's own default was 0.2. A stored configuration keeps
the share it holds (a stored null keeps meaning "the policy's own epsilon")."""


def floor_share(exploration: float | None) -> float:
    """The uniform share an explorer other than epsilon-greedy is floored at, on a surface whose
    configured share is `exploration` (None: `DEFAULT_EXPLORATION`)."""
    return DEFAULT_EXPLORATION if exploration is None else exploration


MIN_REWARD_WAIT = timedelta(seconds=5)
MAX_REWARD_WAIT = timedelta(days=2)

_NOTHING = object()


def _plain(value: object) -> str:
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g} seconds"
    if isinstance(value, str):
        return repr(value)
    return str(value)


class ConfigError(DomainError, ValueError):
    """A setting that cannot be used: `target` names the field, `problem` says what is wrong
    with it, `got` is the value refused (when there is one), for a front door to spell in its
    own terms."""

    target: str

    def __init__(self, target: str, problem: str, got: object = _NOTHING) -> None:
        self.problem = problem
        self.got = None if got is _NOTHING else got
        self.has_value = got is not _NOTHING
        suffix = f" (got {_plain(got)})" if got is not _NOTHING else ""
        super().__init__(f"`{target}` {problem}{suffix}", target=target)


@dataclass(frozen=True, slots=True)
class SurfaceConfig:
    """The settings the loop acts on, for one surface."""

    reward_wait: timedelta
    default_reward: float
    reward_aggregation: Aggregation = "earliest"
    exploration: float | None = DEFAULT_EXPLORATION
    """The share spread uniformly: epsilon for epsilon-greedy policies, the floor mixed into
    any other explorer's pmf (`policies.serving`). None leaves an epsilon-greedy policy's own
    `--epsilon` and floors other explorers at `DEFAULT_EXPLORATION`."""
    log_retention_days: int = -1
    """Decisions older than this many days are deleted by the learner; -1 keeps them."""
    learning_mode: LearningMode = "Online"

    def validate(self) -> None:
        """Refuse values the loop cannot run with; the error names the field."""
        if not MIN_REWARD_WAIT <= self.reward_wait <= MAX_REWARD_WAIT:
            raise ConfigError(
                "reward_wait", "must be between 5 seconds and 2 days", self.reward_wait
            )
        if not -1.0 <= self.default_reward <= 1.0:
            raise ConfigError("default_reward", "must be in [-1, 1]", self.default_reward)
        if self.reward_aggregation not in AGGREGATIONS:
            raise ConfigError(
                "reward_aggregation",
                f"must be one of {', '.join(AGGREGATIONS)}",
                self.reward_aggregation,
            )
        if self.exploration is not None and not 0.0 <= self.exploration <= 1.0:
            raise ConfigError("exploration", "must be in [0, 1]", self.exploration)
        if self.log_retention_days != -1 and self.log_retention_days < 1:
            raise ConfigError(
                "log_retention_days",
                "must be -1 (keep forever) or at least 1",
                self.log_retention_days,
            )
        if self.learning_mode not in LEARNING_MODES:
            raise ConfigError(
                "learning_mode", f"must be one of {', '.join(LEARNING_MODES)}", self.learning_mode
            )

    def as_json(self) -> dict[str, Any]:
        values = asdict(self)
        values["reward_wait"] = self.reward_wait.total_seconds()
        return values

    @classmethod
    def from_json(cls, values: Mapping[str, Any], defaults: SurfaceConfig) -> SurfaceConfig:
        out: dict[str, Any] = {}
        for key, default in asdict(defaults).items():
            value = values.get(key, default)
            if key == "reward_wait" and not isinstance(value, timedelta):
                value = timedelta(seconds=float(value))
            out[key] = value
        return cls(**out)


SETTINGS = frozenset(f.name for f in fields(SurfaceConfig))
"""The JSON keys of a stored row that are settings; the others are a front door's `extra`."""


@dataclass(frozen=True, slots=True)
class ModelLineage:
    """When the surface's current model was created (imported, reset, or first served) and
    how many times it was replaced from outside the learner."""

    generation: int
    created_at: datetime


class SurfaceConfigRow(SQLModel, table=True):
    __tablename__ = "surface_configs"

    surface: str = Field(primary_key=True, max_length=64)
    config: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    model_generation: int = 0
    model_created_at: datetime = Field(sa_type=UTCDateTime)
    apprentice_start: datetime | None = Field(default=None, sa_type=UTCDateTime)
    apprentice_events: int = Field(default=0, sa_type=sa.BigInteger)
    apprentice_rewards: float = 0.0
    apprentice_imitated_events: int = Field(default=0, sa_type=sa.BigInteger)
    apprentice_imitated_rewards: float = 0.0
    apprentice_last_batch: dict[str, Any] = Field(
        default_factory=dict, sa_column=sa.Column(sa.JSON, nullable=False)
    )
    apprentice_last_event_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


table = SurfaceConfigRow.__table__  # type: ignore[attr-defined]


@dataclass
class _Cached:
    config: SurfaceConfig
    generation: int
    read_at: float


@dataclass
class SurfaceConfigs:
    """The surface configurations in the database, with a short per-process cache.

    `starting` is what each registered surface runs with until someone configures it (its
    registration's settings, `bandit.surfaces`), `defaults` that of any other surface, so a
    fresh deployment behaves as before the row exists.
    """

    engine: Engine
    defaults: SurfaceConfig
    ttl: float = 1.0
    starting: Mapping[str, SurfaceConfig] = field(default_factory=dict)
    _cache: dict[str, _Cached] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _writes: int = 0
    """How many writes this process made; a read that overlapped one does not fill the cache
    (it may hold the row from before the write, cached after the write emptied the cache)."""

    def defaults_of(self, surface: str) -> SurfaceConfig:
        """What `surface` runs with until it is configured."""
        return self.starting.get(surface, self.defaults)

    def _row(self, surface: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(table).where(table.c.surface == surface)).first()

    def _ensure(self, conn: sa.Connection, surface: str) -> None:
        exists = conn.execute(sa.select(table.c.surface).where(table.c.surface == surface)).first()
        if exists is None:
            now = utcnow()
            conn.execute(
                table.insert().values(
                    surface=surface,
                    config=self.defaults_of(surface).as_json(),
                    created_at=now,
                    updated_at=now,
                    model_generation=0,
                    model_created_at=now,
                    apprentice_last_batch={},
                )
            )

    def read(self, surface: str) -> tuple[SurfaceConfig, int]:
        """The configuration and model generation, read from the database now."""
        writes = self._writes
        row = self._row(surface)
        if row is None:
            config, generation = self.defaults_of(surface), 0
        else:
            config = SurfaceConfig.from_json(row.config, self.defaults_of(surface))
            generation = int(row.model_generation)
        with self._lock:
            if self._writes == writes:
                self._cache[surface] = _Cached(config, generation, time.monotonic())
        return config, generation

    def get(self, surface: str) -> SurfaceConfig:
        """The configuration, at most `ttl` seconds old."""
        cached = self._cache.get(surface)
        if cached is not None and time.monotonic() - cached.read_at < self.ttl:
            return cached.config
        return self.read(surface)[0]

    def generation(self, surface: str) -> int:
        cached = self._cache.get(surface)
        if cached is not None and time.monotonic() - cached.read_at < self.ttl:
            return cached.generation
        return self.read(surface)[1]

    def configured(self) -> dict[str, tuple[SurfaceConfig, int]]:
        """Every surface with a stored row: its configuration and model generation, read now."""
        writes = self._writes
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(table.c.surface, table.c.config, table.c.model_generation)
            )
            out = {
                row.surface: (
                    SurfaceConfig.from_json(row.config, self.defaults_of(row.surface)),
                    int(row[2]),
                )
                for row in rows
            }
        now = time.monotonic()
        with self._lock:
            if self._writes == writes:
                for surface, (config, generation) in out.items():
                    self._cache[surface] = _Cached(config, generation, now)
        return out

    def refresh(self, surfaces: Iterable[str]) -> None:
        """Re-read every surface in one query and cache it, unconfigured ones as the defaults.

        A process that calls this more often than `ttl` (the api's refresh thread) answers
        `get` and `generation` from memory: no request waits on the database for them.
        """
        configured = self.configured()
        now = time.monotonic()
        with self._lock:
            for surface in surfaces:
                if surface not in configured:
                    self._cache[surface] = _Cached(self.defaults_of(surface), 0, now)

    def put(
        self, surface: str, config: SurfaceConfig, *, extra: Mapping[str, Any] | None = None
    ) -> SurfaceConfig:
        """Store validated settings, with `extra` JSON values beside them (keys that are not
        settings; those not given keep their stored values). Entering apprentice mode restarts
        its metrics."""
        config.validate()
        clash = SETTINGS.intersection(extra or {})
        if clash:
            raise ValueError(f"`extra` must not hold settings (got {sorted(clash)})")
        now = utcnow()
        with self.engine.begin() as conn:
            self._ensure(conn, surface)
            previous = conn.execute(
                sa.select(table.c.config).where(table.c.surface == surface)
            ).scalar_one()
            stored = {**previous, **(extra or {}), **config.as_json()}
            values: dict[str, Any] = {"config": stored, "updated_at": now}
            if (
                config.learning_mode == "Apprentice"
                and previous.get("learning_mode") != "Apprentice"
            ):
                values.update(_reset_apprentice(now))
            conn.execute(table.update().where(table.c.surface == surface).values(**values))
        with self._lock:
            self._writes += 1
            self._cache.pop(surface, None)
        return config

    def extra(self, surface: str) -> dict[str, Any]:
        """The JSON values stored beside the surface's settings (empty until some are)."""
        row = self._row(surface)
        if row is None:
            return {}
        return {k: v for k, v in row.config.items() if k not in SETTINGS}

    def new_model(self, surface: str) -> ModelLineage:
        """Record that the surface's model was replaced from outside the learner."""
        now = utcnow()
        with self.engine.begin() as conn:
            self._ensure(conn, surface)
            conn.execute(
                table.update()
                .where(table.c.surface == surface)
                .values(
                    model_generation=table.c.model_generation + 1,
                    model_created_at=now,
                    updated_at=now,
                )
            )
        with self._lock:
            self._writes += 1
            self._cache.pop(surface, None)
        return self.lineage(surface)

    def lineage(self, surface: str) -> ModelLineage:
        row = self._row(surface)
        if row is None:
            with self.engine.begin() as conn:
                self._ensure(conn, surface)
            row = self._row(surface)
        return ModelLineage(int(row.model_generation), row.model_created_at)

    def add_apprentice(
        self, surface: str, batch: ApprenticeCounts, last_event_at: datetime
    ) -> None:
        """Add one learner batch to the apprentice counters (atomic increments)."""
        with self.engine.begin() as conn:
            self._ensure(conn, surface)
            conn.execute(
                table.update()
                .where(table.c.surface == surface)
                .values(
                    apprentice_start=sa.func.coalesce(table.c.apprentice_start, last_event_at),
                    apprentice_events=table.c.apprentice_events + batch.events,
                    apprentice_rewards=table.c.apprentice_rewards + batch.rewards,
                    apprentice_imitated_events=table.c.apprentice_imitated_events
                    + batch.imitated_events,
                    apprentice_imitated_rewards=table.c.apprentice_imitated_rewards
                    + batch.imitated_rewards,
                    apprentice_last_batch=asdict(batch),
                    apprentice_last_event_at=last_event_at,
                )
            )

    def apprentice(self, surface: str) -> ApprenticeMetrics | None:
        """The apprentice metrics since apprentice mode was last entered (None before)."""
        row = self._row(surface)
        if row is None or row.apprentice_start is None:
            return None
        last = row.apprentice_last_batch or {}
        return ApprenticeMetrics(
            start=row.apprentice_start,
            total=ApprenticeCounts(
                int(row.apprentice_events),
                float(row.apprentice_rewards),
                int(row.apprentice_imitated_events),
                float(row.apprentice_imitated_rewards),
            ),
            last_batch=ApprenticeCounts(**last) if last else ApprenticeCounts(),
            last_event_at=row.apprentice_last_event_at,
        )


def _reset_apprentice(now: datetime) -> dict[str, Any]:
    return {
        "apprentice_start": now,
        "apprentice_events": 0,
        "apprentice_rewards": 0.0,
        "apprentice_imitated_events": 0,
        "apprentice_imitated_rewards": 0.0,
        "apprentice_last_batch": {},
        "apprentice_last_event_at": None,
    }
