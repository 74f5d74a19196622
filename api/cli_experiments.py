"""`oo experiments`: create, list, start, pause, stop, read results and ship, from a terminal.

The commands talk to the database directly (OO_DATABASE_URL, or the embedded SQLite file)
through the same operations as the `/v1/experiments` routes, so they need no running server and
cannot disagree with it. Running servers pick up a started, paused or shipped experiment within
`OO_MODEL_REFRESH_SECONDS`. Tables for people; `--json` prints the API's JSON for scripts.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, cast

import typer
from pydantic import BaseModel
from rich.console import Console

from api.cli_common import Column, Figures, JsonFlag, ready_database
from api.errors import KIND_ANSWERS
from api.schemas.base import SurfaceName
from api.schemas.experiments import (
    ArmIn,
    ExperimentCreate,
    ExperimentPublic,
    ExperimentResultsPublic,
)
from api.services.experiments import Action, create, public, results, transition
from api.services.surfaces import SURFACES, TIPS
from api.settings import Settings
from bandit.errors import DomainError
from bandit.store import Store
from experiments.lifecycle import Experiments
from policies.registry import Registry
from policies.store import PolicyStore

app = typer.Typer(help="Experiments: A/B tests between policies.", no_args_is_help=True)


@dataclass
class Database:
    store: Store
    experiments: Experiments


@contextmanager
def database() -> Iterator[Database]:
    store = Store.connect(ready_database(Settings().database), pool_size=2)
    policy_store = PolicyStore(store.engine)
    registry = Registry(loader=policy_store.get, history=policy_store.versions)
    try:
        yield Database(
            store,
            Experiments(
                store.engine,
                SURFACES,
                lambda policy: registry.find(policy) is not None,
                pin_policy=registry.pin,
            ),
        )
    except DomainError as exc:
        status, _ = KIND_ANSWERS[exc.kind]  # the status the API answers the same refusal with
        typer.echo(f"error ({status}, {exc.target}): {exc.message}", err=True)
        raise typer.Exit(1) from None
    finally:
        store.engine.dispose()


def _json(value: BaseModel | list[ExperimentPublic]) -> None:
    if isinstance(value, list):
        json.dump([v.model_dump(mode="json") for v in value], sys.stdout, indent=2)
    else:
        json.dump(value.model_dump(mode="json"), sys.stdout, indent=2)
    sys.stdout.write("\n")


def _table(experiments: list[ExperimentPublic]) -> None:
    figures = Figures(["name", "surface", "status", "arms (policy × weight)", "started", "shipped"])
    for e in experiments:
        arms = ", ".join(f"{a.name}={a.policy}×{a.weight}" for a in e.arms)
        started = e.started_at.strftime("%Y-%m-%d %H:%M") if e.started_at else "-"
        figures.add_row(e.name, e.surface, e.status, arms, started, e.shipped_arm or "-")
    figures.print()


def _show(experiment: ExperimentPublic, as_json: bool) -> None:
    if as_json:
        _json(experiment)
    else:
        _table([experiment])


def _arm(text: str) -> ArmIn:
    name, sep, rest = text.partition("=")
    policy, _, weight = rest.partition(":")
    if not sep or not name or not policy:
        raise typer.BadParameter(f"`--arm` must be NAME=POLICY[:WEIGHT] (got {text!r})")
    try:
        return ArmIn(name=name, policy=policy, weight=int(weight or "1"))
    except ValueError:
        raise typer.BadParameter(f"`--arm` weight must be an integer (got {weight!r})") from None


@app.command("create")
def create_command(
    name: str,
    arm: Annotated[
        list[str], typer.Option(help="NAME=POLICY[:WEIGHT]; repeat; the first is the control")
    ],
    surface: Annotated[str, typer.Option(help=" or ".join(SURFACES))] = TIPS,
    salt: Annotated[str | None, typer.Option(help="Assignment salt (random by default)")] = None,
    min_units: Annotated[int, typer.Option(help="Units per arm before a verdict")] = 200,
    min_decisions: Annotated[int, typer.Option(help="Decisions per arm before a verdict")] = 1000,
    as_json: JsonFlag = False,
) -> None:
    """Create a draft experiment."""
    if surface not in SURFACES:
        raise typer.BadParameter(f"`--surface` must be one of {list(SURFACES)} (got {surface!r})")
    body = ExperimentCreate(
        name=name,
        surface=cast(SurfaceName, surface),
        arms=[_arm(a) for a in arm],
        salt=salt,
        min_units_per_arm=min_units,
        min_decisions_per_arm=min_decisions,
    )
    with database() as db:
        _show(public(create(db.experiments, body)), as_json)


@app.command("list")
def list_command(as_json: JsonFlag = False) -> None:
    """Every experiment, oldest first."""
    with database() as db:
        experiments = [public(e) for e in db.experiments.list()]
    if as_json:
        _json(experiments)
    else:
        _table(experiments)


def _lifecycle(name: str, action: Action, as_json: bool, arm: str | None = None) -> None:
    with database() as db:
        _show(public(transition(db.experiments, db.store, name, action, arm)), as_json)


@app.command("start")
def start_command(name: str, as_json: JsonFlag = False) -> None:
    """Start (or resume) assigning units to arms."""
    _lifecycle(name, "start", as_json)


@app.command("pause")
def pause_command(name: str, as_json: JsonFlag = False) -> None:
    """Stop assigning for now; the surface serves its default policy meanwhile."""
    _lifecycle(name, "pause", as_json)


@app.command("stop")
def stop_command(name: str, as_json: JsonFlag = False) -> None:
    """End the experiment."""
    _lifecycle(name, "stop", as_json)


@app.command("ship")
def ship_command(
    name: str,
    arm: Annotated[str | None, typer.Option(help="Arm to ship (default: the winner)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Make an arm's policy the surface's default policy."""
    _lifecycle(name, "ship", as_json, arm)


