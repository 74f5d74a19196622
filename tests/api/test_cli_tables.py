"""CLI tables stay readable in an 80-column terminal: a table when it fits, one block per row
when it does not, never a cell cut to "0.41…" (api.cli_common.Figures)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from api.cli import app as cli
from api.cli_common import Column, Figures
from bandit.store import Store
from tests.conftest import Backend
from tests.rewards.synthetic import write_log
from tests.schema import migrated

WIDTHS = (80, 220)


def _figures() -> Figures:
    figures = Figures(
        ["arm", Column("units", "right"), "mean reward (95% CI)", "lift vs control (CI)"],
        title="an experiment",
        caption="a caption",
    )
    figures.add_row("control", "1200", "0.4123 [+0.3911, +0.4335]", "-")
    figures.add_row("treatment", "1180", "0.4410 [+0.4198, +0.4622]", "+0.0287 [-0.0014, +0.0588]")
    figures.add_row("", "", "", "second line of the treatment")
    return figures


def _printed(figures: Figures, width: int) -> str:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    figures.print(console)
    return console.export_text()


def test_a_table_that_fits_is_printed_as_a_table() -> None:
    out = _printed(_figures(), 200)
    header = next(line for line in out.splitlines() if "arm" in line and "units" in line)
    assert "lift vs control (CI)" in header
    assert "+0.0287 [-0.0014, +0.0588]" in out


def test_a_narrow_terminal_folds_one_block_per_row_and_cuts_nothing() -> None:
    out = _printed(_figures(), 60)
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 60
    assert "…" not in out
    assert any("mean reward (95% CI)  0.4123 [+0.3911, +0.4335]" in line for line in lines)
    # the treatment's block: its name, then one figure per line, the continuation row after
    block = out[out.index("treatment") :]
    assert re.search(r"units\s+1180", block)
    assert block.index("lift vs control") < block.index("second line of the treatment")
    assert "a caption" in out


def test_cells_must_match_the_columns() -> None:
    with pytest.raises(ValueError, match="`cells` must hold 4 values"):
        _figures().add_row("only", "three", "cells")


def _check(output: str, width: int) -> None:
    assert "…" not in output
    assert max(len(line) for line in output.splitlines()) <= width


@pytest.mark.parametrize("width", WIDTHS)
def test_evaluate_and_search_print_every_figure_whole(
    backend: Backend, tmp_path: Path, width: int
) -> None:
    if backend.name != "embedded":
        pytest.skip("the CLI reads whichever database it is given; one backend is enough")
    url = migrated(f"sqlite:///{tmp_path / 'tables.sqlite3'}")
    store = Store.connect(url, pool_size=1)
    write_log(store, 400, seed=31)
    store.engine.dispose()
    env = {"OO_DATABASE_URL": url, "COLUMNS": str(width)}
    runner = CliRunner()

    evaluated = runner.invoke(cli, ["evaluate", "--policy", "baseline"], env=env)
    assert evaluated.exit_code == 0, evaluated.output
    _check(evaluated.stdout, width)
    assert re.search(r"\d\.\d{3}-\d\.\d{3}", evaluated.stdout)  # a whole interval
    assert "CR " in evaluated.stdout and "reference" in evaluated.stdout

    searched = runner.invoke(
        cli,
        [
            *("search-policies", "--exploration", "epsilon=0.05", "--learning-rate", "default"),
            *("--cb-type", "mtr", "--interactions", "::"),
        ],
        env=env,
    )
    assert searched.exit_code == 0, searched.output
    _check(searched.stdout, width)
    assert "--cb_explore_adf" in searched.stdout and "online (logged)" in searched.stdout


@pytest.mark.parametrize("width", WIDTHS)
def test_logs_import_summary_fits(backend: Backend, tmp_path: Path, width: int) -> None:
    if backend.name != "embedded":
        pytest.skip("files need no database backend")
    url = migrated(f"sqlite:///{tmp_path / 'import.sqlite3'}")
    store = Store.connect(url, pool_size=1)
    write_log(store, 50, seed=32)
    store.engine.dispose()
    log = tmp_path / "log.json"
    runner = CliRunner()
    exported = runner.invoke(cli, ["logs", "export", "--out", str(log), "--database-url", url])
    assert exported.exit_code == 0, exported.output
    summary = runner.invoke(cli, ["logs", "import", str(log)], env={"COLUMNS": str(width)})
    assert summary.exit_code == 0, summary.output
    _check(summary.stdout, width)
    assert re.search(r"actions per event \(min / mean / max\)\W+\d+ / [\d.]+ / \d+", summary.stdout)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_keys_table_keeps_ids_and_dates_whole(
    backend: Backend, tmp_path: Path, width: int
) -> None:
    if backend.name != "embedded":
        pytest.skip("the CLI reads whichever database it is given; one backend is enough")
    env = {"OO_DATABASE_URL": migrated(f"sqlite:///{tmp_path / 'keys.sqlite3'}")}
    runner = CliRunner()
    for name in ("the billing app of the accounting department", "ops"):
        made = runner.invoke(cli, ["keys", "create", "--name", name, "--role", "analyst"], env=env)
        assert made.exit_code == 0, made.output
    listed = runner.invoke(cli, ["keys", "list"], env={**env, "COLUMNS": str(width)})
    assert listed.exit_code == 0, listed.output
    _check(listed.stdout, width)
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", listed.stdout)  # a whole date
    assert "the billing app of the accounting department" in " ".join(listed.stdout.split())
