"""`oo search-policies`: try a grid of VW configurations on the decision log, from the shell.

Reads the database directly, like `oo evaluate` (or a DSJSON file with `--log FILE`). A progress
bar goes to standard error; the ranked table (or `--json`) to standard output. Promoting the
winner to a registered policy is `POST /v1/policy-searches/{id}/promote` on a server.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated

import typer

from api.cli_common import (
    BatchOption,
    Column,
    DatabaseOption,
    EndOption,
    Figures,
    JsonFlag,
    RewardModelOption,
    StartOption,
    SurfaceOption,
    counting_progress,
    parse_window,
    ready_database,
    reward_model_name,
)
from api.evaluation_wire import search_result
from api.settings import Settings
from bandit.store import Store
from rewards.ope import search
from rewards.ope.grid import Budget, Exploration, Grid, SearchError
from rewards.ope.logged import Log
from rewards.ope.results import EstimatorName


def _learning_rate(text: str) -> float | None:
    if text == "default":
        return None
    try:
        return float(text)
    except ValueError:
        raise typer.BadParameter(
            f"must be a number or 'default' (got {text!r})", param_hint="--learning-rate"
        ) from None


def _interactions(text: str) -> tuple[str, ...]:
    return () if text in ("", "none") else tuple(p for p in text.split(",") if p)


def search_policies(
    surface: SurfaceOption = None,
    start: StartOption = None,
    end: EndOption = None,
    model_key: Annotated[
        str | None, typer.Option(help="Only decisions logged by this model key")
    ] = None,
    exploration: Annotated[
        list[str] | None,
        typer.Option(
            help="epsilon=P, softmax=LAMBDA, squarecb[=GAMMA_SCALE], bag=N, cover=N, regcb, "
            "regcbopt; repeat it. Default: epsilon=0.05, epsilon=0.2, squarecb, softmax=10"
        ),
    ] = None,
    interactions: Annotated[
        list[str] | None,
        typer.Option(
            help="One set of -q pairs, comma-separated ('::', 'ui,ua') or 'none'; repeat it. "
            "Default: none, ::"
        ),
    ] = None,
    learning_rate: Annotated[
        list[str] | None,
        typer.Option(help="A learning rate or 'default'; repeat it. Default: default, 0.1"),
    ] = None,
    cb_type: Annotated[
        list[str] | None, typer.Option(help="ips, dr, mtr or dm; repeat it. Default: mtr, ips")
    ] = None,
    max_candidates: Annotated[int | None, typer.Option(min=1, help="Budget: candidates")] = 16,
    max_seconds: Annotated[float | None, typer.Option(min=0.001, help="Budget: seconds")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Fixes the order the grid is tried in")] = 0,
    estimator: Annotated[str, typer.Option(help="Choose the winner on ips, snips or dr")] = "ips",
    reward_model: RewardModelOption = "action-mean",
    log: Annotated[
        Path | None,
        typer.Option(
            "--log", exists=True, dir_okay=False, help="Search on a DSJSON file, not the database"
        ),
    ] = None,
    database_url: DatabaseOption = None,
    batch: BatchOption = 1000,
    as_json: JsonFlag = False,
) -> None:
    """Replay a grid of VW configurations over the log and rank them (auto-optimize rule)."""
    since, until = parse_window(start, end)
    if estimator not in ("ips", "snips", "dr"):
        raise typer.BadParameter(
            f"must be ips, snips or dr (got {estimator!r})", param_hint="--estimator"
        )
    model = reward_model_name(reward_model)
    defaults = Grid()
    try:
        grid = Grid(
            explorations=tuple(Exploration.parse(e) for e in exploration)
            if exploration
            else defaults.explorations,
            interactions=tuple(_interactions(i) for i in interactions)
            if interactions
            else defaults.interactions,
            learning_rates=tuple(_learning_rate(r) for r in learning_rate)
            if learning_rate
            else defaults.learning_rates,
            cb_types=tuple(cb_type) if cb_type else defaults.cb_types,  # type: ignore[arg-type]
        )
        budget = Budget(max_candidates, max_seconds)
    except SearchError as exc:
        hint = {"explorations": "exploration", "learning_rates": "learning-rate"}.get(
            exc.target, exc.target.replace("_", "-").rstrip("s")
        )
        raise typer.BadParameter(str(exc), param_hint=f"--{hint}") from None
    chosen: EstimatorName = estimator  # type: ignore[assignment]
    store = Store.connect(ready_database(database_url or Settings().database), pool_size=1)
    try:
        if log is not None:
            source = Log.of_dsjson(log, batch=batch)
        else:
            source = Log.of_store(
                store, surface=surface, model_key=model_key, start=since, end=until, batch=batch
            )
        with counting_progress(disable=as_json) as progress:
            task = progress.add_task("searching", total=None)

            def on_progress(now: search.Progress) -> None:
                progress.update(
                    task,
                    completed=now.events_done,
                    total=now.events_total,
                    description=f"candidate {min(now.candidates_done + 1, now.candidates_planned)}"
                    f"/{now.candidates_planned}",
                )

            result = search.search(
                source,
                grid,
                budget=budget,
                seed=seed,
                estimator=chosen,
                reward_model_name=model,
                on_progress=on_progress,
            )
    finally:
        store.engine.dispose()
    if as_json:
        json.dump(search_result(result), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    _print(result)


def _num(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else "-"


_STOPPED = {
    "exhausted": "every candidate of the grid was tried",
    "max_candidates": "stopped at --max-candidates",
    "max_seconds": "stopped at --max-seconds (the running candidate was abandoned)",
}


def _print(result: search.SearchResult) -> None:
    level = f"{(1 - result.alpha) * 100:g}%"
    figures = Figures(
        [
            Column("#", "right"),
            "VW arguments",
            *(
                Column(c, "right")
                for c in (result.estimator, f"{level} CI", "ESS", "overlap", "seconds")
            ),
            "verdict",
        ],
        title=f"{len(result.trials)} of {result.grid_size} candidates on {result.n:,} logged "
        f"events, best {result.estimator.upper()} first",
        caption=f"{_STOPPED[result.stopped]}; {result.seconds:.1f} s. Winner: mean beats the "
        f"online policy and lower {level} bound above the online policy's.",
    )
    winner = result.winner
    if result.online is not None:
        e = result.online.estimate(result.estimator)
        figures.add_row(
            "",
            "online (logged)",
            _num(e.value),
            f"{_num(e.gaussian.low)}-{_num(e.gaussian.high)}",
            _num(result.online.diagnostics.weights.ess, 0),
            "",
            "",
            "reference",
            end_section=True,
        )
    for trial in [*result.ranked, *(t for t in result.trials if t.result is None)]:
        if trial.result is None:
            figures.add_row(
                f"#{trial.candidate.index}",
                trial.candidate.args,
                "-",
                "",
                "",
                "",
                "",
                f"failed: {trial.error}",
            )
            continue
        e = trial.result.estimate(result.estimator)
        share = trial.result.diagnostics.low_overlap_share
        verdict = (
            "[green]winner[/]"
            if trial is winner
            else ("recommend" if trial.result.verdict.recommended else "no")
        )
        figures.add_row(
            f"#{trial.candidate.index}",
            trial.candidate.args,
            _num(e.value),
            f"{_num(e.gaussian.low)}-{_num(e.gaussian.high)}",
            _num(trial.result.diagnostics.weights.ess, 0),
            f"{1 - share:.0%}" if math.isfinite(share) else "",
            f"{trial.seconds:.1f}",
            verdict,
        )
    figures.print()
    typer.echo(
        f"winner: #{winner.candidate.index} {winner.candidate.args}"
        if winner is not None
        else "no candidate beats the online policy by the auto-optimize rule"
    )
