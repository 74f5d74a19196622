"""Domain errors reach the wire through one mapping: kind -> status, message and target as
raised, Personalizer's code for a bad request on its routes."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import errors
from api.services.process import PolicyExists, PolicyNotServed
from bandit.clock import OutOfRange
from bandit.decide import EventIdConflict
from bandit.errors import DomainError, Kind
from bandit.model import ModelError
from bandit.surface_config import ConfigError
from bandit.vw_args import VwArgsError
from experiments.lifecycle import ExperimentConflict, ExperimentError, ExperimentNotFound
from integrations.connections import NotConfigured, UnknownProvider
from integrations.oauth import OAuthFailed, StateRejected
from integrations.providers import ProviderUnavailable
from integrations.signals import SignalRejected
from integrations.vault import VaultConfigError
from policies.spec import PolicySpecError
from rewards.logs.dsjson_import import DsjsonError
from rewards.ope.errors import EvaluationError
from rewards.ope.grid import SearchError


@pytest.mark.parametrize(
    ("error", "kind", "target"),
    [
        (PolicySpecError("`args`: no", target="--epsilon"), Kind.INVALID, "--epsilon"),
        (PolicyExists("`name` 'p' got version 2 from another request"), Kind.CONFLICT, "name"),
        (PolicyNotServed("arm 'b': refused"), Kind.CONFLICT, "policy"),
        (VwArgsError("`--data` reads files", target="--data"), Kind.INVALID, "--data"),
        (ModelError("not a model"), Kind.INVALID, None),
        (ConfigError("default_reward", "…"), Kind.INVALID, "default_reward"),
        (ExperimentError("`salt` …", target="salt"), Kind.INVALID, "salt"),
        (ExperimentNotFound("no experiment 'x'", target="name"), Kind.NOT_FOUND, "name"),
        (ExperimentConflict("running", target="surface"), Kind.CONFLICT, "surface"),
        (EvaluationError("`policies`: unknown"), Kind.INVALID, "policies"),
        (SearchError("`cb_types` …", target="cb_types"), Kind.INVALID, "cb_types"),
        (SignalRejected("too old", field="occurred_at"), Kind.INVALID, "occurred_at"),
        (DsjsonError(3, "_label_cost", "`_label_cost` …"), Kind.INVALID, "_label_cost"),
        (EventIdConflict("`eventId` is taken", target="eventId"), Kind.INVALID, "eventId"),
        (NotConfigured("OO_TODOIST_CLIENT_ID is not set"), Kind.CONFLICT, "provider"),
        (UnknownProvider("`provider` must be one of …"), Kind.INVALID, "provider"),
        (OAuthFailed("todoist refused"), Kind.INVALID, "code"),
        (StateRejected("state has expired"), Kind.INVALID, "state"),
        (VaultConfigError("OO_VAULT_KEYS is not set"), Kind.CONFLICT, "OO_VAULT_KEYS"),
        (ProviderUnavailable("todoist answered 502"), Kind.UNAVAILABLE, None),
    ],
)
def test_every_domain_error_has_a_kind_and_a_target(
    error: DomainError, kind: Kind, target: str | None
) -> None:
    assert isinstance(error, DomainError)
    assert (error.kind, error.target) == (kind, target)


def test_out_of_range_targets_its_field() -> None:
    from datetime import datetime

    error = OutOfRange("start", datetime(1, 1, 1))
    assert (error.kind, error.target, error.message) == (Kind.INVALID, "start", str(error))


def test_a_rejected_state_keeps_its_reason_from_the_caller() -> None:
    error = StateRejected("state was issued for another flow")
    assert "another flow" in str(error)
    assert error.message == (
        "`state` is not valid for this connection; start again from the connect link"
    )


@pytest.mark.parametrize(
    ("error", "path", "answer"),
    [
        (ExperimentError("bad", target="arms"), "/v1/experiments", (400, "BadRequest")),
        (ExperimentNotFound("no", target="name"), "/v1/experiments/x", (404, "ResourceNotFound")),
        (ExperimentConflict("busy", target="surface"), "/v1/experiments", (409, "Conflict")),
        (ProviderUnavailable("down"), "/v1/recommend", (503, "ServiceUnavailable")),
        (EventIdConflict("taken"), "/personalizer/v1.0/rank", (400, "InvalidRankRequest")),
        (
            ConfigError("default_reward", "bad"),
            "/personalizer/v1.0/configurations/service",
            (400, "InvalidServiceConfiguration"),
        ),
        (
            PolicySpecError("bad", target="arguments"),
            "/personalizer/configurations/policy",
            (400, "InvalidPolicyConfiguration"),
        ),
        (
            EvaluationError("bad", target="policies[0].arguments"),
            "/personalizer/v1.0/evaluations",
            (400, "InvalidEvaluationContract"),
        ),
        (ModelError("bad", target="body"), "/personalizer/v1.0/model", (400, "BadRequest")),
        (PolicyNotServed("refused"), "/personalizer/v1.0/rank", (409, "PolicyNotServed")),
    ],
)
def test_kinds_answer_with_a_status_and_code(
    error: DomainError, path: str, answer: tuple[int, str]
) -> None:
    assert errors.domain_answer(error, path) == answer


def test_the_handler_passes_message_and_target_unchanged() -> None:
    app = FastAPI()
    errors.install(app)

    @app.get("/v1/things/{name}")
    def thing(name: str) -> None:
        raise ExperimentNotFound(f"no experiment is called {name!r}", target="name")

    @app.get("/v1/connect")
    def connect() -> None:
        raise StateRejected("state has expired")

    reply = TestClient(app).get("/v1/things/x")
    assert reply.status_code == 404
    assert reply.headers["x-ms-error-code"] == "ResourceNotFound"
    assert reply.json() == {
        "error": {
            "code": "ResourceNotFound",
            "message": "no experiment is called 'x'",
            "target": "name",
        }
    }
    hidden = TestClient(app).get("/v1/connect").json()["error"]
    assert hidden["target"] == "state" and "expired" not in hidden["message"]
