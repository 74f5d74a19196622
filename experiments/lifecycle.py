"""Experiments and their lifecycle: create, start, pause, stop, ship.

::

    draft ──start──> running ──pause──> paused ──start──> running
      │                 │                  │
      └─────stop────────┴──────stop────────┴──> stopped ──ship──> shipped

Running and paused experiments can also be shipped directly (shipping stops them). Only a draft's
arms can be edited: moving traffic between arms mid-experiment would mix populations. At most one
experiment runs per surface (a partial unique index holds this even under concurrent starts).
While paused, the surface serves its default policy and nobody is assigned.

Assignment is :func:`experiments.assignment.assign` on the experiment's salt and its arms in
order; the first arm is the control. The unit of assignment is the surface's (`unit` of its
registration, `bandit.surfaces`): the person on the tips surface (the decision's principal), and
the event id on the Personalizer surface, whose one principal is the subscription key: each rank
call is assigned on its own, and a retried event id lands in the same arm.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from bandit.errors import DomainError, Kind
from bandit.events import utcnow
from bandit.surfaces import Surfaces, Unit
from experiments.assignment import Arm, allocate, arm_for_bucket, bucket
from experiments.tables import DefaultPolicyRow, ExperimentRow

experiments = cast(sa.Table, ExperimentRow.__table__)  # type: ignore[attr-defined]
defaults = cast(sa.Table, DefaultPolicyRow.__table__)  # type: ignore[attr-defined]

Status = Literal["draft", "running", "paused", "stopped", "shipped"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_SALT = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class ExperimentError(DomainError, ValueError):
    """Bad experiment input; `target` names the field."""

    def __init__(self, message: str, *, target: str) -> None:
        super().__init__(message, target=target)


class ExperimentNotFound(ExperimentError):
    kind = Kind.NOT_FOUND


class ExperimentConflict(ExperimentError):
    """The request does not fit the experiment's state."""

    kind = Kind.CONFLICT


@dataclass(frozen=True, slots=True)
class ArmSpec:
    name: str
    policy: str
    weight: int


@dataclass(frozen=True, slots=True)
class Experiment:
    name: str
    surface: str
    status: Status
    arms: tuple[ArmSpec, ...]
    salt: str
    description: str
    min_units_per_arm: int
    min_decisions_per_arm: int
    created_at: datetime
    started_at: datetime | None
    stopped_at: datetime | None
    shipped_arm: str | None
    unit: Unit = "principal"
    """What it assigns to arms and analyses: its surface's unit (`bandit.surfaces`)."""

    @property
    def control(self) -> str:
        return self.arms[0].name

    def arm(self, name: str) -> ArmSpec:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise ExperimentError(f"`arm` {name!r} is not an arm of {self.name!r}", target="arm")

    def assign(self, unit: str) -> ArmSpec:
        """The unit's arm: sticky and deterministic (see `experiments.assignment`)."""
        ranges = allocate([Arm(a.name, a.weight) for a in self.arms])
        return self.arm(arm_for_bucket(bucket(unit, self.salt), ranges))


def _experiment(row: Any, unit: Unit) -> Experiment:
    return Experiment(
        name=row.name,
        surface=row.surface,
        status=row.status,
        arms=tuple(ArmSpec(a["name"], a["policy"], int(a["weight"])) for a in row.arms),
        salt=row.salt,
        description=row.description,
        min_units_per_arm=row.min_units_per_arm,
        min_decisions_per_arm=row.min_decisions_per_arm,
        created_at=row.created_at,
        started_at=row.started_at,
        stopped_at=row.stopped_at,
        shipped_arm=row.shipped_arm,
        unit=unit,
    )


