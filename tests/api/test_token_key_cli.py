"""`oo keys new-token-key`: an OO_TOKEN_KEYS entry that sign-in mode accepts as it is."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from api.auth.config import MIN_KEY_BYTES, parse_token_keys
from api.auth.principal import Role
from api.auth.tokens import AccessTokens
from api.cli import app
from bandit.events import utcnow

runner = CliRunner()


def _new_key(*args: str) -> str:
    result = runner.invoke(app, ["keys", "new-token-key", *args])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def test_the_entry_parses_as_a_token_key_and_signs() -> None:
    before = utcnow()
    entry = _new_key()
    (key,) = parse_token_keys(entry)
    assert key.kid in {day.strftime("t%Y%m%d") for day in (before, utcnow())}  # today's date
    assert len(key.secret) == MIN_KEY_BYTES
    tokens = AccessTokens((key,), issuer="https://oo.example.test", lifetime_seconds=60)
    assert tokens.verify(tokens.issue("person-1", [Role.PERSON])).subject == "person-1"


def test_every_entry_is_fresh_and_prepends_to_the_list() -> None:
    old, new = _new_key("--kid", "old"), _new_key("--kid", "new")
    assert old.split(":")[1] != new.split(":")[1]
    keys = parse_token_keys(f"{new},{old}")
    assert [k.kid for k in keys] == ["new", "old"]
    # Shell- and env-file-safe: no quotes, spaces, `=` padding or `/`.
    assert re.fullmatch(r"[A-Za-z0-9._-]+:[A-Za-z0-9_-]+", new)


def test_a_bad_key_id_is_refused_naming_the_option() -> None:
    result = runner.invoke(app, ["keys", "new-token-key", "--kid", "has space"])
    assert result.exit_code == 2
    assert "--kid" in result.output
    assert "has space" in result.output
