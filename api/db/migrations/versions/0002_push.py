"""push subscriptions and the push outbox

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

Web Push delivery (ADR 0012): people's devices (`push_subscriptions`, endpoint and keys sealed
by the token vault), and the outbox, one `push_messages` row per pushed event id and one
`push_deliveries` row per (event id, device). New tables only: the previous release runs on it
unchanged, and going down drops them with their rows (subscriptions included: browsers
subscribe again on their next visit).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

irreversible: str | None = None


def upgrade() -> None:
    op.create_table(
        "push_subscriptions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("principal", sa.String(256), nullable=False),
        sa.Column("endpoint_hash", sa.String(64), nullable=False),
        sa.Column("service", sa.String(255), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("user_agent", sa.String(120), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_push_subscriptions_endpoint_hash", "push_subscriptions", ["endpoint_hash"], unique=True
    )
    op.create_index("ix_push_subscriptions_key_id", "push_subscriptions", ["key_id"])
    op.create_index("ix_push_subscriptions_principal", "push_subscriptions", ["principal"])

    op.create_table(
        "push_messages",
        sa.Column("event_id", sa.String(256), nullable=False),
        sa.Column("principal", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("timing_event_id", sa.String(256), nullable=True),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("key_id", sa.String(32), nullable=True),
        sa.Column("topic", sa.String(32), nullable=False),
        sa.Column("urgency", sa.String(16), nullable=False),
        sa.Column("ttl_seconds", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index(
        "ix_push_messages_principal_created", "push_messages", ["principal", "created_at"]
    )

    op.create_table(
        "push_deliveries",
        sa.Column("event_id", sa.String(256), nullable=False),
        sa.Column("subscription_id", sa.String(32), nullable=False),
        sa.Column("principal", sa.String(256), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(200), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("trimmed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "subscription_id"),
    )
    op.create_index("ix_push_deliveries_due", "push_deliveries", ["state", "next_attempt_at"])
    op.create_index("ix_push_deliveries_principal", "push_deliveries", ["principal"])
    op.create_index("ix_push_deliveries_subscription", "push_deliveries", ["subscription_id"])


def downgrade() -> None:
    op.drop_table("push_deliveries")
    op.drop_table("push_messages")
    op.drop_table("push_subscriptions")