def check_arms(arms: Sequence[ArmSpec], known_policy: Callable[[str], bool]) -> None:
    """Refuse arms that cannot run; the error names the arm's field."""
    if len(arms) < 2:
        raise ExperimentError(
            f"`arms` must hold a control and at least one treatment (got {len(arms)})",
            target="arms",
        )
    seen: set[str] = set()
    for i, arm in enumerate(arms):
        if not _NAME.match(arm.name):
            raise ExperimentError(
                f"`arms[{i}].name` must be 1-64 lowercase letters, digits, '.', '_' or '-' "
                f"(got {arm.name!r})",
                target=f"arms[{i}].name",
            )
        if arm.name in seen:
            raise ExperimentError(
                f"`arms[{i}].name` {arm.name!r} is a duplicate arm name", target=f"arms[{i}].name"
            )
        seen.add(arm.name)
        if isinstance(arm.weight, bool) or not isinstance(arm.weight, int) or arm.weight <= 0:
            raise ExperimentError(
                f"`arms[{i}].weight` must be a positive integer (got {arm.weight!r})",
                target=f"arms[{i}].weight",
            )
        if not known_policy(arm.policy):
            raise ExperimentError(
                f"`arms[{i}].policy` {arm.policy!r} is not a registered policy",
                target=f"arms[{i}].policy",
            )
    try:
        allocate([Arm(a.name, a.weight) for a in arms])
    except ValueError as exc:
        raise ExperimentError(f"`arms`: {exc}", target="arms") from None


