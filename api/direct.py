"""Routes served by a hand-written request handler: the decision path's own (ADR 0018).

FastAPI serves an operation through generic machinery: it reads the body, resolves the
dependency tree (each dependency looked up, cached, awaited), validates the body against the
signature and calls the endpoint. For Personalizer's rank that machinery cost about a fifth of
the whole request's CPU (1.05 → 0.84 ms per rank on the embedded default, same run), while the
steps themselves are a handful of calls.

A :class:`DirectRoute` is an ordinary `APIRoute` — the OpenAPI operation, the path styles, the
names and the error handlers all come from the endpoint's signature as before — whose requests
go to the handler its endpoint was marked with (:func:`served_by`). The handler performs the
same steps explicitly, in FastAPI's order: the body is read and decoded first (:func:`json_body`),
then the dependencies run, then the body is validated (:func:`validated`), then the endpoint.
Errors are the ones FastAPI raises, so the app's handlers answer them the same way.

A handler names the dependencies it performs. A route refuses to be built when its dependency
tree holds one the handler does not name, so a dependency added to the route later cannot be
skipped without anyone noticing. The decision routes are added with `api.flat.include`, which puts
the include's dependencies (the rate limits) in each route's tree, so the check covers them too.
A router included with `app.include_router` keeps them out of the tree: there the handler must
still perform them, unchecked.
"""

from __future__ import annotations

import email.message
import json
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.exceptions import HTTPException

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
Model = TypeVar("Model", bound=BaseModel)
Checked = TypeVar("Checked")

_MARK = "__oo_direct__"

NO_BODY: Any = object()
"""What :func:`json_body` returns for an empty body (JSON `null` is None)."""


@dataclass(frozen=True)
class _Direct:
    handler: Handler
    performs: frozenset[Callable[..., Any]]


def served_by(
    handler: Handler, *, performs: Iterable[Callable[..., Any]]
) -> Callable[[Endpoint], Endpoint]:
    """Mark an endpoint so a :class:`DirectRoute` serves it through `handler`, which performs
    the dependencies `performs` (the callables given to `Depends`) itself."""

    def mark(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, _MARK, _Direct(handler, frozenset(performs)))
        return endpoint

    return mark


class DirectRoute(APIRoute):
    """An `APIRoute` whose marked endpoints are served by their hand-written handler."""

    def get_route_handler(self) -> Handler:
        direct: _Direct | None = getattr(self.endpoint, _MARK, None)
        if direct is None:
            return super().get_route_handler()
        skipped = {call for call in _calls(self.dependant) if call not in direct.performs}
        if skipped:
            names = ", ".join(sorted(getattr(c, "__name__", repr(c)) for c in skipped))
            raise RuntimeError(
                f"{self.path}: its handler does not perform the dependencies {names}; "
                "perform them in the handler and name them in `served_by(performs=...)`"
            )
        return direct.handler


def _calls(dependant: Dependant) -> set[Callable[..., Any]]:
    """Every dependency callable in `dependant`'s tree (the endpoint itself excluded)."""
    found: set[Callable[..., Any]] = set()
    for sub in dependant.dependencies:
        if sub.call is not None:
            found.add(sub.call)
        found |= _calls(sub)
    return found


async def json_body(request: Request) -> Any:
    """The body as FastAPI hands it to validation: decoded JSON when the content type is JSON,
    the raw bytes when it is another type or missing, `NO_BODY` when the body is empty.

    A body that is not JSON raises the `RequestValidationError` FastAPI raises; one that cannot
    be decoded for another reason (nesting past the recursion limit, bytes that are not UTF-8)
    raises its 400 `HTTPException` from the cause, and the body limit's own exception passes.
    """
    try:
        raw = await request.body()
        if not raw:
            return NO_BODY
        kind = request.headers.get("content-type")
        if kind is None:
            return raw
        message = email.message.Message()
        message["content-type"] = kind
        subtype = message.get_content_subtype()
        if message.get_content_maintype() == "application" and (
            subtype == "json" or subtype.endswith("+json")
        ):
            return json.loads(raw)
        return raw
    except json.JSONDecodeError as exc:
        error = {
            "type": "json_invalid",
            "loc": ("body", exc.pos),
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": exc.msg},
        }
        raise RequestValidationError([error], body=exc.doc) from exc
    except HTTPException:
        raise
    except Exception as exc:
        raise HTTPException(status_code=400, detail="There was an error parsing the body") from exc


def validated(model: type[Model], body: Any) -> Model:
    """`body` (from :func:`json_body`) validated as `model`, or FastAPI's `RequestValidationError`
    with every location under ``body``."""
    if body is NO_BODY:
        missing = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
        raise RequestValidationError([missing], body=None)
    return _checked(lambda: model.model_validate(body, from_attributes=True), body)


def validated_optional(model: type[Model], body: Any) -> Model | None:
    """`validated` for an optional body (`body: Model | None = None`): an empty body, like JSON
    null, is None."""
    if body is NO_BODY:
        return None
    adapter = _nullable(model)
    return _checked(lambda: adapter.validate_python(body, from_attributes=True), body)


@cache
def _nullable(model: type[Model]) -> TypeAdapter[Model | None]:
    return TypeAdapter(model | None)  # type: ignore[arg-type]  # a union built at run time


def _checked(validate: Callable[[], Checked], body: Any) -> Checked:
    try:
        return validate()
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors, body=body) from None
