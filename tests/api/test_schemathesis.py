"""Property-based HTTP fuzzing of the running server against docs/openapi.json.

Schemathesis generates schema-valid and schema-invalid requests for every operation; the
server must never answer 5xx, and every answer must be documented (status, content type and
body schema). Semantic rules JSON Schema cannot express (e.g. "an arm named control must
exist") legitimately reject some schema-valid requests with a 400, so that check is not run.
Date-time values lean on the calendar's edges (tests/api/schemathesis_hooks.py), where a time
that exists in its own offset has no UTC spelling.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import LiveServer

ROOT = Path(__file__).resolve().parents[2]
HOOKS = Path(__file__).resolve().parent / "schemathesis_hooks.py"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["embedded", "postgres"], indirect=True)
def test_no_server_errors_and_no_schema_violations(
    live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    live = live_server()
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st is not None, "schemathesis is a dev dependency"
    dates = tmp_path / "dates.log"
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS), "OO_TEST_DATE_LOG": str(dates)}
    run = subprocess.run(
        [
            st,
            "run",
            str(ROOT / "docs" / "openapi.json"),
            "--url",
            live.url,
            "--checks",
            ",".join(CHECKS),
            "--max-examples",
            "15",
            "--seed",
            "1",
            "--generation-database",
            "none",  # what runs depends on the seed alone, never on examples kept from a run
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=env,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    explored = set(dates.read_text(encoding="utf-8").split())
    no_utc = {"0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"}  # among the hooks' EDGES
    assert no_utc <= explored, "the run never sent a time with no UTC spelling"
