"""The deployment's VAPID key pair (RFC 8292): who the push services see sending.

Browsers subscribe with the public key (`applicationServerKey`) and the push service accepts a
push only with a token signed by the matching private key, so there is one key pair per
deployment, shared by every api and notifier process; replacing it orphans every subscription.

Where it comes from (`load`):

- `OO_VAPID_PRIVATE_KEY` (the private scalar, base64url, 32 bytes: what `oo push new-keys`
  prints, and what the `web-push` tools print) with `OO_VAPID_SUBJECT` (`mailto:` or `https:`,
  how a push service reaches the operator): production;
- otherwise, in the embedded default only, `vapid.key` beside the SQLite database, generated on
  first use, owner-only (`bandit.private_files`).

Signing uses py-vapid (ES256 over the JWT); the key never appears in a log line or a repr.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid

from bandit.private_files import create_private_file

log = logging.getLogger(__name__)

KEY_FILE = "vapid.key"
TOKEN_LIFETIME_SECONDS = 12 * 3600
"""How long a signed token is valid (RFC 8292 allows at most 24 hours)."""
LOCAL_SUBJECT = "mailto:oo@localhost"
# What py-vapid accepts as `sub`: an address with a dotted domain (or localhost), an https origin.
_SUBJECT = re.compile(
    r"mailto:[^@\s]+@(localhost|[\w%-]+(\.[\w%-]+)+)|https://(localhost|[\w-]+\.[\w.-]+)"
)


class VapidConfigError(Exception):
    """The VAPID key or subject is missing or malformed; the message names the variable."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Base64url with or without padding; raises ValueError on anything else."""
    if not re.fullmatch(r"[A-Za-z0-9_-]*={0,2}", text):
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc


def check_subject(subject: str) -> str:
    if not _SUBJECT.fullmatch(subject):
        raise VapidConfigError(
            f"`vapid_subject` must be a `mailto:` address or an `https:` URL (got {subject!r})"
        )
    return subject


@dataclass(frozen=True, slots=True, repr=False)
class VapidKey:
    private: ec.EllipticCurvePrivateKey
    subject: str

    def __repr__(self) -> str:
        return f"VapidKey(public_key={self.public_key!r}, subject={self.subject!r})"

    @classmethod
    def generate(cls, subject: str) -> VapidKey:
        return cls(ec.generate_private_key(ec.SECP256R1()), check_subject(subject))

    @classmethod
    def from_private(cls, encoded: str, subject: str, *, source: str) -> VapidKey:
        """A key from its base64url private scalar; `source` names where it came from."""
        try:
            raw = b64url_decode(encoded.strip())
            if len(raw) != 32:
                raise ValueError(f"{len(raw)} bytes")
            private = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
        except ValueError as exc:
            raise VapidConfigError(
                f"{source} must be a P-256 private key, 32 bytes in base64url "
                f"(`oo push new-keys` makes one): {exc}"
            ) from None
        return cls(private, check_subject(subject))

    @property
    def private_text(self) -> str:
        """The private scalar, base64url: the value of OO_VAPID_PRIVATE_KEY."""
        return b64url(self.private.private_numbers().private_value.to_bytes(32, "big"))

    @property
    def public_key(self) -> str:
        """The public key, base64url of the 65-byte uncompressed point (`applicationServerKey`)."""
        point = self.private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return b64url(point)

    def authorization(self, audience: str, now: float | None = None) -> str:
        """The `Authorization` header for a push to `audience` (the endpoint's origin)."""
        issued = time.time() if now is None else now
        claims = {"aud": audience, "exp": int(issued) + TOKEN_LIFETIME_SECONDS, "sub": self.subject}
        return str(Vapid(self.private).sign(claims)["Authorization"])


def load(private: str | None, subject: str | None, *, local_file: Path | None) -> VapidKey:
    """The deployment's key: from the settings, or the embedded default's local file.

    Pass `local_file` only where one process owns the data (the embedded SQLite default): a key
    invented by one of several processes would not match the others'.

    Raises
    ------
    VapidConfigError
        Naming OO_VAPID_PRIVATE_KEY / OO_VAPID_SUBJECT.
    """
    if private:
        if not subject:
            raise VapidConfigError("`vapid_subject` must be set with `vapid_private_key`")
        return VapidKey.from_private(private, subject, source="OO_VAPID_PRIVATE_KEY")
    if local_file is None:
        raise VapidConfigError(
            "Web Push needs the deployment's VAPID key: set OO_VAPID_PRIVATE_KEY and "
            "OO_VAPID_SUBJECT (`oo push new-keys --subject mailto:you@example.com` prints them)"
        )
    return VapidKey.from_private(
        _local_key(local_file), subject or LOCAL_SUBJECT, source=str(local_file)
    )


def _local_key(path: Path) -> str:
    """The local key file's content, creating it (owner-only) on first use."""
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    text = VapidKey.generate(LOCAL_SUBJECT).private_text
    if not create_private_file(path, text + "\n"):
        # Another thread or process created it between our read and our create: use theirs.
        return path.read_text(encoding="ascii").strip()
    log.info("push: created the VAPID key file %s", path)
    return text
