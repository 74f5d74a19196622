"""Only `bandit` names the decision log's tables; every other package calls `bandit.store.Store`.

The check reads the source of every package but `bandit` (tests and benchmarks may seed and
measure the tables directly) and refuses: importing the table classes from `bandit.tables`,
importing any module inside `bandit.store` rather than the package itself (its tables live in
`bandit.store.rows`), and SQL text that reads or writes `decisions`, `rewards` or
`model_snapshots` or builds or looks up a table object for them. Column types
(`bandit.tables.UTCDateTime`, and its reader of SQLite's text) are shared and allowed.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OWNER = "bandit"
NOT_SOURCE = {"tests", "bench"}
"""Tests seed the log and benchmarks measure baselines against the bare tables."""
SCHEMA_HOME = ("api", "db")
"""The schema's home (`api/db`: every table in one metadata, and the migrations that create
each table by name) is the schema's, not a package's."""
SHARED_FROM_TABLES = {"UTCDateTime", "utc_from_sqlite"}
TABLES = ("decisions", "rewards", "model_snapshots")
STORE_MODULES = {path.stem for path in (ROOT / OWNER / "store").glob("*.py")} - {"__init__"}
SQL = re.compile(rf"\b(FROM|JOIN|INTO|UPDATE|TABLE)\s+({'|'.join(TABLES)})\b")


def violations(source: str) -> list[str]:
    """What in `source` (one module outside `bandit`) names the decision log's tables."""
    tree = ast.parse(source)
    docstrings = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            if node.module == "bandit.tables":
                found += [
                    f"line {node.lineno}: imports {alias.name} from bandit.tables"
                    for alias in node.names
                    if alias.name not in SHARED_FROM_TABLES
                ]
            elif node.module.startswith("bandit.store."):
                found.append(f"line {node.lineno}: imports from {node.module}")
            elif node.module == "bandit" and any(a.name == "tables" for a in node.names):
                found.append(f"line {node.lineno}: imports bandit.tables")
            elif node.module == "bandit.store":
                found += [
                    f"line {node.lineno}: imports bandit.store.{alias.name}"
                    for alias in node.names
                    if alias.name in STORE_MODULES
                ]
        elif isinstance(node, ast.Import):
            found += [
                f"line {node.lineno}: imports {alias.name}"
                for alias in node.names
                if alias.name == "bandit.tables" or alias.name.startswith("bandit.store.")
            ]
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and (match := SQL.search(node.value))
        ):
            found.append(f"line {node.lineno}: SQL names the {match.group(2)} table")
        elif isinstance(node, ast.Call) and _names_table(node):
            found.append(f"line {node.lineno}: builds a table object for {TABLES}")
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "tables"
            and isinstance(node.slice, ast.Constant)
            and node.slice.value in TABLES
        ):
            found.append(f"line {node.lineno}: looks up {node.slice.value} in a metadata")
    return found


def _names_table(call: ast.Call) -> bool:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    first = call.args[0] if call.args else None
    return name in ("table", "Table") and isinstance(first, ast.Constant) and first.value in TABLES


def source_files() -> list[Path]:
    packages = [
        path.parent
        for path in ROOT.glob("*/__init__.py")
        if path.parent.name not in {OWNER, *NOT_SOURCE}
    ]
    return sorted(
        path
        for package in packages
        for path in package.rglob("*.py")
        if path.relative_to(ROOT).parts[:2] != SCHEMA_HOME
    )


def test_no_package_but_bandit_names_the_decision_log_tables() -> None:
    files = source_files()
    # The packages that used to query the log themselves are among those checked.
    checked = {path.relative_to(ROOT).as_posix() for path in files}
    assert {
        "experiments/results.py",
        "dashboards/experiments.py",
        "integrations/personal_data.py",
        "integrations/profiles.py",
    } <= checked
    found = {
        path.relative_to(ROOT).as_posix(): problems
        for path in files
        if (problems := violations(path.read_text(encoding="utf-8")))
    }
    assert found == {}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from bandit.tables import DecisionRow\n", "imports DecisionRow from bandit.tables"),
        ("from bandit.tables import UTCDateTime, RewardRow\n", "imports RewardRow"),
        ("from bandit.store.rows import decisions\n", "imports from bandit.store.rows"),
        ("import bandit.store.writes\n", "imports bandit.store.writes"),
        ("from bandit import tables\n", "imports bandit.tables"),
        ("from bandit.store import Store, rows\n", "imports bandit.store.rows"),
        ('Q = "SELECT chosen_action FROM decisions WHERE principal = %s"\n', "decisions table"),
        ('Q = "UPDATE rewards SET value = 1"\n', "rewards table"),
        ('t = sa.table("model_snapshots")\n', "builds a table object"),
        ('t = SQLModel.metadata.tables["decisions"]\n', "looks up decisions in a metadata"),
    ],
)
def test_the_check_catches_each_way_of_naming_a_table(source: str, expected: str) -> None:
    (problem,) = violations(source)
    assert expected in problem


@pytest.mark.parametrize(
    "source",
    [
        "from bandit.tables import UTCDateTime\n",
        "from bandit.store import LoggedDecision, Store\n",
        '"""Learns from rewards; reads FROM decisions in prose only."""\n',
        'label = "decisions"\n',
    ],
)
def test_the_check_allows_the_facade_shared_types_and_prose(source: str) -> None:
    assert violations(source) == []
