"""The token vault: sealing, key rotation, tamper detection, key configuration, redaction."""

from __future__ import annotations

import base64
import logging
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from api.cli_vault import vault_app
from bandit.store import make_engine
from integrations.token_store import TokenStore, tokens_table
from integrations.vault import (
    FORMAT_VERSION,
    ProviderToken,
    SealedToken,
    TokenDecryptError,
    Vault,
    VaultConfigError,
    VaultKey,
    key_id_of,
    new_key_entry,
    parse_keys,
    rotate,
)
from tests.schema import migrated

SECRET = "tdst-4c2f9e1b7a0d4e8f9a6b5c3d2e1f0a9b"
REFRESH = "rfr-0f1e2d3c4b5a69788796a5b4c3d2e1f0"
ALICE, BOB = "person:alice", "person:bob"


def key(kid: str) -> VaultKey:
    return VaultKey(kid, os.urandom(32))


def entry(k: VaultKey) -> str:
    return f"{k.kid}:{base64.b64encode(k.secret).decode()}"


@pytest.fixture
def token() -> ProviderToken:
    return ProviderToken(
        SECRET,
        refresh_token=REFRESH,
        scope="data:read",
        expires_at=datetime(2027, 1, 1, tzinfo=UTC),
    )


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    return make_engine(migrated(f"sqlite:///{tmp_path / 'vault.sqlite3'}"), pool_size=1)


def store_with(engine: sa.Engine, *keys: VaultKey) -> TokenStore:
    return TokenStore(engine, Vault(keys))


# ------------------------------------------------------------------------------- round trip


def test_round_trip(token: ProviderToken) -> None:
    vault = Vault([key("a")])
    sealed = vault.seal(token, principal=ALICE, provider="todoist")
    assert vault.open(sealed, principal=ALICE, provider="todoist") == token
    assert sealed[0] == FORMAT_VERSION
    assert key_id_of(sealed) == "a"
    assert SECRET.encode() not in sealed and REFRESH.encode() not in sealed


def test_every_seal_uses_a_fresh_nonce(token: ProviderToken) -> None:
    vault = Vault([key("a")])
    first = vault.seal(token, principal=ALICE, provider="todoist")
    second = vault.seal(token, principal=ALICE, provider="todoist")
    assert first != second


def test_token_without_expiry_round_trips() -> None:
    vault = Vault([key("a")])
    plain = ProviderToken(SECRET)
    sealed = vault.seal(plain, principal=ALICE, provider="todoist")
    opened = vault.open(sealed, principal=ALICE, provider="todoist")
    assert opened == plain
    assert not opened.expired(datetime.now(UTC))


def test_store_round_trip(engine: sa.Engine, token: ProviderToken) -> None:
    store = store_with(engine, key("a"))
    store.save(ALICE, "todoist", token)
    loaded = store.load(ALICE, "todoist")
    assert loaded is not None
    assert loaded.token == token
    assert loaded.status == "connected"
    assert store.load(BOB, "todoist") is None

    with engine.connect() as conn:
        stored = conn.execute(sa.select(tokens_table.c.ciphertext)).scalar_one()
    assert SECRET.encode() not in stored

    assert store.mark_needs_reconnect(ALICE, "todoist")
    assert not store.mark_needs_reconnect(ALICE, "todoist")  # already flagged
    [connection] = store.connections(ALICE)
    assert (connection.provider, connection.status) == ("todoist", "needs_reconnect")

    store.save(ALICE, "todoist", ProviderToken("new-" + SECRET))  # reconnecting
    reloaded = store.load(ALICE, "todoist")
    assert reloaded is not None
    assert reloaded.status == "connected"
    assert reloaded.token.access_token == "new-" + SECRET

    assert store.delete(ALICE, "todoist")
    assert not store.delete(ALICE, "todoist")
    assert store.load(ALICE, "todoist") is None


