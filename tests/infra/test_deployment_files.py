"""Deployment files stay valid without a Docker engine: compose, Kubernetes, Dockerfiles, Grafana
provisioning, Prometheus; and `infra/local-cluster` brings the topology up as plain processes."""

from __future__ import annotations

import glob
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from api.settings import Settings
from bandit.settings import LearnerSettings

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
COMPOSE = INFRA / "docker-compose.yml"
K8S = INFRA / "k8s"
DOCKERFILES = {
    "api": INFRA / "docker" / "api.Dockerfile",
    "learner": INFRA / "docker" / "learner.Dockerfile",
}
PORTS = {"api": 8000, "learner": 8001}
INTERPOLATED = re.compile(r"^\$\{[A-Z_]+:\?[^}]+\}$")


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _service(name: str) -> dict[str, Any]:
    return _compose()["services"][name]


def _k8s() -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        documents += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return documents


def _k8s_one(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in _k8s() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _healthcheck_port(test: list[str] | str) -> int:
    text = " ".join(test) if isinstance(test, list) else test
    match = re.search(r"http://127\.0\.0\.1:(\d+)/health", text)
    assert match, f"health check does not ask /health: {text}"
    return int(match.group(1))


def _known_variables() -> set[str]:
    fields = set(Settings.model_fields) | set(LearnerSettings.model_fields)
    known = {f"OO_{name.upper()}" for name in fields}
    # Read by the CLI itself rather than by a settings class.
    known |= set(
        re.findall(r"os\.environ\.get\(\"(OO_\w+)\"", (ROOT / "api" / "cli.py").read_text())
    )
    return known


# --- docker compose ---------------------------------------------------------------------------


def test_compose_has_every_service_with_a_health_check() -> None:
    services = _compose()["services"]
    assert set(services) >= {"db", "redis", "api", "learner", "prometheus", "grafana"}
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no healthcheck"
        assert service["healthcheck"]["test"], name
    assert services["db"]["image"].startswith("postgres:15")
    assert "pg_isready" in str(services["db"]["healthcheck"]["test"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in services["db"]["volumes"])
    assert services["redis"]["image"].startswith("redis:7")
    assert "redis-cli" in services["redis"]["healthcheck"]["test"]


@pytest.mark.parametrize("name", ["api", "learner"])
def test_compose_oo_processes(name: str) -> None:
    service = _service(name)
    assert service["build"]["dockerfile"] == f"infra/docker/{name}.Dockerfile"
    assert (INFRA / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
    environment = service["environment"]
    for variable in ("OO_DATABASE_URL", "OO_REDIS_URL"):
        assert environment.get(variable), f"{name} lacks {variable}"
    assert urlsplit(environment["OO_REDIS_URL"]).hostname == "redis"
    # The password is interpolated from .env.local, never written here.
    database = re.fullmatch(
        r"postgresql\+psycopg://oo:(\$\{[^}]+\})@db:5432/oo", environment["OO_DATABASE_URL"]
    )
    assert database, environment["OO_DATABASE_URL"]
    assert INTERPOLATED.match(database.group(1))
    for dependency in ("db", "redis"):
        assert service["depends_on"][dependency]["condition"] == "service_healthy"
    port = PORTS[name]
    assert _healthcheck_port(service["healthcheck"]["test"]) == port
    assert all(str(p).endswith(f":{port}") for p in service["ports"]), service["ports"]
    assert any(
        (e if isinstance(e, str) else e["path"]).endswith(".env.local") for e in service["env_file"]
    )


def test_compose_api_runs_several_workers_and_binds_all_interfaces() -> None:
    service = _service("api")
    command = service["command"]
    workers = int(command[command.index("--workers") + 1]) if "--workers" in command else 1
    assert workers * service.get("deploy", {}).get("replicas", 1) >= 2
    assert service["environment"]["OO_HOST"] == "0.0.0.0"
    assert str(service["environment"]["OO_PORT"]) == str(PORTS["api"])
    # Until sign-in lands the api refuses this address: the file must say so.
    assert "issue 4" in COMPOSE.read_text()


def test_compose_runs_exactly_one_learner_reachable_from_prometheus() -> None:
    service = _service("learner")
    assert service.get("deploy", {}).get("replicas", 1) == 1
    assert service["command"][-2:] == ["--host", "0.0.0.0"]
    # The learner builds Settings too: a non-loopback OO_HOST would stop it at start.
    assert "OO_HOST" not in service["environment"]
    assert str(service["environment"]["OO_LEARNER_PORT"]) == str(PORTS["learner"])


def test_compose_has_no_literal_secret() -> None:
    for name, service in _compose()["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|_KEY$", key):
                assert INTERPOLATED.match(str(value)), f"{name}.{key} must come from .env.local"
    assert ".env.local" in (ROOT / ".gitignore").read_text().split()


def test_compose_provisions_grafana_from_the_dashboards_folder() -> None:
    service = _service("grafana")
    mounts = {v.split(":")[0]: v.split(":")[1] for v in service["volumes"]}
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    dashboards_target = mounts["../dashboards/grafana"]
    assert list((ROOT / "dashboards" / "grafana").glob("*.json"))

    provisioning = INFRA / "grafana" / "provisioning"
    providers = yaml.safe_load((provisioning / "dashboards" / "oo.yml").read_text())["providers"]
    assert [p["options"]["path"] for p in providers] == [dashboards_target]
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert "prometheus" in _compose()["services"]


def test_prometheus_config_scrapes_both_processes_on_their_ports() -> None:
    mounts = [v.split(":")[:2] for v in _service("prometheus")["volumes"]]
    assert ["./prometheus.yml", "/etc/prometheus/prometheus.yml"] in mounts
    config = yaml.safe_load((INFRA / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    api_sd = jobs["oo-api"]["dns_sd_configs"][0]
    assert api_sd["names"] == ["api"]
    assert api_sd["port"] == PORTS["api"]
    assert jobs["oo-learner"]["static_configs"][0]["targets"] == [f"learner:{PORTS['learner']}"]
    promtool = shutil.which("promtool")
    if promtool:
        subprocess.run([promtool, "check", "config", str(INFRA / "prometheus.yml")], check=True)


# --- Dockerfiles ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["api", "learner"])
def test_dockerfile_exposes_and_checks_its_port(name: str) -> None:
    text = DOCKERFILES[name].read_text()
    assert re.findall(r"^EXPOSE (\d+)$", text, re.MULTILINE) == [str(PORTS[name])]
    (healthcheck,) = re.findall(r"^HEALTHCHECK .*$", text, re.MULTILINE)
    assert _healthcheck_port(healthcheck) == PORTS[name]
    # A numeric non-root user, the one the Kubernetes manifests run as.
    (user,) = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    deployment = _k8s_one("Deployment", f"oo-{name}")
    assert int(user) == deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] != 0


# --- Kubernetes -------------------------------------------------------------------------------


def _port_number(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p["name"] == port)


def test_k8s_api_deployment_and_service() -> None:
    deployment = _k8s_one("Deployment", "oo-api")
    assert deployment["spec"]["replicas"] == 3
    container = _container(deployment)
    assert _port_number(container, "http") == PORTS["api"]
    for probe in ("readinessProbe", "livenessProbe"):
        check = container[probe]["httpGet"]
        assert check["path"] == "/health", probe
        assert _port_number(container, check["port"]) == PORTS["api"], probe
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]["memory"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["OO_HOST"] == "0.0.0.0"
    assert env["OO_PORT"] == str(PORTS["api"])
    assert "issue 4" in (K8S / "api.yaml").read_text()

    service = _k8s_one("Service", "oo-api")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert _port_number(container, service["spec"]["ports"][0]["targetPort"]) == PORTS["api"]
    budget = _k8s_one("PodDisruptionBudget", "oo-api")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_k8s_learner_is_a_single_replica_that_never_overlaps() -> None:
    deployment = _k8s_one("Deployment", "oo-learner")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    container = _container(deployment)
    assert container["args"][-2:] == ["--host", "0.0.0.0"]
    for probe in ("readinessProbe", "livenessProbe"):
        check = container[probe]["httpGet"]
        assert check["path"] == "/health"
        assert _port_number(container, check["port"]) == PORTS["learner"]
    assert "OO_HOST" not in {e["name"] for e in container.get("env", [])}
    service = _k8s_one("Service", "oo-learner")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert _port_number(container, service["spec"]["ports"][0]["targetPort"]) == PORTS["learner"]
    assert not [d for d in _k8s() if d["kind"] == "HorizontalPodAutoscaler"]


def test_k8s_config_flows_through_configmap_and_secret() -> None:
    config = _k8s_one("ConfigMap", "oo-config")
    secret = _k8s_one("Secret", "oo-secrets")
    assert "OO_HOST" not in config["data"]
    assert not {"OO_DATABASE_URL", "OO_REDIS_URL", "OO_PERSONALIZER_KEY"} & set(config["data"])
    assert {"OO_DATABASE_URL", "OO_REDIS_URL"} <= set(secret["stringData"])
    for name in ("oo-api", "oo-learner"):
        sources = _container(_k8s_one("Deployment", name))["envFrom"]
        assert {"configMapRef": {"name": "oo-config"}} in sources
        assert {"secretRef": {"name": "oo-secrets"}} in sources
    # The ConfigMap's values are valid settings for both processes.
    values = {key.removeprefix("OO_").lower(): value for key, value in config["data"].items()}
    Settings(_env_file=None, **{k: v for k, v in values.items() if k in Settings.model_fields})  # type: ignore[call-arg]
    LearnerSettings(**{k: v for k, v in values.items() if k in LearnerSettings.model_fields})
    namespaces = {d["metadata"].get("namespace") for d in _k8s() if d["kind"] != "Namespace"}
    assert namespaces == {_k8s_one("Namespace", "oo")["metadata"]["name"]}


def test_k8s_secret_template_holds_no_real_value() -> None:
    secret = _k8s_one("Secret", "oo-secrets")
    assert "data" not in secret
    assert all(value == "" for value in secret["stringData"].values()), secret["stringData"]
    assert (
        "kubectl -n oo create secret generic oo-secrets"
        in (K8S / "secret.example.yaml").read_text()
    )


def test_k8s_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert set(kustomization["resources"]) == manifests
    kubectl = shutil.which("kubectl")
    if kubectl:
        built = subprocess.run(
            [kubectl, "kustomize", str(K8S)], check=True, capture_output=True, text=True
        ).stdout
        kinds = {d["kind"] for d in yaml.safe_load_all(built) if d}
        assert {"Namespace", "ConfigMap", "Deployment", "Service"} <= kinds
        assert "Secret" not in kinds


# --- every file ---------------------------------------------------------------------------------


def test_every_oo_variable_in_the_deployment_files_is_a_real_setting() -> None:
    files = [COMPOSE, *DOCKERFILES.values(), *K8S.glob("*.yaml")]
    known = _known_variables()
    for path in files:
        for variable in set(re.findall(r"\bOO_[A-Z0-9_]+\b", path.read_text())):
            assert variable in known, f"{variable} in {path.relative_to(ROOT)} is not a setting"


def test_shell_scripts_parse() -> None:
    scripts = [INFRA / "local-cluster", INFRA / "scripts" / "with-services"]
    scripts += [Path(p) for p in glob.glob(str(INFRA / "scripts" / "*.sh"))]
    for script in scripts:
        subprocess.run(["bash", "-n", str(script)], check=True)


# --- the topology as plain processes ------------------------------------------------------------


@pytest.mark.slow
def test_local_cluster_check_starts_two_apis_and_a_learner() -> None:
    pg = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not pg or not shutil.which("redis-server"):
        pytest.skip("needs PostgreSQL binaries and redis-server (run through `make test`)")
    result = subprocess.run(
        [str(INFRA / "local-cluster"), "--apis", "2", "--base-port", "0", "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    apis = re.findall(r"api \d+\s+(http://127\.0\.0\.1:\d+)", result.stderr)
    assert len(apis) == 2
    assert len(re.findall(r"learner\s+http://127\.0\.0\.1:\d+", result.stderr)) == 1
    assert "check passed (2 api, 1 learner)" in result.stderr
    # Everything it started is stopped again.
    for url in apis:
        port = int(url.rsplit(":", 1)[1])
        probe = subprocess.run(
            ["python3", "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}), 1)"],
            capture_output=True,
        )
        assert probe.returncode != 0, f"{url} still answers after the check"
