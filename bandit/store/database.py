"""The decision log's database: the engine (with SQLite's pragmas), pooled connections and the
write discipline every part of the store shares.

SQLAlchemy Core on the SQLModel tables keeps the hot path to one statement per call. The same
code runs on SQLite (embedded default) and PostgreSQL (production).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import weakref
from collections import namedtuple
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

import orjson
import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects.sqlite.base import SQLiteCompiler
from sqlalchemy.engine import Connection, Engine

from bandit.events import Action
from bandit.private_files import private_sqlite
from bandit.store.group_commit import GroupCommit
from bandit.store.loop_commit import LoopCommit, Result, Row, SendBatch


def _plain_action(value: Any) -> Any:
    if isinstance(value, Action):
        return {"id": value.id, "features": value.features}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


json_text = json.JSONEncoder(check_circular=False, default=_plain_action).encode
"""JSON text exactly as `json.dumps` writes it, minus its check for circular references: what
the store writes is built from parsed JSON and records, never circular, and the check cost a
quarter of encoding a decision's actions (20 actions: 60 -> 44 µs). An `Action` is written as
`decision_json` writes it (never from its kept JSON, which only orjson can embed)."""


def decision_json(value: Any) -> str:
    """JSON text of a decision row's column (its context, actions, pmf), by orjson.

    About nine times faster than `json_text` on a rank's 20 actions (28 -> 3 µs) and on the tips
    catalog (39 -> 4 µs), the largest part of logging a recommend decision. The text is compact
    and keeps non-ASCII characters as they are; it reads back as the same values, since a
    decision holds only finite numbers (`bandit.features` refuses the others, which orjson
    would write as null). What orjson refuses (an integer beyond 64 bits, a lone surrogate, a
    key that is not a string) is written by `json_text`, so every value stdlib JSON writes is
    still written.

    The actions column holds the decision's `Action`s themselves: each is written as
    `{"id", "features"}`, from its kept JSON when it has one (`Action.kept`).
    """
    try:
        return orjson.dumps(
            value, default=_logged_action, option=orjson.OPT_PASSTHROUGH_DATACLASS
        ).decode()
    except orjson.JSONEncodeError:
        return json_text(value)


def _logged_action(value: Any) -> Any:
    if isinstance(value, Action) and value.logged is not None:
        return value.logged
    return _plain_action(value)


SQLITE_POOL = 64
"""SQLite connections the pool keeps: more than the api's threads can hold at once (AnyIO's 40
workers, the event loop, the log's writer and the background loops). An overflow connection is
closed when it comes back, and reopening one (the file, the WAL check, the pragmas) under load
made recommend on the embedded default cost 1.77-1.89 ms of CPU in process against 1.39-1.43
with the connections kept (ADR 0016, stop 26). Connections are made only when needed, so a
one-connection CLI still makes one."""


PG_CONNECT_ARGS: dict[str, Any] = {
    "connect_timeout": 3,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 25_000,
}
"""What every PostgreSQL connection is opened with besides the URL's own parameters: the pool's
(`make_engine`) and the event loop's async ones (`Database.connect_async`).

Besides the connect timeout, the kernel's bounds on a peer gone without a reset (a partition,
a host powered off; ADR 0025): an idle connection is probed after 10 s and given up after 3
unanswered probes 5 s apart, and one with data unacknowledged for 25 s is cut, so a thread
waiting on it gets an error instead of waiting forever. A live server acknowledges both
whatever it is busy with, so a long statement (the learner's, an evaluation's) is never cut."""


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine for `url`; SQLite gets WAL, full fsync and a busy timeout.

    `pool_size` is the connections kept for PostgreSQL, made only when needed; as many again
    may open in overflow, each closed when it comes back (`OO_DATABASE_POOL_SIZE`,
    docs/operations.md: under steady load above the pool the api reopens connections, and
    that measured cheaper for the api than keeping them). SQLite keeps up to `SQLITE_POOL`,
    whatever `pool_size` says.
    """
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            private_sqlite(Path(path))  # people's data: owner-only folder and files
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=max(pool_size, SQLITE_POOL),
            json_serializer=json_text,
        )

        engine.dialect.statement_compiler = _HintedSQLiteCompiler

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            _wal(cursor)
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping: it costs a round trip per checkout. A dropped connection raises a
        # disconnect error, which invalidates the pool, and the next request reconnects.
        pool_timeout=5,
        connect_args=PG_CONNECT_ARGS,
        json_serializer=json_text,
    )


