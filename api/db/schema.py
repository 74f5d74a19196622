"""Every table of oO in one `MetaData`: what the migrations are compared against.

Each package declares its own tables on SQLModel's shared metadata; importing the modules that
declare them here makes the collection complete whichever process asks (the api alone does not
import the learner's tables, a CLI command imports fewer still).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import SQLModel

import api.auth.tables
import api.jobstore
import bandit.surface_config
import bandit.tables
import experiments.tables
import integrations.oauth_tables
import integrations.tables
import integrations.vault_tables
import notifier.tables
import policies.tables

TABLE_MODULES = (
    bandit.tables,
    bandit.surface_config,
    policies.tables,
    experiments.tables,
    integrations.tables,
    integrations.oauth_tables,
    integrations.vault_tables,
    notifier.tables,
    api.auth.tables,
    api.jobstore,
)
"""The modules that declare tables (imported for their side effect on the metadata)."""


def metadata() -> sa.MetaData:
    """The metadata of every oO table, as the code of this release declares them."""
    return SQLModel.metadata
