"""Debian's Prometheus scrapes a running server; the Grafana dashboard queries real metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import LiveServer, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "dashboards" / "grafana" / "oo-service.json"


def _exprs() -> list[str]:
    document = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in document["panels"] for target in panel["targets"]]


def _base(name: str) -> str:
    return re.sub(r"_(bucket|total|count|sum)$", "", name)


def test_dashboard_queries_only_metrics_the_service_exports(client: TestClient) -> None:
    exported = client.get("/metrics").text
    names = {_base(n) for n in re.findall(r"^# TYPE (\S+) ", exported, re.MULTILINE)}
    for expr in _exprs():
        for metric in re.findall(r"\boo_\w+", expr):
            assert _base(metric) in names, f"{metric} in {expr!r} is not exported"


def test_scrape_config_names_both_processes() -> None:
    text = (ROOT / "infra" / "prometheus.yml").read_text()
    assert "job_name: oo-api" in text
    assert "job_name: oo-learner" in text


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_prometheus_scrapes_metrics(live_server: Callable[..., LiveServer], tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed (`make test` installs Debian's package)")
    live = live_server()
    httpx.post(f"{live.url}/v1/recommend", timeout=10).raise_for_status()
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: oo-api\n    static_configs: [{{targets: ['{live.url[7:]}']}}]\n"
    )
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:

        def target_up() -> bool:
            try:
                targets = httpx.get(f"{api}/targets", timeout=2).json()["data"]["activeTargets"]
            except (httpx.HTTPError, KeyError, ValueError):
                return False
            return any(t["labels"]["job"] == "oo-api" and t["health"] == "up" for t in targets)

        wait_until(target_up, timeout=60, interval=0.5)

        def decisions() -> list[object]:
            reply = httpx.get(f"{api}/query", params={"query": "oo_decisions_total"}, timeout=2)
            result: list[object] = reply.json()["data"]["result"]
            return result

        series = wait_until(decisions, timeout=30, interval=0.5)
        assert any(s["metric"]["surface"] == "tips" for s in series)  # type: ignore[index]
        # Every dashboard expression is valid PromQL to this Prometheus.
        for expr in _exprs():
            reply = httpx.get(f"{api}/query", params={"query": expr}, timeout=5)
            assert reply.json()["status"] == "success", expr
    finally:
        process.terminate()
        process.wait(timeout=20)
