"""What oO holds about a person, module by module: export sections and erasure.

Every module that keeps data about a person registers with the process's `PersonalData`
(built at start-up, kept on the services object):

- an **export section** (`add_export_section`): a name, one line saying what it holds, and a
  function returning that data as JSON values. `GET /v1/me/export` lists every section.
- an **eraser** (`add_eraser`): deletes (or anonymizes) the module's own rows. Erasers must be
  idempotent: `DELETE /v1/me` may be retried after a crash and simply finishes the job.
- an **erase hook** (`add_erase_hook`, kept in `erase_hooks`): side effects outside our
  database that must happen while the data still exists, such as revoking a provider token at
  the provider. Hooks run first, best effort: a provider that is down never blocks an erasure
  (its failure is logged by hook name, never with a token).

The core sections registered by `register_core` are the profile, signals, decisions and
integration statuses. Decisions are not deleted but anonymized: their principal becomes one
random pseudonym per erasure, so per-unit experiment statistics and counterfactual evaluations
over the log give the same numbers before and after (docs/personal-data.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bandit.store import Store
from integrations.profiles import People, Profile
from integrations.signals import SignalStore
from integrations.vault_tables import IntegrationTokenRow

log = logging.getLogger(__name__)

tokens = IntegrationTokenRow.__table__  # type: ignore[attr-defined]

Exporter = Callable[[str], Any]
"""principal -> JSON-serializable data (dicts, lists, str, numbers, bools, None, datetimes)."""
Eraser = Callable[[str], int]
"""principal -> how many rows it deleted or anonymized."""
EraseHook = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ExportSection:
    name: str
    description: str
    export: Exporter


F = TypeVar("F")


@dataclass(frozen=True, slots=True)
class Named(Generic[F]):
    name: str
    run: F


@dataclass
class ErasureReport:
    rows: dict[str, int] = field(default_factory=dict)
    failed_hooks: list[str] = field(default_factory=list)


class PersonalData:
    """The registry of export sections, erasers and erase hooks of one process."""

    def __init__(self) -> None:
        self.export_sections: list[ExportSection] = []
        self.erasers: list[Named[Eraser]] = []
        self.erase_hooks: list[Named[EraseHook]] = []
        """Run before any data is erased, e.g. provider token revocation (`forget_person`)."""

    def add_export_section(self, name: str, description: str, export: Exporter) -> None:
        if any(section.name == name for section in self.export_sections):
            raise ValueError(f"export section {name!r} is already registered")
        self.export_sections.append(ExportSection(name, description, export))

    def add_eraser(self, name: str, eraser: Eraser) -> None:
        if any(step.name == name for step in self.erasers):
            raise ValueError(f"eraser {name!r} is already registered")
        self.erasers.append(Named(name, eraser))

    def add_erase_hook(self, name: str, hook: EraseHook) -> None:
        if any(step.name == name for step in self.erase_hooks):
            raise ValueError(f"erase hook {name!r} is already registered")
        self.erase_hooks.append(Named(name, hook))

    def export(self, principal: str) -> list[tuple[ExportSection, Any]]:
        """Every section's data about `principal`, in registration order."""
        return [(section, section.export(principal)) for section in self.export_sections]

    def erase(self, principal: str) -> ErasureReport:
        """Run the erase hooks (best effort), then every eraser (in registration order)."""
        report = ErasureReport()
        for hook in self.erase_hooks:
            try:
                hook.run(principal)
            except Exception as exc:
                # The exception text may quote a provider's answer: log its type only.
                report.failed_hooks.append(hook.name)
                log.warning(
                    "erase hook %s failed (%s); erasing anyway", hook.name, type(exc).__name__
                )
        for eraser in self.erasers:
            report.rows[eraser.name] = eraser.run(principal)
        log.info("erased a person: %s", ", ".join(f"{k}={v}" for k, v in report.rows.items()))
        return report


# -------------------------------------------------------------------------------- core


def register_core(
    registry: PersonalData,
    *,
    people: People,
    signals: SignalStore,
    tip_title: Callable[[str], str | None],
) -> None:
    """Register the profile, signals, decisions and integrations of the tips product."""
    engine = people.engine
    registry.add_export_section(
        "profile",
        "Timezone, quiet hours, interests and wanted tip kinds",
        lambda principal: _profile(people.profile(principal)),
    )
    registry.add_export_section(
        "signals",
        "Every signal held (mood, energy, habits, integrations), oldest first",
        lambda principal: [
            {
                "id": stored.id,
                **stored.signal.model_dump(mode="json"),
                "received_at": stored.received_at,
            }
            for stored in signals.of_person(principal)
        ],
    )
    registry.add_export_section(
        "decisions",
        "Every tip chosen for you: the context, each candidate's probability, your reaction",
        lambda principal: export_decisions(people.store, principal, tip_title),
    )
    registry.add_export_section(
        "integrations",
        "Connected integrations and their status (tokens are never exported)",
        lambda principal: export_integrations(engine, principal),
    )
    registry.add_eraser("integration_tokens", lambda principal: delete_tokens(engine, principal))
    registry.add_eraser("signals", signals.forget)
    registry.add_eraser("profile", people.forget)
    registry.add_eraser("decisions", people.store.pseudonymize)


def _profile(profile: Profile) -> dict[str, Any]:
    quiet = (
        {"start": profile.quiet_start, "end": profile.quiet_end}
        if profile.quiet_start and profile.quiet_end
        else None
    )
    return {
        "timezone": profile.timezone,
        "quiet_hours": quiet,
        "interests": list(profile.interests),
        "kinds": list(profile.kinds),
    }


def export_decisions(
    store: Store, principal: str, tip_title: Callable[[str], str | None]
) -> list[dict[str, Any]]:
    """A person's decisions with their rewards, oldest first."""
    return [
        {
            "event_id": row.event_id,
            "surface": row.surface,
            "created_at": row.created_at,
            "context": row.context,
            "chosen": {"id": row.chosen_action, "title": tip_title(row.chosen_action)},
            "probability": row.propensity,
            "candidates": [
                {"id": action_id, "probability": p}
                for action_id, p in zip(row.action_ids, row.pmf, strict=True)
            ],
            "policy": row.policy,
            "model_version": row.model_version,
            "experiment": row.experiment,
            "arm": row.arm,
            "missing_sources": row.missing_sources,
            "activated_at": row.activated_at,
            "reaction": None
            if row.reaction is None
            else {
                "reaction": row.reaction.reaction,
                "reward": row.reaction.reward,
                "at": row.reaction.at,
                "late": row.reaction.late,
            },
        }
        for row in store.person_decisions(principal)
    ]


def export_integrations(engine: Engine, principal: str) -> list[dict[str, Any]]:
    """Provider, status and expiry of each connected integration; never the ciphertext."""
    query = (
        sa.select(tokens.c.provider, tokens.c.status, tokens.c.expires_at, tokens.c.updated_at)
        .where(tokens.c.principal == principal)
        .order_by(tokens.c.provider)
    )
    with engine.execution_options(isolation_level="AUTOCOMMIT").connect() as conn:
        return [
            {
                "provider": row.provider,
                "status": row.status,
                "expires_at": row.expires_at,
                "updated_at": row.updated_at,
            }
            for row in conn.execute(query)
        ]


def delete_tokens(engine: Engine, principal: str) -> int:
    """Delete every provider token of `principal` from the vault's table (revocation at the
    provider is an erase hook, which runs before this)."""
    with engine.begin() as conn:
        deleted = conn.execute(tokens.delete().where(tokens.c.principal == principal))
    return int(deleted.rowcount or 0)
