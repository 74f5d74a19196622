"""Deployment files stay valid without a Docker engine: compose, Kubernetes, Dockerfiles, Grafana
provisioning, Prometheus; and `infra/local-cluster` brings the topology up as plain processes."""

from __future__ import annotations

import base64
import glob
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from pydantic import SecretStr, ValidationError

from api.settings import Settings
from bandit.settings import LearnerSettings
from integrations.vault import Vault, new_key_entry
from notifier.settings import PushSettings
from notifier.vapid import VapidKey
from tests.conftest import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
COMPOSE = INFRA / "docker-compose.yml"
K8S = INFRA / "k8s"
DOCKERFILES = {
    "api": INFRA / "docker" / "api.Dockerfile",
    "learner": INFRA / "docker" / "learner.Dockerfile",
    "notifier": INFRA / "docker" / "notifier.Dockerfile",
}
PORTS = {"api": 8000, "learner": 8001, "notifier": 8002}
INTERPOLATED = re.compile(r"^\$\{[A-Z_]+:\?[^}]+\}$")
# A secret comes from .env.local under its own name: required (`:?message`) or optional (`:-`).
FROM_ENV_FILE = re.compile(r"^\$\{(?P<name>[A-Z_]+)(:\?[^}]+|:-)\}$")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|_KEYS?$|PROVIDERS$")

# What an operator puts in .env.local for sign-in mode: well-formed values, none of them real.
TOKEN_KEY = "t1:" + base64.urlsafe_b64encode(b"k" * 32).decode()
OIDC_PROVIDERS = json.dumps(
    {
        "corp": {
            "discovery_url": "https://idp.invalid/.well-known/openid-configuration",
            "client_id": "oo",
            "client_secret": "not-a-secret",
        }
    }
)
SITE = {
    "POSTGRES_PASSWORD": "pw",
    "GRAFANA_ADMIN_PASSWORD": "pw",
    "OO_PUBLIC_URL": "https://oo.example.test",
    "OO_TOKEN_KEYS": TOKEN_KEY,
    "OO_VAULT_KEYS": new_key_entry("v1"),
    "OO_VAPID_PRIVATE_KEY": VapidKey.generate("mailto:ops@oo.example.test").private_text,
    "OO_VAPID_SUBJECT": "mailto:ops@oo.example.test",
}
PROVIDERS = {
    "google": {"OO_GOOGLE_CLIENT_ID": "client", "OO_GOOGLE_CLIENT_SECRET": "not-a-secret"},
    "oidc": {"OO_OIDC_PROVIDERS": OIDC_PROVIDERS},
}
PROVIDER_VARIABLES = {name for variables in PROVIDERS.values() for name in variables}


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


class MissingVariable(Exception):
    pass


def _interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's substitution: `${VAR}`, `${VAR:-default}`, `${VAR:?message}`, nested."""
    out, i = [], 0
    while (start := text.find("${", i)) != -1:
        out.append(text[i:start])
        depth, end = 1, start + 2
        while depth:
            if text.startswith("${", end):
                depth, end = depth + 1, end + 2
                continue
            depth -= text[end] == "}"
            end += 1
        body = text[start + 2 : end - 1]
        parsed = re.fullmatch(r"([A-Z_][A-Z0-9_]*)(:-|:\?|)(.*)", body, re.S)
        if parsed is None:
            raise ValueError(f"not a substitution Compose knows: ${{{body}}}")
        name, operator, rest = parsed.groups()
        value = env.get(name, "")
        if operator == ":-" and not value:
            value = _interpolate(rest, env)
        elif operator == ":?" and not value:
            raise MissingVariable(_interpolate(rest, env))
        out.append(value)
        i = end
    return "".join(out) + text[i:]