def test_store_refuses_bad_identity(engine: sa.Engine, token: ProviderToken) -> None:
    store = store_with(engine, key("a"))
    with pytest.raises(ValueError, match="`provider` must be lowercase"):
        store.save(ALICE, "Todo ist", token)
    with pytest.raises(ValueError, match="`principal` must be 1-256 characters"):
        store.save("", "todoist", token)


# ---------------------------------------------------------------------------------- rotation


def test_rotation_with_key_lists(token: ProviderToken) -> None:
    old, new = key("old"), key("new")
    before = Vault([old]).seal(token, principal=ALICE, provider="todoist")

    both = Vault([new, old])
    assert both.open(before, principal=ALICE, provider="todoist") == token  # old still opens
    after = both.reseal(before, principal=ALICE, provider="todoist")
    assert key_id_of(after) == "new"
    assert both.is_current(after) and not both.is_current(before)

    only_new = Vault([new])
    assert only_new.open(after, principal=ALICE, provider="todoist") == token
    with pytest.raises(TokenDecryptError, match="sealed with key 'old'"):
        only_new.open(before, principal=ALICE, provider="todoist")


def test_rotate_function_reports_each_row(token: ProviderToken) -> None:
    old, new = key("old"), key("new")
    rows = [
        SealedToken(p, "todoist", Vault([old]).seal(token, principal=p, provider="todoist"))
        for p in (ALICE, BOB)
    ]
    rows.append(SealedToken("person:carol", "todoist", b"\x01\x03bad" + bytes(40)))
    written: dict[str, bytes] = {}

    def write(row: SealedToken, ciphertext: bytes) -> bool:
        written[row.principal] = ciphertext
        return True

    report = rotate(Vault([new, old]), rows, write)
    assert (report.rotated, report.current, report.failed) == (2, 0, [("person:carol", "todoist")])
    for principal, ciphertext in written.items():
        assert Vault([new]).open(ciphertext, principal=principal, provider="todoist") == token


def test_store_rotation(engine: sa.Engine, token: ProviderToken) -> None:
    old, new = key("old"), key("new")
    before = store_with(engine, old)
    principals = [f"person:{i}" for i in range(7)]
    for principal in principals:
        before.save(principal, "todoist", token)

    rotating = store_with(engine, new, old)
    seen: list[int] = []
    report = rotating.rotate(batch=3, on_progress=lambda r: seen.append(r.seen))
    assert (report.rotated, report.current, report.failed) == (7, 0, [])
    assert seen[-1] == 7

    only_new = store_with(engine, new)
    for principal in principals:
        loaded = only_new.load(principal, "todoist")
        assert loaded is not None and loaded.token == token
    assert list(only_new.iterate(stale_only=True)) == []

    again = rotating.rotate()
    assert (again.rotated, again.current) == (0, 7)


def test_rotation_leaves_a_concurrently_saved_token_alone(
    engine: sa.Engine, token: ProviderToken
) -> None:
    old, new = key("old"), key("new")
    store_with(engine, old).save(ALICE, "todoist", token)
    rotating = store_with(engine, new, old)
    [row] = list(rotating.iterate())
    rotating.save(ALICE, "todoist", ProviderToken("fresh-" + SECRET))  # lands mid-rotation
    report = rotate(rotating.vault, [row], rotating._swap)
    assert (report.rotated, report.skipped) == (0, 1)
    loaded = rotating.load(ALICE, "todoist")
    assert loaded is not None and loaded.token.access_token == "fresh-" + SECRET