class Experiments:
    """Experiments in the database, on the registered `surfaces`. `known_policy` says whether a
    policy id is registered.

    `pin_policy` turns an arm's policy reference into the id it is stored under: a bare name
    becomes its latest version (`policies.registry.Registry.pin`), so an arm keeps the version it
    was created with when the name gets new versions later. Without it references are stored as
    given.
    """

    def __init__(
        self,
        engine: Engine,
        surfaces: Surfaces,
        known_policy: Callable[[str], bool],
        *,
        pin_policy: Callable[[str], str] | None = None,
    ) -> None:
        self.engine = engine
        self.surfaces = surfaces
        self.known_policy = known_policy
        self.pin_policy = pin_policy

    def _experiment(self, row: Any) -> Experiment:
        surface = self.surfaces.get(row.surface)
        # A stored surface no longer registered still reads (its experiments stay visible).
        return _experiment(row, surface.unit if surface is not None else "principal")

    def _pinned(self, arms: Sequence[ArmSpec]) -> list[ArmSpec]:
        if self.pin_policy is None:
            return list(arms)
        return [replace(arm, policy=self.pin_policy(arm.policy)) for arm in arms]

    def create(
        self,
        name: str,
        surface: str,
        arms: Sequence[ArmSpec],
        *,
        salt: str | None = None,
        description: str = "",
        min_units_per_arm: int = 200,
        min_decisions_per_arm: int = 1000,
    ) -> Experiment:
        if not _NAME.match(name):
            raise ExperimentError(
                f"`name` must be 1-64 lowercase letters, digits, '.', '_' or '-' (got {name!r})",
                target="name",
            )
        if surface not in self.surfaces:
            raise ExperimentError(
                f"`surface` must be one of {list(self.surfaces)} (got {surface!r})",
                target="surface",
            )
        salt = salt if salt is not None else f"{name}-{uuid.uuid4().hex[:12]}"
        if not _SALT.match(salt):
            raise ExperimentError(
                f"`salt` must be 1-64 letters, digits, '.', '_' or '-' (got {salt!r})",
                target="salt",
            )
        if min_units_per_arm < 2:
            raise ExperimentError(
                f"`min_units_per_arm` must be at least 2 (got {min_units_per_arm})",
                target="min_units_per_arm",
            )
        if min_decisions_per_arm < 0:
            raise ExperimentError(
                f"`min_decisions_per_arm` must be non-negative (got {min_decisions_per_arm})",
                target="min_decisions_per_arm",
            )
        arms = self._pinned(arms)
        check_arms(arms, self.known_policy)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    experiments.insert().values(
                        name=name,
                        surface=surface,
                        status="draft",
                        arms=[
                            {"name": a.name, "policy": a.policy, "weight": a.weight} for a in arms
                        ],
                        salt=salt,
                        description=description,
                        min_units_per_arm=min_units_per_arm,
                        min_decisions_per_arm=min_decisions_per_arm,
                        created_at=utcnow(),
                    )
                )
        except IntegrityError:
            raise ExperimentConflict(
                f"`name` {name!r} is already an experiment", target="name"
            ) from None
        return self.get(name)

    def get(self, name: str) -> Experiment:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(experiments).where(experiments.c.name == name)).first()
        if row is None:
            raise ExperimentNotFound(f"no experiment is called {name!r}", target="name")
        return self._experiment(row)

    def list(self, surface: str | None = None) -> list[Experiment]:
        query = sa.select(experiments).order_by(experiments.c.created_at, experiments.c.name)
        if surface is not None:
            query = query.where(experiments.c.surface == surface)
        with self.engine.connect() as conn:
            return [self._experiment(row) for row in conn.execute(query)]

    def running(self) -> dict[str, Experiment]:
        """The running experiment of each surface that has one."""
        query = sa.select(experiments).where(experiments.c.status == "running")
        with self.engine.connect() as conn:
            return {row.surface: self._experiment(row) for row in conn.execute(query)}

    def update_arms(self, name: str, arms: Sequence[ArmSpec]) -> Experiment:
        """Replace a draft's arms; started experiments keep theirs (409)."""
        current = self.get(name)
        if current.status != "draft":
            raise ExperimentConflict(
                f"`arms` of experiment {name!r} cannot change once started "
                f"(it is {current.status})",
                target="arms",
            )
        arms = self._pinned(arms)
        check_arms(arms, self.known_policy)
        values = [{"name": a.name, "policy": a.policy, "weight": a.weight} for a in arms]
        self._transition(name, ("draft",), arms=values)
        return self.get(name)

    def start(self, name: str) -> Experiment:
        current = self.get(name)
        if current.status == "running":
            raise ExperimentConflict(f"experiment {name!r} is already running", target="status")
        if current.status not in ("draft", "paused"):
            raise ExperimentConflict(
                f"experiment {name!r} is {current.status} and cannot start again", target="status"
            )
        other = self.running().get(current.surface)
        if other is not None:
            raise ExperimentConflict(
                f"experiment {other.name!r} is already running on surface {current.surface!r}",
                target="surface",
            )
        values: dict[str, Any] = {"status": "running"}
        if current.started_at is None:
            values["started_at"] = utcnow()
        try:
            self._transition(name, ("draft", "paused"), **values)
        except IntegrityError:
            raise ExperimentConflict(
                f"another experiment is already running on surface {current.surface!r}",
                target="surface",
            ) from None
        return self.get(name)

    def pause(self, name: str) -> Experiment:
        self._transition(name, ("running",), status="paused")
        return self.get(name)

    def stop(self, name: str) -> Experiment:
        self._transition(
            name, ("draft", "running", "paused"), status="stopped", stopped_at=utcnow()
        )
        return self.get(name)

    def ship(self, name: str, arm: str) -> Experiment:
        """Make `arm`'s policy the surface's default policy, and stop the experiment."""
        current = self.get(name)
        policy = current.arm(arm).policy
        now = utcnow()
        with self.engine.begin() as conn:
            self._transition(
                name,
                ("running", "paused", "stopped"),
                conn=conn,
                status="shipped",
                shipped_arm=arm,
                stopped_at=current.stopped_at or now,
            )
            conn.execute(defaults.delete().where(defaults.c.surface == current.surface))
            conn.execute(
                defaults.insert().values(
                    surface=current.surface, policy=policy, experiment=name, updated_at=now
                )
            )
        return self.get(name)

    def set_default(self, surface: str, policy: str) -> None:
        """Serve `policy` on `surface` outside experiments (Personalizer's policy endpoint)."""
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(defaults.delete().where(defaults.c.surface == surface))
            conn.execute(
                defaults.insert().values(
                    surface=surface, policy=policy, experiment=None, updated_at=now
                )
            )

    def default_policies(self) -> dict[str, str]:
        """Surface -> the policy shipped to it (surfaces never shipped to are absent)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(defaults.c.surface, defaults.c.policy)).all()
        return {row.surface: row.policy for row in rows}

    def _transition(
        self,
        name: str,
        allowed: Sequence[Status],
        *,
        conn: Connection | None = None,
        **values: Any,
    ) -> None:
        update = (
            experiments.update()
            .where(experiments.c.name == name, experiments.c.status.in_(allowed))
            .values(**values)
        )
        if conn is not None:
            changed = conn.execute(update).rowcount
        else:
            with self.engine.begin() as own:
                changed = own.execute(update).rowcount
        if changed == 0:
            current = self.get(name)  # raises ExperimentNotFound
            action = values.get("status", "change")
            raise ExperimentConflict(
                f"experiment {name!r} is {current.status}; it must be one of "
                f"{list(allowed)} to become {action}",
                target="status",
            )