class _HintedSQLiteCompiler(SQLiteCompiler):
    """SQLite's compiler, rendering a table hint given for SQLite after the table's name:
    `select(...).with_hint(table, "INDEXED BY ix_name", "sqlite")` reads `FROM t INDEXED BY
    ix_name` (SQLAlchemy's own SQLite compiler drops table hints). SQLite refuses a statement
    whose named index is missing, so a renamed index fails loudly rather than slowly."""

    def get_from_hint_text(self, table: Any, text: str | None) -> str | None:
        return text


class SqliteRead:
    """A SELECT compiled once for SQLite and run on the pooled `sqlite3` connection, for reads
    every decision makes (ADR 0016: SQLAlchemy's per-statement work on SQLite costs several
    times the read itself; a person's four reads on the recommend path: ~360 -> ~120 µs).

    Values go in and come out converted exactly as SQLAlchemy would convert them: each bound
    parameter through its type's SQLite bind processor, each selected column through its
    type's result processor (aware UTC datetimes, JSON, times). Rows are plain tuples in the
    statement's column order, named by the columns' keys (so a row reads like SQLAlchemy's).
    Parameters are scalars: an expanding one (`in_` a list) is refused, since its placeholders
    depend on the list.
    """

    def __init__(self, statement: sa.Select[Any], dialect: sa.Dialect) -> None:
        assert dialect.name == "sqlite", "SqliteRead is for SQLite"
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self._names = list(compiled.positiontup or ())
        binds = compiled.binds
        expanding = sorted(name for name, bind in binds.items() if bind.expanding)
        if expanding:
            raise ValueError(f"SqliteRead takes scalar parameters; {expanding} expand")
        # Literals the statement holds itself (a LIMIT, a constant in a WHERE), by name.
        self._literals = {name: binds[name].value for name in self._names}
        self._binds = [
            binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in self._names
        ]
        columns = list(statement.selected_columns)
        self._results = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        ]
        keys = [str(column.key) for column in columns]
        row: Any = namedtuple("Row", keys, rename=True)  # type: ignore[misc]  # keys known at run time
        self._make: Callable[[Iterable[Any]], tuple[Any, ...]] = row._make

    def rows(self, connection: Any, **params: Any) -> list[tuple[Any, ...]]:
        """The rows for `params` (every named bind parameter of the statement) on `connection`,
        a `sqlite3` connection (`sqlite_connection`)."""
        values = []
        for name, process in zip(self._names, self._binds, strict=True):
            value = params[name] if name in params else self._literals[name]
            values.append(value if process is None else process(value))
        results, make = self._results, self._make
        return [
            make(
                value if process is None else process(value)
                for process, value in zip(results, row, strict=True)
            )
            for row in connection.execute(self.sql, values)
        ]


@contextmanager
def sqlite_connection(engine: Engine) -> Iterator[Any]:
    """A `sqlite3` connection of `engine` for reads, outside any transaction (SQLite's driver
    begins one only before a write), from the engine's own free list of read connections
    (`_Readers`)."""
    readers = _readers(engine)
    connection, generation = readers.take(engine)
    try:
        yield connection
    finally:
        readers.give(connection, generation)


READERS_KEPT = 16
"""Idle read connections an engine keeps (`_Readers`): the reads that run at once on the
embedded default (the event loop's, a few worker threads'). One more is closed when it is
given back."""


