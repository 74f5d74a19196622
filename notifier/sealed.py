"""Rows of the notifier's tables sealed by the token vault, and re-sealing them under a new key.

`oo vault rotate` re-seals provider tokens; the same run re-seals push subscriptions and the
payloads of pushes not yet sent, each row bound to its own label (`push-subscription:<id>`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from integrations.vault import RotationReport, SealedToken, Vault, rotate


@dataclass(frozen=True)
class SealedRows:
    """A table whose `ciphertext` (and `key_id`) columns hold vault-sealed bytes.

    Each row's ciphertext is bound to its `principal` and to its label, `prefix` + its key.
    """

    engine: Engine
    table: sa.Table
    key: sa.Column[str]
    prefix: str

    def label(self, key: str) -> str:
        return self.prefix + key

    def iterate(self, *, batch: int = 500) -> Iterator[tuple[str, SealedToken]]:
        """(key, row) for every sealed row in key order, `batch` at a time."""
        t = self.table
        after: str | None = None
        while True:
            query = sa.select(self.key, t.c.principal, t.c.ciphertext).where(
                t.c.ciphertext.is_not(None)
            )
            if after is not None:
                query = query.where(self.key > after)
            with self.engine.connect() as conn:
                rows = list(conn.execute(query.order_by(self.key).limit(batch)))
            for key, principal, ciphertext in rows:
                yield key, SealedToken(principal, self.label(key), ciphertext)
            if len(rows) < batch:
                return
            after = rows[-1][0]

    def rotate(
        self, vault: Vault, on_progress: Callable[[RotationReport], None] | None = None
    ) -> RotationReport:
        def rows() -> Iterator[SealedToken]:
            for _, row in self.iterate():
                yield row

        def reseal(row: SealedToken) -> bytes:
            return vault.reseal_bytes(row.ciphertext, principal=row.principal, label=row.provider)

        def swap(row: SealedToken, ciphertext: bytes) -> bool:
            # Compare-and-swap on the old ciphertext: a row written meanwhile is left alone.
            with self.engine.begin() as conn:
                updated = conn.execute(
                    self.table.update()
                    .where(
                        self.key == row.provider.removeprefix(self.prefix),
                        self.table.c.ciphertext == row.ciphertext,
                    )
                    .values(ciphertext=ciphertext, key_id=vault.current_key_id)
                )
            return bool(updated.rowcount)

        return rotate(vault, rows(), swap, on_progress, reseal=reseal)
