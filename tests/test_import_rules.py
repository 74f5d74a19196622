"""The import rules of docs/architecture.md, checked on the source (every import statement,
also those inside functions and `TYPE_CHECKING` blocks):

1. Packages import downward only. From the top:
   `api` (the front door: HTTP, the `oo` commands, every process's start) →
   `dashboards` (pages `api` renders), `notifier` (Web Push: the outbox `api` fills, the loop
   `oo notifier` runs), side by side →
   `experiments`, `rewards`, `integrations`, `policies` (the domain, side by side: none imports
   another) → `bandit` (the decision core).
2. Nothing imports `api`: it is the top.
3. No route module imports another route module (`api/routers/*`): what two routes share is a
   service (`api/services/*`) or a dependency (`api/deps.py`).
4. The service layer never imports a route.
5. The command line (`api/cli*.py`) never imports a route, nor another command module's
   private (`_underscored`) names: it calls the services, as the routes do.

Tests and benchmarks are outside the rules (they may reach anything they measure).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LAYERS: dict[str, int] = {
    "bandit": 0,
    "policies": 1,
    "experiments": 1,
    "rewards": 1,
    "integrations": 1,
    "dashboards": 2,
    "notifier": 2,
    "api": 3,
}
"""A package may import its own modules and any package of a lower layer, nothing else."""

PACKAGES = [name for name in LAYERS if (ROOT / name / "__init__.py").exists()]


@dataclass(frozen=True, slots=True)
class Import:
    source: str
    """The importing module, dotted: `api.routers.tips`."""
    line: int
    module: str
    """The imported module, dotted and absolute."""
    names: tuple[str, ...]
    """For `from module import a, b`: (a, b); empty for `import module`."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> Iterator[Import]:
    """Every import in the module at `path`."""
    code = path.read_text(encoding="utf-8")
    return imports_in(module_name(path), code, package=path.name == "__init__.py")


def imports_in(source: str, code: str, *, package: bool = False) -> Iterator[Import]:
    """Every import in `code`, the module `source`; relative imports made absolute."""
    home = source if package else source.rpartition(".")[0]
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(source, node.lineno, alias.name, ())
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = home.split(".")
                base = parts[: len(parts) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield Import(source, node.lineno, module, tuple(a.name for a in node.names))


def targets(found: Import) -> list[str]:
    """The modules an import reaches: `from api import errors` reaches `api.errors` too."""
    return [found.module, *(f"{found.module}.{name}" for name in found.names)]


def all_imports() -> list[Import]:
    return [
        found
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for found in imports(path)
    ]


def top(module: str) -> str:
    return module.split(".")[0]


def is_route(module: str) -> bool:
    return module.startswith("api.routers.") and module != "api.routers.__init__"


def is_cli(module: str) -> bool:
    return module == "api.cli" or module.startswith("api.cli_")


def layer_violations(found: Import) -> list[str]:
    own = top(found.source)
    theirs = top(found.module)
    if theirs == own or theirs not in LAYERS:
        return []  # itself, the standard library or a third party
    if LAYERS[theirs] < LAYERS[own]:
        return []
    return [
        f"{found.source}:{found.line} imports {found.module}: `{own}` may import only "
        f"packages below it ({', '.join(p for p, n in LAYERS.items() if n < LAYERS[own])})"
    ]


def route_violations(found: Import) -> list[str]:
    reached = [t for t in targets(found) if is_route(t)]
    if not reached:
        return []
    who = found.source
    if is_route(who):
        return [f"{who}:{found.line} imports the route module {reached[0]}: share a service"]
    if who.startswith("api.services"):
        return [f"{who}:{found.line}: a service imports the route module {reached[0]}"]
    if is_cli(who):
        return [f"{who}:{found.line}: the command line imports the route module {reached[0]}"]
    return []


def cli_violations(found: Import) -> list[str]:
    if not (is_cli(found.source) and is_cli(found.module) and found.module != found.source):
        return []
    private = [name for name in found.names if name.startswith("_")]
    return [
        f"{found.source}:{found.line} imports {found.module}.{name}, another command's "
        "private helper: move it to a service"
        for name in private
    ]


def test_the_packages_are_found() -> None:
    assert {"bandit", "policies", "experiments", "rewards", "integrations", "api"} <= set(PACKAGES)
    assert len(all_imports()) > 500


def test_packages_import_downward_only() -> None:
    found = [v for i in all_imports() for v in layer_violations(i)]
    assert not found, "\n".join(found)


def test_nothing_imports_api() -> None:
    found = [
        f"{i.source}:{i.line} imports {i.module}"
        for i in all_imports()
        if top(i.module) == "api" and top(i.source) != "api"
    ]
    assert not found, "\n".join(found)


def test_routes_are_imported_by_the_app_only() -> None:
    found = [v for i in all_imports() for v in route_violations(i)]
    assert not found, "\n".join(found)


def test_commands_share_services_not_private_helpers() -> None:
    found = [v for i in all_imports() for v in cli_violations(i)]
    assert not found, "\n".join(found)


# --- the checks themselves -------------------------------------------------------------------


def _imports_of(source: str, code: str) -> list[Import]:
    return list(imports_in(source, code))


@pytest.mark.parametrize(
    ("source", "code", "broken"),
    [
        ("bandit.learner", "from policies.registry import Registry", True),
        ("experiments.lifecycle", "import policies.spec", True),
        ("integrations.context", "from rewards import evaluation", True),
        ("dashboards.analysis", "from api.schemas import Instant", True),
        ("policies.registry", "from bandit.model import Model", False),
        ("dashboards.analysis", "from rewards.evaluation import Evaluation", False),
        ("api.routers.tips", "from integrations.context import build_context", False),
        ("notifier.worker", "def f():\n    from api.services import process\n", True),
    ],
)
def test_layers_are_checked(source: str, code: str, broken: bool) -> None:
    found = _imports_of(source, code)
    assert bool([v for i in found for v in layer_violations(i)]) == broken


@pytest.mark.parametrize(
    ("source", "code", "broken"),
    [
        ("api.routers.analysis", "from api.routers.evaluations import JobsDep", True),
        ("api.routers.analysis", "from api.routers import evaluations", True),
        ("api.routers.analysis", "from . import evaluations", True),
        ("api.services.experiments", "from api.routers.experiments import public", True),
        ("api.cli_experiments", "from api.routers import experiments", True),
        ("api.app", "from api.routers import tips", False),
        ("api.routers.analysis", "from api.services.evaluations import Job", False),
    ],
)
def test_route_imports_are_checked(source: str, code: str, broken: bool) -> None:
    found = _imports_of(source, code)
    assert bool([v for i in found for v in route_violations(i)]) == broken


@pytest.mark.parametrize(
    ("source", "code", "broken"),
    [
        ("api.cli_search", "from api.cli_evaluate import _file_events", True),
        ("api.cli", "from api.cli_search import search_policies", False),
        ("api.cli_search", "from api.cli_common import parse_moment", False),
    ],
)
def test_command_imports_are_checked(source: str, code: str, broken: bool) -> None:
    found = _imports_of(source, code)
    assert bool([v for i in found for v in cli_violations(i)]) == broken
