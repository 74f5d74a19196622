"""The signal contract, the signal store's retention and indexes, and the signals stream, on
both backends."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from pydantic import ValidationError
from typer.testing import CliRunner

from api.cli import app as cli
from bandit.events import utcnow
from bandit.store import Store
from integrations.profiles import _MOMENT_SQL
from integrations.signal_stream import (
    SIGNAL_GROUP,
    SIGNAL_STREAM,
    InProcessSignalBus,
    RedisSignalBus,
    SignalBus,
    SignalIngest,
    SignalWorker,
    make_signal_bus,
)
from integrations.signals import MAX_CLOCK_SKEW, Signal, SignalRejected, SignalStore, signals_table
from tests.conftest import Backend, wait_until

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(backend: Backend) -> Iterator[SignalStore]:
    db = Store.connect(backend.database_url, pool_size=2)
    yield SignalStore(db.engine)
    db.engine.dispose()


@pytest.fixture
def bus(backend: Backend) -> Iterator[SignalBus]:
    made = make_signal_bus(backend.redis_url)
    yield made
    made.close()


def _signal(
    kind: str = "mood", value: float = 3, at: datetime = NOW, source: str = "web"
) -> Signal:
    return Signal(type=kind, value=value, occurred_at=at, source=source)


# ------------------------------------------------------------------------------ contract


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"type": "steps", "value": 1}, "`type` 'steps' is neither a built-in type"),
        ({"type": "fitness.", "value": 1}, "`type` 'fitness.' is neither"),
        ({"type": "9lives.x", "value": 1}, "String should match pattern"),
        ({"type": "mood", "value": 0}, r"`value` of a mood signal must be in \[1, 5\]"),
        ({"type": "habit_done", "value": 0.5}, "must be 1 \\(done\\) or 0 \\(skipped\\)"),
        ({"type": "mood", "value": float("nan")}, "finite number"),
        ({"type": "mood", "value": 3, "source": "a\x00b"}, "NUL character"),
        ({"type": "mood", "value": 3, "extra": 1}, "Extra inputs are not permitted"),
    ],
)
def test_the_contract_refuses_what_it_documents(fields: dict[str, object], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        Signal.model_validate(fields)


def test_the_contract_accepts_builtins_and_namespaced_types() -> None:
    assert Signal(type="habit_done", value=0).value == 0.0
    assert Signal(type="todoist.task_done", value=-3.5).type == "todoist.task_done"
    assert Signal(type="a.b.c-d_e", value=1e6).source == "api"
    # The sender's clock may run a little ahead; more is refused.
    Signal(type="mood", value=3, occurred_at=utcnow() + MAX_CLOCK_SKEW / 2)
    with pytest.raises(ValidationError, match="`occurred_at` is in the future"):
        Signal(type="mood", value=3, occurred_at=utcnow() + 2 * MAX_CLOCK_SKEW)
    # Offsets are normalized to UTC.
    paris = Signal.model_validate(
        {"type": "mood", "value": 3, "occurred_at": "2026-11-25T13:00+01:00"}
    )
    assert paris.occurred_at == NOW and paris.occurred_at.tzinfo == UTC


def test_ingest_refuses_a_signal_past_retention(store: SignalStore) -> None:
    ingest = SignalIngest(store, InProcessSignalBus(), retention=timedelta(days=30))
    with pytest.raises(
        SignalRejected, match="older than the signal retention period of 30 days"
    ) as caught:
        ingest.ingest("p", _signal(at=utcnow() - timedelta(days=31)))
    assert caught.value.field == "occurred_at"
    assert store.summary() == (0, None)


# ------------------------------------------------------------------------- stream + worker


def test_ingest_stores_then_publishes_and_the_worker_consumes(
    store: SignalStore, bus: SignalBus
) -> None:
    ingest = SignalIngest(store, bus, retention=timedelta(days=90))
    sent = [_signal("mood", 2, utcnow()), _signal("x.y", 7, utcnow(), source="<b>bold</b>")]
    stored = [ingest.ingest("p1", s) for s in sent]
    assert [s.signal for s in stored] == sent
    read = wait_until(lambda: bus.read("test", 10, 100))
    assert [(e.principal, e.signal) for e in read] == [("p1", s) for s in sent]
    bus.ack(read)
    if isinstance(bus, RedisSignalBus):
        # Acknowledged: a consumer restarted under the same name does not see them again.
        assert bus.read("test", 10, 10) == []

    worker = SignalWorker(store, bus, retention=timedelta(days=90), prune_seconds=3600)
    ingest.ingest("p2", _signal("energy", 5, utcnow()))
    wait_until(lambda: worker.step(block_ms=100))
    assert worker.consumed == 1
    assert worker.last_prune is not None and worker.last_prune.remaining == 3


def test_an_unreachable_stream_never_loses_a_stored_signal(store: SignalStore) -> None:
    class Down(InProcessSignalBus):
        def publish(self, principal: str, signal: Signal, received_at: datetime) -> None:
            raise ConnectionError("stream down")

    ingest = SignalIngest(store, Down(), retention=timedelta(days=90))
    ingest.ingest("p", _signal(at=utcnow()))
    assert store.summary()[0] == 1


def test_the_worker_runs_until_stopped(store: SignalStore) -> None:
    bus = InProcessSignalBus()
    worker = SignalWorker(store, bus, retention=timedelta(days=90), prune_seconds=3600)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    SignalIngest(store, bus, retention=timedelta(days=90)).ingest("p", _signal(at=utcnow()))
    wait_until(lambda: worker.consumed == 1)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_a_dead_consumers_signals_reach_another_consumer_after_the_idle_time(
    store: SignalStore, backend: Backend
) -> None:
    """A consumer that read entries and died before acknowledging them would leave them pending
    forever: past `claim_idle_ms` another consumer of the group claims and consumes them."""
    assert backend.redis_url is not None
    ingest_bus = RedisSignalBus(backend.redis_url)
    dead = RedisSignalBus(backend.redis_url)
    survivor = RedisSignalBus(backend.redis_url, claim_idle_ms=1)  # tiny: claims on the next poll
    try:
        ingest = SignalIngest(store, ingest_bus, retention=timedelta(days=90))
        sent = [_signal("mood", 4, utcnow()), _signal("energy", 2, utcnow())]
        for signal in sent:
            ingest.ingest("p1", signal)
        delivered = wait_until(lambda: dead.read("signals-dead", 10, 10))
        assert [e.signal for e in delivered] == sent  # delivered, never acknowledged
        dead.close()

        worker = SignalWorker(
            store, survivor, retention=timedelta(days=90), prune_seconds=3600, consumer="signals-2"
        )

        def consumed_all() -> bool:
            worker.step(block_ms=10)
            return worker.consumed == len(sent)

        wait_until(consumed_all)
        pending = survivor.client.xpending(SIGNAL_STREAM, SIGNAL_GROUP)
        assert pending["pending"] == 0  # acknowledged by the survivor: nothing left behind
    finally:
        for bus in (ingest_bus, dead, survivor):
            bus.close()


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_the_signal_bus_recreates_a_group_redis_lost(store: SignalStore, bus: SignalBus) -> None:
    """Redis restarted without persistence: the read that meets `NOGROUP` returns nothing, the
    next reads what was published since."""
    assert isinstance(bus, RedisSignalBus)
    ingest = SignalIngest(store, bus, retention=timedelta(days=90))
    ingest.ingest("p1", _signal(at=utcnow()))
    bus.ack(wait_until(lambda: bus.read("signals-1", 10, 10)))
    bus.client.delete(SIGNAL_STREAM)  # the stream and its group are gone
    sent = _signal("energy", 4, utcnow())
    ingest.ingest("p2", sent)
    assert bus.read("signals-1", 10, 10) == []
    after = wait_until(lambda: bus.read("signals-1", 10, 10))
    assert [(e.principal, e.signal) for e in after] == [("p2", sent)]


# ----------------------------------------------------------------------------- retention


def _seed_ages(store: SignalStore, days: list[float]) -> datetime:
    """One mood signal per age in `days`; returns the moment the ages count back from."""
    now = utcnow()
    for i, age in enumerate(days):
        at = now - timedelta(days=age)
        store.add(
            f"p{i % 3}",
            Signal.model_construct(type="mood", value=3.0, occurred_at=at, source="t"),
            now,
        )
    return now


def test_prune_deletes_exactly_what_is_past_retention_in_batches(store: SignalStore) -> None:
    now = _seed_ages(store, [200, 120, 91, 89, 10, 0.5, 150])
    totals: list[int] = []
    report = store.prune_report(timedelta(days=90), batch=2, on_batch=totals.append)
    assert (report.deleted, report.remaining) == (4, 3)
    assert totals == [2, 4]
    assert report.oldest is not None
    assert report.oldest == now - timedelta(days=89)
    assert store.prune_report(timedelta(days=90)).deleted == 0


def test_oo_signals_prune_prints_a_table_and_json(store: SignalStore, backend: Backend) -> None:
    _seed_ages(store, [40, 20, 5])
    runner = CliRunner()
    url = backend.database_url
    table = runner.invoke(
        cli, ["signals", "prune", "--retention-days", "30", "--database-url", url]
    )
    assert table.exit_code == 0, table.output
    assert "signals older than 30 days" in table.output
    assert "deleted" in table.output and "remaining" in table.output
    as_json = runner.invoke(
        cli, ["signals", "prune", "--retention-days", "10", "--database-url", url, "--json"]
    )
    assert as_json.exit_code == 0, as_json.output
    body = json.loads(as_json.stdout)
    assert (body["retention_days"], body["deleted"], body["remaining"]) == (10, 1, 1)
    bad = runner.invoke(cli, ["signals", "prune", "--retention-days", "0", "--database-url", url])
    assert bad.exit_code == 2
    assert "--retention-days" in bad.output


# ------------------------------------------------------------------------------- indexes


def _plan(store: SignalStore, sql: str, params: object) -> str:
    with store.engine.connect() as conn:
        if store.engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params).all()  # type: ignore[arg-type]
            return "\n".join(str(row[-1]) for row in rows)
        # Tables this small are cheaper to scan; forbid scans to see which index serves it.
        conn.exec_driver_sql("SET enable_seqscan = off")
        rows = conn.exec_driver_sql(f"EXPLAIN {sql}", params).all()  # type: ignore[arg-type]
        return "\n".join(str(row[0]) for row in rows)


def _compiled(store: SignalStore, query: sa.ClauseElement) -> tuple[str, object]:
    compiled = query.compile(dialect=store.engine.dialect)
    params = compiled.params
    if store.engine.dialect.name == "sqlite":
        return str(compiled), tuple(
            v.isoformat(" ") if isinstance(v, datetime) else v for v in params.values()
        )
    return str(compiled), params


def test_the_context_builder_and_pruning_read_through_indexes(store: SignalStore) -> None:
    _seed_ages(store, [1, 2, 3])
    since = utcnow() - timedelta(hours=6)
    sql, params = _compiled(store, store.latest_query("p1", since))
    assert "ix_signals_principal_occurred" in _plan(store, sql, params)
    if store.engine.dialect.name == "postgresql":
        # The decision path's one statement on PostgreSQL: signals and recent choices.
        bounds = {"principal": "p1", "surface": "tips", "signals_since": since}
        plan = _plan(store, _MOMENT_SQL, {**bounds, "recent_since": since})
        assert "ix_signals_principal_occurred" in plan
        assert "ix_decisions_principal_surface_created" in plan
    oldest = sa.select(signals_table.c.id).where(signals_table.c.occurred_at < since).limit(10)
    sql, params = _compiled(store, oldest)
    assert "ix_signals_occurred" in _plan(store, sql, params)