def _resolve(node: Any, env: Mapping[str, str]) -> Any:
    """The whole compose file as `docker compose config` would see it (raises MissingVariable)."""
    if isinstance(node, dict):
        return {key: _resolve(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolve(value, env) for value in node]
    return _interpolate(node, env) if isinstance(node, str) else node


def _container_env(service: str, env_file: Mapping[str, str]) -> dict[str, str]:
    resolved = _resolve(_compose(), env_file)["services"][service]["environment"]
    return {key: str(value) for key, value in resolved.items()}


def _settings_from(environ: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings exactly as a process with this environment builds them."""
    for name in [n for n in os.environ if n.startswith("OO_")]:
        monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)


def _required_in_signin_mode(environ: dict[str, str], mp: pytest.MonkeyPatch) -> set[str]:
    """The variables without which the api's Settings refuse this (valid) environment."""
    _settings_from(environ, mp)
    required = set()
    for name in environ:
        try:
            _settings_from({k: v for k, v in environ.items() if k != name}, mp)
        except ValidationError:
            required.add(name)
    return required


def _secret_variables() -> set[str]:
    """Settings whose values are credentials: typed SecretStr, or holding one."""
    fields = {**Settings.model_fields, **PushSettings.model_fields}
    secret = {
        name
        for name, field in fields.items()
        if SecretStr in getattr(field.annotation, "__args__", (field.annotation,))
    }
    secret |= {"oidc_providers", "personalizer_key", "database_url", "redis_url"}
    return {f"OO_{name.upper()}" for name in secret}


def _known_variables() -> set[str]:
    fields = set(Settings.model_fields) | set(LearnerSettings.model_fields)
    fields |= set(PushSettings.model_fields)
    known = {f"OO_{name.upper()}" for name in fields}
    # Read by the CLI itself rather than by a settings class.
    for cli in ("cli.py", "cli_common.py", "cli_push.py"):
        known |= set(
            re.findall(r"os\.environ\.get\(\"(OO_\w+)\"", (ROOT / "api" / cli).read_text())
        )
    return known


# --- docker compose ---------------------------------------------------------------------------


def test_compose_has_every_service_with_a_health_check() -> None:
    services = _compose()["services"]
    assert set(services) >= {
        "db",
        "redis",
        "migrate",
        "api",
        "learner",
        "notifier",
        "prometheus",
        "grafana",
    }
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no healthcheck"
        if service.get("restart") == "no":  # a one-shot: it exits, nothing to check
            assert service["healthcheck"] == {"disable": True}, name
            continue
        assert service["healthcheck"]["test"], name
    assert services["db"]["image"].startswith("postgres:15")
    assert "pg_isready" in str(services["db"]["healthcheck"]["test"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in services["db"]["volumes"])
    assert services["redis"]["image"].startswith("redis:7")
    assert "redis-cli" in services["redis"]["healthcheck"]["test"]


@pytest.mark.parametrize("name", ["api", "learner", "notifier"])
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
    # Each container gets the variables listed for it, never the whole .env.local.
    assert "env_file" not in service


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_compose_api_settings_validate_in_signin_mode(
    provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    environ = _container_env("api", SITE | PROVIDERS[provider])
    settings = _settings_from(environ, monkeypatch)
    assert settings.host == "0.0.0.0"
    assert settings.role == "api"
    assert list(settings.signin_providers) == ["google" if provider == "google" else "corp"]
    assert [k.kid for k in settings.signin_token_keys] == ["t1"]
    assert settings.public_url == SITE["OO_PUBLIC_URL"]
    assert urlsplit(settings.database).hostname == "db"
    assert settings.vault_keys is not None
    assert Vault.from_env({"OO_VAULT_KEYS": settings.vault_keys.get_secret_value()})
    # Optional values left out of .env.local mean "off", not a broken setting.
    assert settings.cors_origins == []
    assert not settings.admin_emails
    assert settings.rate_limit_default == Settings.model_fields["rate_limit_default"].default


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_compose_passes_every_setting_sign_in_mode_requires(
    provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    environ = _container_env("api", SITE | PROVIDERS[provider])
    required = _required_in_signin_mode(environ, monkeypatch)
    assert {"OO_TOKEN_KEYS", "OO_PUBLIC_URL"} <= required  # the check is not vacuous
    references = _compose()["services"]["api"]["environment"]
    for name in required - {"OO_HOST"}:
        # Passed through from .env.local under the same name, not written in the file.
        reference = FROM_ENV_FILE.match(str(references[name]))
        assert reference, name
        assert reference["name"] == name


def test_compose_refuses_to_start_without_a_required_value() -> None:
    full = SITE | PROVIDERS["google"]
    _resolve(_compose(), full)
    for name in SITE:
        with pytest.raises(MissingVariable, match=name):
            _resolve(_compose(), {k: v for k, v in full.items() if k != name})
    # A provider is required, either one: the Google preset or OO_OIDC_PROVIDERS.
    _resolve(_compose(), SITE | PROVIDERS["oidc"])
    with pytest.raises(MissingVariable, match="OO_OIDC_PROVIDERS, or OO_GOOGLE_CLIENT_ID"):
        _resolve(_compose(), SITE)


def test_compose_learner_gets_no_sign_in_or_vault_key(monkeypatch: pytest.MonkeyPatch) -> None:
    environ = _container_env("learner", SITE | PROVIDERS["google"] | PROVIDERS["oidc"])
    assert not set(environ) & (_secret_variables() - {"OO_DATABASE_URL", "OO_REDIS_URL"})
    settings = _settings_from(environ, monkeypatch)
    assert not settings.signin_providers
    LearnerSettings()


def test_compose_migrates_once_before_the_api_and_the_learner_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    migrate = _service("migrate")
    assert migrate["command"] == ["oo", "db", "upgrade"]
    assert migrate["restart"] == "no"
    assert migrate.get("deploy", {}).get("replicas", 1) == 1
    # The api's image: the same code, so the same migrations.
    assert migrate["build"] == _service("api")["build"]
    assert migrate["image"] == _service("api")["image"]
    assert migrate["depends_on"] == {"db": {"condition": "service_healthy"}}
    for name in ("api", "learner", "notifier"):
        assert _service(name)["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }, name
    # The shared settings only, and they make valid settings with the right database.
    environ = _container_env("migrate", SITE | PROVIDERS["google"] | PROVIDERS["oidc"])
    assert not set(environ) & (_secret_variables() - {"OO_DATABASE_URL", "OO_REDIS_URL"})
    assert (
        environ["OO_DATABASE_URL"]
        == _container_env("api", SITE | PROVIDERS["google"])["OO_DATABASE_URL"]
    )
    settings = _settings_from(environ, monkeypatch)
    assert urlsplit(settings.database).hostname == "db"


def test_compose_api_runs_several_workers_and_binds_all_interfaces() -> None:
    service = _service("api")
    command = service["command"]
    workers = int(command[command.index("--workers") + 1]) if "--workers" in command else 1
    assert workers * service.get("deploy", {}).get("replicas", 1) >= 2
    assert service["environment"]["OO_HOST"] == "0.0.0.0"
    assert str(service["environment"]["OO_PORT"]) == str(PORTS["api"])
    assert "refused until sign-in" not in COMPOSE.read_text()


def test_compose_runs_exactly_one_learner_reachable_from_prometheus() -> None:
    service = _service("learner")
    assert service.get("deploy", {}).get("replicas", 1) == 1
    assert service["command"][-2:] == ["--host", "0.0.0.0"]
    # The learner builds Settings too: a non-loopback OO_HOST would stop it at start.
    assert "OO_HOST" not in service["environment"]
    assert str(service["environment"]["OO_LEARNER_PORT"]) == str(PORTS["learner"])


def test_compose_runs_one_notifier_with_the_vault_and_vapid_keys_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = _service("notifier")
    assert service.get("deploy", {}).get("replicas", 1) == 1
    assert service["command"] == ["oo", "notifier", "--host", "0.0.0.0"]
    assert "OO_HOST" not in service["environment"]
    assert str(service["environment"]["OO_NOTIFIER_PORT"]) == str(PORTS["notifier"])
    environ = _container_env("notifier", SITE | PROVIDERS["google"] | PROVIDERS["oidc"])
    secrets = _secret_variables() - {"OO_DATABASE_URL", "OO_REDIS_URL"}
    assert set(environ) & secrets == {"OO_VAULT_KEYS", "OO_VAPID_PRIVATE_KEY"}
    settings = _settings_from(environ, monkeypatch)
    assert not settings.signin_providers
    push = PushSettings(_env_file=None)  # type: ignore[call-arg]
    assert push.private_key == SITE["OO_VAPID_PRIVATE_KEY"]
    assert push.vapid_subject == SITE["OO_VAPID_SUBJECT"]
    # The api gives browsers the same key's public half.
    api = _container_env("api", SITE | PROVIDERS["google"])
    assert api["OO_VAPID_PRIVATE_KEY"] == environ["OO_VAPID_PRIVATE_KEY"]


def test_compose_has_no_literal_secret() -> None:
    secrets = _secret_variables() - {"OO_DATABASE_URL", "OO_REDIS_URL"}  # checked above
    checked = set()
    for name, service in _compose()["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key) or key in secrets:
                match = FROM_ENV_FILE.match(str(value))
                assert match, f"{name}.{key} must come from .env.local"
                assert match["name"] in (key, "POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD")
                checked.add(key)
    assert secrets <= checked, secrets - checked
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
    notifier = f"notifier:{PORTS['notifier']}"
    assert jobs["oo-notifier"]["static_configs"][0]["targets"] == [notifier]
    promtool = shutil.which("promtool")
    if promtool:
        subprocess.run([promtool, "check", "config", str(INFRA / "prometheus.yml")], check=True)


# --- Dockerfiles ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["api", "learner", "notifier"])
def test_dockerfile_exposes_and_checks_its_port(name: str) -> None:
    text = DOCKERFILES[name].read_text()
    assert re.findall(r"^EXPOSE (\d+)$", text, re.MULTILINE) == [str(PORTS[name])]
    (healthcheck,) = re.findall(r"^HEALTHCHECK .*$", text, re.MULTILINE)
    assert _healthcheck_port(healthcheck) == PORTS[name]
    # A numeric non-root user, the one the Kubernetes manifests run as.
    (user,) = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    deployment = _k8s_one("Deployment", f"oo-{name}")
    assert int(user) == deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"] != 0


def _dockerignore_allows(path: str) -> bool:
    """`.dockerignore` semantics for the patterns it uses: the last matching line wins."""
    allowed = True
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated, pattern = line.startswith("!"), line.lstrip("!")
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*", "[^/]*")
        if re.fullmatch(f"{regex}(/.*)?", path):
            allowed = negated
    return allowed


@pytest.mark.parametrize("name", ["api", "learner", "notifier"])
def test_dockerfile_copies_what_the_code_needs_and_no_secret(name: str) -> None:
    text = DOCKERFILES[name].read_text()
    sources = [
        source
        for line in re.findall(r"^COPY (.+)$", text, re.MULTILINE)
        for source in line.split()[:-1]
    ]
    for source in sources:
        assert (ROOT / source).exists(), source
        assert _dockerignore_allows(source), f"{source} is left out of the build context"
    # Every package the project installs, with its data files (the tip catalog, the dashboards).
    pyproject = (ROOT / "pyproject.toml").read_text()
    include = re.search(r"include = \[([^\]]+)\]", pyproject)
    assert include
    for package in re.findall(r'"(\w+)\*"', include.group(1)):
        assert package in sources, f"{DOCKERFILES[name].name} does not copy {package}"
    assert _dockerignore_allows("integrations/data/tips.json")
    if name == "api":
        assert "web" in sources  # the page is served from /app/web
    # Secrets and local state never reach the build context; nothing needs Node at runtime.
    for path in (".env.local", ".venv/bin/python", "data/oo.sqlite3", "tests/oidc/node_modules"):
        assert not _dockerignore_allows(path), path
    assert not re.search(r"\b(node|npm)\b", text)


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
    assert "issue 4" not in (K8S / "api.yaml").read_text()

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


def test_k8s_notifier_is_a_single_replica_with_the_vault_and_vapid_keys_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deployment = _k8s_one("Deployment", "oo-notifier")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    container = _container(deployment)
    assert container["args"] == ["oo", "notifier", "--host", "0.0.0.0"]
    for probe in ("readinessProbe", "livenessProbe"):
        check = container[probe]["httpGet"]
        assert check["path"] == "/health"
        assert _port_number(container, check["port"]) == PORTS["notifier"]
    service = _k8s_one("Service", "oo-notifier")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert {"secretRef": {"name": "oo-api-secrets"}} not in container["envFrom"]
    assert {"secretRef": {"name": "oo-push-secrets"}} in container["envFrom"]
    assert {"secretRef": {"name": "oo-push-secrets"}} in _container(
        _k8s_one("Deployment", "oo-api")
    )["envFrom"]
    every_key = {
        "OO_DATABASE_URL": "postgresql+psycopg://oo:pw@postgres:5432/oo",
        "OO_REDIS_URL": "redis://redis:6379/0",
        **{k: v for k, v in SITE.items() if k.startswith("OO_")},
        **PROVIDERS["google"],
    }
    environ = _pod_environ("oo-notifier", every_key)
    secrets = _secret_variables() - {"OO_DATABASE_URL", "OO_REDIS_URL"}
    assert set(environ) & secrets == {"OO_VAULT_KEYS", "OO_VAPID_PRIVATE_KEY"}
    assert environ["OO_VAULT_KEYS"] == SITE["OO_VAULT_KEYS"]
    settings = _settings_from(environ, monkeypatch)
    assert settings.host == "127.0.0.1"
    assert PushSettings(_env_file=None).private_key == SITE["OO_VAPID_PRIVATE_KEY"]  # type: ignore[call-arg]


def test_k8s_upgrade_job_runs_once_before_the_api_and_the_learner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = _k8s_one("Job", "oo-db-upgrade")
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert job["spec"].get("parallelism", 1) == 1
    assert job["spec"].get("completions", 1) == 1
    assert job["spec"]["backoffLimit"] >= 1
    # A finished Job goes away by itself, so the next release's `kubectl apply` can create it.
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    (container,) = pod["containers"]
    assert container["args"] == ["oo", "db", "upgrade"]
    api = _container(_k8s_one("Deployment", "oo-api"))
    assert container["image"] == api["image"]
    assert container["envFrom"] == [
        {"configMapRef": {"name": "oo-config"}},
        {"secretRef": {"name": "oo-secrets"}},
    ]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    # Every pod of the api and the learner waits for the schema before its process starts.
    for name in ("oo-api", "oo-learner", "oo-notifier"):
        deployment = _k8s_one("Deployment", name)
        (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
        assert init["args"][:3] == ["oo", "db", "wait"], name
        assert init["image"] == _container(deployment)["image"], name
        assert init["envFrom"] == container["envFrom"], name
        assert init["securityContext"]["readOnlyRootFilesystem"] is True, name
    # The Job's settings are valid, the database comes from the shared Secret.
    filled = {
        "OO_DATABASE_URL": "postgresql+psycopg://oo:pw@postgres:5432/oo",
        "OO_REDIS_URL": "redis://redis:6379/0",
    }
    environ: dict[str, str] = dict(_k8s_one("ConfigMap", "oo-config")["data"])
    environ |= {k: filled.get(k, "") for k in _k8s_one("Secret", "oo-secrets")["stringData"]}
    settings = _settings_from(environ, monkeypatch)
    assert urlsplit(settings.database).hostname == "postgres"


def test_k8s_config_flows_through_configmap_and_secret() -> None:
    config = _k8s_one("ConfigMap", "oo-config")
    secret = _k8s_one("Secret", "oo-secrets")
    api_secret = _k8s_one("Secret", "oo-api-secrets")
    assert "OO_HOST" not in config["data"]
    assert not _secret_variables() & set(config["data"])
    assert {"OO_DATABASE_URL", "OO_REDIS_URL"} <= set(secret["stringData"])
    push_secret = _k8s_one("Secret", "oo-push-secrets")
    assert _secret_variables() <= (
        set(secret["stringData"]) | set(api_secret["stringData"]) | set(push_secret["stringData"])
    )
    for name in ("oo-api", "oo-learner"):
        sources = _container(_k8s_one("Deployment", name))["envFrom"]
        assert {"configMapRef": {"name": "oo-config"}} in sources
        assert {"secretRef": {"name": "oo-secrets"}} in sources
    # Only the api reads the sign-in, vault and integration keys.
    assert {"secretRef": {"name": "oo-api-secrets"}} in _container(
        _k8s_one("Deployment", "oo-api")
    )["envFrom"]
    assert {"secretRef": {"name": "oo-api-secrets"}} not in _container(
        _k8s_one("Deployment", "oo-learner")
    )["envFrom"]
    assert {"OO_PUBLIC_URL", "OO_CORS_ORIGINS"} <= set(config["data"])
    assert {f"OO_{n.upper()}" for n in Settings.model_fields if n.startswith("rate_limit_")} <= set(
        config["data"]
    )
    # The ConfigMap's values are valid settings for both processes.
    values = {key.removeprefix("OO_").lower(): value for key, value in config["data"].items()}
    Settings(_env_file=None, **{k: v for k, v in values.items() if k in Settings.model_fields})  # type: ignore[call-arg]
    LearnerSettings(**{k: v for k, v in values.items() if k in LearnerSettings.model_fields})
    namespaces = {d["metadata"].get("namespace") for d in _k8s() if d["kind"] != "Namespace"}
    assert namespaces == {_k8s_one("Namespace", "oo")["metadata"]["name"]}


def test_k8s_secret_template_holds_no_real_value() -> None:
    text = (K8S / "secret.example.yaml").read_text()
    for name in ("oo-secrets", "oo-api-secrets", "oo-push-secrets"):
        secret = _k8s_one("Secret", name)
        assert "data" not in secret
        assert all(value == "" for value in secret["stringData"].values()), secret["stringData"]
        assert f"kubectl -n oo create secret generic {name}" in text


def _pod_environ(deployment: str, filled: Mapping[str, str]) -> dict[str, str]:
    """What a pod's process sees: envFrom in order (later wins), then env; the Secrets' keys
    filled from `filled` (an operator's values), unfilled ones left empty as in the template."""
    container = _container(_k8s_one("Deployment", deployment))
    environ: dict[str, str] = {}
    for source in container["envFrom"]:
        if "configMapRef" in source:
            environ |= _k8s_one("ConfigMap", source["configMapRef"]["name"])["data"]
        else:
            keys = _k8s_one("Secret", source["secretRef"]["name"])["stringData"]
            environ |= {key: filled.get(key, "") for key in keys}
    for variable in container.get("env", []):
        if "value" in variable:
            environ[variable["name"]] = variable["value"]
        else:  # one key of a Secret
            environ[variable["name"]] = filled.get(variable["valueFrom"]["secretKeyRef"]["key"], "")
    return environ


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_k8s_api_pod_settings_validate_in_signin_mode(
    provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    filled = {
        "OO_DATABASE_URL": "postgresql+psycopg://oo:pw@postgres:5432/oo",
        "OO_REDIS_URL": "redis://redis:6379/0",
        **{k: v for k, v in SITE.items() if k.startswith("OO_")},
        **PROVIDERS[provider],
    }
    environ = _pod_environ("oo-api", filled)
    settings = _settings_from(environ, monkeypatch)
    assert settings.host == "0.0.0.0"
    assert settings.signin_providers
    assert settings.signin_token_keys
    assert settings.public_url == _k8s_one("ConfigMap", "oo-config")["data"]["OO_PUBLIC_URL"]
    # Every setting sign-in mode requires reaches the pod from the ConfigMap or a Secret.
    required = _required_in_signin_mode(environ, monkeypatch)
    assert {"OO_TOKEN_KEYS", "OO_PUBLIC_URL"} <= required
    config = _k8s_one("ConfigMap", "oo-config")["data"]
    secrets = set(_k8s_one("Secret", "oo-api-secrets")["stringData"])
    for name in required - {"OO_HOST"}:
        assert name in secrets | set(config), name


def test_k8s_learner_pod_gets_no_sign_in_or_vault_key(monkeypatch: pytest.MonkeyPatch) -> None:
    every_key = {
        "OO_DATABASE_URL": "postgresql+psycopg://oo:pw@postgres:5432/oo",
        "OO_REDIS_URL": "redis://redis:6379/0",
        **{k: v for k, v in SITE.items() if k.startswith("OO_")},
        **PROVIDERS["google"],
    }
    environ = _pod_environ("oo-learner", every_key)
    assert not set(environ) & (_secret_variables() - {"OO_DATABASE_URL", "OO_REDIS_URL"})
    settings = _settings_from(environ, monkeypatch)
    assert not settings.signin_providers
    assert settings.host == "127.0.0.1"


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


# --- the api as a real process ----------------------------------------------------------------


def _oo_environ(tmp_path: Path, **settings: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OO_")}
    environ["PYTHONPATH"] = str(ROOT)
    environ["OO_DATA_DIR"] = str(tmp_path / "data")
    return environ | settings


@pytest.fixture
def oo_api(tmp_path: Path) -> Iterator[Any]:
    """Start `oo api --host 0.0.0.0` with the given settings; stop it afterwards."""
    started: list[subprocess.Popen[str]] = []

    def start(port: int, **settings: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "api", "--host", "0.0.0.0", "--port", str(port)],
            env=_oo_environ(tmp_path, **settings),
            cwd=tmp_path,  # no .env.local of the developer's
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _answers(url: str, process: subprocess.Popen[str]) -> httpx.Response | None:
    if process.poll() is not None:
        _, stderr = process.communicate()
        raise AssertionError(f"oo api exited with {process.returncode}: {stderr[-2000:]}")
    try:
        return httpx.get(url, timeout=2)
    except httpx.TransportError:
        return None


def test_oo_api_serves_on_all_interfaces_in_sign_in_mode(oo_api: Any) -> None:
    port = free_port()
    # Discovery is lazy (at the first sign-in), so a well-formed issuer that does not resolve
    # is enough to start; nobody signs in here.
    process = oo_api(
        port,
        OO_OIDC_PROVIDERS=OIDC_PROVIDERS,
        OO_TOKEN_KEYS=TOKEN_KEY,
        OO_PUBLIC_URL="https://oo.example.test",
        OO_VAULT_KEYS=SITE["OO_VAULT_KEYS"],
    )
    base = f"http://127.0.0.1:{port}"
    health = wait_until(lambda: _answers(f"{base}/health", process), timeout=60, interval=0.2)
    assert health.status_code == 200, health.text
    assert health.json()["role"] == "api"
    providers = httpx.get(f"{base}/auth/providers").json()
    assert providers["local"] is False
    assert [p["name"] for p in providers["providers"]] == ["corp"]
    # Not the local owner: a person's endpoint wants credentials.
    assert httpx.get(f"{base}/v1/me").status_code == 401
    process.terminate()
    stdout, _ = process.communicate(timeout=15)
    assert f"http://0.0.0.0:{port}/" in stdout


def test_oo_api_refuses_all_interfaces_in_local_mode(oo_api: Any) -> None:
    process = oo_api(free_port())
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "`host` '0.0.0.0' is not a loopback address" in stderr
    assert "no sign-in configured" in stderr
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr


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
