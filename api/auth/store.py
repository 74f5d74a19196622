"""People, identities, sessions, refresh tokens and API keys on the service's database.

Every credential handed out is a random value; only its SHA-256 digest is stored, so a copy of
the database signs nobody in. Comparisons against stored digests are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from api.auth.principal import Role
from api.auth.tables import ApiKeyRow, IdentityRow, PersonRow, RefreshTokenRow, SessionRow
from bandit.events import utcnow

people_table = PersonRow.__table__  # type: ignore[attr-defined]
identities_table = IdentityRow.__table__  # type: ignore[attr-defined]
sessions_table = SessionRow.__table__  # type: ignore[attr-defined]
refresh_table = RefreshTokenRow.__table__  # type: ignore[attr-defined]
keys_table = ApiKeyRow.__table__  # type: ignore[attr-defined]

KEY_PREFIX = "oo"
LAST_USED_EVERY = timedelta(minutes=1)
"""`last_used_at` of a key is written at most this often: the rank path stays read-only."""


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _same(given: str, stored: str) -> bool:
    return hmac.compare_digest(given.encode(), stored.encode())


@dataclass(frozen=True)
class Person:
    id: str
    email: str | None
    name: str | None
    roles: frozenset[Role]
    disabled: bool
    created_at: datetime
    last_seen_at: datetime | None


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    roles: frozenset[Role]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True)
class IssuedKey:
    """A new key; `secret` (the whole `oo_<key id>_<secret>` string) is shown once."""

    key: ApiKey
    secret: str

    def __repr__(self) -> str:
        return f"IssuedKey(key={self.key!r})"


class RefreshRefused(Exception):
    """The refresh token is unknown, expired, revoked, reused or its person is disabled."""


def _roles(values: Iterable[str]) -> frozenset[Role]:
    return frozenset(Role(v) for v in values if v in Role.__members__.values())


def _person(row: Any) -> Person:
    return Person(
        id=row.id,
        email=row.email,
        name=row.name,
        roles=_roles(row.roles),
        disabled=bool(row.disabled),
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
    )


def _key(row: Any) -> ApiKey:
    return ApiKey(
        key_id=row.key_id,
        name=row.name,
        roles=_roles(row.roles),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def _ordered(roles: Iterable[Role]) -> list[str]:
    return [role.value for role in Role if role in set(roles)]


class AuthStore:
    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.engine = engine
        self.clock = clock
        self._listeners: list[Callable[[str], None]] = []
        # Single reads on the request path (key checks, the person cache) need no transaction:
        # in autocommit, returning the connection to the pool costs no ROLLBACK round trip.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    def on_person_change(self, listener: Callable[[str], None]) -> None:
        """Call `listener(person_id)` after a person's roles or disabled flag change."""
        self._listeners.append(listener)

    def _changed(self, person_id: str) -> None:
        for listener in self._listeners:
            listener(person_id)

    # people ----------------------------------------------------------------------------

    def sign_in(
        self,
        *,
        provider: str,
        issuer: str,
        subject: str,
        email: str | None,
        name: str | None,
        admin: bool = False,
    ) -> Person:
        """The person behind (issuer, subject), created on their first sign-in.

        `admin` (their verified email is in OO_ADMIN_EMAILS) bootstraps the admin role for a
        new person only; later role changes go through `oo people`.
        """
        now = self.clock()
        found = self._identity_person(issuer, subject)
        if found is None:
            person_id = f"p_{uuid.uuid4().hex}"
            roles = [Role.PERSON, Role.ADMIN] if admin else [Role.PERSON]
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        people_table.insert().values(
                            id=person_id,
                            email=email,
                            name=name,
                            roles=_ordered(roles),
                            disabled=False,
                            created_at=now,
                            last_seen_at=now,
                        )
                    )
                    conn.execute(
                        identities_table.insert().values(
                            issuer=issuer,
                            subject=subject,
                            person_id=person_id,
                            provider=provider,
                            created_at=now,
                        )
                    )
            except IntegrityError:
                # The same identity signed in twice at once; the other request created it.
                found = self._identity_person(issuer, subject)
                if found is None:
                    raise
            else:
                found = person_id
        # The provider's current email and name win, but a sign-in without them keeps ours.
        changes: dict[str, Any] = {"last_seen_at": now}
        if email is not None:
            changes["email"] = email
        if name is not None:
            changes["name"] = name
        with self.engine.begin() as conn:
            conn.execute(people_table.update().where(people_table.c.id == found).values(changes))
        person = self.person(found)
        assert person is not None  # identities always point at a person
        return person

    def _identity_person(self, issuer: str, subject: str) -> str | None:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(identities_table.c.person_id).where(
                    identities_table.c.issuer == issuer, identities_table.c.subject == subject
                )
            ).scalar()
        return str(value) if value is not None else None

    def person(self, person_id: str) -> Person | None:
        with self._autocommit.connect() as conn:
            row = conn.execute(
                sa.select(people_table).where(people_table.c.id == person_id)
            ).first()
        return _person(row) if row is not None else None

    def find_person(self, ref: str) -> Person | None:
        """By id, or by email when exactly one person has it."""
        person = self.person(ref)
        if person is not None:
            return person
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(people_table).where(sa.func.lower(people_table.c.email) == ref.lower())
            ).all()
        return _person(rows[0]) if len(rows) == 1 else None

    def people(self) -> list[Person]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(people_table).order_by(people_table.c.created_at, people_table.c.id)
            ).all()
        return [_person(row) for row in rows]

    def set_roles(self, person_id: str, roles: Iterable[Role]) -> Person | None:
        with self.engine.begin() as conn:
            done = conn.execute(
                people_table.update()
                .where(people_table.c.id == person_id)
                .values(roles=_ordered(roles))
            ).rowcount
        self._changed(person_id)
        return self.person(person_id) if done else None

    def set_disabled(self, person_id: str, disabled: bool) -> Person | None:
        """Disabling also revokes every session and refresh token the person holds."""
        now = self.clock()
        with self.engine.begin() as conn:
            done = conn.execute(
                people_table.update()
                .where(people_table.c.id == person_id)
                .values(disabled=disabled)
            ).rowcount
            if done and disabled:
                for table in (sessions_table, refresh_table):
                    conn.execute(
                        table.update()
                        .where(table.c.person_id == person_id, table.c.revoked_at.is_(None))
                        .values(revoked_at=now)
                    )
        self._changed(person_id)
        return self.person(person_id) if done else None

    def export_person(self, person_id: str) -> dict[str, Any] | None:
        """The account as `GET /v1/me/export` shows it: no digest of any credential."""
        person = self.person(person_id)
        if person is None:
            return None
        with self.engine.connect() as conn:
            identities = conn.execute(
                sa.select(
                    identities_table.c.provider,
                    identities_table.c.issuer,
                    identities_table.c.subject,
                    identities_table.c.created_at,
                )
                .where(identities_table.c.person_id == person_id)
                .order_by(identities_table.c.created_at)
            ).all()
            sessions = conn.execute(
                sa.select(
                    sessions_table.c.created_at,
                    sessions_table.c.expires_at,
                    sessions_table.c.revoked_at,
                )
                .where(sessions_table.c.person_id == person_id)
                .order_by(sessions_table.c.created_at)
            ).all()
        return {
            "id": person.id,
            "email": person.email,
            "name": person.name,
            "roles": _ordered(person.roles),
            "disabled": person.disabled,
            "created_at": person.created_at,
            "last_seen_at": person.last_seen_at,
            "identities": [row._asdict() for row in identities],
            "sessions": [row._asdict() for row in sessions],
        }

    def forget_person(self, person_id: str) -> int:
        """Erase the account: identities, sessions, refresh tokens and the person row.

        Signing in again with the same provider account creates a new, unrelated person.
        """
        with self.engine.begin() as conn:
            deleted = sum(
                conn.execute(table.delete().where(table.c.person_id == person_id)).rowcount
                for table in (identities_table, sessions_table, refresh_table)
            )
            deleted += conn.execute(
                people_table.delete().where(people_table.c.id == person_id)
            ).rowcount
        self._changed(person_id)
        return deleted

    # web sessions ----------------------------------------------------------------------

    def create_session(self, person_id: str, lifetime: timedelta) -> str:
        token = secrets.token_urlsafe(32)
        now = self.clock()
        with self.engine.begin() as conn:
            conn.execute(
                sessions_table.insert().values(
                    token_hash=digest(token),
                    person_id=person_id,
                    created_at=now,
                    expires_at=now + lifetime,
                )
            )
        return token

    def session_person(self, token: str) -> Person | None:
        """The person of a live session: known, unexpired, unrevoked, and not disabled."""
        query = (
            sa.select(people_table)
            .join(sessions_table, sessions_table.c.person_id == people_table.c.id)
            .where(
                sessions_table.c.token_hash == digest(token),
                sessions_table.c.revoked_at.is_(None),
                sessions_table.c.expires_at > self.clock(),
                people_table.c.disabled.is_(False),
            )
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return _person(row) if row is not None else None

    def revoke_session(self, token: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sessions_table.update()
                .where(
                    sessions_table.c.token_hash == digest(token),
                    sessions_table.c.revoked_at.is_(None),
                )
                .values(revoked_at=self.clock())
            )

    # refresh tokens --------------------------------------------------------------------

    def issue_refresh(self, person_id: str, lifetime: timedelta) -> str:
        """The first refresh token of a new family."""
        with self.engine.begin() as conn:
            return self._insert_refresh(conn, person_id, uuid.uuid4().hex, lifetime)

    def _insert_refresh(
        self, conn: Connection, person_id: str, family: str, lifetime: timedelta
    ) -> str:
        token = secrets.token_urlsafe(32)
        now = self.clock()
        conn.execute(
            refresh_table.insert().values(
                token_hash=digest(token),
                family_id=family,
                person_id=person_id,
                created_at=now,
                expires_at=now + lifetime,
            )
        )
        return token

    def rotate_refresh(self, token: str, lifetime: timedelta) -> tuple[Person, str]:
        """Retire `token` and issue its successor in the same family.

        A token that was already used means two parties hold the family (the token leaked):
        the whole family is revoked, the legitimate client included, which must sign in again.
        """
        now = self.clock()
        hashed = digest(token)
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(refresh_table).where(refresh_table.c.token_hash == hashed)
            ).first()
        if row is None:
            raise RefreshRefused("unknown")
        if row.used_at is not None:
            self._revoke_family(row.family_id)
            raise RefreshRefused("reused")
        if row.revoked_at is not None or row.expires_at <= now:
            raise RefreshRefused("revoked or expired")
        person = self.person(row.person_id)
        if person is None or person.disabled:
            raise RefreshRefused("disabled")
        with self.engine.begin() as conn:
            won = conn.execute(
                refresh_table.update()
                .where(
                    refresh_table.c.token_hash == hashed,
                    refresh_table.c.used_at.is_(None),
                    refresh_table.c.revoked_at.is_(None),
                )
                .values(used_at=now)
            ).rowcount
            successor = (
                self._insert_refresh(conn, row.person_id, row.family_id, lifetime) if won else None
            )
        if successor is None:
            # Another request used this token at the same moment: the same reuse, detected late.
            self._revoke_family(row.family_id)
            raise RefreshRefused("reused")
        return person, successor

    def revoke_refresh(self, token: str) -> None:
        """Sign a client out: its refresh token's whole family stops working."""
        with self.engine.connect() as conn:
            family = conn.execute(
                sa.select(refresh_table.c.family_id).where(
                    refresh_table.c.token_hash == digest(token)
                )
            ).scalar()
        if family is not None:
            self._revoke_family(str(family))

    def _revoke_family(self, family: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                refresh_table.update()
                .where(refresh_table.c.family_id == family, refresh_table.c.revoked_at.is_(None))
                .values(revoked_at=self.clock())
            )

    # API keys --------------------------------------------------------------------------

    def create_key(self, name: str, roles: Iterable[Role] = ()) -> IssuedKey:
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        now = self.clock()
        ordered = _ordered(roles)
        with self.engine.begin() as conn:
            conn.execute(
                keys_table.insert().values(
                    key_id=key_id,
                    secret_hash=digest(secret),
                    name=name,
                    roles=ordered,
                    created_at=now,
                )
            )
        key = ApiKey(key_id, name, _roles(ordered), now, None, None)
        return IssuedKey(key, f"{KEY_PREFIX}_{key_id}_{secret}")

    def keys(self, *, include_revoked: bool = True) -> list[ApiKey]:
        query = sa.select(keys_table).order_by(keys_table.c.created_at, keys_table.c.key_id)
        if not include_revoked:
            query = query.where(keys_table.c.revoked_at.is_(None))
        with self.engine.connect() as conn:
            return [_key(row) for row in conn.execute(query).all()]

    def revoke_key(self, key_id: str) -> ApiKey | None:
        """Revoke the key (idempotent); None when no key has that id."""
        with self.engine.begin() as conn:
            conn.execute(
                keys_table.update()
                .where(keys_table.c.key_id == key_id, keys_table.c.revoked_at.is_(None))
                .values(revoked_at=self.clock())
            )
            row = conn.execute(sa.select(keys_table).where(keys_table.c.key_id == key_id)).first()
        return _key(row) if row is not None else None

    def check_key(self, presented: str) -> ApiKey | None:
        """The live key `presented` (`oo_<key id>_<secret>`) stands for, or None."""
        prefix, _, rest = presented.partition("_")
        key_id, _, secret = rest.partition("_")
        if prefix != KEY_PREFIX or not key_id or not secret or len(key_id) > 32:
            return None
        with self._autocommit.connect() as conn:
            row = conn.execute(sa.select(keys_table).where(keys_table.c.key_id == key_id)).first()
        if row is None:
            digest(secret)  # the same work either way
            return None
        if not _same(digest(secret), row.secret_hash) or row.revoked_at is not None:
            return None
        now = self.clock()
        if row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY:
            with self.engine.begin() as conn:
                conn.execute(
                    keys_table.update()
                    .where(keys_table.c.key_id == key_id)
                    .values(last_used_at=now)
                )
        return _key(row)
