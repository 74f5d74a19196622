"""The token vault: provider tokens encrypted at rest with AES-256-GCM under rotatable keys.

Keys come from the environment, ``OO_VAULT_KEYS=kid:base64key,kid:base64key,...`` with the
newest first: the newest seals, every listed key opens. Rotating is therefore three steps: put a
new key at the front of the list, run ``oo vault rotate`` (which re-seals every row under the
newest key), then drop the old key from the list. The rows that hold people's sealed tokens
are `integrations.token_store`'s; the notifier seals people's devices with the same vault.

A sealed token is self-describing::

    version (1 byte) | key id length (1 byte) | key id (ASCII) | nonce (12 bytes) | AES-GCM output

and the AEAD's associated data binds it to its header, its principal and its provider, so a
ciphertext copied onto another person's row, or relabelled with another key id, fails to open.

Nothing here puts a token into a log line, a repr or an exception message: `ProviderToken` and
`SealedToken` redact themselves, and errors name the provider and key id, never the secret.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bandit.errors import DomainError, Kind
from bandit.events import utcnow
from bandit.private_files import create_private_file

logger = logging.getLogger(__name__)

ENV_VAR = "OO_VAULT_KEYS"
FORMAT_VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12
MAX_KEY_ID_CHARS = 32
_AAD_PREFIX = b"oo-vault"
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")


class VaultError(Exception):
    """Base of the vault's errors; their messages never contain a token or a key."""


class VaultConfigError(VaultError, DomainError):
    """The vault's keys are missing or malformed; the message names the variable or file.

    A request that needs the vault cannot be served until the deployment sets its keys
    (`OO_VAULT_KEYS`, the target)."""

    kind = Kind.CONFLICT

    def __init__(self, message: str, *, target: str = "OO_VAULT_KEYS") -> None:
        super().__init__(message, target=target)


class TokenDecryptError(VaultError):
    """A sealed token could not be opened: tampered, moved, or sealed under an unknown key."""


# ------------------------------------------------------------------------------------ tokens


