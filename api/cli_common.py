"""Small pieces the `oo` sub-commands share."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Literal, TypeVar

import typer
from pydantic import ValidationError
from pydantic_settings import BaseSettings
from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.padding import Padding
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from api.db import MigrationError, prepare
from api.services.surfaces import SURFACES
from bandit.clock import OutOfRange, as_utc
from rewards.ope.reward_models import RewardModelName

StartOption = Annotated[
    str | None, typer.Option(help="Decisions created at or after (ISO 8601; UTC if no offset)")
]
EndOption = Annotated[
    str | None, typer.Option(help="Decisions created before (ISO 8601; UTC if no offset)")
]
SurfaceOption = Annotated[
    str | None, typer.Option(help=f"Only this surface: {', '.join(SURFACES)}")
]
DatabaseOption = Annotated[
    str | None, typer.Option(help="SQLAlchemy URL; default OO_DATABASE_URL or embedded SQLite")
]
BatchOption = Annotated[int, typer.Option(min=1, max=50_000, help="Decisions per query")]
RewardModelOption = Annotated[str, typer.Option(help="DR's reward model: action-mean or vw")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]

AnySettings = TypeVar("AnySettings", bound=BaseSettings)


def configure_logging() -> None:
    """Log lines with time, level and module, at `OO_LOG_LEVEL` (INFO by default)."""
    logging.basicConfig(
        level=os.environ.get("OO_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # api.db logs what an upgrade at start ran; alembic's own progress lines would repeat it.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def settings_or_exit(
    kind: type[AnySettings], overrides: Mapping[str, object] | None = None
) -> AnySettings:
    """`kind` read from the environment (and `overrides`), or the refusal as one line per
    problem and exit code 2 (no traceback). A field's problem names its variable; a check of
    several fields names them in its message."""
    try:
        return kind(**(overrides or {}))  # type: ignore[arg-type]
    except ValidationError as exc:
        prefix = str(kind.model_config.get("env_prefix", ""))
        for error in exc.errors(include_url=False, include_input=False):
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["loc"]:
                message = f"{prefix}{str(error['loc'][0]).upper()}: {message}"
            typer.echo(f"error: {message}", err=True)
        raise typer.Exit(2) from None


def ready_database(url: str) -> str:
    """`url`, once its schema suits this code: the embedded SQLite file is upgraded in place;
    a PostgreSQL behind the code is refused in one line naming `oo db upgrade` (exit code 1)."""
    try:
        prepare(url)
    except MigrationError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    return url


def counting_progress(*, disable: bool) -> Progress:
    """A bar with done/total and time left, on standard error (standard output stays clean)."""
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=disable,
    )


def parse_moment(value: str | None, name: str) -> datetime | None:
    """An ISO 8601 option value as an aware UTC datetime (naive input is taken as UTC)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"must be ISO 8601, e.g. 2026-11-25 or 2026-11-25T09:00Z (got {value!r})",
            param_hint=f"--{name}",
        ) from None
    try:
        return as_utc(moment, name)
    except OutOfRange as exc:
        raise typer.BadParameter(exc.reason, param_hint=f"--{name}") from None


def parse_window(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None]:
    """`--start` and `--end` as aware UTC datetimes, the start before the end."""
    since, until = parse_moment(start, "start"), parse_moment(end, "end")
    if since is not None and until is not None and since >= until:
        raise typer.BadParameter("must be before --end", param_hint="--start")
    return since, until


def reward_model_name(value: str) -> RewardModelName:
    """`--reward-model` checked: action-mean or vw."""
    if value == "vw":
        return "vw"
    if value == "action-mean":
        return "action-mean"
    raise typer.BadParameter(
        f"must be action-mean or vw (got {value!r})", param_hint="--reward-model"
    )


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    justify: Literal["left", "right"] = "left"


@dataclass
class Figures:
    """A table for people that stays readable at any terminal width.

    Printed as a table when every cell fits the console on one line, then as a table without
    borders; otherwise folded into one block per row (per arm, per policy): the first cell as
    the block's heading, then one `column  value` line per other cell, where long values wrap
    instead of being cut to "0.4…".
    A row whose first cell is empty continues the block above (an estimator under its policy),
    or, first of all, heads its block with its second cell. Cells may hold rich markup.
    """

    columns: Sequence[Column | str]
    title: str | None = None
    caption: str | None = None
    rows: list[tuple[list[str], bool]] = field(default_factory=list)

    def add_row(self, *cells: str, end_section: bool = False) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"`cells` must hold {len(self.columns)} values (got {len(cells)})")
        self.rows.append((list(cells), end_section))

    def _columns(self) -> list[Column]:
        return [c if isinstance(c, Column) else Column(c) for c in self.columns]

    def table(self, *, compact: bool = False) -> Table:
        table = Table(
            title=self.title,
            caption=self.caption,
            box=box.SIMPLE_HEAD if compact else box.HEAVY_HEAD,
            padding=(0, 1),
            collapse_padding=compact,
            show_edge=not compact,
            pad_edge=not compact,
        )
        for column in self._columns():
            table.add_column(column.name, justify=column.justify)
        for cells, end_section in self.rows:
            table.add_row(*cells, end_section=end_section)
        return table

    def print(self, console: Console | None = None) -> None:
        console = console or Console()
        for table in (self.table(), self.table(compact=True)):
            natural = Measurement.get(console, console.options.update_width(100_000), table)
            if natural.maximum <= console.width:
                console.print(table)
                return
        self._fold(console)

    def _fold(self, console: Console) -> None:
        columns = self._columns()
        if self.title:
            console.print(Text(self.title, style="italic"), justify="center")
        for i, (cells, _) in enumerate(self.rows):
            shown = list(zip(columns, cells, strict=True))
            heading = cells[0] or ("" if i else cells[1])
            if heading:
                console.print()
                console.print(f"[bold]{heading}[/]")
                shown = shown[1:] if cells[0] else shown[2:]
            else:
                console.print()
                shown = shown[1:]
            block = Table.grid(padding=(0, 2))
            block.add_column(style="dim", no_wrap=True)
            block.add_column(overflow="fold")
            for column, cell in shown:
                if cell:
                    block.add_row(column.name, cell)
            console.print(Padding(block, (0, 0, 0, 2), expand=False))
        if self.caption:
            console.print()
            console.print(Text(self.caption, style="dim"))