class _Readers:
    """The read connections of one SQLite engine, kept apart from SQLAlchemy's pool.

    Every recommend on the embedded default makes three or four indexed reads; a checkout from
    SQLAlchemy's pool and its check-in (the pool's events, and the rollback it resets a
    connection with) cost about as much as a read itself: 2.8% of the api process's time under
    `bench_rank`'s recommend (py-spy, stop 31). A read connection needs none of it: it is never
    in a transaction, and it is used by one thread at a time. So each is opened through the
    pool once, with the engine's pragmas, detached from it, and kept on a list: taking one is a
    `pop`, giving it back an `append`.

    `engine.dispose()` closes the idle ones; one in use while the engine was disposed is closed
    when it is given back. Thread-safe.
    """

    def __init__(self) -> None:
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self.generation = 0

    def take(self, engine: Engine) -> tuple[Any, int]:
        with self._lock:
            generation = self.generation
            if self._idle:
                return self._idle.pop(), generation
        proxy = engine.raw_connection()
        connection = proxy.driver_connection
        proxy.detach()  # the pool forgets it: it is closed here, never checked in
        return connection, generation

    def give(self, connection: Any, generation: int) -> None:
        if connection.in_transaction:  # a read never begins one; never keep one that did
            connection.rollback()
        with self._lock:
            if generation == self.generation and len(self._idle) < READERS_KEPT:
                self._idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
            self.generation += 1
        for connection in idle:
            connection.close()


_READERS: weakref.WeakKeyDictionary[Engine, _Readers] = weakref.WeakKeyDictionary()
_READERS_LOCK = threading.Lock()


def _readers(engine: Engine) -> _Readers:
    readers = _READERS.get(engine)
    if readers is None:
        with _READERS_LOCK:
            readers = _READERS.get(engine)
            if readers is None:
                made = _READERS[engine] = _Readers()
                sa.event.listen(engine, "engine_disposed", lambda _engine: made.close())
                return made
    return readers


Answer = TypeVar("Answer")
Finished = TypeVar("Finished")


@dataclass(frozen=True, slots=True)
class PgQuery(Generic[Answer]):
    """One read of the hot path on PostgreSQL: its statement, its parameters, and how its rows
    become the answer. Sent on a sync connection (`send`) or an async one
    (`api.services.recommend_reads`), alone or among others in one pipeline, so the statement
    and its decoding are written once for both."""

    sql: str
    params: Mapping[str, Any]
    decode: Callable[[Sequence[Any]], Answer]
    """The answer from all the statement's rows (tuples)."""

    def then(self, finish: Callable[[Answer], Finished]) -> PgQuery[Finished]:
        """The same read, its answer passed through `finish`."""
        decode = self.decode
        return PgQuery(self.sql, self.params, lambda rows: finish(decode(rows)))

    def send(self, connection: Any) -> Callable[[], Answer]:
        """Send the statement on `connection`, a sync psycopg connection (`pg_connection`); the
        returned function reads the answer. In a pipeline: call it after the block."""
        cursor = connection.execute(self.sql, self.params)
        return lambda: self.decode(cursor.fetchall())

    def fetch(self, connection: Any) -> Answer:
        """The answer, read on `connection` now."""
        return self.send(connection)()


@contextmanager
def pg_connection(engine: Engine) -> Iterator[Any]:
    """A pooled psycopg connection of `engine` in autocommit, for the hot path on PostgreSQL.

    SQLAlchemy's per-statement overhead is several times a loopback round trip; the decision
    path issues a handful of fixed statements, so it talks to psycopg directly (and can
    pipeline its reads). The connection goes back to the pool as it came (autocommit off).
    """
    proxy = engine.raw_connection()
    try:
        connection: Any = proxy.driver_connection
        connection.autocommit = True
        try:
            yield connection
        finally:
            connection.autocommit = False
    finally:
        proxy.close()


def _milliseconds(seconds: float) -> int:
    """PostgreSQL's statement timeout for `seconds`: whole milliseconds, at least 1 (0 is no
    timeout at all)."""
    return max(1, round(seconds * 1000))


WAL_WAIT_SECONDS = 30.0
"""How long a connection to a new database retries switching it to WAL (the busy timeout)."""