@dataclass(frozen=True, slots=True, repr=False)
class ProviderToken:
    """An OAuth token of one provider. Its repr and str never show the secrets."""

    access_token: str
    refresh_token: str | None = None
    token_type: str = "Bearer"
    scope: str | None = None
    expires_at: datetime | None = None
    """None when the provider's tokens do not expire (Todoist's)."""

    def __post_init__(self) -> None:
        if not self.access_token:
            raise ValueError("`access_token` must not be empty")
        if self.expires_at is not None and self.expires_at.tzinfo is None:
            raise ValueError("`expires_at` must be timezone-aware")

    def __repr__(self) -> str:
        refresh = "'***'" if self.refresh_token else "None"
        expires = self.expires_at.isoformat() if self.expires_at else None
        return (
            f"ProviderToken(access_token='***', refresh_token={refresh}, "
            f"token_type={self.token_type!r}, scope={self.scope!r}, expires_at={expires!r})"
        )

    __str__ = __repr__

    def expired(self, now: datetime, leeway: timedelta = timedelta(seconds=60)) -> bool:
        """Whether the token is past (or within `leeway` of) its expiry; never for None."""
        return self.expires_at is not None and now + leeway >= self.expires_at

    def to_bytes(self) -> bytes:
        payload = {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": self.token_type,
            "scope": self.scope,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }
        return json.dumps(payload, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> ProviderToken:
        try:
            payload = json.loads(data)
            expires = payload["expires_at"]
            return cls(
                access_token=str(payload["access_token"]),
                refresh_token=payload["refresh_token"],
                token_type=str(payload["token_type"]),
                scope=payload["scope"],
                expires_at=datetime.fromisoformat(expires) if expires else None,
            )
        except (ValueError, KeyError, TypeError):
            # Never chain: the original exception may quote the payload.
            raise TokenDecryptError("the decrypted token payload is malformed") from None


@dataclass(frozen=True, slots=True, repr=False)
class SealedToken:
    """A row's identity and ciphertext, as the store hands it to rotation."""

    principal: str
    provider: str
    ciphertext: bytes

    def __repr__(self) -> str:
        return (
            f"SealedToken(principal={self.principal!r}, provider={self.provider!r}, "
            f"ciphertext=<{len(self.ciphertext)} bytes>)"
        )


# -------------------------------------------------------------------------------------- keys


@dataclass(frozen=True, slots=True, repr=False)
class VaultKey:
    kid: str
    secret: bytes

    def __post_init__(self) -> None:
        if not _KEY_ID.fullmatch(self.kid):
            raise VaultConfigError(
                f"key id {self.kid!r} must be 1-{MAX_KEY_ID_CHARS} characters of "
                "letters, digits, '_', '.' or '-'"
            )
        if len(self.secret) != KEY_BYTES:
            raise VaultConfigError(
                f"key {self.kid!r} must be {KEY_BYTES} bytes (got {len(self.secret)})"
            )

    def __repr__(self) -> str:
        return f"VaultKey(kid={self.kid!r}, secret='***')"


def new_key_entry(kid: str | None = None) -> str:
    """A fresh ``kid:base64key`` entry for OO_VAULT_KEYS (kid defaults to today's date)."""
    key = VaultKey(kid or utcnow().strftime("k%Y%m%d"), secrets.token_bytes(KEY_BYTES))
    return f"{key.kid}:{base64.b64encode(key.secret).decode()}"


def parse_keys(text: str, *, source: str = ENV_VAR) -> list[VaultKey]:
    """Parse ``kid:base64key`` entries separated by commas; `source` names them in errors."""
    keys: list[VaultKey] = []
    entries = [entry.strip() for entry in text.split(",")]
    for index, entry in enumerate(entries, start=1):
        kid, sep, encoded = entry.partition(":")
        if not sep or not kid or not encoded:
            raise VaultConfigError(
                f"{source} entry {index} must look like 'kid:base64key' "
                "(generate one with `oo vault new-key`)"
            )
        try:
            secret = base64.b64decode(encoded, altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise VaultConfigError(
                f"{source} entry {index} (key id {kid!r}): the key is not valid base64"
            ) from None
        try:
            keys.append(VaultKey(kid, secret))
        except VaultConfigError as exc:
            raise VaultConfigError(f"{source} entry {index}: {exc}") from None
    return keys


# ------------------------------------------------------------------------------------- vault


class Vault:
    """Seals and opens provider tokens; the first key seals, every key opens."""

    __slots__ = ("_aeads", "_keys")

    def __init__(self, keys: Sequence[VaultKey]) -> None:
        if not keys:
            raise VaultConfigError("the vault needs at least one key")
        seen: set[str] = set()
        for key in keys:
            if key.kid in seen:
                raise VaultConfigError(f"key id {key.kid!r} appears twice")
            seen.add(key.kid)
        self._keys = tuple(keys)
        self._aeads = {key.kid: AESGCM(key.secret) for key in keys}

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, local_key_file: Path | None = None
    ) -> Vault:
        """Keys from OO_VAULT_KEYS; without it, `local_key_file` (created on first use).

        Pass `local_key_file` only in local single-user mode: anywhere else a missing variable
        must stop start-up rather than invent a key nobody backs up.
        """
        env = os.environ if environ is None else environ
        text = env.get(ENV_VAR, "").strip()
        if text:
            return cls(parse_keys(text))
        if local_key_file is None:
            raise VaultConfigError(
                f"{ENV_VAR} is not set; outside local mode the token vault needs a key "
                "(generate one with `oo vault new-key`)"
            )
        return cls(parse_keys(_local_key(local_key_file), source=str(local_key_file)))

    def __repr__(self) -> str:
        return f"Vault(key_ids={list(self.key_ids)!r})"

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(key.kid for key in self._keys)

    @property
    def current_key_id(self) -> str:
        return self._keys[0].kid

    def seal(self, token: ProviderToken, *, principal: str, provider: str) -> bytes:
        return self.seal_bytes(token.to_bytes(), principal=principal, label=provider)

    def open(self, ciphertext: bytes, *, principal: str, provider: str) -> ProviderToken:
        plain = self.open_bytes(
            ciphertext, principal=principal, label=provider, what=f"token for provider {provider!r}"
        )
        return ProviderToken.from_bytes(plain)

    def reseal(self, ciphertext: bytes, *, principal: str, provider: str) -> bytes:
        """The same token sealed under the newest key (a fresh nonce either way)."""
        token = self.open(ciphertext, principal=principal, provider=provider)
        return self.seal(token, principal=principal, provider=provider)

    def seal_bytes(self, plain: bytes, *, principal: str, label: str) -> bytes:
        """Seal any secret of `principal`; `label` binds it to its place (a provider, a row)."""
        kid = self.current_key_id
        header = bytes([FORMAT_VERSION, len(kid)]) + kid.encode("ascii")
        nonce = secrets.token_bytes(NONCE_BYTES)
        aad = _associated_data(header, principal, label)
        return header + nonce + self._aeads[kid].encrypt(nonce, plain, aad)

    def open_bytes(
        self, ciphertext: bytes, *, principal: str, label: str, what: str | None = None
    ) -> bytes:
        """What `seal_bytes` sealed for this principal and label; `what` names it in errors.

        Raises
        ------
        TokenDecryptError
            When it was altered, sealed for another principal or label, or under a key the
            vault does not hold.
        """
        what = what or f"sealed data {label!r}"
        header, kid, nonce, body = _split(ciphertext, what)
        aead = self._aeads.get(kid)
        if aead is None:
            raise TokenDecryptError(
                f"{what} was sealed with key {kid!r}, "
                f"which is not among the vault's keys {list(self.key_ids)}"
            )
        try:
            return aead.decrypt(nonce, body, _associated_data(header, principal, label))
        except InvalidTag:
            raise TokenDecryptError(
                f"{what} failed authentication: the ciphertext was "
                "altered, or it was sealed for another principal or provider"
            ) from None

    def reseal_bytes(self, ciphertext: bytes, *, principal: str, label: str) -> bytes:
        """The same bytes sealed under the newest key."""
        plain = self.open_bytes(ciphertext, principal=principal, label=label)
        return self.seal_bytes(plain, principal=principal, label=label)

    def is_current(self, ciphertext: bytes) -> bool:
        return key_id_of(ciphertext) == self.current_key_id


def key_id_of(ciphertext: bytes) -> str | None:
    """The key id in a sealed token's header, or None when the header is unreadable."""
    try:
        return _split(ciphertext, "sealed data")[1]
    except TokenDecryptError:
        return None


def _split(ciphertext: bytes, what: str) -> tuple[bytes, str, bytes, bytes]:
    if len(ciphertext) < 2:
        raise TokenDecryptError(f"{what} is truncated")
    version, kid_len = ciphertext[0], ciphertext[1]
    if version != FORMAT_VERSION:
        raise TokenDecryptError(
            f"{what} has format version {version}; this vault reads version {FORMAT_VERSION}"
        )
    header_end = 2 + kid_len
    if len(ciphertext) < header_end + NONCE_BYTES + 16:
        raise TokenDecryptError(f"{what} is truncated")
    try:
        kid = ciphertext[2:header_end].decode("ascii")
    except UnicodeDecodeError:
        raise TokenDecryptError(f"{what} has a corrupt key id") from None
    nonce_end = header_end + NONCE_BYTES
    return ciphertext[:header_end], kid, ciphertext[header_end:nonce_end], ciphertext[nonce_end:]


def _associated_data(header: bytes, principal: str, provider: str) -> bytes:
    # Length-prefixed so ("ab", "c") and ("a", "bc") can never produce the same bytes.
    parts = [_AAD_PREFIX, header, principal.encode(), provider.encode()]
    return b"".join(len(part).to_bytes(4, "big") + part for part in parts)


def _local_key(path: Path) -> str:
    """The local-mode key file's content, creating it (owner-only) on first use."""
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    entry = new_key_entry("local")
    if not create_private_file(path, entry + "\n"):
        # Another process created it between our read and our create: use theirs.
        return path.read_text(encoding="ascii").strip()
    logger.info("vault: created local key file %s", path)
    return entry


# ---------------------------------------------------------------------------------- rotation


@dataclass
class RotationReport:
    rotated: int = 0
    current: int = 0
    """Rows already sealed under the newest key."""
    skipped: int = 0
    """Rows changed by someone else while rotating (they are sealed under the newest key)."""
    failed: list[tuple[str, str]] = field(default_factory=list)
    """(principal, provider) of rows that could not be opened with any listed key."""

    @property
    def seen(self) -> int:
        return self.rotated + self.current + self.skipped + len(self.failed)


def rotate(
    vault: Vault,
    rows: Iterable[SealedToken],
    write: Callable[[SealedToken, bytes], bool],
    on_progress: Callable[[RotationReport], None] | None = None,
    reseal: Callable[[SealedToken], bytes] | None = None,
) -> RotationReport:
    """Re-seal every row not under the newest key; `write` swaps the ciphertext in place.

    `reseal` opens and seals one row again (default: a provider token, `Vault.reseal`); other
    sealed data passes its own (`Vault.reseal_bytes` with the row's label in `provider`).

    `write(row, new_ciphertext)` returns False when the row changed since it was read (a
    concurrent save seals under the newest key anyway). A row that cannot be opened is reported,
    not fatal: one corrupt row must not leave the others under a key about to be dropped.
    """
    report = RotationReport()
    for row in rows:
        if vault.is_current(row.ciphertext):
            report.current += 1
        else:
            try:
                if reseal is not None:
                    fresh = reseal(row)
                else:
                    fresh = vault.reseal(
                        row.ciphertext, principal=row.principal, provider=row.provider
                    )
            except TokenDecryptError as exc:
                logger.warning("vault: cannot rotate %s/%s: %s", row.principal, row.provider, exc)
                report.failed.append((row.principal, row.provider))
            else:
                if write(row, fresh):
                    report.rotated += 1
                else:
                    report.skipped += 1
        if on_progress is not None:
            on_progress(report)
    return report
