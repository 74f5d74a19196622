"""`oo logs`: export the decision log as VW DSJSON, and check DSJSON files before evaluating them.

`export` reads the database directly (OO_DATABASE_URL, the embedded SQLite file, or
`--database-url`), in batches, so it needs no running server and its memory stays flat.

`import` validates and summarizes a DSJSON file (ours, VW's learning loop's or Personalizer's):
how many events, their date range, actions per event, mean reward, and every malformed line.
It writes nothing to the database: counterfactual evaluation, the consumer of imported logs,
streams events straight from the file with `rewards.logs.dsjson_import.read_dsjson`, so a
table would only be a second copy of the file whose shape nothing needs yet.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, BinaryIO, TextIO

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from api.cli_common import (
    BatchOption,
    Column,
    DatabaseOption,
    EndOption,
    Figures,
    JsonFlag,
    StartOption,
    SurfaceOption,
    parse_window,
    ready_database,
)
from api.settings import Settings
from bandit.store import Store
from rewards.logs.dsjson_export import export_lines
from rewards.logs.dsjson_import import DsjsonError, ImportedEvent, bounded_lines, read_dsjson
from rewards.logs.parquet import write_parquet

app = typer.Typer(help="Decision logs: DSJSON export and import.", no_args_is_help=True)

MAX_ERRORS_SHOWN = 10


def _sink(out: Path | None) -> AbstractContextManager[TextIO]:
    """The file to write, or standard output (left open)."""
    return open(out, "w", encoding="utf-8") if out else nullcontext(sys.stdout)


@app.command("export")
def export(
    out: Annotated[
        Path | None, typer.Option("--out", help="Write here instead of standard output")
    ] = None,
    start: StartOption = None,
    end: EndOption = None,
    surface: SurfaceOption = None,
    database_url: DatabaseOption = None,
    batch: BatchOption = 2000,
    format: Annotated[
        str, typer.Option("--format", help="dsjson (one decision per line) or parquet")
    ] = "dsjson",
) -> None:
    """Settled decisions with their rewards as DSJSON, one per line, or Parquet; oldest first."""
    if format not in ("dsjson", "parquet"):
        raise typer.BadParameter(
            f"must be dsjson or parquet (got {format!r})", param_hint="--format"
        )
    since, until = parse_window(start, end)
    store = Store.connect(ready_database(database_url or Settings().database), pool_size=1)
    console = Console(stderr=True)
    written = 0
    try:
        with Progress(
            TextColumn("exporting"),
            BarColumn(),
            TextColumn("{task.completed:,} decisions read"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            task = progress.add_task("export", total=None)

            def on_progress(read: int) -> None:
                progress.update(task, completed=read)

            if format == "parquet":
                written = write_parquet(
                    store,
                    str(out) if out else sys.stdout.buffer,
                    start=since,
                    end=until,
                    surface=surface,
                    batch=batch,
                    on_progress=on_progress,
                )
            else:
                lines = export_lines(
                    store,
                    start=since,
                    end=until,
                    surface=surface,
                    batch=batch,
                    on_progress=on_progress,
                )
                with _sink(out) as sink:
                    for line in lines:
                        sink.write(line)
                        written += 1
    finally:
        store.engine.dispose()
    what = "Parquet rows" if format == "parquet" else "DSJSON lines"
    console.print(f"{written:,} {what} written{f' to {out}' if out else ''}")


@dataclass
class Summary:
    """Running totals over imported events; nothing per event is kept."""

    events: int = 0
    skip_learn: int = 0
    malformed: int = 0
    first: datetime | None = None
    last: datetime | None = None
    actions_min: int = 0
    actions_max: int = 0
    actions_total: int = 0
    reward_total: float = 0.0
    propensity_min: float = 1.0
    errors: list[str] = field(default_factory=list)

    def add(self, event: ImportedEvent) -> None:
        n = len(event.actions)
        self.actions_min = n if self.events == 0 else min(self.actions_min, n)
        self.actions_max = max(self.actions_max, n)
        self.actions_total += n
        self.events += 1
        if event.timestamp is not None:
            self.first = event.timestamp if self.first is None else min(self.first, event.timestamp)
            self.last = event.timestamp if self.last is None else max(self.last, event.timestamp)
        if event.skip_learn:
            self.skip_learn += 1
            return
        self.reward_total += event.reward
        self.propensity_min = min(self.propensity_min, event.propensity)

    def error(self, error: DsjsonError) -> None:
        self.malformed += 1
        if len(self.errors) < MAX_ERRORS_SHOWN:
            self.errors.append(str(error))

    @property
    def learnable(self) -> int:
        return self.events - self.skip_learn

    @property
    def mean_reward(self) -> float | None:
        return self.reward_total / self.learnable if self.learnable else None

    @property
    def mean_actions(self) -> float | None:
        return self.actions_total / self.events if self.events else None

    def as_json(self) -> dict[str, object]:
        body = asdict(self)
        body.update(
            first=self.first.isoformat() if self.first else None,
            last=self.last.isoformat() if self.last else None,
            learnable=self.learnable,
            mean_reward=self.mean_reward,
            mean_actions=self.mean_actions,
            propensity_min=self.propensity_min if self.learnable else None,
        )
        del body["reward_total"], body["actions_total"]
        return body


def _lines(handle: BinaryIO, progress: Progress, task: TaskID) -> Iterator[bytes]:
    for line in bounded_lines(handle):
        progress.update(task, completed=handle.tell())
        yield line


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A DSJSON file")],
    strict: Annotated[
        bool, typer.Option("--strict", help="Stop at the first malformed line")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Validate a DSJSON file and summarize it; exits 1 when any line is malformed."""
    summary = Summary()
    console = Console(stderr=True)
    with (
        Progress(
            TextColumn("reading"),
            BarColumn(),
            DownloadColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=as_json,
        ) as progress,
        open(file, "rb") as handle,
    ):
        task = progress.add_task("import", total=file.stat().st_size)
        try:
            for event in read_dsjson(
                _lines(handle, progress, task), strict=strict, on_error=summary.error
            ):
                summary.add(event)
        except DsjsonError as error:
            summary.error(error)
    if as_json:
        json.dump(summary.as_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print(summary, file)
    if summary.malformed:
        raise typer.Exit(1)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _print(summary: Summary, file: Path) -> None:
    figures = Figures(["figure", Column("value", "right")], title=file.name)
    first = summary.first.strftime("%Y-%m-%d %H:%M:%S") if summary.first else "-"
    last = summary.last.strftime("%Y-%m-%d %H:%M:%S") if summary.last else "-"
    rows = [
        ("events", f"{summary.events:,}"),
        ("learnable", f"{summary.learnable:,}"),
        ("skipped (_skipLearn)", f"{summary.skip_learn:,}"),
        ("malformed lines", f"{summary.malformed:,}"),
        ("from (UTC)", first),
        ("to (UTC)", last),
        (
            "actions per event (min / mean / max)",
            f"{summary.actions_min} / {_fmt(summary.mean_actions, 1)} / {summary.actions_max}",
        ),
        ("mean reward (learnable)", _fmt(summary.mean_reward)),
        ("smallest propensity", _fmt(summary.propensity_min if summary.learnable else None, 4)),
    ]
    for name, value in rows:
        figures.add_row(name, value)
    figures.print()
    for message in summary.errors:
        typer.echo(message, err=True)
    if summary.malformed > len(summary.errors):
        typer.echo(f"... and {summary.malformed - len(summary.errors)} more", err=True)
