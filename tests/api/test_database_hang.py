"""A hung (not broken) PostgreSQL connection (ADR 0025): while another session holds a lock the
request's statement waits on, recommend, Personalizer's rank, reward and activate, and feedback
answer 503 with `Retry-After` (the server cancels the statement past
`OO_DATABASE_TIMEOUT_SECONDS`), record nothing, and succeed once the lock is released."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest
import sqlalchemy as sa
import typer
from fastapi.testclient import TestClient
from httpx import Response

from api.cli_common import settings_or_exit
from api.errors import _storage_down_message
from api.settings import Settings
from bandit.store import Unanswered
from tests.api.decision_helpers import (
    actions,
    event_url,
    personalizer_url,
    rank,
    recommend,
    row_counts,
    services,
)

on_postgres = pytest.mark.parametrize("backend", ["postgres"], indirect=True)

TIMEOUT = 0.2
"""`OO_DATABASE_TIMEOUT_SECONDS` in these tests: short, so a blocked request ends soon."""


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(database_timeout_seconds=TIMEOUT)


@contextmanager
def locked(client: TestClient, statement: str) -> Iterator[None]:
    """`statement`'s lock, held by another session until the block ends."""
    with services(client).store.engine.connect() as conn, conn.begin():
        conn.exec_driver_sql(statement)
        yield


def assert_timed_out(reply: Response) -> None:
    assert reply.status_code == 503, reply.text
    error = reply.json()["error"]
    assert error["code"] == "ServiceUnavailable"
    assert "nothing was recorded" in error["message"]
    assert reply.headers["retry-after"] == "1"


@on_postgres
def test_recommend_and_rank_answer_503_while_the_decision_log_is_locked(
    client: TestClient,
) -> None:
    recommend(client)  # the person's history is loaded: the next recommend reads on the loop
    body = {"actions": actions("a", "b")}
    before = row_counts(client)
    with locked(client, "LOCK TABLE decisions IN ACCESS EXCLUSIVE MODE"):
        assert_timed_out(client.post("/v1/recommend"))
        assert_timed_out(client.post(personalizer_url("/rank"), json=body))
    assert row_counts(client) == before
    recommend(client)
    rank(client, body)
    assert row_counts(client)["decisions"] == before["decisions"] + 2


@on_postgres
def test_a_rank_blocked_on_writing_its_decision_logs_nothing(client: TestClient) -> None:
    """A lock that lets recommend's reads through and blocks only the decision's INSERT: the
    server cancels it, so the event id answered 503 is not logged, and ranking it again once
    the lock is gone logs it."""
    body = {"eventId": "blocked", "actions": actions("a", "b")}
    with locked(client, "LOCK TABLE decisions IN EXCLUSIVE MODE"):
        assert_timed_out(client.post(personalizer_url("/rank"), json=body))
        assert_timed_out(client.post("/v1/recommend"))
    assert services(client).store.get("blocked") is None
    assert rank(client, body)["eventId"] == "blocked"
    assert services(client).store.get("blocked") is not None


@on_postgres
def test_feedback_and_reward_answer_503_while_the_reward_log_is_locked(
    client: TestClient,
) -> None:
    tip = recommend(client)["event_id"]
    ranked = rank(client, {"actions": actions("a", "b")})["eventId"]
    before = row_counts(client)
    with locked(client, "LOCK TABLE rewards IN ACCESS EXCLUSIVE MODE"):
        assert_timed_out(client.post("/v1/feedback", json={"event_id": tip, "reaction": "done"}))
        assert_timed_out(client.post(event_url(ranked, "reward"), json={"value": 1}))
    assert row_counts(client) == before
    reply = client.post("/v1/feedback", json={"event_id": tip, "reaction": "done"})
    assert reply.status_code == 200, reply.text
    assert client.post(event_url(ranked, "reward"), json={"value": 1}).status_code == 204
    assert row_counts(client)["rewards"] == before["rewards"] + 2


@on_postgres
def test_reward_and_activate_answer_503_while_their_decision_s_row_is_locked(
    client: TestClient,
) -> None:
    """A row lock on the decision (another transaction updating it): recording its reward
    (which checks the decision) and activating it both wait on the row, and are cancelled."""
    event_id = rank(client, {"actions": actions("a", "b"), "deferActivation": True})["eventId"]
    row = f"SELECT 1 FROM decisions WHERE event_id = '{event_id}' FOR UPDATE"
    with locked(client, row):
        assert_timed_out(client.post(event_url(event_id, "reward"), json={"value": 1}))
        assert_timed_out(client.post(event_url(event_id, "activate")))
    logged = services(client).store.get(event_id)
    assert logged is not None and logged.reward is None and logged.decision.activated_at is None
    assert client.post(event_url(event_id, "reward"), json={"value": 1}).status_code == 204
    assert client.post(event_url(event_id, "activate")).status_code == 204


@pytest.mark.parametrize("value", ["0", "0.001", "61", "soon"])
def test_a_bad_timeout_stops_the_start_naming_its_variable(
    value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OO_DATABASE_TIMEOUT_SECONDS", value)
    with pytest.raises(typer.Exit) as stopped:
        settings_or_exit(Settings)
    assert stopped.value.exit_code == 2
    assert capsys.readouterr().err.startswith("error: OO_DATABASE_TIMEOUT_SECONDS: ")


def test_a_503_says_whether_the_request_may_have_been_recorded() -> None:
    """Only a statement the database never answered (a partition) may have committed."""
    assert "may have been recorded" in _storage_down_message(Unanswered("no answer"))
    cancelled = psycopg.errors.QueryCanceled("canceling statement due to statement timeout")
    wrapped = sa.exc.OperationalError("UPDATE decisions ...", {}, cancelled)
    for exc in (cancelled, wrapped):
        assert "nothing was recorded" in _storage_down_message(exc)
