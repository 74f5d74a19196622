"""The alert rules: valid to promtool, unit-tested, on metrics the service exports, each with a
runbook in docs/operations.md."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "infra" / "prometheus" / "alerts.yml"
OPERATIONS = ROOT / "docs" / "operations.md"


def _promtool() -> str:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed (Debian's prometheus package ships it)")
    return binary


def _rules() -> list[dict[str, object]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def _promtool_run(*args: str) -> None:
    run = subprocess.run(
        [_promtool(), *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_prometheus_config_loads_the_rules() -> None:
    _promtool_run("check", "config", "infra/prometheus.yml")
    config = yaml.safe_load((ROOT / "infra" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["prometheus/alerts.yml"]


def test_alerts_fire_as_their_unit_tests_expect() -> None:
    _promtool_run("test", "rules", "infra/prometheus/alerts_test.yml")


def test_compose_mounts_the_rules_beside_the_config() -> None:
    compose = yaml.safe_load((ROOT / "infra" / "docker-compose.yml").read_text())
    mounts = [v.split(":")[:2] for v in compose["services"]["prometheus"]["volumes"]]
    assert ["./prometheus", "/etc/prometheus/prometheus"] in mounts


def test_every_alert_has_a_severity_and_a_runbook() -> None:
    runbooks = set(re.findall(r"^#### (Oo\w+)$", OPERATIONS.read_text(), re.MULTILINE))
    for rule in _rules():
        name = str(rule["alert"])
        labels = rule["labels"]
        annotations = rule["annotations"]
        assert isinstance(labels, dict) and isinstance(annotations, dict)
        assert labels["severity"] in ("critical", "warning"), name
        anchor = str(annotations["runbook"]).removeprefix("docs/operations.md#")
        assert anchor.lower() in {r.lower() for r in runbooks}, f"{name}: no runbook {anchor}"
        assert name in runbooks or anchor != name.lower(), f"{name} has no runbook section"


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_alerts_query_only_metrics_the_service_exports(client: TestClient) -> None:
    exported = client.get("/metrics").text
    names = set(re.findall(r"^# TYPE (\S+) ", exported, re.MULTILINE))
    for rule in _rules():
        for metric in re.findall(r"\boo_\w+", str(rule["expr"])):
            base = re.sub(r"_(bucket|count|sum)$", "", metric)
            assert base in names or base.removesuffix("_total") in names, (rule["alert"], metric)


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_each_scrape_reports_the_database_check(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def database(text: str) -> str:
        (line,) = re.findall(r'^oo_health_check\{check="database"\} (\S+)$', text, re.MULTILINE)
        return line

    assert database(client.get("/metrics").text) == "1.0"

    def unreachable() -> None:
        raise ConnectionRefusedError("the database is gone")

    monkeypatch.setattr(client.app.state.services.store, "ping", unreachable)  # type: ignore[attr-defined]
    assert database(client.get("/metrics").text) == "0.0"


def test_every_alert_has_a_unit_test() -> None:
    tests = yaml.safe_load((ROOT / "infra" / "prometheus" / "alerts_test.yml").read_text())
    firing = {
        case["alertname"]
        for test in tests["tests"]
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    assert {str(rule["alert"]) for rule in _rules()} <= firing