def test_cli_rotate(
    engine: sa.Engine, token: ProviderToken, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = key("old"), key("new")
    store_with(engine, old).save(ALICE, "todoist", token)
    url = f"sqlite:///{tmp_path / 'vault.sqlite3'}"
    runner = CliRunner()

    monkeypatch.delenv("OO_VAULT_KEYS", raising=False)
    missing = runner.invoke(vault_app, ["rotate", "--database-url", url])
    assert missing.exit_code == 2
    assert "OO_VAULT_KEYS is not set" in missing.output

    monkeypatch.setenv("OO_VAULT_KEYS", f"{entry(new)},{entry(old)}")
    result = runner.invoke(vault_app, ["rotate", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "1 re-encrypted under 'new'" in result.output
    assert SECRET not in result.output
    loaded = store_with(engine, new).load(ALICE, "todoist")
    assert loaded is not None and loaded.token == token

    fresh = runner.invoke(vault_app, ["new-key", "--kid", "k2027"])
    assert fresh.exit_code == 0
    assert parse_keys(fresh.output.strip())[0].kid == "k2027"


# ------------------------------------------------------------------------ tamper and binding


def _sealed(token: ProviderToken) -> tuple[Vault, bytes]:
    vault = Vault([key("a"), key("b")])
    return vault, vault.seal(token, principal=ALICE, provider="todoist")


def test_tampered_ciphertext_fails_without_revealing_the_token(token: ProviderToken) -> None:
    vault, sealed = _sealed(token)
    for position in (len(sealed) - 1, len(sealed) // 2, 3 + 12):
        tampered = bytearray(sealed)
        tampered[position] ^= 0x01
        with pytest.raises(TokenDecryptError, match="failed authentication") as caught:
            vault.open(bytes(tampered), principal=ALICE, provider="todoist")
        assert SECRET not in str(caught.value)
        assert caught.value.__suppress_context__  # tracebacks do not chain the AEAD error


def test_wrong_associated_data_fails(token: ProviderToken) -> None:
    vault, sealed = _sealed(token)
    with pytest.raises(TokenDecryptError, match="another principal or provider"):
        vault.open(sealed, principal=BOB, provider="todoist")
    with pytest.raises(TokenDecryptError, match="another principal or provider"):
        vault.open(sealed, principal=ALICE, provider="google")


def test_relabelled_key_id_fails(token: ProviderToken) -> None:
    vault, sealed = _sealed(token)
    assert sealed[2:3] == b"a"
    relabelled = sealed[:2] + b"b" + sealed[3:]  # claims the other, equally known key
    with pytest.raises(TokenDecryptError, match="failed authentication"):
        vault.open(relabelled, principal=ALICE, provider="todoist")


def test_malformed_ciphertexts(token: ProviderToken) -> None:
    vault, sealed = _sealed(token)
    with pytest.raises(TokenDecryptError, match="truncated"):
        vault.open(sealed[:10], principal=ALICE, provider="todoist")
    with pytest.raises(TokenDecryptError, match="format version 9"):
        vault.open(b"\x09" + sealed[1:], principal=ALICE, provider="todoist")
    assert key_id_of(b"") is None


def test_a_token_moved_to_another_person_fails_to_load(
    engine: sa.Engine, token: ProviderToken
) -> None:
    store = store_with(engine, key("a"))
    store.save(ALICE, "todoist", token)
    store.save(BOB, "todoist", ProviderToken("bob-" + SECRET))
    with engine.begin() as conn:
        alice = conn.execute(
            sa.select(tokens_table.c.ciphertext).where(tokens_table.c.principal == ALICE)
        ).scalar_one()
        conn.execute(
            tokens_table.update().where(tokens_table.c.principal == BOB).values(ciphertext=alice)
        )
    with pytest.raises(TokenDecryptError, match="sealed for another principal") as caught:
        store.load(BOB, "todoist")
    assert SECRET not in str(caught.value)


# ------------------------------------------------------------------------------- key config


def test_from_env_reads_keys_newest_first() -> None:
    a, b = key("k2"), key("k1")
    vault = Vault.from_env({"OO_VAULT_KEYS": f" {entry(a)} , {entry(b)} "})
    assert vault.key_ids == ("k2", "k1")
    assert vault.current_key_id == "k2"


def test_urlsafe_base64_is_accepted() -> None:
    k = key("u")
    encoded = base64.urlsafe_b64encode(k.secret).decode()
    assert parse_keys(f"u:{encoded}")[0].secret == k.secret


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("no-colon-here", r"OO_VAULT_KEYS entry 1 must look like 'kid:base64key'"),
        (":QUJD", r"OO_VAULT_KEYS entry 1 must look like"),
        ("k1:not*base64!", r"OO_VAULT_KEYS entry 1 \(key id 'k1'\): the key is not valid base64"),
        (f"k1:{base64.b64encode(b'x' * 16).decode()}", r"entry 1: key 'k1' must be 32 bytes"),
        (f"bad id:{base64.b64encode(b'x' * 32).decode()}", r"entry 1: key id 'bad id' must be"),
    ],
)
def test_malformed_keys_are_refused(value: str, message: str) -> None:
    with pytest.raises(VaultConfigError, match=message) as caught:
        Vault.from_env({"OO_VAULT_KEYS": value})
    secret_part = value.partition(":")[2]
    if len(secret_part) > 8:
        assert secret_part not in str(caught.value)


def test_duplicate_key_ids_are_refused() -> None:
    k = key("same")
    with pytest.raises(VaultConfigError, match="key id 'same' appears twice"):
        Vault.from_env({"OO_VAULT_KEYS": f"{entry(k)},{entry(key('same'))}"})


def test_missing_keys_are_refused_outside_local_mode() -> None:
    with pytest.raises(VaultConfigError, match="OO_VAULT_KEYS is not set"):
        Vault.from_env({})
    with pytest.raises(VaultConfigError, match="OO_VAULT_KEYS is not set"):
        Vault.from_env({"OO_VAULT_KEYS": "  "})


def test_local_mode_creates_and_reuses_a_private_key_file(
    tmp_path: Path, token: ProviderToken
) -> None:
    path = tmp_path / "data" / "vault.key"
    first = Vault.from_env({}, local_key_file=path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    sealed = first.seal(token, principal=ALICE, provider="todoist")
    second = Vault.from_env({}, local_key_file=path)
    assert second.open(sealed, principal=ALICE, provider="todoist") == token
    # The environment wins over the local file when both exist.
    assert Vault.from_env({"OO_VAULT_KEYS": new_key_entry("env")}, local_key_file=path).key_ids == (
        "env",
    )


def test_a_corrupt_local_key_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "vault.key"
    path.write_text("garbage\n")
    with pytest.raises(VaultConfigError, match=f"{path} entry 1 must look like"):
        Vault.from_env({}, local_key_file=path)


# --------------------------------------------------------------------------------- redaction


def test_reprs_never_show_secrets(engine: sa.Engine, token: ProviderToken) -> None:
    k = key("a")
    vault = Vault([k])
    sealed = vault.seal(token, principal=ALICE, provider="todoist")
    store = store_with(engine, k)
    store.save(ALICE, "todoist", token)
    loaded = store.load(ALICE, "todoist")
    texts = [
        repr(token),
        str(token),
        f"{token}",
        f"{token!r}",
        repr([token]),
        repr(loaded),
        repr(k),
        repr(vault),
        repr(store),
        repr(SealedToken(ALICE, "todoist", sealed)),
    ]
    secret_b64 = base64.b64encode(k.secret).decode()
    for text in texts:
        assert SECRET not in text
        assert REFRESH not in text
        assert secret_b64 not in text
    assert "access_token='***'" in repr(token)


def test_store_logs_never_show_secrets(
    engine: sa.Engine, token: ProviderToken, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    old, new = key("old"), key("new")
    store_with(engine, old).save(ALICE, "todoist", token)
    store = store_with(engine, new, old)
    store.load(ALICE, "todoist")
    store.mark_needs_reconnect(ALICE, "todoist")
    store.rotate()
    store.delete(ALICE, "todoist")
    assert caplog.records, "the cycle should log something"
    assert SECRET not in caplog.text and REFRESH not in caplog.text


def test_expiry_is_checked_with_leeway() -> None:
    expires = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    expiring = ProviderToken(SECRET, expires_at=expires)
    assert expiring.expired(datetime(2026, 11, 25, 11, 59, 30, tzinfo=UTC))
    assert not expiring.expired(datetime(2026, 11, 25, 11, 58, tzinfo=UTC))
    with pytest.raises(ValueError, match="`expires_at` must be timezone-aware"):
        ProviderToken(SECRET, expires_at=datetime(2026, 11, 25))
