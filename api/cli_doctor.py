"""`oo doctor`: is it learning? The checkup of `GET /v1/diagnostics`, from the shell.

Reads the database directly (`--database-url`, OO_DATABASE_URL or the embedded SQLite file),
so it needs no running server. Progress goes to standard error; the figures and the warnings
(or `--json`, the API's document) to standard output.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from pydantic import TypeAdapter
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding

from api.cli_common import (
    Column,
    DatabaseOption,
    EndOption,
    Figures,
    JsonFlag,
    StartOption,
    counting_progress,
    parse_moment,
    ready_database,
)
from api.diagnostics import MAX_SAMPLE, MIN_SAMPLE, WindowError, checkup, window
from api.services.policies import offline_registry
from api.services.surfaces import SURFACES
from api.settings import Settings
from bandit.events import utcnow
from bandit.store import Store
from rewards.doctor import DEFAULT_SAMPLE, Diagnosis, ValueEstimate


def doctor(
    surface: Annotated[str, typer.Option(help="The surface to check: tips or personalizer")],
    start: StartOption = None,
    end: EndOption = None,
    sample: Annotated[
        int,
        typer.Option(
            min=MIN_SAMPLE,
            max=MAX_SAMPLE,
            help="Decisions read at most for exploration, estimates and feature checks",
        ),
    ] = DEFAULT_SAMPLE,
    database_url: DatabaseOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Is it learning? Reward shares, exploration, the model's age, estimates and warnings
    that name the feature at fault and what to do (default window: the last 24 hours)."""
    if surface not in SURFACES:
        raise typer.BadParameter(
            f"must be one of {', '.join(SURFACES)} (got {surface!r})", param_hint="--surface"
        )
    now = utcnow()
    try:
        since, until = window(parse_moment(start, "start"), parse_moment(end, "end"), now)
    except WindowError as exc:
        raise typer.BadParameter(str(exc), param_hint=f"--{exc.target}") from None
    store = Store.connect(ready_database(database_url or Settings().database), pool_size=1)
    try:
        registry = offline_registry(store.engine)
        with counting_progress(disable=as_json) as progress:
            task = progress.add_task("reading the log", total=None)
            diagnosis = checkup(
                store,
                registry,
                surface,
                start=since,
                end=until,
                now=now,
                sample=sample,
                on_progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
    finally:
        store.engine.dispose()
    if as_json:
        sys.stdout.write(TypeAdapter(Diagnosis).dump_json(diagnosis, indent=2).decode())
        sys.stdout.write("\n")
        return
    report(diagnosis, Console())


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never published"
    hours = seconds / 3600
    if hours < 1:
        return f"{seconds / 60:.0f} min"
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def report(d: Diagnosis, console: Console) -> None:
    """The figures, the models and the warnings, readable at any width."""
    figures = Figures(
        ["figure", Column("value", "right")],
        title=f"{d.surface}: {d.start:%Y-%m-%d %H:%M} to {d.end:%Y-%m-%d %H:%M} UTC",
    )
    estimates = [
        (name, e)
        for name, e in (("online (logged policy)", d.online), ("baseline (first)", d.baseline))
        if e is not None
    ]
    rows = [
        ("decisions", f"{d.decisions:,}"),
        ("read for the sample", f"{d.sampled:,}"),
        ("activated", f"{d.activated:,}"),
        ("rewarded in the window", _share(d.rewarded_share)),
        ("learned the default reward", _share(d.default_reward_share)),
        ("rewarded late (never learned)", _share(d.late_reward_share)),
        ("explored (chosen not the top)", _share(d.exploration_share)),
        ("smallest propensity", "-" if d.min_propensity is None else f"{d.min_propensity:.4g}"),
        ("model", d.model_key or "-"),
        ("model version", "-" if d.model_version is None else str(d.model_version)),
        ("model last changed", "-" if d.model_key is None else _age(d.model_age_seconds)),
        *(
            (
                f"{name}, SNIPS 95% CI",
                f"{_num(e.value)} [{_num(e.low)}, {_num(e.high)}] on {_rests_on(e)}",
            )
            for name, e in estimates
        ),
    ]
    for name, value in rows:
        figures.add_row(name, escape(value))
    figures.print(console)
    if len(d.models) > 1:
        models = Figures(
            ["model", "policy", Column("decisions", "right"), Column("version", "right"), "age"]
        )
        for m in d.models:
            age = _age(m.age_seconds) if m.learns else "no model"
            models.add_row(
                escape(m.model_key), escape(m.policy), f"{m.decisions:,}", str(m.version), age
            )
        models.print(console)
    if not d.warnings:
        console.print("[green]no warnings[/]: nothing in this window keeps the model from learning")
        return
    console.print(f"[bold]{len(d.warnings)} warning{'s' if len(d.warnings) > 1 else ''}[/]")
    for w in d.warnings:
        where = f" {w.namespace}.{w.feature}" if w.namespace and w.feature else ""
        where = where or (f" {w.namespace}" if w.namespace else "")
        console.print(f"\n[bold yellow]{w.code}[/]{escape(where)}")
        console.print(Padding(escape(w.message), (0, 0, 0, 2)))
        console.print(Padding(f"[bold]what to do:[/] {escape(w.action)}", (0, 0, 0, 2)))


def _rests_on(e: ValueEstimate) -> str:
    """How many decisions an estimate rests on: all of them, or the effective few."""
    if e.effective_n is None:
        return f"{e.n:,}, none agreeing"
    return f"{e.n:,}" if e.effectively is None else f"{e.n:,} (effectively {e.effectively:,})"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
