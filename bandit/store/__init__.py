"""The decision log: durable decisions, rewards, learning state and model snapshots.

`bandit` owns these tables: every other package reads and writes them through `Store`, whose
methods come from one module per concern:

- `database`: the engine (SQLite pragmas, pool), connections and the write discipline;
- `writes`: the write path — log a decision, activate it, record its reward;
- `lookups`: the request path's reads — a decision by event id, a person's recent choices and
  their history of decisions and reactions;
- `learning`: the learner's reads and learning marks;
- `snapshots`: model snapshots;
- `retention`: a surface's log range and deleting what no model still needs;
- `streams`: ranges of the log in one cursor, for exports and counterfactual evaluation;
- `arms`: per-arm aggregates of an experiment;
- `people`: a person's decisions for their export, and their pseudonymization on erasure;
- `checkup`: a window's counts, the models that logged it and a bounded sample ("is it
  learning?", `rewards.doctor`).

`records` holds the typed records they hand out; `rows` the tables, private to this package.
"""

from __future__ import annotations

from bandit.store.arms import Arms
from bandit.store.checkup import Checkup
from bandit.store.database import (
    PgQuery,
    SqliteRead,
    make_engine,
    pg_connection,
    sqlite_connection,
)
from bandit.store.group_commit import GroupCommit
from bandit.store.learning import Learning
from bandit.store.lookups import RECENT_CHOICES_PG, RECENT_CHOICES_SQLITE, Lookups
from bandit.store.loop_commit import LoopCommit, Unanswered
from bandit.store.people import PSEUDONYM_PREFIX, PersonLog
from bandit.store.records import (
    ArmAggregate,
    Learnable,
    Learned,
    LearnedRow,
    LoggedDecision,
    LoggedSample,
    ModelUse,
    PastChoice,
    PersonalDecision,
    PersonalReaction,
    PrePeriodSums,
    RewardBucket,
    RewardOutcome,
    SettledRow,
    Snapshot,
    WindowCounts,
)
from bandit.store.retention import Retention
from bandit.store.streams import Streams
from bandit.store.writes import Writes

__all__ = [
    "PSEUDONYM_PREFIX",
    "RECENT_CHOICES_PG",
    "RECENT_CHOICES_SQLITE",
    "ArmAggregate",
    "GroupCommit",
    "Learnable",
    "Learned",
    "LearnedRow",
    "LoggedDecision",
    "LoggedSample",
    "LoopCommit",
    "ModelUse",
    "PastChoice",
    "PersonalDecision",
    "PersonalReaction",
    "PgQuery",
    "PrePeriodSums",
    "RewardBucket",
    "RewardOutcome",
    "SettledRow",
    "Snapshot",
    "SqliteRead",
    "Store",
    "Unanswered",
    "WindowCounts",
    "make_engine",
    "pg_connection",
    "sqlite_connection",
]


class Store(Writes, Lookups, Learning, Retention, Checkup, Streams, Arms, PersonLog):
    """Reads and writes the decision log. Thread-safe; one instance per process.

    `Store.connect(url)` opens it; every part shares one engine and one write lock.
    """
