"""The real OpenID provider for sign-in tests: node-oidc-provider from tests/oidc, on loopback.

`make test` runs `npm ci` here first; without node_modules the tests that need it are skipped
with the command to run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

HERE = Path(__file__).parent
CLIENT_ID = "oo-test"
CLIENT_SECRET = "oo-test-client-secret"  # a test provider's client, not a real credential


@dataclass(frozen=True)
class OidcProvider:
    issuer: str
    client_id: str
    client_secret: str

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(redirect_uris: list[str]) -> Iterator[OidcProvider]:
    node = shutil.which("node")
    if node is None or not (HERE / "node_modules" / "oidc-provider").is_dir():
        pytest.skip("the test OpenID provider is not installed: run `npm ci` in tests/oidc")
    port = _free_port()
    env = {
        **os.environ,
        "OIDC_PORT": str(port),
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "OIDC_REDIRECT_URIS": ",".join(redirect_uris),
    }
    # Output goes to a file: a pipe nobody reads could fill up and stall the provider.
    output = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed when the provider stops
    process = subprocess.Popen(
        [node, "server.js"], cwd=HERE, env=env, stdout=output, stderr=subprocess.STDOUT
    )
    provider = OidcProvider(f"http://127.0.0.1:{port}", CLIENT_ID, CLIENT_SECRET)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                output.seek(0)
                raise RuntimeError(f"the test OpenID provider exited:\n{output.read()}")
            try:
                if httpx.get(provider.discovery_url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the test OpenID provider did not start within 30 s")
            time.sleep(0.1)
        yield provider
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        output.close()
