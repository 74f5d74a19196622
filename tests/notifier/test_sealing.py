"""Push subscriptions and unsent payloads in the token vault: bound to their row, re-sealed by
`oo vault rotate`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from api.cli_vault import vault_app
from api.db import upgrade
from bandit.store import make_engine
from integrations.vault import TokenDecryptError, Vault, new_key_entry, parse_keys
from notifier.outbox import Outbox, PushMessage
from notifier.subscriptions import SubscriptionStore
from tests.notifier.conftest import push_settings
from tests.notifier.push_service import PushService


def _stores(engine: sa.Engine, keys: str, service: PushService) -> tuple[SubscriptionStore, Outbox]:
    vault = Vault(parse_keys(keys))
    devices = SubscriptionStore(engine, lambda: vault, push_settings(service).services)
    return devices, Outbox(engine, devices)


def test_a_sealed_subscription_opens_only_on_its_own_row(
    tmp_path: Path, push_service: PushService
) -> None:
    url = f"sqlite:///{tmp_path / 'oo.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    devices, _ = _stores(engine, new_key_entry("k1"), push_service)
    ids = []
    for name in ("a", "b"):
        sub = push_service.device(name).subscription()
        device, _ = devices.add(
            "ada", endpoint=sub["endpoint"], p256dh=sub["keys"]["p256dh"], auth=sub["keys"]["auth"]
        )
        ids.append(device.id)
    with engine.begin() as conn:  # swap the two rows' ciphertexts
        rows = dict(conn.execute(sa.text("SELECT id, ciphertext FROM push_subscriptions")).all())
        for mine, theirs in ((ids[0], ids[1]), (ids[1], ids[0])):
            conn.execute(
                sa.text("UPDATE push_subscriptions SET ciphertext = :c WHERE id = :i"),
                {"c": rows[theirs], "i": mine},
            )
    with pytest.raises(TokenDecryptError, match="failed authentication"):
        devices.open(ids[0])
    engine.dispose()


def test_oo_vault_rotate_reseals_devices_and_unsent_pushes(
    tmp_path: Path, push_service: PushService, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'oo.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    old, new = new_key_entry("old"), new_key_entry("new")
    devices, outbox = _stores(engine, old, push_service)
    sub = push_service.device("phone").subscription()
    device, _ = devices.add(
        "ada", endpoint=sub["endpoint"], p256dh=sub["keys"]["p256dh"], auth=sub["keys"]["auth"]
    )
    outbox.enqueue("ada", "ev-1", PushMessage("Stretch"), ttl_seconds=600)

    monkeypatch.setenv("OO_VAULT_KEYS", f"{new},{old}")
    result = CliRunner().invoke(vault_app, ["rotate", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "push devices: 1 re-encrypted" in result.output
    assert "unsent pushes: 1 re-encrypted" in result.output
    assert sub["endpoint"] not in result.output

    # Only the new key is needed now.
    devices_new, outbox_new = _stores(engine, new, push_service)
    owner, opened = devices_new.open(device.id) or (None, None)
    assert owner == "ada" and opened is not None and opened.endpoint == sub["endpoint"]
    claims, _ = outbox_new.claim(limit=5, lease=timedelta(seconds=60))
    assert [c.payload["title"] for c in claims] == ["Stretch"]
    engine.dispose()
