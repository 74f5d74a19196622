"""Sealed provider tokens on the service's database, one row per (principal, provider).

The sealing, the keys and the rotation are `integrations.vault`'s; this module keeps the rows:
save, replace, load, delete, a person's connections and the walk `oo vault rotate` re-seals.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bandit.events import utcnow
from integrations.vault import (
    ProviderToken,
    RotationReport,
    SealedToken,
    Vault,
    rotate,
)
from integrations.vault_tables import IntegrationTokenRow, TokenStatus

logger = logging.getLogger(__name__)

tokens_table = IntegrationTokenRow.__table__  # type: ignore[attr-defined]
_PROVIDER = re.compile(r"[a-z0-9-]{1,32}")


@dataclass(frozen=True, slots=True)
class StoredToken:
    principal: str
    provider: str
    token: ProviderToken
    status: TokenStatus
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Connection:
    """What a person may see about one integration, without opening its token."""

    provider: str
    status: TokenStatus
    expires_at: datetime | None
    updated_at: datetime


class TokenStore:
    """Sealed provider tokens on the service's database, one row per (principal, provider)."""

    def __init__(
        self, engine: Engine, vault: Vault, *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.engine = engine
        self.vault = vault
        self.clock = clock
        self.autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    def __repr__(self) -> str:
        return f"TokenStore({self.engine.url!r}, {self.vault!r})"

    def save(self, principal: str, provider: str, token: ProviderToken) -> None:
        """Seal and store `token`, replacing any previous one; the row becomes connected."""
        _check_identity(principal, provider)
        values = {
            "ciphertext": self.vault.seal(token, principal=principal, provider=provider),
            "key_id": self.vault.current_key_id,
            "expires_at": token.expires_at,
            "status": "connected",
            "updated_at": self.clock(),
        }
        with self.engine.begin() as conn:
            updated = conn.execute(
                tokens_table.update().where(*_row(principal, provider)).values(**values)
            )
            if not updated.rowcount:
                conn.execute(
                    tokens_table.insert().values(principal=principal, provider=provider, **values)
                )
        logger.info("vault: saved %s token for %s", provider, principal)

    def replace(self, principal: str, provider: str, token: ProviderToken) -> bool:
        """Swap in a refreshed token, keeping status and `updated_at`; False when disconnected.

        Unlike `save`, this never brings back a row a concurrent disconnect deleted.
        """
        _check_identity(principal, provider)
        with self.autocommit.connect() as conn:
            updated = conn.execute(
                tokens_table.update()
                .where(*_row(principal, provider))
                .values(
                    ciphertext=self.vault.seal(token, principal=principal, provider=provider),
                    key_id=self.vault.current_key_id,
                    expires_at=token.expires_at,
                )
            )
        return bool(updated.rowcount)

    def load(self, principal: str, provider: str) -> StoredToken | None:
        """The opened token, or None when not connected; raises TokenDecryptError if corrupt."""
        _check_identity(principal, provider)
        with self.autocommit.connect() as conn:
            row = conn.execute(sa.select(tokens_table).where(*_row(principal, provider))).first()
        if row is None:
            return None
        token = self.vault.open(row.ciphertext, principal=principal, provider=provider)
        return StoredToken(principal, provider, token, row.status, row.updated_at)

    def delete(self, principal: str, provider: str) -> bool:
        _check_identity(principal, provider)
        with self.autocommit.connect() as conn:
            deleted = conn.execute(tokens_table.delete().where(*_row(principal, provider)))
        if deleted.rowcount:
            logger.info("vault: deleted %s token of %s", provider, principal)
        return bool(deleted.rowcount)

    def mark_needs_reconnect(self, principal: str, provider: str) -> bool:
        """Flag an expired or revoked token so the person is asked to reconnect."""
        _check_identity(principal, provider)
        with self.autocommit.connect() as conn:
            updated = conn.execute(
                tokens_table.update()
                .where(*_row(principal, provider), tokens_table.c.status != "needs_reconnect")
                .values(status="needs_reconnect", updated_at=self.clock())
            )
        if updated.rowcount:
            logger.info("vault: %s token of %s needs reconnecting", provider, principal)
        return bool(updated.rowcount)

    def connections(self, principal: str) -> list[Connection]:
        query = (
            sa.select(
                tokens_table.c.provider,
                tokens_table.c.status,
                tokens_table.c.expires_at,
                tokens_table.c.updated_at,
            )
            .where(tokens_table.c.principal == principal)
            .order_by(tokens_table.c.provider)
        )
        with self.autocommit.connect() as conn:
            return [Connection(*row) for row in conn.execute(query)]

    def iterate(self, *, batch: int = 500, stale_only: bool = False) -> Iterator[SealedToken]:
        """Every row in key order, `batch` at a time; `stale_only` skips rows on the newest key."""
        if batch < 1:
            raise ValueError(f"`batch` must be at least 1 (got {batch})")
        after: tuple[str, str] | None = None
        key = sa.tuple_(tokens_table.c.principal, tokens_table.c.provider)
        while True:
            query = sa.select(
                tokens_table.c.principal, tokens_table.c.provider, tokens_table.c.ciphertext
            )
            if stale_only:
                query = query.where(tokens_table.c.key_id != self.vault.current_key_id)
            if after is not None:
                query = query.where(key > sa.tuple_(sa.literal(after[0]), sa.literal(after[1])))
            query = query.order_by(tokens_table.c.principal, tokens_table.c.provider).limit(batch)
            with self.autocommit.connect() as conn:
                rows = [SealedToken(*row) for row in conn.execute(query)]
            yield from rows
            if len(rows) < batch:
                return
            after = (rows[-1].principal, rows[-1].provider)

    def rotate(
        self, *, batch: int = 500, on_progress: Callable[[RotationReport], None] | None = None
    ) -> RotationReport:
        """Re-seal every token under the vault's newest key (`oo vault rotate`)."""
        report = rotate(self.vault, self.iterate(batch=batch), self._swap, on_progress)
        logger.info(
            "vault: rotated %d tokens to key %s (%d already current, %d failed)",
            report.rotated,
            self.vault.current_key_id,
            report.current,
            len(report.failed),
        )
        return report

    def _swap(self, row: SealedToken, ciphertext: bytes) -> bool:
        # Compare-and-swap on the old ciphertext: a token saved meanwhile is left alone.
        with self.autocommit.connect() as conn:
            updated = conn.execute(
                tokens_table.update()
                .where(
                    *_row(row.principal, row.provider),
                    tokens_table.c.ciphertext == row.ciphertext,
                )
                .values(ciphertext=ciphertext, key_id=self.vault.current_key_id)
            )
        return bool(updated.rowcount)


def _row(principal: str, provider: str) -> tuple[sa.ColumnElement[bool], ...]:
    return (tokens_table.c.principal == principal, tokens_table.c.provider == provider)


def _check_identity(principal: str, provider: str) -> None:
    if not principal or len(principal) > 256:
        raise ValueError(f"`principal` must be 1-256 characters (got {len(principal)})")
    if not _PROVIDER.fullmatch(provider):
        raise ValueError(f"`provider` must be lowercase letters, digits or '-' (got {provider!r})")
