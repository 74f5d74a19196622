"""`--port` and `--daemon` would fork VW servers that outlive requests: against a real `oo serve`
in its own session (killed whole at teardown), every route refuses them, nothing listens, and
the server keeps answering."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.api.decision_helpers import personalizer_url
from tests.conftest import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
VW_DAEMON_PORT = 26542
"""Where `--daemon` listens without `--port`."""


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "OO_DATABASE_URL": f"sqlite:///{tmp_path / 'oo.sqlite3'}",
        "OO_REDIS_URL": "",
        "OO_HOST": "127.0.0.1",
        "OO_PORT": str(port),
        "OO_DATA_DIR": str(tmp_path / "data"),
    }
    with open(tmp_path / "server.log", "ab") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve"],
            env=env,
            stdout=log,
            stderr=log,
            cwd=ROOT,
            start_new_session=True,  # its own process group: whatever it forks dies with it
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _healthy(url) or child.poll() is not None, timeout=60, interval=0.2)
        assert child.poll() is None, (tmp_path / "server.log").read_text()
        yield url
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)


def test_port_and_daemon_are_refused_on_every_route(server: str) -> None:
    vw_port = free_port()
    daemon_port_was_free = not _listening(VW_DAEMON_PORT)
    now = datetime.now(UTC)
    window = {"startTime": (now - timedelta(1)).isoformat(), "endTime": now.isoformat()}
    with httpx.Client(base_url=server, timeout=30) as client:
        for extra, option in [
            (f"--port {vw_port}", "--port"),
            (f"--port={vw_port}", "--port"),
            ("--daemon", "--daemon"),
            (f"--daemon --port {vw_port} --num_children 1", "--daemon"),
            (f"'--daemon' \"--port\" {vw_port}", "--daemon"),
        ]:
            args = f"--cb_explore_adf {extra}"
            responses = [
                client.post("/v1/policies", json={"name": "d", "kind": "vw", "args": args}),
                client.put(
                    personalizer_url("/configurations/policy", "preview"),
                    json={"name": "d", "arguments": args},
                ),
                client.post(
                    personalizer_url("/evaluations"),
                    json={"name": "e", **window, "policies": [{"name": "d", "arguments": args}]},
                ),
            ]
            for response in responses:
                assert response.status_code == 400, (args, response.text)
                assert option in response.json()["error"]["message"]
            assert not _listening(vw_port)
            if daemon_port_was_free:
                assert not _listening(VW_DAEMON_PORT)
            assert client.get("/health").status_code == 200
