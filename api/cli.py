"""The `oo` command line: run the processes, drive a simulation, export the OpenAPI document."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from typing import Annotated

import typer
import uvicorn
from sqlalchemy.engine import make_url

from api import cli_evaluate, cli_experiments, cli_logs, cli_vault
from api.cli_auth import keys_app, people_app  # sign-in (issue 4)
from api.cli_common import JsonFlag, configure_logging, ready_database, settings_or_exit
from api.cli_db import db_app  # schema migrations
from api.cli_doctor import doctor  # is it learning?
from api.cli_push import notifier, push_app  # Web Push (ADR 0012)
from api.cli_search import search_policies  # policy search (issue 6)
from api.cli_signals import signals_app  # signals, profile and consent (issue 4)
from api.settings import Settings
from notifier.settings import PushSettings

DEFAULT_URL = "http://127.0.0.1:8000"
"""Where `oo simulate` finds a running server unless told."""

app = typer.Typer(help="oO: a contextual-bandit decision service and the tips product on it.")
app.add_typer(cli_experiments.app, name="experiments")
app.add_typer(cli_logs.app, name="logs")
app.add_typer(cli_vault.vault_app, name="vault")
app.add_typer(keys_app, name="keys")  # sign-in (issue 4)
app.add_typer(people_app, name="people")
app.add_typer(signals_app, name="signals")
app.add_typer(db_app, name="db")
app.add_typer(push_app, name="push")
app.command("notifier")(notifier)
app.command("evaluate")(cli_evaluate.evaluate)
app.command("search-policies")(search_policies)
app.command("doctor")(doctor)


def _run_http(role: str, host: str | None, port: int | None, workers: int) -> None:
    from api.app import create_app

    os.environ["OO_ROLE"] = role
    overrides: dict[str, object] = {"role": role}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    settings = settings_or_exit(Settings, overrides)
    push_settings = settings_or_exit(PushSettings)
    ready_database(settings.database)
    bus = "Redis Streams" if settings.redis_url else "the in-process bus"
    typer.echo(f"oO {role}: {database_banner(settings.database)}, {bus}")
    typer.echo(f"oO is running at http://{settings.host}:{settings.port}/", err=False)
    if workers > 1:
        # Workers import the factory themselves; settings come from the environment.
        os.environ["OO_HOST"], os.environ["OO_PORT"] = settings.host, str(settings.port)
        uvicorn.run(
            "api.app:served_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=workers,
            log_level="warning",
        )
    else:
        uvicorn.run(
            create_app(settings, push_settings=push_settings, settle_heap=True),
            host=settings.host,
            port=settings.port,
            log_level="warning",
        )


def database_banner(url: str) -> str:
    """The database as the start-up banner names it: by the URL's dialect, never its password."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return f"SQLite at {parsed.database or ':memory:'}"
    return {"postgresql": "PostgreSQL"}.get(backend, backend)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (OO_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (OO_PORT, default 8000)")] = None,
) -> None:
    """All in one process: api + learner (the embedded default)."""
    configure_logging()
    _run_http("all", host, port, 1)


@app.command("api")
def api_process(
    host: Annotated[str | None, typer.Option(help="Bind address (OO_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (OO_PORT, default 8000)")] = None,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
) -> None:
    """Stateless HTTP workers: log decisions and rewards, serve the newest model versions."""
    configure_logging()
    _run_http("api", host, port, workers)


@app.command()
def learner(
    port: Annotated[
        int, typer.Option(help="Port of the learner's /health and /metrics (OO_LEARNER_PORT)")
    ] = int(os.environ.get("OO_LEARNER_PORT", "8001")),
    host: Annotated[str, typer.Option(help="Bind address of /health")] = "127.0.0.1",
) -> None:
    """Join rewards to decisions, learn, and publish model versions (one per deployment)."""
    configure_logging()
    from api.learner_process import run_learner

    ready_database(settings_or_exit(Settings).database)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    run_learner(stop, host=host, port=port)


