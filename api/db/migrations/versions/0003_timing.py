"""the timing surface: people's timing settings and their decision points

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

The timing surface (ADR 0014): `timing_people` holds a person's decision interval and daily
dose (no row: the defaults), `timing_points` one row per person and decision slot, whose
primary key is what lets only one notifier decide a slot. New tables only: the previous
release runs on it unchanged; going down drops them with their rows (the decisions themselves
stay in the decision log).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

irreversible: str | None = None


def upgrade() -> None:
    op.create_table(
        "timing_people",
        sa.Column("principal", sa.String(256), nullable=False),
        sa.Column("every_minutes", sa.Integer(), nullable=False),
        sa.Column("pushes_per_day", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("principal"),
    )
    op.create_table(
        "timing_points",
        sa.Column("principal", sa.String(256), nullable=False),
        sa.Column("slot_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("local_day", sa.String(10), nullable=False),
        sa.Column("event_id", sa.String(256), nullable=False),
        sa.Column("action", sa.String(8), nullable=True),
        sa.Column("tip_event_id", sa.String(256), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("visited_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("principal", "slot_at"),
    )
    op.create_index(
        "ix_timing_points_principal_decided", "timing_points", ["principal", "decided_at"]
    )


def downgrade() -> None:
    op.drop_table("timing_points")
    op.drop_table("timing_people")
