"""The data folder holds people's data: owner-only (0700), and every file in it 0600, whatever
the umask — the SQLite database, its WAL, shared-memory and journal files, the vault's key file.

Start-up is `oo serve`'s: `create_app` on the embedded default (no OO_DATABASE_URL), under a
umask that would leave everything world-readable.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.integration_setup import open_vault
from api.settings import Settings
from bandit.private_files import create_private_file, private_folder
from tests.api.decision_helpers import recommend
from tests.conftest import fast_learner


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0o000)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes(folder: Path) -> dict[str, int]:
    return {entry.name: mode(entry) for entry in folder.iterdir()}


def serve(settings: Settings) -> TestClient:
    client = TestClient(create_app(settings, fast_learner()))
    client.__enter__()
    recommend(client)  # a decision written: the WAL and shared-memory files exist
    return client


def test_oo_serve_keeps_the_data_folder_and_every_file_in_it_private(
    tmp_path: Path, permissive_umask: None
) -> None:
    data = tmp_path / "data"
    settings = Settings(data_dir=data, host="127.0.0.1")
    assert settings.database_url is None  # the embedded default, as `oo serve` runs it
    client = serve(settings)
    try:
        open_vault(settings)  # the local key file, written on the first integration
        assert mode(data) == 0o700
        found = modes(data)
        assert {"oo.sqlite3", "oo.sqlite3-wal", "oo.sqlite3-shm", "vault.keys"} <= set(found)
        assert found == dict.fromkeys(found, 0o600)
    finally:
        client.__exit__(None, None, None)


def test_a_data_folder_left_readable_by_an_older_version_is_tightened(
    tmp_path: Path, permissive_umask: None
) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    database = data / "oo.sqlite3"
    older = sqlite3.connect(database)  # SQLite's own default: 0644 under this umask
    older.execute("PRAGMA journal_mode=WAL")
    older.execute("CREATE TABLE left_over (x)")
    older.commit()
    assert mode(data) == 0o755 and mode(database) == 0o644
    assert mode(data / "oo.sqlite3-wal") == 0o644
    client = serve(Settings(data_dir=data, host="127.0.0.1"))
    try:
        assert mode(data) == 0o700
        found = modes(data)
        assert found == dict.fromkeys(found, 0o600)
    finally:
        client.__exit__(None, None, None)
        older.close()


def test_a_database_elsewhere_is_private_but_its_chosen_folder_is_left_alone(
    tmp_path: Path, permissive_umask: None
) -> None:
    chosen = tmp_path / "shared"
    chosen.mkdir(mode=0o755)
    new = tmp_path / "new" / "nested"
    for folder in (chosen, new):
        url = f"sqlite:///{folder / 'oo.sqlite3'}"
        client = serve(Settings(database_url=url, data_dir=tmp_path / "unused", host="127.0.0.1"))
        try:
            found = modes(folder)
            assert found and found == dict.fromkeys(found, 0o600)
        finally:
            client.__exit__(None, None, None)
    assert mode(chosen) == 0o755  # the operator's folder: not ours to change
    assert mode(new) == 0o700  # created by oO
    assert not (tmp_path / "unused").exists()


def test_private_files_refuse_to_touch_a_shared_folder_and_never_overwrite(
    tmp_path: Path, permissive_umask: None
) -> None:
    shared = tmp_path / "tmp-like"
    shared.mkdir()
    shared.chmod(0o1777)  # sticky, like /tmp
    private_folder(shared)
    assert mode(shared) == 0o1777
    key = tmp_path / "keys" / "vapid.pem"
    assert create_private_file(key, "first\n") is True
    assert create_private_file(key, "second\n") is False
    assert key.read_text() == "first\n"
    assert mode(key) == 0o600 and mode(key.parent) == 0o700