@app.command()
def simulate(
    url: Annotated[
        str | None,
        typer.Option(
            help="Base URL of a running oO server [default: http://127.0.0.1:8000; with "
            "--timing, none: the timing surface of a fresh in-process app]"
        ),
    ] = None,
    events: Annotated[int, typer.Option(min=1, help="Decisions to simulate")] = 4000,
    window: Annotated[int, typer.Option(min=1, help="Events per reported window")] = 500,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic world")] = 7,
    world: Annotated[
        str, typer.Option(help="A world of the learning suite: tips6, sparse, drift, …")
    ] = "tips6",
    key: Annotated[str, typer.Option(help="Ocp-Apim-Subscription-Key to send")] = "simulation",
    as_json: JsonFlag = False,
    timing: Annotated[
        bool,
        typer.Option(
            "--timing",
            help="Simulate when to push (the timing surface): learned vs random-time vs a "
            "fixed daily time, at the same number of pushes",
        ),
    ] = False,
    people: Annotated[int, typer.Option(min=1, help="--timing: synthetic people")] = 10,
    days: Annotated[int, typer.Option(min=2, help="--timing: simulated days")] = 14,
    embedded: Annotated[
        bool,
        typer.Option(
            "--embedded",
            help="--timing: drive the timing surface itself, on a fresh in-process app (what "
            "--timing does unless --url is given)",
        ),
    ] = False,
) -> None:
    """Synthetic people with context-dependent tastes drive the server; compare with random."""
    import httpx

    from api import simulate as sim
    from api.cli_common import Column, Figures, counting_progress

    if timing:
        if embedded and url is not None:
            raise typer.BadParameter(
                "--embedded drives a fresh in-process app, --url a running server: give one",
                param_hint="--url",
            )
        _simulate_timing(url, key, people, days, seed, as_json)
        return
    url = url or DEFAULT_URL

    spec = sim.WORLDS.get(world)
    if spec is None:
        raise typer.BadParameter(
            f"one of {', '.join(sim.WORLDS)} (got {world!r})", param_hint="--world"
        )
    with (
        counting_progress(disable=as_json) as progress,
        httpx.Client(base_url=url, timeout=10.0) as client,
    ):
        task = progress.add_task("simulating", total=events)
        report = sim.run(
            sim.HttpLoop(client, key),
            sim.World(spec, seed),
            decisions=events,
            window=window,
            on_event=lambda done: progress.update(task, completed=done),
        )
    tail = report.tail()
    trace = report.trace
    shares = {"last_1000": trace.share(max(0, len(trace) - 1000)), "all": trace.share()}
    if as_json:
        json.dump(
            {"windows": report.windows, "tail": tail, "share": shares, "seconds": report.seconds},
            sys.stdout,
        )
        sys.stdout.write("\n")
        return
    columns = ("events", "policy (observed)", "policy (expected)", "random", "best")
    table = Figures(
        [Column(c, "right") for c in columns], title=f"mean reward per window of {window} events"
    )
    total = 0
    for row in report.windows:
        total += int(row["events"])
        table.add_row(
            str(total),
            f"{row['policy_reward']:.3f}",
            f"{row['policy_expected']:.3f}",
            f"{row['random_expected']:.3f}",
            f"{row['best_expected']:.3f}",
        )
    table.print()
    margin = tail["policy_expected"] - tail["random_expected"]
    typer.echo(
        f"last quarter: policy {tail['policy_expected']:.3f} vs random "
        f"{tail['random_expected']:.3f} (margin {margin:+.3f}); "
        f"{100 * shares['last_1000']:.0f}% of the oracle's lift over the last 1,000 decisions; "
        f"{report.seconds:.1f}s"
    )


def _simulate_timing(
    url: str | None, key: str, people: int, days: int, seed: int, as_json: bool
) -> None:
    """The timing surface itself on a fresh in-process app, or with `url` a running server's
    Personalizer rank and reward calls with the timing features.

    Only the first measures the timing policy as served: a running server's timing surface
    decides at its notifier's decision points on its own clock, so a simulated fortnight cannot
    pass through it, and its Personalizer surface serves the tips default, unpaced (about
    random time on seed 1). The URL mode says so before it starts.
    """
    import tempfile
    from pathlib import Path

    import httpx

    from api import simulate as sim
    from api.cli_common import counting_progress
    from api.simulate.suite import embedded_app, scratch
    from api.simulate.timing import LoopDriver, SurfaceDriver, TimingWorld, run_timing

    with counting_progress(disable=as_json) as progress:
        task = progress.add_task("simulating days", total=days)
        world = TimingWorld(people, seed)

        def on_day(done: int) -> None:
            progress.update(task, completed=done)

        if url is None:
            with (
                tempfile.TemporaryDirectory(prefix="oo-timing-", dir=scratch()) as tmp,
                embedded_app(Path(tmp)) as client,
            ):
                services = client.app.state.services  # type: ignore[attr-defined]
                # A fresh app: the seed's run id replays the run (the policy's draws come from
                # the event ids), so `--seed` alone fixes the figures.
                report = run_timing(
                    SurfaceDriver(services), world, days=days, run_id=f"s{seed}", on_day=on_day
                )
        else:
            progress.console.print(
                f"--url: {url}'s Personalizer surface ranks send/wait with the timing features "
                "(its own policy, not paced): not the timing surface's figure, which --timing "
                "without --url measures",
                style="yellow",
            )
            with httpx.Client(base_url=url, timeout=10.0) as http:
                driver = LoopDriver(sim.HttpLoop(http, key))
                report = run_timing(driver, world, days=days, on_day=on_day)
    figures = report.as_json()
    first_day = int(str(figures["evaluated_from_day"])) + 1
    if as_json:
        json.dump(figures, sys.stdout)
        sys.stdout.write("\n")
        return
    typer.echo(
        f"engagement per push over days {first_day}-{days} "
        f"({people} people, {figures['pushes']} pushes by the learned policy, "
        f"{figures['decisions']} decisions):"
    )
    for name in ("learned", "random_time", "fixed_time"):
        typer.echo(f"  {name:<12} {figures[name]:.3f}")
    typer.echo(
        f"lift vs random time {figures['lift_vs_random_time']:+.2f}, "
        f"vs a fixed time {figures['lift_vs_fixed_time']:+.2f}; {figures['seconds']:.1f}s"
    )


@app.command()
def openapi() -> None:
    """Print the OpenAPI document (docs/openapi.json is generated with this)."""
    from api.app import create_app

    document = create_app(Settings()).openapi()
    json.dump(document, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
