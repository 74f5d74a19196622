"""Small pieces the `oo` sub-commands share."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from api.db import MigrationError, prepare
from api.services.surfaces import SURFACES
from bandit.clock import OutOfRange, as_utc

StartOption = Annotated[
    str | None, typer.Option(help="Decisions created at or after (ISO 8601; UTC if no offset)")
]
EndOption = Annotated[
    str | None, typer.Option(help="Decisions created before (ISO 8601; UTC if no offset)")
]
SurfaceOption = Annotated[
    str | None, typer.Option(help=f"Only this surface: {', '.join(SURFACES)}")
]


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
