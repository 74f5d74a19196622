"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

Expand/contract: a revision that ships with new code only adds (tables, nullable columns,
indexes), so the previous release keeps running on it during a rolling deploy; removing what
the old code still reads waits for a later release. See docs/operations.md.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}
revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}

# A revision that cannot go down sets `irreversible` to the reason; `oo db downgrade` then
# refuses before touching the database.
irreversible: str | None = None


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
