"""People's integrations as one service: connect, disconnect, status, and live sources.

`Integrations` is what the api holds (on ``app.state.services.integrations``). It owns the OAuth
providers that are configured, the token vault (opened on first use), the state store and the
provider clients, and answers three kinds of questions:

- connect / callback / disconnect: the OAuth flow of `integrations.oauth`, tokens in the vault;
- status: each provider as ``connected``, ``needs_reconnect`` or ``not_connected``;
- `gather`: for a recommend, the person's open Todoist tasks and calendar free/busy, fetched
  concurrently under one deadline. A provider that is slow, failing, rate-limited or revoked is
  left out and named in `Gathered.missing`; a revoked token marks its integration
  needs_reconnect. Nothing fetched is written to the database.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, Literal, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bandit.errors import DomainError, Kind
from bandit.events import Action, FeatureObject
from bandit.features import line
from integrations import calendar, todoist
from integrations.calendar import CalendarClient, FreeBusy, calendar_features
from integrations.live_signals import LiveSignals
from integrations.oauth import OAuthProvider, StateStore
from integrations.provider_client import ProviderClient
from integrations.providers import ProviderError, ProviderUnavailable, TokenRevoked
from integrations.todoist import Task, TodoistClient
from integrations.token_store import TokenStore, tokens_table
from integrations.vault import ProviderToken, TokenDecryptError, Vault, VaultConfigError

logger = logging.getLogger(__name__)

PROVIDERS: tuple[str, ...] = (todoist.PROVIDER, calendar.PROVIDER)
T = TypeVar("T")
Status = Literal["connected", "needs_reconnect", "not_connected"]


class NotConfigured(DomainError):
    """The provider has no OAuth client configured; the message names the missing setting."""

    kind = Kind.CONFLICT

    def __init__(self, message: str, *, target: str = "provider") -> None:
        super().__init__(message, target=target)


class UnknownProvider(DomainError):
    """Not one of `PROVIDERS`."""

    def __init__(self, message: str, *, target: str = "provider") -> None:
        super().__init__(message, target=target)


@dataclass(frozen=True, slots=True)
class IntegrationStatus:
    provider: str
    status: Status
    configured: bool
    connected_at: datetime | None
    """When the person connected; None unless connected."""
    changed_at: datetime | None
    """When the status last changed (connect, or the moment reconnecting became necessary)."""


@dataclass(frozen=True, slots=True)
class Gathered:
    """What the live sources gave for one recommend."""

    tasks: tuple[Task, ...] = ()
    free_busy: FreeBusy | None = None
    used: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()


def fetches(statuses: Mapping[str, str], *, todos: bool = True) -> bool:
    """Whether `Integrations.gather` with these token statuses (provider -> status) would ask a
    provider over the network: one it consults is connected. When none is, it answers at once,
    the ones needing a reconnect as missing, without I/O."""
    return any(statuses[name] == "connected" for name in _wanted(statuses, todos=todos))


def _wanted(statuses: Mapping[str, str], *, todos: bool) -> list[str]:
    """The providers a gather consults: those with a token, Todoist only for todos."""
    return [name for name in PROVIDERS if name in statuses and (todos or name != todoist.PROVIDER)]


class Integrations:
    def __init__(
        self,
        engine: Engine,
        *,
        providers: Mapping[str, OAuthProvider],
        missing_settings: Mapping[str, str],
        vault_factory: Callable[[], Vault],
        todoist_client: TodoistClient,
        calendar_client: CalendarClient,
        deadline_s: float = 0.3,
        max_workers: int = 16,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not deadline_s > 0:
            raise ValueError(f"`deadline_s` must be positive (got {deadline_s})")
        self.engine = engine
        self.providers = dict(providers)
        self.missing_settings = dict(missing_settings)
        self.states = StateStore(engine)
        self.todoist = todoist_client
        self.calendar = calendar_client
        self._clients: dict[str, ProviderClient[Any]] = {
            todoist.PROVIDER: todoist_client,
            calendar.PROVIDER: calendar_client,
        }
        self.deadline_s = deadline_s
        self.clock = clock
        self._vault_factory = vault_factory
        self._tokens: TokenStore | None = None
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="providers")
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.signals: LiveSignals | None = None
        """Set by `emit_signals`: what gathering finds changed becomes signals."""

    def __repr__(self) -> str:
        return f"Integrations(configured={sorted(self.providers)!r})"

    def emit_signals(self, signals: LiveSignals) -> None:
        """From now on, gathered tasks and free/busy are observed for signals (off the
        request path; see `integrations.live_signals`)."""
        self.signals = signals

    def close(self) -> None:
        if self.signals is not None:
            self.signals.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        for client in self._clients.values():
            client.close()

    # ------------------------------------------------------------------------------ vault

    def tokens(self) -> TokenStore:
        """The token store; opens the vault on first use (VaultConfigError names the setting)."""
        with self._lock:
            if self._tokens is None:
                self._tokens = TokenStore(self.engine, self._vault_factory())
            return self._tokens

    # ------------------------------------------------------------------------------- flow

    def provider(self, name: str) -> OAuthProvider:
        _known(name)
        configured = self.providers.get(name)
        if configured is None:
            raise NotConfigured(
                f"{name} is not configured on this server: set {self.missing_settings[name]}"
            )
        return configured

    def connect_url(self, person: str, name: str) -> str:
        """Where to send the person to authorize `name`; the state is stored server-side."""
        provider = self.provider(name)
        self.tokens()  # refuse before the round trip when no vault key can be had
        verifier = provider.new_code_verifier()
        state = self.states.issue(person, name, code_verifier=verifier)
        return provider.authorization_url(state, verifier)

    def complete(self, person: str, name: str, *, code: str, state: str) -> None:
        """The provider sent the person back: check the state, trade the code, keep the token.

        Raises StateRejected, OAuthFailed (from `integrations.oauth`), NotConfigured.
        """
        provider = self.provider(name)
        verifier = self.states.consume(state, person, name)
        token = provider.exchange(code, code_verifier=verifier)
        self.tokens().save(person, name, token)
        self._forget_cached(person, name)
        logger.info("integrations: %s connected for %s", name, person)

    def disconnect(self, person: str, name: str) -> bool:
        """Revoke at the provider (best effort), delete from the vault; False if not connected."""
        _known(name)
        if not self._has_row(person, name):
            return False
        try:
            stored = self.tokens().load(person, name)
        except (TokenDecryptError, VaultConfigError) as exc:
            # Disconnecting must work even when the token cannot be opened; it just cannot be
            # revoked at the provider (the person can revoke it there).
            logger.warning("integrations: %s token of %s not revoked: %s", name, person, exc)
            stored = None
        provider = self.providers.get(name)
        if stored is not None and provider is not None:
            provider.revoke(stored.token)
        with self._autocommit.connect() as conn:
            deleted = conn.execute(
                tokens_table.delete().where(
                    tokens_table.c.principal == person, tokens_table.c.provider == name
                )
            ).rowcount
        self._forget_cached(person, name)
        logger.info("integrations: %s disconnected for %s", name, person)
        return bool(deleted)

    def forget_person(self, person: str) -> int:
        """Erase everything integrations hold about `person` (for DELETE /v1/me).

        Revokes and deletes every token, drops pending OAuth states and cached provider data.
        Returns how many integrations were disconnected.
        """
        count = sum(self.disconnect(person, name) for name in self._connected_names(person))
        # Rows of providers this build does not know (or whose tokens could not be opened).
        with self._autocommit.connect() as conn:
            conn.execute(tokens_table.delete().where(tokens_table.c.principal == person))
        self.states.forget(person)
        for client in self._clients.values():
            client.forget(person)
        if self.signals is not None:
            self.signals.forget(person)
        return count

    # ----------------------------------------------------------------------------- status

    def statuses(self, person: str) -> list[IntegrationStatus]:
        rows = {row.provider: row for row in self._rows(person)}
        result = []
        for name in PROVIDERS:
            row = rows.get(name)
            configured = name in self.providers
            if row is None:
                result.append(IntegrationStatus(name, "not_connected", configured, None, None))
            elif row.status == "connected":
                result.append(
                    IntegrationStatus(name, "connected", configured, row.updated_at, row.updated_at)
                )
            else:
                result.append(
                    IntegrationStatus(name, "needs_reconnect", configured, None, row.updated_at)
                )
        return result

    # ------------------------------------------------------------------------ live sources

    def gather(
        self,
        person: str,
        now: datetime,
        tz: tzinfo,
        *,
        todos: bool = True,
        statuses: Mapping[str, str] | None = None,
    ) -> Gathered:
        """Tasks and free/busy for this moment, within `deadline_s` all together.

        Only connected providers are asked; Todoist only when the person wants todos.
        `statuses` (provider -> token status, as `People.moment` reads it along with the
        profile) saves reading them here.
        """
        if statuses is None:
            statuses = {row.provider: row.status for row in self._rows(person)}
        rows = dict(statuses)
        wanted = _wanted(rows, todos=todos)
        if not wanted:
            return Gathered()
        deadline = self.clock() + self.deadline_s
        missing: list[str] = []
        jobs: dict[str, Future[object]] = {}
        for name in wanted:
            if rows[name] != "connected":
                missing.append(name)
                continue
            fetch = self._fetch_tasks if name == todoist.PROVIDER else self._fetch_calendar
            jobs[name] = self._pool.submit(fetch, person, now, tz, deadline)
        done, _ = wait(jobs.values(), timeout=max(0.0, deadline - self.clock()))
        tasks: tuple[Task, ...] = ()
        free_busy: FreeBusy | None = None
        used: list[str] = []
        for name, job in jobs.items():
            if job not in done:
                logger.info("integrations: %s skipped for %s: past the deadline", name, person)
                missing.append(name)
                continue
            try:
                result = job.result()
            except TokenRevoked:
                self._needs_reconnect(person, name)
                missing.append(name)
                continue
            except (ProviderError, VaultConfigError, TokenDecryptError) as exc:
                logger.info("integrations: %s skipped for %s: %s", name, person, exc)
                missing.append(name)
                continue
            except Exception as exc:  # a provider must never fail a recommend
                logger.warning(
                    "integrations: %s failed for %s (%s)", name, person, type(exc).__name__
                )
                missing.append(name)
                continue
            if result is None:  # disconnected meanwhile
                continue
            used.append(name)
            if isinstance(result, FreeBusy):
                free_busy = result
            elif isinstance(result, list):
                tasks = tuple(result)
        if self.signals is not None:
            # Only what was fetched: a provider left out says nothing about what changed.
            if todoist.PROVIDER in used:
                self.signals.observe_tasks(person, now, (task.id for task in tasks))
            if free_busy is not None:
                self.signals.observe_calendar(person, now, tz, free_busy)
        return Gathered(tasks, free_busy, tuple(used), tuple(sorted(missing)))

    def _remaining(self, deadline: float, name: str) -> float:
        remaining = deadline - self.clock()
        if remaining <= 0:
            raise ProviderUnavailable(f"{name}: the deadline ran out before asking")
        return remaining

    def _fetch_tasks(
        self, person: str, now: datetime, tz: tzinfo, deadline: float
    ) -> list[Task] | None:
        del tz
        return self._with_token(
            todoist.PROVIDER,
            person,
            now,
            deadline,
            lambda token, deadline_s: self.todoist.fetch_open_tasks(
                token, principal=person, deadline_s=deadline_s
            ),
        )

    def _fetch_calendar(
        self, person: str, now: datetime, tz: tzinfo, deadline: float
    ) -> FreeBusy | None:
        return self._with_token(
            calendar.PROVIDER,
            person,
            now,
            deadline,
            lambda token, deadline_s: self.calendar.free_busy(
                token, principal=person, now=now, tz=tz, deadline_s=deadline_s
            ),
        )

    def _with_token(
        self,
        name: str,
        person: str,
        now: datetime,
        deadline: float,
        ask: Callable[[ProviderToken, float], T],
    ) -> T | None:
        """What `ask` answers with the person's `name` token and the time left; None when
        not connected.

        The same for every provider: a token about to expire is refreshed first, and one
        refused before its expiry (a revoked access token, clock skew) is refreshed once and
        asked again; the fresh token goes back to the vault. Todoist's tokens neither expire
        nor carry a refresh token, so for Todoist this is one ask.
        """
        self._remaining(deadline, name)  # queued past the deadline: do nothing
        stored = self.tokens().load(person, name)
        if stored is None:
            return None
        token = stored.token
        if token.expired(now):
            token = self._refresh(person, name, token, deadline)
        try:
            return ask(token, self._remaining(deadline, name))
        except TokenRevoked:
            if not token.refresh_token or name not in self.providers:
                raise
        token = self._refresh(person, name, token, deadline)
        return ask(token, self._remaining(deadline, name))

    def _refresh(
        self, person: str, name: str, token: ProviderToken, deadline: float
    ) -> ProviderToken:
        provider = self.providers.get(name)
        if provider is None:
            raise ProviderUnavailable(f"{name} token expired and {name} is not configured")
        fresh = provider.refresh(token, timeout=self._remaining(deadline, name))
        self.tokens().replace(person, name, fresh)
        logger.info("integrations: refreshed the %s token of %s", name, person)
        return fresh

    # ---------------------------------------------------------------------------- helpers

    def _needs_reconnect(self, person: str, name: str) -> None:
        try:
            self.tokens().mark_needs_reconnect(person, name)
        except Exception as exc:
            logger.warning("integrations: cannot flag %s of %s (%s)", name, person, exc)
        self._forget_cached(person, name)

    def _forget_cached(self, person: str, name: str) -> None:
        if self.signals is not None:
            self.signals.forget(person, name)
        self._clients[name].forget(person)

    def _rows(self, person: str) -> list[sa.Row[tuple[str, str, datetime]]]:
        query = sa.select(
            tokens_table.c.provider, tokens_table.c.status, tokens_table.c.updated_at
        ).where(tokens_table.c.principal == person)
        with self._autocommit.connect() as conn:
            return list(conn.execute(query))

    def _has_row(self, person: str, name: str) -> bool:
        return any(row.provider == name for row in self._rows(person))

    def _connected_names(self, person: str) -> list[str]:
        return [row.provider for row in self._rows(person) if row.provider in PROVIDERS]


def _known(name: str) -> None:
    if name not in PROVIDERS:
        raise UnknownProvider(f"`provider` must be one of {', '.join(PROVIDERS)} (got {name!r})")


# ------------------------------------------------------------------------ live candidates


@dataclass(frozen=True, slots=True)
class LiveCandidates:
    """What the gathered sources add to one decision: context features and todo candidates."""

    context: list[FeatureObject]
    actions: list[Action]
    lines: list[str]
    tasks: dict[str, Task]
    """The task behind each todo action id, for display; never stored."""


def live_candidates(
    gathered: Gathered,
    now: datetime,
    tz: tzinfo,
    *,
    recent: Mapping[str, datetime],
    limit: int,
) -> LiveCandidates:
    """Calendar features for the context and open tasks as todo candidates.

    Tasks shown within the cool-down (`recent`, by action id) sit out like catalog tips do.
    """
    context: list[FeatureObject] = []
    if gathered.free_busy is not None:
        context.append(calendar_features(gathered.free_busy, now, tz))
    fresh = [task for task in gathered.tasks if todoist.action_id(task) not in recent]
    actions = todoist.todo_candidates(fresh, now, tz=tz, limit=limit)
    by_id = {todoist.action_id(task): task for task in fresh}
    return LiveCandidates(
        context=context,
        actions=actions,
        lines=[line(action.features) for action in actions],
        tasks={action.id: by_id[action.id] for action in actions},
    )


def todo_note(task: Task, now: datetime, tz: tzinfo) -> str:
    """One line under a todo's title: when it is due, and where it comes from."""
    due = task.due
    if due is None:
        when = "No due date"
    else:
        today = now.astimezone(tz).date()
        at = due.moment(tz)
        if due.day < today or (at is not None and at < now):
            when = "Overdue"
        elif due.day == today:
            when = f"Due today at {at.astimezone(tz):%H:%M}" if at is not None else "Due today"
        elif (due.day - today).days == 1:
            when = "Due tomorrow"
        else:
            when = f"Due {due.day:%a %d %b}"
    return f"{when} · from Todoist"
