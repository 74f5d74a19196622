"""`oo signals`: the signal store's retention.

The learner (or `oo serve`) prunes every OO_SIGNAL_PRUNE_SECONDS on its own; `oo signals prune`
does it now, e.g. after lowering OO_SIGNAL_RETENTION_DAYS.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, TextColumn, TimeElapsedColumn

from api.cli_common import Column, DatabaseOption, Figures, JsonFlag, ready_database
from api.settings import Settings
from bandit.store import make_engine
from integrations.signals import SignalStore

signals_app = typer.Typer(help="Signals: retention.", no_args_is_help=True)


@signals_app.command("prune")
def prune(
    retention_days: Annotated[
        int | None,
        typer.Option(min=1, max=3650, help="Keep this many days; default OO_SIGNAL_RETENTION_DAYS"),
    ] = None,
    database_url: DatabaseOption = None,
    batch: Annotated[int, typer.Option(min=1, max=100_000, help="Rows per transaction")] = 5000,
    as_json: JsonFlag = False,
) -> None:
    """Delete signals that occurred before the retention period."""
    settings = Settings()
    days = retention_days or settings.signal_retention_days
    engine = make_engine(ready_database(database_url or settings.database), pool_size=1)
    store = SignalStore(engine)
    try:
        with Progress(
            TextColumn("pruning signals"),
            TextColumn("{task.completed:,} deleted"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            disable=as_json,
        ) as progress:
            task = progress.add_task("prune", total=None)
            report = store.prune_report(
                timedelta(days=days),
                batch=batch,
                on_batch=lambda total: progress.update(task, completed=total),
            )
    finally:
        engine.dispose()
    if as_json:
        body = {
            "retention_days": days,
            "cutoff": report.cutoff.isoformat(),
            "deleted": report.deleted,
            "remaining": report.remaining,
            "oldest": report.oldest.isoformat() if report.oldest else None,
        }
        json.dump(body, sys.stdout)
        sys.stdout.write("\n")
        return
    table = Figures(
        [Column(c, "right") for c in ("cutoff", "deleted", "remaining", "oldest remaining")],
        title=f"signals older than {days} days",
    )
    table.add_row(
        f"{report.cutoff:%Y-%m-%d %H:%M} UTC",
        f"{report.deleted:,}",
        f"{report.remaining:,}",
        f"{report.oldest:%Y-%m-%d %H:%M} UTC" if report.oldest else "-",
    )
    table.print()
