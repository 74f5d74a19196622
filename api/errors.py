"""Errors as the API answers them: Personalizer's error body on every route.

`{"error": {"code": "...", "message": "...", "target": "..."}}`, with the code repeated in the
`x-ms-error-code` header. Validation messages name the field in the request, e.g.
"`actions[3].id`: Field required".

Two families reach this module, each translated here and nowhere else:

- `bandit.errors.DomainError`, raised by every package and service below the routes: its kind
  gives the status (`KIND_ANSWERS`), its message and target pass unchanged. On Personalizer's
  routes a bad request carries Personalizer's code for that route, as validation errors do.
- `ApiError`, raised by the HTTP edge itself: authentication, rate and size limits, and
  checks of a route's own parameters with a code of their own.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import psycopg
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from bandit.errors import DomainError, Kind
from bandit.store import Unanswered

log = logging.getLogger(__name__)


class ApiError(Exception):
    status = 400
    code = "BadRequest"
    headers: dict[str, str] | None = None

    def __init__(self, message: str, *, target: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.target = target
        if code is not None:
            self.code = code


class BadRequest(ApiError):
    pass


class NotFound(ApiError):
    status = 404
    code = "ResourceNotFound"


class Forbidden(ApiError):
    status = 403
    code = "Forbidden"


class Unauthorized(ApiError):
    status = 401
    code = "Unauthorized"


class Conflict(ApiError):
    status = 409
    code = "Conflict"


class PayloadTooLarge(ApiError):
    status = 413
    code = "PayloadSizeExceeded"


class Unavailable(ApiError):
    status = 503
    code = "ServiceUnavailable"


def error_response(
    status: int,
    code: str,
    message: str,
    target: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if target:
        body["target"] = target
    return JSONResponse(
        {"error": body}, status_code=status, headers={"x-ms-error-code": code, **(headers or {})}
    )


def field_path(loc: Sequence[int | str]) -> str:
    """("body", "actions", 3, "id") -> "actions[3].id"."""
    parts = [p for p in loc if p not in ("body", "query", "path", "header")]
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in ("function-after", "function-before") or str(part).startswith("function-"):
            continue
        else:
            text += f".{part}" if text else str(part)
    return text or "body"


OUT_OF_RANGE = "out_of_range_utc"
"""The validation error of `api.schemas.base.Instant`; its message continues the field's name."""


def validation_message(exc: RequestValidationError) -> tuple[str, str]:
    errors = exc.errors()
    if not errors:
        return "body", "the request is not valid"
    first = errors[0]
    path = field_path(first.get("loc", ()))
    message = str(first.get("msg", "invalid value"))
    if first.get("type") == OUT_OF_RANGE:
        return path, f"`{path}` {message}"
    message = message.removeprefix("Value error, ")
    if message.startswith("`"):
        # Validators name the field relative to themselves; anchor it at the request's root.
        named = message[1:].split("`", 1)[0]
        head = re.split(r"[.\[]", named, maxsplit=1)[0]
        parent, _, last = path.rpartition(".")
        if path != "body" and re.split(r"\[", last)[0] == head and parent:
            message = f"`{parent}.{message[1:]}"
            path = f"{parent}.{named}"
        elif path == "body" or re.split(r"\[", last)[0] == head:
            path = named
        return path, message
    if first.get("type") == "json_invalid":
        return "body", f"the body is not valid JSON: {first.get('ctx', {}).get('error', message)}"
    if path == "body" and isinstance(exc.body, bytes):
        # FastAPI hands over the raw bytes when the content type is not JSON.
        return "body", "`body` must be JSON, sent with `Content-Type: application/json`"
    return path, f"`{path}`: {message}"


KIND_ANSWERS: dict[Kind, tuple[int, str]] = {
    Kind.INVALID: (400, "BadRequest"),
    Kind.NOT_FOUND: (404, "ResourceNotFound"),
    Kind.CONFLICT: (409, "Conflict"),
    Kind.UNAVAILABLE: (503, "ServiceUnavailable"),
}
"""The status and default code of each kind of domain error."""


def domain_answer(exc: DomainError, path: str) -> tuple[int, str]:
    """The status and code answering `exc` on the route at `path`."""
    status, code = KIND_ANSWERS[exc.kind]
    if exc.code is not None:
        return status, exc.code
    if exc.kind is Kind.INVALID:
        return status, _invalid_request_code(path)
    return status, code


