"""`oo db`: the schema's revision, upgrading it, and taking it back down.

Operators run `oo db upgrade` once per release, before the new api and learner start (a
Kubernetes Job, a compose one-shot service); concurrent runs serialize on a lock. The embedded
default (`oo serve` on SQLite) upgrades its own file at start and needs none of this.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from api import db
from api.cli_common import DatabaseOption
from api.settings import Settings

db_app = typer.Typer(help="Schema migrations: current revision, upgrade, downgrade.")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text")]

STATES = {
    "empty": "empty: no oO tables yet (`oo db upgrade` creates them)",
    "unversioned": "made before migrations (`oo db upgrade` adopts it)",
    "behind": "behind the code (`oo db upgrade`)",
    "current": "up to date",
    "ahead": "ahead of the code: a newer release migrated it",
}


def _url(database_url: str | None) -> str:
    return database_url or Settings().database


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _fail(exc: Exception) -> typer.Exit:
    """One line on standard error, exit code 1: a refused migration, an unreachable database."""
    cause = exc.orig if isinstance(exc, OperationalError) else exc
    message = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _revisions(revisions: tuple[db.Revision, ...]) -> list[dict[str, Any]]:
    return [{"id": r.id, "title": r.title, "reversible": not r.irreversible} for r in revisions]


def _print_json(value: dict[str, Any]) -> None:
    json.dump(value, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _waiting() -> None:
    typer.echo("waiting for another `oo db upgrade` or `oo db downgrade` to finish…", err=True)


@db_app.command("current")
def current(database_url: DatabaseOption = None, as_json: JsonFlag = False) -> None:
    """Where the database stands: its revision, this code's head, what an upgrade would run."""
    url = _url(database_url)
    try:
        found = db.status(url)
    except (db.MigrationError, OperationalError) as exc:
        raise _fail(exc) from None
    if as_json:
        _print_json(
            {
                "database": _shown(url),
                "state": found.state,
                "current": found.current,
                "head": found.head,
                "pending": _revisions(found.pending),
            }
        )
        return
    typer.echo(f"database  {_shown(url)}")
    typer.echo(f"revision  {found.current or '-'}")
    typer.echo(f"head      {found.head}")
    typer.echo(f"status    {STATES[found.state]}")
    for revision in found.pending:
        typer.echo(f"pending   {revision}")


@db_app.command("upgrade")
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision (default: head)")] = "head",
    database_url: DatabaseOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Upgrade the database to head (or REVISION); a database made before migrations is adopted.

    Safe to run from several places at once: runs wait for each other on a lock.
    """
    url = _url(database_url)
    try:
        outcome = db.upgrade(url, revision, on_wait=_waiting)
    except (db.MigrationError, OperationalError) as exc:
        raise _fail(exc) from None
    if as_json:
        _print_json(
            {
                "database": _shown(url),
                "before": outcome.before,
                "after": outcome.after,
                "applied": _revisions(outcome.applied),
                "adopted": outcome.adopted,
                "drift": list(outcome.drift),
            }
        )
    else:
        if outcome.adopted:
            typer.echo("adopted a database made before migrations (kept its tables and rows)")
        if outcome.applied:
            typer.echo(f"upgraded {_shown(url)} from {outcome.before or '-'} to {outcome.after}:")
            for applied in outcome.applied:
                typer.echo(f"  {applied}")
        else:
            typer.echo(f"{_shown(url)} is at {outcome.after} already; nothing to do")
    if outcome.drift:
        typer.echo(
            "error: the adopted database still differs from this oO's tables; fix these by hand "
            "(docs/operations.md):",
            err=True,
        )
        for difference in outcome.drift:
            typer.echo(f"  {difference}", err=True)
        raise typer.Exit(1)


@db_app.command("downgrade")
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision id (`oo db history`)")],
    database_url: DatabaseOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Take the database down to REVISION, undoing the revisions after it.

    Refused, with nothing changed, when a revision on the way cannot go down (the first one
    never does: it would drop every table).
    """
    url = _url(database_url)
    try:
        outcome = db.downgrade(url, revision, on_wait=_waiting)
    except (db.MigrationError, OperationalError) as exc:
        raise _fail(exc) from None
    if as_json:
        _print_json(
            {
                "database": _shown(url),
                "before": outcome.before,
                "after": outcome.after,
                "reverted": _revisions(outcome.applied),
            }
        )
        return
    if not outcome.applied:
        typer.echo(f"{_shown(url)} is at {outcome.after} already; nothing to do")
        return
    typer.echo(f"took {_shown(url)} down from {outcome.before} to {outcome.after}:")
    for reverted in outcome.applied:
        typer.echo(f"  undid {reverted}")


@db_app.command("wait")
def wait(
    timeout: Annotated[
        float, typer.Option(min=0, help="Give up after this many seconds (exit code 1)")
    ] = 600.0,
    database_url: DatabaseOption = None,
) -> None:
    """Wait until the database is at this oO's head (or ahead of it); migrates nothing.

    For a Kubernetes init container: the api and learner pods start once the upgrade Job has
    run, instead of failing until it has.
    """
    url = _url(database_url)
    deadline = time.monotonic() + timeout
    announced = False
    while True:
        try:
            refusal = db.status(url).refusal()
        except OperationalError as exc:  # the database is not up yet: keep waiting
            refusal = str(exc.orig).strip().splitlines()[0] if exc.orig else "unreachable"
        if refusal is None:
            typer.echo(f"{_shown(url)} is ready for this oO")
            return
        if time.monotonic() >= deadline:
            typer.echo(f"error: {refusal}", err=True)
            raise typer.Exit(1)
        if not announced:
            typer.echo(f"waiting: {refusal}", err=True)
            announced = True
        time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))


@db_app.command("revision")
def revision(
    message: Annotated[str, typer.Argument(help="What the revision does, e.g. 'add timing'")],
    autogenerate: Annotated[
        bool, typer.Option(help="Draft the operations from the code's tables")
    ] = False,
) -> None:
    """For developers: write the next revision into api/db/migrations/versions."""
    try:
        path = db.new_revision(message, autogenerate=autogenerate)
    except db.MigrationError as exc:
        raise _fail(exc) from None
    typer.echo(f"wrote {path}; read it, complete it, and test it up and down")


@db_app.command("history")
def history(as_json: JsonFlag = False) -> None:
    """The revisions this oO carries, oldest first."""
    revisions = tuple(db.history())
    if as_json:
        _print_json({"revisions": _revisions(revisions), "head": db.head()})
        return
    for revision in revisions:
        typer.echo(f"{revision}{'  [cannot go down]' if revision.irreversible else ''}")
