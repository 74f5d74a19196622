"""Faults in the production shape: `oo api` and `oo learner` processes on PostgreSQL + Redis.

Each test starts its own processes on a fresh PostgreSQL schema, injects one fault while a client
thread keeps sending Personalizer rank + reward, and then checks the database: nothing
acknowledged is lost, nothing is learned twice. No assertion is on time; every wait is bounded.

Covered elsewhere: a PostgreSQL outage (tests/api/test_database_outage.py) and Todoist timeouts
(tests/integrations/test_todoist.py).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import Backend, free_port, wait_until

pytestmark = [
    pytest.mark.slow,
    # Only for a hang: each wait below has its own bound, and on a shared machine under load
    # their sum (process starts, load, catch-up) can pass two minutes without anything wrong.
    pytest.mark.timeout(600),
    pytest.mark.parametrize("backend", ["postgres"], indirect=True),
]

ROOT = Path(__file__).resolve().parents[2]
MODEL = "personalizer:vw-squarecb-tuned"
ACTIONS = [{"id": f"a{i}", "features": [{"item": {"kind": f"k{i % 3}"}}]} for i in range(5)]


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


class Cluster:
    """Processes of one test: learner and api processes, optionally a private redis-server."""

    def __init__(self, backend: Backend, tmp: Path) -> None:
        self.backend = backend
        self.tmp = tmp
        self.redis_url = backend.redis_url or ""
        self.redis_port: int | None = None
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.urls: dict[str, str] = {}
        self.engine = sa.create_engine(backend.database_url, pool_size=2)

    def env(self, port: int) -> dict[str, str]:
        return {
            **os.environ,
            "OO_DATABASE_URL": self.backend.database_url,
            "OO_REDIS_URL": self.redis_url,
            "OO_HOST": "127.0.0.1",
            "OO_PORT": str(port),
            "OO_LEARNER_PORT": str(port),
            "OO_DATA_DIR": str(self.tmp / "data"),
            "OO_SNAPSHOT_SECONDS": "0.3",
            "OO_SWEEP_SECONDS": "0.2",
            "OO_MISSED_SECONDS": "0.2",
            "OO_MODEL_REFRESH_SECONDS": "0.2",
            "OO_LOG_LEVEL": "WARNING",
        }

    def _spawn(self, name: str, command: list[str], env: dict[str, str]) -> None:
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        self.children[name] = subprocess.Popen(command, env=env, stdout=log, stderr=log, cwd=ROOT)

    def start(self, name: str) -> str:
        """Start `learner` or `api-<x>` and wait for its /health; the learner goes first."""
        port = free_port()
        role = "learner" if name == "learner" else "api"
        self._spawn(name, [sys.executable, "-m", "api.cli", role], self.env(port))
        url = self.urls[name] = f"http://127.0.0.1:{port}"
        wait_until(lambda: _healthy(url), timeout=60, interval=0.2)
        return url

    def restart(self, name: str) -> None:
        """Start a process again on the port it had."""
        port = int(self.urls[name].rsplit(":", 1)[1])
        role = "learner" if name == "learner" else "api"
        self._spawn(name, [sys.executable, "-m", "api.cli", role], self.env(port))
        wait_until(lambda: _healthy(self.urls[name]), timeout=60, interval=0.2)

    def kill9(self, name: str) -> None:
        child = self.children.pop(name)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)

    # a private redis-server, so the test can stop and restart it --------------------------

    def start_redis(self) -> None:
        if self.redis_port is None:
            self.redis_port = free_port()
            self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        redis_server = shutil.which("redis-server")
        assert redis_server, "redis-server not installed"
        self._spawn(
            "redis",
            [
                redis_server,
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.tmp),
            ],
            dict(os.environ),
        )

        def pong() -> bool:
            try:
                import redis

                return bool(redis.Redis.from_url(self.redis_url, socket_timeout=1).ping())
            except Exception:
                return False

        wait_until(pong, timeout=20, interval=0.1)

    def stop_redis(self) -> None:
        child = self.children.pop("redis")
        child.terminate()
        child.wait(timeout=10)

    # the database -------------------------------------------------------------------------

    def scalar(self, sql: str, **params: object) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.text(sql), params).scalar_one())

    def learned(self) -> tuple[int, int]:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.text("SELECT count(learn_seq), count(DISTINCT learn_seq) FROM decisions")
            ).one()
        return int(row[0]), int(row[1])

    def rewarded(self) -> int:
        return self.scalar(
            "SELECT count(*) FROM rewards r JOIN decisions d ON d.event_id = r.event_id"
        )

    def missing(self, table: str, event_ids: list[str]) -> set[str]:
        if not event_ids:
            return set()
        with self.engine.connect() as conn:
            found = {
                row[0]
                for row in conn.execute(
                    sa.text(f"SELECT event_id FROM {table} WHERE event_id = ANY(:ids)"),
                    {"ids": event_ids},
                )
            }
        return set(event_ids) - found

    def served_version(self, name: str) -> int:
        try:
            models = httpx.get(self.urls[name] + "/health", timeout=2).json()["models"]
        except (httpx.HTTPError, ValueError, KeyError):
            return -1
        return int(models.get(MODEL, -1))

    def stop_all(self) -> None:
        for child in self.children.values():
            child.terminate()
        for child in self.children.values():
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=10)
        self.engine.dispose()


@pytest.fixture
def cluster(backend: Backend, tmp_path: Path) -> Iterator[Cluster]:
    made = Cluster(backend, tmp_path)
    yield made
    made.stop_all()


@dataclass
class Load:
    """Client threads sending rank then reward; they record only what was acknowledged."""

    urls: list[str]
    prefix: str
    threads: int = 2
    decisions: list[str] = field(default_factory=list)  # rank answered 201
    rewards: list[str] = field(default_factory=list)  # reward answered 204
    failures: int = 0
    by_url: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        for t in range(self.threads):
            worker = threading.Thread(target=self._run, args=(t,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)
            assert not worker.is_alive(), "a load thread did not stop"

    def acked(self, url: str | None = None) -> int:
        with self._lock:
            return self.by_url.get(url, 0) if url else len(self.decisions)

    def _run(self, thread: int) -> None:
        clients = [httpx.Client(base_url=url, timeout=5) for url in self.urls]
        i = 0
        while not self._stop.is_set():
            client = clients[i % len(clients)]
            event_id = f"{self.prefix}-{thread}-{i}"
            i += 1
            try:
                ranked = client.post(
                    "/personalizer/v1.0/rank",
                    json={
                        "contextFeatures": [{"u": {"g": i % 2}}],
                        "actions": ACTIONS,
                        "eventId": event_id,
                    },
                )
            except httpx.HTTPError:
                self._fail()
                continue
            if ranked.status_code != 201:
                self._fail()
                continue
            with self._lock:
                self.decisions.append(event_id)
                url = str(client.base_url).rstrip("/")
                self.by_url[url] = self.by_url.get(url, 0) + 1
            value = 1.0 if ranked.json()["rewardActionId"] == ("a1" if i % 2 else "a3") else 0.0
            try:
                rewarded = client.post(
                    f"/personalizer/v1.0/events/{event_id}/reward", json={"value": value}
                )
            except httpx.HTTPError:
                self._fail()
                continue
            if rewarded.status_code == 204:
                with self._lock:
                    self.rewards.append(event_id)
            else:
                self._fail()
        for client in clients:
            client.close()

    def _fail(self) -> None:
        with self._lock:
            self.failures += 1


def test_kill_9_an_api_mid_load_loses_nothing_acknowledged(cluster: Cluster) -> None:
    cluster.start("learner")
    victim = cluster.start("api-0")
    survivor = cluster.start("api-1")

    with Load([victim, survivor], "kill-api", threads=4) as load:
        wait_until(lambda: load.acked(victim) >= 60, timeout=60)
        cluster.kill9("api-0")  # requests to it are in flight right now
        before = load.acked(survivor)
        # The second api keeps serving.
        wait_until(lambda: load.acked(survivor) >= before + 60, timeout=60)
    assert load.failures > 0  # the kill did cut requests (connection refused or reset)

    assert cluster.missing("decisions", load.decisions) == set()
    assert cluster.missing("rewards", load.rewards) == set()
    # And everything acknowledged gets learned exactly once.
    rewarded = cluster.rewarded()  # may exceed len(load.rewards): answers cut by the kill
    assert rewarded >= len(load.rewards)
    wait_until(lambda: cluster.learned()[0] >= rewarded, timeout=60)
    assert cluster.learned() == (rewarded, rewarded)


def test_kill_9_the_learner_mid_stream_resumes_without_loss_or_double_counting(
    cluster: Cluster,
) -> None:
    cluster.start("learner")
    api = cluster.start("api")

    with Load([api], "kill-learner", threads=2) as load:
        wait_until(lambda: cluster.learned()[0] >= 40, timeout=60)
        cluster.kill9("learner")  # mid-stream: rewards keep arriving
        killed_at = load.acked()
        wait_until(lambda: load.acked() >= killed_at + 40, timeout=60)
        cluster.restart("learner")
        restarted_at = load.acked()
        wait_until(lambda: load.acked() >= restarted_at + 40, timeout=60)

    rewarded = cluster.rewarded()
    assert rewarded >= len(load.rewards) > 0
    assert cluster.missing("rewards", load.rewards) == set()
    wait_until(lambda: cluster.learned()[0] >= rewarded, timeout=60)
    learned, distinct = cluster.learned()
    assert (learned, distinct) == (rewarded, rewarded)
    # The model the api serves has learned every rewarded decision once.
    wait_until(lambda: cluster.served_version("api") == rewarded, timeout=60)
    assert cluster.learned() == (rewarded, rewarded)


def test_redis_restart_keeps_decisions_durable_and_the_learner_catches_up(
    cluster: Cluster,
) -> None:
    cluster.start_redis()
    cluster.start("learner")
    api = cluster.start("api")
    client = httpx.Client(base_url=api, timeout=5)

    with Load([api], "before-redis", threads=1) as load:
        wait_until(lambda: cluster.learned()[0] >= 20, timeout=60)

    cluster.stop_redis()
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "degraded"
    assert health.json()["checks"]["redis"]["status"] == "failing"
    with Load([api], "during-redis", threads=2) as outage:
        wait_until(lambda: outage.acked() >= 40, timeout=60)
    # The api kept serving: every rank 201 and every reward 204 while Redis was down, durable.
    assert outage.failures == 0
    assert len(outage.rewards) == len(outage.decisions) > 0
    assert cluster.missing("decisions", outage.decisions) == set()
    assert cluster.missing("rewards", outage.rewards) == set()

    cluster.start_redis()  # same port, empty: the stream and its group are gone
    wait_until(lambda: client.get("/health").json()["status"] == "ok", timeout=60)
    with Load([api], "after-redis", threads=1) as after:
        wait_until(lambda: after.acked() >= 20, timeout=60)
    assert after.failures == 0

    rewarded = cluster.rewarded()
    assert rewarded >= len(load.rewards) + len(outage.rewards) + len(after.rewards)
    # The learner catches up, the rewards whose messages were lost included (its sweep).
    wait_until(lambda: cluster.learned()[0] >= rewarded, timeout=60)
    assert cluster.learned() == (rewarded, rewarded)
    wait_until(lambda: cluster.served_version("api") == rewarded, timeout=60)
    client.close()
