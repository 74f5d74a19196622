"""Registered policy specs persist in the `policies` table and load at start-up.

Rows that no longer make a spec (VW arguments stored before the allow-list, which it refuses)
load as `RefusedSpec`s: they keep their version numbers and are never served.
"""

from __future__ import annotations

from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from bandit.events import utcnow
from policies.spec import PolicySpec, PolicySpecError, StoredSpec, parse_id, stored
from policies.tables import PolicyRow

policies = cast(sa.Table, PolicyRow.__table__)  # type: ignore[attr-defined]


def _spec(row: Any) -> StoredSpec:
    return stored(row.name, row.kind, row.args, row.description, int(row.version))


class PolicyStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def all(self) -> list[StoredSpec]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(policies).order_by(policies.c.name, policies.c.version)
            ).all()
        return [_spec(row) for row in rows]

    def get(self, policy_id: str) -> StoredSpec | None:
        """The version `policy_id` names (`name` is version 1, `name@vN` version N)."""
        try:
            name, version = parse_id(policy_id)
        except PolicySpecError:
            return None
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(policies).where(policies.c.name == name, policies.c.version == version)
            ).first()
        return _spec(row) if row is not None else None

    def versions(self, name: str) -> list[StoredSpec]:
        """Every stored version of `name`, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(policies).where(policies.c.name == name).order_by(policies.c.version)
            ).all()
        return [_spec(row) for row in rows]

    def insert(self, spec: PolicySpec) -> bool:
        """Store `spec`; False when that version of its name is already stored."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    policies.insert().values(
                        name=spec.name,
                        version=spec.version,
                        kind=spec.kind,
                        args=spec.args,
                        description=spec.description,
                        created_at=utcnow(),
                    )
                )
        except IntegrityError:
            return False
        return True
