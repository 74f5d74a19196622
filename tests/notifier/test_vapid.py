"""The deployment's VAPID key: generated for the embedded default, set in production, refused
when malformed; and the push settings' refusals."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import ValidationError
from typer.testing import CliRunner

from api.cli import app as cli
from notifier.push import Push, PushNotConfigured
from notifier.settings import PushSettings
from notifier.vapid import VapidConfigError, VapidKey, b64url_decode, load

SUBJECT = "mailto:ops@oo.example"


def test_the_embedded_default_generates_its_key_once_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "data" / "vapid.key"
    first = load(None, None, local_file=path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = load(None, None, local_file=path)
    assert first.public_key == again.public_key
    point = b64url_decode(first.public_key)
    assert len(point) == 65 and point[0] == 4
    assert first.private_text not in repr(first)


def test_without_a_key_and_outside_the_embedded_default_push_is_refused() -> None:
    with pytest.raises(VapidConfigError, match="OO_VAPID_PRIVATE_KEY and OO_VAPID_SUBJECT"):
        load(None, None, local_file=None)
    push = Push(
        engine=sa.create_engine("sqlite://"),  # the key is all this asks for
        settings=PushSettings(_env_file=None),  # type: ignore[call-arg]
        vault_factory=lambda: pytest.fail("no vault needed"),
        local_key_file=None,
    )
    with pytest.raises(PushNotConfigured, match="oo push new-keys"):
        push.public_key()


def test_new_keys_prints_settings_that_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    reply = CliRunner().invoke(cli, ["push", "new-keys", "--subject", SUBJECT])
    assert reply.exit_code == 0, reply.output
    lines = dict(line.split("=", 1) for line in reply.stdout.splitlines())
    assert set(lines) == {"OO_VAPID_PRIVATE_KEY", "OO_VAPID_SUBJECT"}
    for name, value in lines.items():
        monkeypatch.setenv(name, value)
    settings = PushSettings(_env_file=None)  # type: ignore[call-arg]
    key = load(settings.private_key, settings.vapid_subject, local_file=None)
    assert key.subject == SUBJECT
    assert key.public_key in reply.stderr
    refused = CliRunner().invoke(cli, ["push", "new-keys", "--subject", "ops@oo.example"])
    assert refused.exit_code == 2
    assert "mailto:" in refused.output


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"vapid_private_key": VapidKey.generate(SUBJECT).private_text}, "`vapid_subject` must"),
        ({"vapid_private_key": "not-a-key", "vapid_subject": SUBJECT}, "32 bytes in base64url"),
        ({"vapid_private_key": "AAAA", "vapid_subject": SUBJECT}, "3 bytes"),
        ({"vapid_subject": "ops@oo.example"}, "`mailto:` address or an `https:` URL"),
        ({"vapid_subject": "https://oo.example/contact"}, "`mailto:` address or an `https:` URL"),
        ({"push_service_hosts": "https://push.example.org"}, "push_service_hosts"),
        ({"push_service_hosts": "*.example.org"}, "push_service_hosts"),
        ({"push_lease_seconds": 5, "push_timeout_seconds": 10}, "must exceed"),
    ],
)
def test_settings_refuse_what_cannot_work(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PushSettings(_env_file=None, **values)  # type: ignore[arg-type]


def test_empty_values_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    # What a Kubernetes Secret with unfilled keys passes.
    monkeypatch.setenv("OO_VAPID_PRIVATE_KEY", "")
    monkeypatch.setenv("OO_VAPID_SUBJECT", "")
    monkeypatch.setenv("OO_PUSH_SERVICE_HOSTS", "push.example.org, 127.0.0.1:8788")
    settings = PushSettings(_env_file=None)  # type: ignore[call-arg]
    assert settings.private_key is None and settings.vapid_subject is None
    assert [(h.host, h.port) for h in settings.listed_hosts] == [
        ("push.example.org", None),
        ("127.0.0.1", 8788),
    ]
