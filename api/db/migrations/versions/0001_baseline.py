"""baseline: every table of the release before migrations

Revision ID: 0001
Revises:
Create Date: 2026-12-02

The schema as `create_all` made it until then, on SQLite and PostgreSQL alike. A database made
before migrations is adopted by running this revision on it: each table and index is created
only where it is missing (a database made by a CLI command alone lacks tables; tables made
before an index was declared lack that index, which `SignalStore.ensure_indexes` used to add at
start), and what exists is kept with its rows.

Column types are spelled in SQLAlchemy's own terms (`DateTime(timezone=True)` for oO's
`UTCDateTime`, `String` for SQLModel's `AutoString`): a migration must not change when the
code's types do.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

irreversible = (
    "below the first revision there are no tables: it would drop every table and all their "
    "rows (to start over, drop the database instead)"
)


class _Index(NamedTuple):
    name: str
    columns: tuple[str, ...]
    unique: bool = False
    where: str | None = None


class _Tables:
    """Creates tables and their indexes, each unless it exists already (adoption)."""

    def __init__(self) -> None:
        self.inspector = sa.inspect(op.get_bind())
        self.before = frozenset(self.inspector.get_table_names())

    def __call__(self, name: str, *elements: Any, indexes: tuple[_Index, ...] = ()) -> None:
        existing: set[str] = set()
        if name in self.before:
            existing = {str(index["name"]) for index in self.inspector.get_indexes(name)}
        else:
            op.create_table(name, *elements)
        for index in indexes:
            if index.name in existing:
                continue
            partial: dict[str, Any] = {}
            if index.where is not None:
                partial = {
                    "postgresql_where": sa.text(index.where),
                    "sqlite_where": sa.text(index.where),
                }
            op.create_index(index.name, name, list(index.columns), unique=index.unique, **partial)


def _when(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    _table = _Tables()
    # the decision log (bandit)
    _table(
        "decisions",
        sa.Column("event_id", sa.String(256), nullable=False),
        sa.Column("surface", sa.String(64), nullable=False),
        sa.Column("principal", sa.String(256), nullable=False),
        _when("created_at"),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("actions", sa.JSON(), nullable=False),
        sa.Column("pmf", sa.JSON(), nullable=False),
        sa.Column("chosen_index", sa.Integer(), nullable=False),
        sa.Column("chosen_action", sa.String(256), nullable=False),
        sa.Column("propensity", sa.Float(), nullable=False),
        sa.Column("policy", sa.String(128), nullable=False),
        sa.Column("model_key", sa.String(256), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("experiment", sa.String(128), nullable=True),
        sa.Column("arm", sa.String(128), nullable=True),
        sa.Column("missing_sources", sa.JSON(), nullable=False),
        sa.Column("excluded", sa.JSON(), nullable=False),
        sa.Column("vw_example", sa.Text(), nullable=False),
        sa.Column("deferred", sa.Boolean(), nullable=False),
        _when("activated_at", nullable=True),
        sa.Column("learn_seq", sa.BigInteger(), nullable=True),
        _when("learned_at", nullable=True),
        sa.Column("learned_reward", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("event_id"),
        indexes=(
            _Index("ix_decisions_awaiting", ("activated_at",), where="learn_seq IS NULL"),
            _Index(
                "ix_decisions_experiment_arm_principal",
                ("experiment", "arm", "principal"),
                where="experiment IS NOT NULL",
            ),
            _Index("ix_decisions_learn_seq", ("learn_seq",)),
            _Index("ix_decisions_principal_created", ("principal", "created_at")),
            _Index("ix_decisions_surface_created", ("surface", "created_at")),
        ),
    )
    _table(
        "rewards",
        sa.Column("event_id", sa.String(256), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("reaction", sa.String(32), nullable=True),
        _when("received_at"),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["decisions.event_id"]),
        sa.PrimaryKeyConstraint("event_id"),
        indexes=(_Index("ix_rewards_received", ("received_at",)),),
    )
    _table(
        "model_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_key", sa.String(256), nullable=False),
        sa.Column("args", sa.String(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("through_seq", sa.BigInteger(), nullable=False),
        _when("created_at"),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        indexes=(_Index("ix_model_snapshots_key_version", ("model_key", "version")),),
    )
    _table(
        "surface_configs",
        sa.Column("surface", sa.String(64), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        _when("created_at"),
        _when("updated_at"),
        sa.Column("model_generation", sa.Integer(), nullable=False),
        _when("model_created_at"),
        _when("apprentice_start", nullable=True),
        sa.Column("apprentice_events", sa.BigInteger(), nullable=False),
        sa.Column("apprentice_rewards", sa.Float(), nullable=False),
        sa.Column("apprentice_imitated_events", sa.BigInteger(), nullable=False),
        sa.Column("apprentice_imitated_rewards", sa.Float(), nullable=False),
        sa.Column("apprentice_last_batch", sa.JSON(), nullable=False),
        _when("apprentice_last_event_at", nullable=True),
        sa.PrimaryKeyConstraint("surface"),
    )
    # policies and experiments
    _table(
        "policies",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("args", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        _when("created_at"),
        sa.PrimaryKeyConstraint("name", "version"),
    )
    _table(
        "experiments",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("surface", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("arms", sa.JSON(), nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("min_units_per_arm", sa.Integer(), nullable=False),
        sa.Column("min_decisions_per_arm", sa.Integer(), nullable=False),
        _when("created_at"),
        _when("started_at", nullable=True),
        _when("stopped_at", nullable=True),
        sa.Column("shipped_arm", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("name"),
        indexes=(
            _Index(
                "ux_experiments_running_surface",
                ("surface",),
                unique=True,
                where="status = 'running'",
            ),
        ),
    )
    _table(
        "default_policies",
        sa.Column("surface", sa.String(64), nullable=False),
        sa.Column("policy", sa.String(64), nullable=False),
        sa.Column("experiment", sa.String(64), nullable=True),
        _when("updated_at"),
        sa.PrimaryKeyConstraint("surface"),
    )
    # people: profiles, signals, integrations
    _table(
        "profiles",
        sa.Column("principal", sa.String(256), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("quiet_start", sa.String(5), nullable=True),
        sa.Column("quiet_end", sa.String(5), nullable=True),
        sa.Column("interests", sa.JSON(), nullable=False),
        sa.Column("kinds", sa.JSON(), nullable=False),
        _when("updated_at"),
        sa.PrimaryKeyConstraint("principal"),
    )
    _table(
        "signals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("principal", sa.String(256), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        _when("occurred_at"),
        sa.Column("source", sa.String(64), nullable=False),
        _when("received_at"),
        sa.PrimaryKeyConstraint("id"),
        indexes=(
            _Index("ix_signals_occurred", ("occurred_at",)),
            _Index("ix_signals_principal_occurred", ("principal", "occurred_at")),
        ),
    )
    _table(
        "oauth_states",
        sa.Column("state_hash", sa.String(64), nullable=False),
        sa.Column("principal", sa.String(256), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        _when("expires_at"),
        sa.Column("code_verifier", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("state_hash"),
        indexes=(_Index("ix_oauth_states_expires_at", ("expires_at",)),),
    )
    _table(
        "integration_tokens",
        sa.Column("principal", sa.String(256), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        _when("expires_at", nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        _when("updated_at"),
        sa.PrimaryKeyConstraint("principal", "provider"),
        indexes=(_Index("ix_integration_tokens_key_id", ("key_id",)),),
    )
    # sign-in (api)
    _table(
        "auth_people",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("name", sa.String(256), nullable=True),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        _when("created_at"),
        _when("last_seen_at", nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    _table(
        "auth_identities",
        sa.Column("issuer", sa.String(512), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("person_id", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        _when("created_at"),
        sa.PrimaryKeyConstraint("issuer", "subject"),
        indexes=(_Index("ix_auth_identities_person", ("person_id",)),),
    )
    _table(
        "auth_sessions",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("person_id", sa.String(64), nullable=False),
        _when("created_at"),
        _when("expires_at"),
        _when("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("token_hash"),
        indexes=(_Index("ix_auth_sessions_person", ("person_id",)),),
    )
    _table(
        "auth_refresh_tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("family_id", sa.String(64), nullable=False),
        sa.Column("person_id", sa.String(64), nullable=False),
        _when("created_at"),
        _when("expires_at"),
        _when("used_at", nullable=True),
        _when("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("token_hash"),
        indexes=(
            _Index("ix_auth_refresh_tokens_family", ("family_id",)),
            _Index("ix_auth_refresh_tokens_person", ("person_id",)),
        ),
    )
    _table(
        "auth_api_keys",
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        _when("created_at"),
        _when("revoked_at", nullable=True),
        _when("last_used_at", nullable=True),
        sa.PrimaryKeyConstraint("key_id"),
    )
    # shared analysis jobs (api)
    _table(
        "jobs",
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("id", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("done", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _when("created_at"),
        _when("started_at", nullable=True),
        _when("finished_at", nullable=True),
        _when("updated_at"),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("owner", sa.String(160), nullable=False),
        sa.PrimaryKeyConstraint("kind", "id"),
        indexes=(
            _Index("ix_jobs_kind_created", ("kind", "created_at")),
            _Index("ix_jobs_status_updated", ("status", "updated_at")),
        ),
    )


def downgrade() -> None:
    raise RuntimeError(f"revision {revision} cannot go down: {irreversible}")
