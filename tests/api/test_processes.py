"""Production shape: `oo api` and `oo learner` as separate processes on PostgreSQL + Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import Backend, free_port, wait_until

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)

ACTIONS = [{"id": f"a{i}", "features": [{"item": {"kind": f"k{i % 3}"}}]} for i in range(5)]


class Processes:
    def __init__(self, backend: Backend, tmp: Path) -> None:
        self.api_port = free_port()
        self.learner_port = free_port()
        self.env = {
            **os.environ,
            "OO_DATABASE_URL": backend.database_url,
            "OO_REDIS_URL": backend.redis_url or "",
            "OO_PORT": str(self.api_port),
            "OO_LEARNER_PORT": str(self.learner_port),
            "OO_SNAPSHOT_SECONDS": "0.3",
            "OO_SWEEP_SECONDS": "0.2",
            "OO_MISSED_SECONDS": "0.2",
            "OO_MODEL_REFRESH_SECONDS": "0.2",
            "OO_LOG_LEVEL": "WARNING",
        }
        self.tmp = tmp
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        command = [sys.executable, "-m", "api.cli", "api" if name == "api" else "learner"]
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        self.children[name] = subprocess.Popen(command, env=self.env, stdout=log, stderr=log)
        port = self.api_port if name == "api" else self.learner_port
        wait_until(lambda: _healthy(f"http://127.0.0.1:{port}/health"), timeout=60, interval=0.2)

    def kill(self, name: str) -> None:
        child = self.children.pop(name)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)

    def stop_all(self) -> None:
        for child in self.children.values():
            child.terminate()
        for child in self.children.values():
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def processes(backend: Backend, tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(backend, tmp_path)
    yield procs
    procs.stop_all()


def _rank_and_reward(api: httpx.Client, prefix: str, n: int) -> list[str]:
    ids = []
    for i in range(n):
        ranked = api.post(
            "/personalizer/v1.0/rank",
            json={
                "contextFeatures": [{"u": {"g": i % 2}}],
                "actions": ACTIONS,
                "eventId": f"{prefix}{i}",
            },
        )
        assert ranked.status_code == 201
        body = ranked.json()
        value = 1.0 if body["rewardActionId"] == ("a1" if i % 2 else "a3") else 0.0
        assert (
            api.post(
                f"/personalizer/v1.0/events/{body['eventId']}/reward", json={"value": value}
            ).status_code
            == 204
        )
        ids.append(body["eventId"])
    return ids


def _learned(backend: Backend) -> tuple[int, int]:
    engine = sa.create_engine(backend.database_url)
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT count(learn_seq), count(DISTINCT learn_seq) FROM decisions")
        ).one()
    engine.dispose()
    return int(row[0]), int(row[1])


def test_api_serves_new_model_versions_and_learner_survives_kill_9(
    processes: Processes, backend: Backend
) -> None:
    processes.start("api")
    processes.start("learner")
    api = httpx.Client(base_url=f"http://127.0.0.1:{processes.api_port}", timeout=5)

    _rank_and_reward(api, "first-", 30)
    wait_until(lambda: _learned(backend)[0] == 30, timeout=30)

    def served_version() -> int:
        models = api.get("/health").json()["models"]
        return int(models["personalizer:vw-squarecb-tuned"])

    # The api process loads the learner's new snapshot without restarting.
    assert wait_until(lambda: served_version() == 30, timeout=30)

    processes.kill("learner")
    _rank_and_reward(api, "second-", 20)  # acknowledged while no learner runs
    processes.start("learner")
    wait_until(lambda: _learned(backend)[0] == 50, timeout=60)
    learned, distinct = _learned(backend)
    assert (learned, distinct) == (50, 50)
    assert wait_until(lambda: served_version() == 50, timeout=30)
    api.close()
