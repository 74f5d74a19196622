"""Run-time configuration of one decision surface, shared by every process through the database.

Personalizer lets its operator change the reward wait time, the default reward, how several
rewards of one event combine, the exploration share and the learning mode while the loop runs.
Those settings live in one row per surface (`surface_configs`), so the api workers (which apply
exploration and the learning mode when they rank, and the reward window when a reward arrives)
and the learner (which closes windows, applies the default reward and aggregates rewards) read
the same values. Processes cache a row for `ttl` seconds.

The row also carries the model *generation*: a counter bumped whenever the surface's model is
replaced from outside the learner (imported or reset). A learner in another process sees the
counter move and rebuilds its models from the newest snapshot (see `bandit.learner`), so an
imported model is never overwritten by the old one and no example is learned twice.

Apprentice-mode metrics are counters in the same row, incremented atomically by the learner.
"""

from __future__ import annotations

import re
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel

from bandit.events import utcnow
from bandit.hub import ModelHub
from bandit.store import Snapshot, Store
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

MIN_REWARD_WAIT = timedelta(seconds=5)
MAX_REWARD_WAIT = timedelta(days=2)

_DURATION = re.compile(
    r"^P(?!$)(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


class ConfigError(ValueError):
    """A configuration value that cannot be used; `target` names the field (wire spelling)."""

    def __init__(self, message: str, *, target: str) -> None:
        super().__init__(message)
        self.target = target


def parse_duration(text: str, target: str) -> timedelta:
    """An ISO 8601 duration of days, hours, minutes and seconds (`PT10M`, `P1DT2H`).

    Years, months and weeks are refused: their length is not fixed.
    """
    match = _DURATION.match(text.strip().upper()) if isinstance(text, str) else None
    if match is None:
        raise ConfigError(
            f"`{target}` must be an ISO 8601 duration such as PT10M or P1DT2H (got {text!r})",
            target=target,
        )
    parts = {k: float(v) for k, v in match.groupdict().items() if v is not None}
    try:
        return timedelta(**parts)
    except OverflowError:
        raise ConfigError(
            f"`{target}` is too long a duration (got {text!r})", target=target
        ) from None


def format_duration(value: timedelta) -> str:
    """`timedelta(minutes=10)` -> `PT10M`; the shortest ISO 8601 spelling."""
    total = value.total_seconds()
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    date = f"{int(days)}D" if days else ""
    clock = ""
    if hours:
        clock += f"{int(hours)}H"
    if minutes:
        clock += f"{int(minutes)}M"
    if seconds or not (date or clock):
        clock += f"{seconds:g}S"
    return f"P{date}" + (f"T{clock}" if clock else "")


@dataclass(frozen=True, slots=True)
class SurfaceConfig:
    """What Personalizer calls the service configuration, for one surface."""

    reward_wait: timedelta
    default_reward: float
    reward_aggregation: Aggregation = "earliest"
    exploration: float | None = DEFAULT_EXPLORATION
    """The share spread uniformly: epsilon for epsilon-greedy policies, the floor mixed into
    any other explorer's pmf (`policies.serving`). None leaves an epsilon-greedy policy's own
    `--epsilon` and floors other explorers at `DEFAULT_EXPLORATION`."""
    model_export_frequency: timedelta = timedelta(minutes=5)
    log_retention_days: int = -1
    log_mirror_enabled: bool = False
    log_mirror_sas_uri: str | None = None
    learning_mode: LearningMode = "Online"
    auto_optimization_enabled: bool = False
    auto_optimization_frequency: timedelta = timedelta(days=7)
    auto_optimization_start: datetime | None = None
    model_retrain_days: int = 0
    policy_name: str | None = None
    """The name the operator gave the policy (Personalizer's `{name, arguments}`)."""
    edited_at: datetime | None = None

    def validate(self) -> None:
        """Refuse values Personalizer refuses; the error names the field as the wire spells it."""
        if not MIN_REWARD_WAIT <= self.reward_wait <= MAX_REWARD_WAIT:
            raise ConfigError(
                "`rewardWaitTime` must be between 5 seconds and 2 days "
                f"(got {format_duration(self.reward_wait)})",
                target="rewardWaitTime",
            )
        if not -1.0 <= self.default_reward <= 1.0:
            raise ConfigError(
                f"`defaultReward` must be in [-1, 1] (got {self.default_reward})",
                target="defaultReward",
            )
        if self.reward_aggregation not in AGGREGATIONS:
            raise ConfigError(
                f"`rewardAggregation` must be one of {', '.join(AGGREGATIONS)} "
                f"(got {self.reward_aggregation!r})",
                target="rewardAggregation",
            )
        if self.exploration is not None and not 0.0 <= self.exploration <= 1.0:
            raise ConfigError(
                f"`explorationPercentage` must be in [0, 1] (got {self.exploration})",
                target="explorationPercentage",
            )
        if self.model_export_frequency <= timedelta(0):
            raise ConfigError(
                "`modelExportFrequency` must be a positive duration", target="modelExportFrequency"
            )
        if self.log_retention_days != -1 and self.log_retention_days < 1:
            raise ConfigError(
                "`logRetentionDays` must be -1 (keep forever) or at least 1 "
                f"(got {self.log_retention_days})",
                target="logRetentionDays",
            )
        if self.learning_mode not in LEARNING_MODES:
            raise ConfigError(
                f"`learningMode` must be one of {', '.join(LEARNING_MODES)} "
                f"(got {self.learning_mode!r})",
                target="learningMode",
            )
        if self.auto_optimization_frequency <= timedelta(0):
            raise ConfigError(
                "`autoOptimizationFrequency` must be a positive duration",
                target="autoOptimizationFrequency",
            )
        if self.model_retrain_days < 0:
            raise ConfigError(
                f"`modelRetrainDays` must be 0 or more (got {self.model_retrain_days})",
                target="modelRetrainDays",
            )

    def as_json(self) -> dict[str, Any]:
        values = asdict(self)
        for key, value in values.items():
            if isinstance(value, timedelta):
                values[key] = value.total_seconds()
            elif isinstance(value, datetime):
                values[key] = value.isoformat()
        return values

    @classmethod
    def from_json(cls, values: dict[str, Any], defaults: SurfaceConfig) -> SurfaceConfig:
        out: dict[str, Any] = {}
        for key, default in asdict(defaults).items():
            value = values.get(key, default)
            if isinstance(default, timedelta) and not isinstance(value, timedelta):
                value = timedelta(seconds=float(value))
            elif key in ("auto_optimization_start", "edited_at") and isinstance(value, str):
                value = datetime.fromisoformat(value)
            out[key] = value
        return cls(**out)


@dataclass(frozen=True, slots=True)
class ApprenticeCounts:
    """Events learned in apprentice mode, and those where the policy would have imitated the
    baseline (chosen the same action), with the rewards of each."""

    events: int = 0
    rewards: float = 0.0
    imitated_events: int = 0
    imitated_rewards: float = 0.0

    def __add__(self, other: ApprenticeCounts) -> ApprenticeCounts:
        return ApprenticeCounts(
            self.events + other.events,
            self.rewards + other.rewards,
            self.imitated_events + other.imitated_events,
            self.imitated_rewards + other.imitated_rewards,
        )

    @property
    def match_rate(self) -> float | None:
        return self.imitated_events / self.events if self.events else None


@dataclass(frozen=True, slots=True)
class ApprenticeMetrics:
    start: datetime
    total: ApprenticeCounts
    last_batch: ApprenticeCounts
    last_event_at: datetime | None


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

    `defaults` is what a surface runs with until someone configures it (from the process
    settings), so a fresh deployment behaves as before the row exists.
    """

    engine: Engine
    defaults: SurfaceConfig
    ttl: float = 1.0
    _cache: dict[str, _Cached] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

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
                    config=self.defaults.as_json(),
                    created_at=now,
                    updated_at=now,
                    model_generation=0,
                    model_created_at=now,
                    apprentice_last_batch={},
                )
            )

    def read(self, surface: str) -> tuple[SurfaceConfig, int]:
        """The configuration and model generation, read from the database now."""
        row = self._row(surface)
        if row is None:
            config, generation = self.defaults, 0
        else:
            config = SurfaceConfig.from_json(row.config, self.defaults)
            generation = int(row.model_generation)
        with self._lock:
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
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(table.c.surface, table.c.config, table.c.model_generation)
            )
            out = {
                row.surface: (SurfaceConfig.from_json(row.config, self.defaults), int(row[2]))
                for row in rows
            }
        now = time.monotonic()
        with self._lock:
            for surface, (config, generation) in out.items():
                self._cache[surface] = _Cached(config, generation, now)
        return out

    def put(self, surface: str, config: SurfaceConfig) -> SurfaceConfig:
        """Store a validated configuration; entering apprentice mode restarts its metrics."""
        config.validate()
        now = utcnow()
        config = replace(config, edited_at=now)
        with self.engine.begin() as conn:
            self._ensure(conn, surface)
            previous = conn.execute(
                sa.select(table.c.config).where(table.c.surface == surface)
            ).scalar_one()
            values: dict[str, Any] = {"config": config.as_json(), "updated_at": now}
            if (
                config.learning_mode == "Apprentice"
                and previous.get("learning_mode") != "Apprentice"
            ):
                values.update(_reset_apprentice(now))
            conn.execute(table.update().where(table.c.surface == surface).values(**values))
        with self._lock:
            self._cache.pop(surface, None)
        return config

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


def replace_model(
    store: Store,
    hub: ModelHub,
    configs: SurfaceConfigs,
    surface: str,
    model_key: str,
    args: str,
    data: bytes,
    *,
    paused: AbstractContextManager[None] | None = None,
) -> int:
    """Make `data` the model of `model_key` in every process, with no example learned twice.

    The new snapshot replaces every older one of the model, covers every learning mark issued
    so far, and has a version above any served one (so api processes load it by version). The
    generation bump makes a learner in another process rebuild from it and replay only what
    it learns after; `paused` holds this process's learner between batches meanwhile. Returns
    the new model version.
    """
    with paused or nullcontext():
        current = hub.get(model_key)
        latest = store.latest_snapshot(model_key)
        version = 1 + max(
            current.version if current is not None else 0,
            latest.version if latest is not None else 0,
        )
        store.replace_snapshots(
            Snapshot(model_key, args, version, store.max_learn_seq(), utcnow(), data)
        )
        configs.new_model(surface)
        hub.forget(model_key)
        hub.get(model_key)
    return version
