"""Sign-in configuration: the OpenID providers and the access-token signing keys.

Parsed from plain settings strings (see `api.settings.Settings`), so a bad value stops start-up
with a message that names the setting.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

GOOGLE = "google"
GOOGLE_DISCOVERY_URL = "https://accounts.google.com/.well-known/openid-configuration"

PROVIDER_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,32}")
MIN_KEY_BYTES = 32


@dataclass(frozen=True)
class ProviderConfig:
    """An OpenID Connect issuer, found through its discovery document."""

    name: str
    label: str
    discovery_url: str
    client_id: str
    client_secret: str


@dataclass(frozen=True)
class TokenKey:
    """A symmetric key for HS256 access tokens; `kid` names it in the token header."""

    kid: str
    secret: bytes

    def __repr__(self) -> str:  # never print the secret
        return f"TokenKey(kid={self.kid!r})"


def parse_providers(
    raw: str, google_client_id: str | None = None, google_client_secret: str | None = None
) -> dict[str, ProviderConfig]:
    """`OO_OIDC_PROVIDERS` (a JSON object by provider name) plus the Google preset."""
    providers: dict[str, ProviderConfig] = {}
    if raw.strip():
        try:
            entries = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"`oidc_providers` is not valid JSON: {exc}") from None
        if not isinstance(entries, dict):
            raise ValueError("`oidc_providers` must be a JSON object keyed by provider name")
        for name, entry in entries.items():
            providers[name] = _provider(name, entry)
    if google_client_id or google_client_secret:
        if not (google_client_id and google_client_secret):
            raise ValueError("`google_client_id` and `google_client_secret` go together")
        if GOOGLE in providers:
            raise ValueError(
                "`oidc_providers.google` clashes with the Google preset "
                "(OO_GOOGLE_CLIENT_ID); configure Google one way"
            )
        providers[GOOGLE] = ProviderConfig(
            GOOGLE, "Google", GOOGLE_DISCOVERY_URL, google_client_id, google_client_secret
        )
    return providers


def _provider(name: str, entry: object) -> ProviderConfig:
    where = f"`oidc_providers.{name}`"
    if not PROVIDER_NAME.fullmatch(name):
        raise ValueError(f"{where}: a provider name is 1-32 lower-case letters, digits or dashes")
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be an object with discovery_url, client_id, ...")
    unknown = set(entry) - {"discovery_url", "client_id", "client_secret", "label"}
    if unknown:
        raise ValueError(f"{where}.{sorted(unknown)[0]} is not a provider setting")
    values: dict[str, str] = {}
    for field in ("discovery_url", "client_id", "client_secret"):
        value = entry.get(field)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"`oidc_providers.{name}.{field}` is required (a string)")
        values[field] = value.strip()
    label = entry.get("label", name)
    if not isinstance(label, str) or not label.strip():
        raise ValueError(f"`oidc_providers.{name}.label` must be a non-empty string")
    url = urlsplit(values["discovery_url"])
    if url.scheme != "https" and not (url.scheme == "http" and _loopback(url.hostname)):
        raise ValueError(
            f"`oidc_providers.{name}.discovery_url` must be https "
            "(plain http only on a loopback address)"
        )
    return ProviderConfig(
        name,
        label.strip(),
        values["discovery_url"],
        values["client_id"],
        values["client_secret"],
    )


def parse_token_keys(raw: str) -> tuple[TokenKey, ...]:
    """`OO_TOKEN_KEYS`: `kid:base64secret` entries, comma-separated, newest first."""
    keys: list[TokenKey] = []
    for position, entry in enumerate(e.strip() for e in raw.split(",")):
        if not entry:
            continue
        kid, sep, encoded = entry.partition(":")
        if not sep or not KEY_ID.fullmatch(kid):
            raise ValueError(
                f"`token_keys[{position}]` must look like `kid:base64secret` "
                "(kid: 1-32 letters, digits, dots, dashes or underscores)"
            )
        try:
            secret = base64.b64decode(
                encoded.replace("-", "+").replace("_", "/") + "=" * (-len(encoded) % 4),
                validate=True,
            )
        except (binascii.Error, ValueError):
            raise ValueError(
                f"`token_keys[{position}]` ({kid}): the secret is not base64"
            ) from None
        if len(secret) < MIN_KEY_BYTES:
            raise ValueError(
                f"`token_keys[{position}]` ({kid}): the secret must be at least "
                f"{MIN_KEY_BYTES} bytes (got {len(secret)})"
            )
        if any(k.kid == kid for k in keys):
            raise ValueError(f"`token_keys[{position}]`: key id {kid!r} appears twice")
        keys.append(TokenKey(kid, secret))
    return tuple(keys)


def parse_emails(raw: str) -> frozenset[str]:
    return frozenset(e.strip().lower() for e in raw.split(",") if e.strip())


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