def _wal(cursor: Any) -> None:
    """Put the database in WAL mode (it stays so in the file; later connections find it set).

    Switching needs the database to itself, and SQLite answers "database is locked" at once,
    without its busy wait, while another connection holds it: that happens when several
    connections open a new database together (concurrent `oo db upgrade`s). So it retries.
    """
    if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        return
    deadline = time.monotonic() + WAL_WAIT_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class Database:
    """An engine and the ways the store's parts talk to it. Thread-safe; one per process.

    `statement_timeout` (seconds; None: none) bounds the statements a request waits on, on
    PostgreSQL (ADR 0025): the event loop's own connections carry it for their whole life
    (`connect_async`), and the pool's transactions that serve a request set it for themselves
    (`bound`), so the pool's other work (an evaluation, the learner's reads) is never cut.
    Past it the server cancels the statement, nothing of it is committed, and the request is
    answered 503.
    """

    def __init__(self, engine: Engine, *, statement_timeout: float | None = None) -> None:
        self.engine = engine
        self.statement_timeout = statement_timeout
        # Reads and single-statement writes run in autocommit: no BEGIN/COMMIT round trips, and
        # one statement is atomic on its own.
        self.autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.is_sqlite = engine.dialect.name == "sqlite"
        # SQLite allows one writer at a time; serializing here avoids busy-waiting in SQLite.
        self._write_lock = threading.Lock() if self.is_sqlite else None

    @classmethod
    def connect(
        cls, url: str, *, pool_size: int = 10, statement_timeout: float | None = None
    ) -> Self:
        return cls(make_engine(url, pool_size=pool_size), statement_timeout=statement_timeout)

    async def connect_async(self) -> psycopg.AsyncConnection[Any]:
        """A new psycopg async connection in autocommit, for the event loop's batches on
        PostgreSQL (ADR 0024), opened with what the engine opens its own with: the URL's
        parameters as the dialect reads them (an `options=-csearch_path=...` query included),
        the dialect's type adapters (JSON as the engine writes and reads it) and
        `PG_CONNECT_ARGS`; and with the statement timeout, as a startup option beside the
        URL's own, which costs no round trip (ADR 0025)."""
        _, params = self.engine.dialect.create_connect_args(self.engine.url)
        if self.statement_timeout is not None:
            option = f"-c statement_timeout={_milliseconds(self.statement_timeout)}"
            params["options"] = " ".join(filter(None, [params.get("options"), option]))
        return await psycopg.AsyncConnection.connect(**params, **PG_CONNECT_ARGS, autocommit=True)

    def on_loop(
        self, send: SendBatch[Row, Result], otherwise: GroupCommit[Row, Result]
    ) -> LoopCommit[Row, Result]:
        """`otherwise`'s batches sent by the event loop itself, on PostgreSQL, on a connection
        of their own (ADR 0024) that carries the statement timeout the loop bounds them by
        (ADR 0025)."""
        assert not self.is_sqlite, "the event loop's batches are PostgreSQL's"
        return LoopCommit(
            send,
            connect=self.connect_async,
            otherwise=otherwise,
            name=otherwise.name,
            statement_timeout=self.statement_timeout,
        )

    @property
    def bound(self) -> str | None:
        """The statement that bounds the rest of a pool transaction serving a request by the
        statement timeout (`SET LOCAL`: the connection goes back to the pool unbounded); None
        without one. Sent first in the transaction, a round trip of its own: paid only by the
        pool's writes that serve a request (an activation, a reward from a thread), since the
        event loop's connections carry the timeout from the start (`connect_async`)."""
        if self.statement_timeout is None or self.is_sqlite:
            return None
        return f"SET LOCAL statement_timeout = {_milliseconds(self.statement_timeout)}"

    def ping(self) -> None:
        with self.autocommit.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    @contextmanager
    def raw(self) -> Iterator[Any]:
        """A pooled psycopg connection in autocommit (`pg_connection`)."""
        with pg_connection(self.engine) as connection:
            yield connection

    @contextmanager
    def sqlite_write(self, *, immediate: bool = False) -> Iterator[Any]:
        """The pooled `sqlite3` connection, in one transaction under the write lock, for the
        decision and reward logs' batches: SQLAlchemy's per-transaction bookkeeping cost
        several times the INSERT itself there (ADR 0016). Commits on success, rolls back on an
        error. `immediate` takes SQLite's write lock at BEGIN, for a transaction that reads
        before it writes (another process cannot write in between)."""
        assert self._write_lock is not None, "sqlite_write is for SQLite"
        with self._write_lock:
            proxy = self.engine.raw_connection()
            try:
                connection: Any = proxy.driver_connection
                if not connection.in_transaction:
                    connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
                try:
                    yield connection
                except BaseException:
                    connection.rollback()
                    raise
                connection.commit()
            finally:
                proxy.close()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A connection for writing, in one transaction (serialized on SQLite)."""
        if self._write_lock is None:
            with self.engine.begin() as conn:
                yield conn
        else:
            with self._write_lock, self.engine.begin() as conn:
                yield conn
