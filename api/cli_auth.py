"""`oo keys` and `oo people`: API keys for the Personalizer-compatible API, and people's roles.

Both work on the service's database (OO_DATABASE_URL, or the embedded SQLite file) and take
effect at once: keys are checked on every call, and a person's roles and disabled flag are
re-read within seconds (their sessions and refresh tokens are revoked when disabled).
"""

from __future__ import annotations

import base64
import json
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

import typer

from api.auth.config import KEY_ID, MIN_KEY_BYTES
from api.auth.principal import Role
from api.auth.store import ApiKey, AuthStore, Person
from api.cli_common import Figures, JsonFlag, ready_database
from api.settings import Settings
from bandit.events import utcnow
from bandit.store import make_engine

keys_app = typer.Typer(help="API keys for the Personalizer-compatible API.", no_args_is_help=True)
people_app = typer.Typer(help="People who signed in: roles, disable, enable.", no_args_is_help=True)

ROLE_NAMES = ", ".join(role.value for role in Role)


@contextmanager
def auth_store() -> Iterator[AuthStore]:
    engine = make_engine(ready_database(Settings().database), pool_size=1)
    try:
        yield AuthStore(engine)
    finally:
        engine.dispose()


def _role(value: str, option: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise typer.BadParameter(
            f"must be one of {ROLE_NAMES} (got {value!r})", param_hint=option
        ) from None


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


def _roles(roles: frozenset[Role]) -> list[str]:
    return [role.value for role in Role if role in roles]


def _print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def _key_json(key: ApiKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "name": key.name,
        "roles": _roles(key.roles),
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
    }


def _keys_table(keys: list[ApiKey]) -> None:
    table = Figures(["key id", "name", "roles", "created", "last used", "revoked"])
    for k in keys:
        table.add_row(
            k.key_id,
            k.name,
            ", ".join(_roles(k.roles)) or "-",
            _when(k.created_at),
            _when(k.last_used_at),
            _when(k.revoked_at),
        )
    table.print()


@keys_app.command("create")
def create_key(
    name: Annotated[str, typer.Option(help="What the key is for, e.g. the integrator's app")],
    role: Annotated[
        list[str] | None,
        typer.Option(help=f"Role for the key ({ROLE_NAMES}); repeat. `admin` may administer"),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a key and print its secret, once: oO keeps only a hash of it."""
    cleaned = name.strip()
    if not cleaned or len(cleaned) > 128:
        raise typer.BadParameter("must be 1-128 characters", param_hint="--name")
    roles = [_role(r, "--role") for r in role or []]
    with auth_store() as store:
        issued = store.create_key(cleaned, roles)
    if as_json:
        _print_json({**_key_json(issued.key), "key": issued.secret})
        return
    _keys_table([issued.key])
    typer.echo(f"key: {issued.secret}")
    typer.echo("Send it as the Ocp-Apim-Subscription-Key header. It is shown only now.", err=True)


@keys_app.command("new-token-key")
def new_token_key(
    kid: Annotated[
        str | None, typer.Option(help="Key id; default is today's date, like t20261126")
    ] = None,
) -> None:
    """Print a fresh `kid:base64secret` entry to put at the front of OO_TOKEN_KEYS.

    That setting signs access tokens in sign-in mode; it is not an API key. Nothing is stored.
    """
    kid = kid if kid is not None else utcnow().strftime("t%Y%m%d")
    if not KEY_ID.fullmatch(kid):
        raise typer.BadParameter(
            f"must be 1-32 letters, digits, dots, dashes or underscores (got {kid!r})",
            param_hint="--kid",
        )
    secret = base64.urlsafe_b64encode(secrets.token_bytes(MIN_KEY_BYTES)).decode().rstrip("=")
    typer.echo(f"{kid}:{secret}")


@keys_app.command("list")
def list_keys(
    all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Keys, oldest first (never their secrets)."""
    with auth_store() as store:
        keys = store.keys(include_revoked=all_keys)
    if as_json:
        _print_json([_key_json(k) for k in keys])
    else:
        _keys_table(keys)


@keys_app.command("revoke")
def revoke_key(key_id: str, as_json: JsonFlag = False) -> None:
    """Revoke a key by its id (the part after `oo_`).

    Running api processes refuse it within 5 seconds (they trust a checked key that long).
    """
    with auth_store() as store:
        key = store.revoke_key(key_id)
    if key is None:
        typer.echo(f"error: no key has id {key_id!r} (see `oo keys list --all`)", err=True)
        raise typer.Exit(1)
    if as_json:
        _print_json(_key_json(key))
    else:
        _keys_table([key])
        typer.echo("running api processes refuse this key within 5 seconds")


# people -----------------------------------------------------------------------------------


def _person_json(person: Person) -> dict[str, Any]:
    return {
        "id": person.id,
        "email": person.email,
        "name": person.name,
        "roles": _roles(person.roles),
        "disabled": person.disabled,
        "created_at": person.created_at.isoformat(),
        "last_seen_at": person.last_seen_at.isoformat() if person.last_seen_at else None,
    }


def _people_table(people: list[Person]) -> None:
    table = Figures(["id", "email", "name", "roles", "status", "last seen"])
    for p in people:
        table.add_row(
            p.id,
            p.email or "-",
            p.name or "-",
            ", ".join(_roles(p.roles)),
            "disabled" if p.disabled else "active",
            _when(p.last_seen_at),
        )
    table.print()


def _show_person(person: Person, as_json: bool) -> None:
    if as_json:
        _print_json(_person_json(person))
    else:
        _people_table([person])


def _find(store: AuthStore, ref: str) -> Person:
    person = store.find_person(ref)
    if person is None:
        typer.echo(f"error: no one (or more than one person) matches {ref!r}", err=True)
        raise typer.Exit(1)
    return person


PersonArg = Annotated[str, typer.Argument(help="Person id, or email when it is unique")]


@people_app.command("list")
def list_people(as_json: JsonFlag = False) -> None:
    """Everyone who signed in, oldest first."""
    with auth_store() as store:
        people = store.people()
    if as_json:
        _print_json([_person_json(p) for p in people])
    else:
        _people_table(people)


@people_app.command("grant")
def grant(person: PersonArg, role: str, as_json: JsonFlag = False) -> None:
    """Give a role: experimenter, analyst or admin."""
    granted = _role(role, "ROLE")
    with auth_store() as store:
        found = _find(store, person)
        updated = store.set_roles(found.id, found.roles | {granted})
    assert updated is not None
    _show_person(updated, as_json)


@people_app.command("revoke")
def revoke(person: PersonArg, role: str, as_json: JsonFlag = False) -> None:
    """Take a role away (everyone keeps `person`)."""
    taken = _role(role, "ROLE")
    if taken is Role.PERSON:
        raise typer.BadParameter(
            "everyone keeps `person`; use `oo people disable`", param_hint="ROLE"
        )
    with auth_store() as store:
        found = _find(store, person)
        updated = store.set_roles(found.id, found.roles - {taken})
    assert updated is not None
    _show_person(updated, as_json)


@people_app.command("disable")
def disable(person: PersonArg, as_json: JsonFlag = False) -> None:
    """Lock someone out: sessions and refresh tokens are revoked, access tokens refused."""
    with auth_store() as store:
        updated = store.set_disabled(_find(store, person).id, True)
    assert updated is not None
    _show_person(updated, as_json)


@people_app.command("enable")
def enable(person: PersonArg, as_json: JsonFlag = False) -> None:
    """Let a disabled person sign in again."""
    with auth_store() as store:
        updated = store.set_disabled(_find(store, person).id, False)
    assert updated is not None
    _show_person(updated, as_json)
