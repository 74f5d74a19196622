"""`oo evaluate`: counterfactual evaluation of policies over the decision log, from the shell.

Reads the database directly (`--database-url`, OO_DATABASE_URL, or the embedded SQLite file), so
it needs no running server; with `--log FILE` it evaluates an imported DSJSON file instead. A
progress bar goes to standard error; the table (or `--json`) to standard output.
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
from api.evaluation_wire import evaluation_result
from api.services.policies import offline_registry
from api.settings import Settings
from bandit.store import Store
from rewards.ope.errors import EvaluationError
from rewards.ope.logged import Log
from rewards.ope.results import Evaluation
from rewards.ope.runs import evaluate_log
from rewards.ope.targets import DEFAULT_POLICIES, resolve


def evaluate(
    surface: SurfaceOption = None,
    start: StartOption = None,
    end: EndOption = None,
    policy: Annotated[
        list[str] | None,
        typer.Option(
            "--policy",
            help="baseline, random or a registered policy; repeat it. Default: baseline, random",
        ),
    ] = None,
    model_key: Annotated[
        str | None, typer.Option(help="Only decisions logged by this model key")
    ] = None,
    reward_model: RewardModelOption = "action-mean",
    log: Annotated[
        Path | None,
        typer.Option(
            "--log", exists=True, dir_okay=False, help="Evaluate a DSJSON file, not the database"
        ),
    ] = None,
    database_url: DatabaseOption = None,
    batch: BatchOption = 1000,
    as_json: JsonFlag = False,
) -> None:
    """Estimate what policies would have earned on the logged decisions (IPS, SNIPS, DR)."""
    since, until = parse_window(start, end)
    model = reward_model_name(reward_model)
    names = policy or list(DEFAULT_POLICIES)
    store = Store.connect(ready_database(database_url or Settings().database), pool_size=1)
    try:
        registry = offline_registry(store.engine)
        try:
            targets = resolve(names, registry)
        except EvaluationError as exc:
            raise typer.BadParameter(str(exc), param_hint="--policy") from None
        with counting_progress(disable=as_json) as progress:
            task = progress.add_task("evaluating", total=None)

            def on_progress(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            if log is not None:
                source = Log.of_dsjson(log, batch=batch)
            else:
                source = Log.of_store(
                    store, surface=surface, model_key=model_key, start=since, end=until, batch=batch
                )
            result = evaluate_log(source, targets, reward_model_name=model, on_progress=on_progress)
    finally:
        store.engine.dispose()
    if as_json:
        json.dump(evaluation_result(result), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    _print(result)


def _num(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else "-"


_SHORT = {"gaussian": "", "cressie_read": "CR", "bernstein": "EB"}


def _print(result: Evaluation) -> None:
    level = f"{(1 - result.alpha) * 100:g}%"
    figures = Figures(
        [
            "policy",
            "est.",
            *(Column(c, "right") for c in ("value", f"{level} CI", "2nd CI", "ESS", "overlap")),
            "verdict",
        ],
        title=f"{result.n:,} logged events, oldest first",
        caption=f"{level} intervals: Gaussian, then CR (Cressie-Read) or EB (empirical "
        f"Bernstein). Overlap: target mass on well-logged candidates. Verdict on "
        f"{result.verdict_estimator.upper()}.",
    )
    for p in result.policies:
        w = p.diagnostics.weights
        share = p.diagnostics.low_overlap_share
        for i, e in enumerate(p.estimates):
            first = i == 0
            verdict = ""
            if first:
                verdict = (
                    "reference"
                    if p.verdict.recommended is None
                    else ("[green]recommend[/]" if p.verdict.recommended else "no")
                )
            figures.add_row(
                p.name if first else "",
                e.estimator,
                _num(e.value),
                f"{_num(e.gaussian.low)}-{_num(e.gaussian.high)}",
                f"{_SHORT[e.second_method]} {_num(e.second.low)}-{_num(e.second.high)}",
                _num(w.ess, 0) if first else "",
                f"{1 - share:.0%}" if first and math.isfinite(share) else "",
                verdict,
                end_section=i == len(p.estimates) - 1,
            )
    figures.print()
    best = result.recommended
    typer.echo(
        f"recommended: {', '.join(best)}"
        if best
        else "no candidate beats the online policy by the auto-optimize rule"
    )