def _ci(low: float, high: float) -> str:
    return f"[{low:+.4f}, {high:+.4f}]"


def _results_table(body: ExperimentResultsPublic, console: Console | None = None) -> None:
    outcome = body.results
    cuped = outcome.cuped
    figures = Figures(
        [
            "arm",
            "policy",
            Column("units", "right"),
            Column("decisions", "right"),
            "mean reward (95% CI)",
            *(("CUPED-adjusted (95% CI)",) if cuped is not None else ()),
            "lift vs control (CI)",
            "Welch p",
            "always-valid p",
            "guardrails",
            "verdict",
        ],
        title=f"{body.experiment} ({body.status}, {body.days:.1f} days)",
    )
    for model, arm in zip(body.arms, outcome.arms, strict=True):
        mean = "-" if arm.mean is None else f"{arm.mean:.4f}"
        if arm.mean_ci is not None:
            mean += f" {_ci(arm.mean_ci.low, arm.mean_ci.high)}"
        adjusted = "-" if arm.adjusted_mean is None else f"{arm.adjusted_mean:.4f}"
        if arm.adjusted_mean_ci is not None:
            adjusted += f" {_ci(arm.adjusted_mean_ci.low, arm.adjusted_mean_ci.high)}"
        lift = welch = always = "-"
        if arm.comparison is not None:
            c = arm.comparison
            lift = f"{c.difference:+.4f} {_ci(c.difference_ci.low, c.difference_ci.high)}"
            welch = f"{c.p_value:.3g}"
        if arm.sequential is not None:
            always = f"{arm.sequential.always_valid_p:.3g}"
        breached = [g.metric for g in arm.guardrails if g.breached]
        guardrails = ("breached: " + ", ".join(breached)) if breached else "ok"
        verdict = "-" if arm.verdict is None else str(arm.verdict)
        if arm.provisional and not arm.is_control:
            verdict += " (provisional figures)"
        figures.add_row(
            arm.name + (" (control)" if arm.is_control else ""),
            model.policy,
            str(arm.units),
            str(arm.decisions),
            mean,
            *((adjusted,) if cuped is not None else ()),
            lift,
            welch,
            always,
            "-" if arm.is_control else guardrails,
            verdict,
        )
    console = console or Console()
    figures.print(console)
    if body.provisional:
        console.print(
            f"provisional: lift, tests and guardrails are shown before every arm has "
            f"{body.min_units_per_arm} units and {body.min_decisions_per_arm} decisions; "
            "the verdict waits for those floors"
        )
    if cuped is not None:
        reduction = ", ".join(f"{r:.0%}" for r in cuped.variance_reduction)
        console.print(
            f"CUPED on pre-period reward: theta={cuped.theta:.3g}, variance reduction per arm "
            f"{reduction}; lift and tests use the adjusted metric"
        )
    srm = outcome.srm
    console.print(
        f"sample ratio: {list(srm.observed)} p={srm.p_value:.3g}"
        + (" [bold red]MISMATCH[/]" if srm.flagged else " ok")
        + (f"; winner: {body.winner}" if body.winner else "")
    )


@app.command("results")
def results_command(name: str, as_json: JsonFlag = False) -> None:
    """Per arm: units, decisions, mean reward with CI, lift, tests, guardrails, SRM, verdict."""
    with database() as db:
        body = results(db.store, db.experiments.get(name))
    if as_json:
        _json(body)
    else:
        _results_table(body)