def _invalid_request_code(path: str) -> str:
    """Personalizer's code for a bad rank, reward or activate request; BadRequest elsewhere."""
    if path.startswith("/personalizer"):
        if path.endswith("/rank"):
            return "InvalidRankRequest"
        if path.endswith("/reward"):
            return "InvalidRewardRequest"
        if path.endswith("/activate"):
            return "InvalidEventIdToActivate"
        # the administration surface (issue 6)
        if path.endswith("/configurations/service"):
            return "InvalidServiceConfiguration"
        if "/configurations/" in path:
            return "InvalidPolicyConfiguration"
        if "/evaluations" in path:
            return "InvalidEvaluationContract"
    return "BadRequest"


def install(app: FastAPI, personalizer_code: str = "BadRequest") -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.target, exc.headers)

    @app.exception_handler(DomainError)
    async def _domain_error(request: Request, exc: DomainError) -> JSONResponse:
        status, code = domain_answer(exc, request.url.path)
        return error_response(status, code, exc.message, exc.target)

    async def _storage_down(request: Request, exc: Exception) -> JSONResponse:
        # The database is unreachable (restart, failover) or did not answer in time: nothing
        # was acknowledged, so the client may retry. Answer fast with 503 instead of a 500;
        # the pool reconnects by itself.
        log.warning("database unavailable: %s", type(exc).__name__)
        return error_response(
            503, "ServiceUnavailable", _storage_down_message(exc), headers={"Retry-After": "1"}
        )

    app.add_exception_handler(sqlalchemy.exc.OperationalError, _storage_down)
    app.add_exception_handler(sqlalchemy.exc.InterfaceError, _storage_down)
    app.add_exception_handler(sqlalchemy.exc.TimeoutError, _storage_down)
    app.add_exception_handler(psycopg.OperationalError, _storage_down)
    app.add_exception_handler(psycopg.InterfaceError, _storage_down)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        target, message = validation_message(exc)
        return error_response(400, _invalid_request_code(request.url.path), message, target)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.__cause__ is not None:
            # FastAPI's body parsing failed outside the JSON decoder: nesting beyond the
            # recursion limit, an integer of thousands of digits, bytes that are not UTF-8.
            return error_response(
                400,
                _invalid_request_code(request.url.path),
                f"the body is not valid JSON: {exc.__cause__}",
                "body",
            )
        codes = {
            401: "Unauthorized",
            404: "ResourceNotFound",
            405: "MethodNotAllowed",
            413: "PayloadSizeExceeded",
        }
        return error_response(
            exc.status_code,
            codes.get(exc.status_code, "BadRequest"),
            str(exc.detail),
            headers=dict(exc.headers or {}),
        )


def _storage_down_message(exc: Exception) -> str:
    """What a 503 for a database error tells the client, from the driver's error (SQLAlchemy's
    wraps it): only a statement the database never answered may have been committed (ADR
    0025); one it cancelled past its timeout, like one it never received, was not."""
    cause = getattr(exc, "orig", None) or exc
    if isinstance(cause, Unanswered):
        return "the database did not answer in time; this request may have been recorded, retry"
    if isinstance(cause, psycopg.errors.QueryCanceled):
        return "the database did not answer within its timeout; nothing was recorded, retry shortly"
    return "the database is unavailable; nothing was recorded, retry shortly"


ERROR_STATUSES = {
    "400": "Bad input; the message and `target` name the field",
    "401": "No credentials, or credentials that do not hold (sign in again, or send a valid key)",
    "403": "The event id belongs to someone else",
    "404": "Unknown event id, experiment, policy or evaluation",
    "409": "The request conflicts with the current state (e.g. a running experiment)",
    "413": "The body exceeds OO_MAX_BODY_BYTES",
    "429": "A rate limit of this principal is spent; retry after `Retry-After` seconds",
    "503": "The database is unavailable; nothing was recorded, retry after `Retry-After`",
}

ERROR_SCHEMAS: dict[str, Any] = {
    "ErrorDetail": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string"},
            "message": {"type": "string"},
            "target": {"type": "string"},
        },
    },
    "ErrorBody": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"$ref": "#/components/schemas/ErrorDetail"}},
    },
}


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Describe the errors every route really answers with: Personalizer's error body for 4xx
    and 503, and 400 (not FastAPI's default 422) for validation errors."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status, description in ERROR_STATUSES.items():
                responses.setdefault(
                    status,
                    {
                        "description": description,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ErrorBody"}
                            }
                        },
                    },
                )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components.update(ERROR_SCHEMAS)
    return schema
