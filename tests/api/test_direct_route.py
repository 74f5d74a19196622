"""A route served by its hand-written handler answers exactly as FastAPI's own handling does.

Two routes with the same signature on one app with oO's error handlers: one served by FastAPI,
one by a `served_by` handler, and the same pair again with a body that may be left out. Every
body below — valid, empty, JSON null, broken JSON, other content types, nesting past the
recursion limit, bytes that are not UTF-8, values the model refuses — must get the same status
and the same answer from both.
"""

from __future__ import annotations

import json
from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field, field_validator

from api import errors
from api.direct import DirectRoute, json_body, served_by, validated, validated_optional


class Item(BaseModel):
    id: str = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0)


class Body(BaseModel):
    name: str
    items: list[Item] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _no_shouting(cls, value: str) -> str:
        if value.isupper():
            raise ValueError("`name` must not be all capitals")
        return value


def marker(request: Request) -> str:
    return request.headers.get("x-marker", "none")


Marker = Annotated[str, Depends(marker)]


async def _serve(request: Request) -> dict[str, object]:
    payload = await json_body(request)
    seen = marker(request)
    return await endpoint(validated(Body, payload), seen)


async def endpoint(body: Body, seen: Marker) -> dict[str, object]:
    return {"name": body.name, "items": len(body.items), "marker": seen}


async def _serve_optional(request: Request) -> dict[str, object]:
    payload = await json_body(request)
    seen = marker(request)
    return await optional(seen, validated_optional(Body, payload))


async def optional(seen: Marker, body: Body | None = None) -> dict[str, object]:
    """A body that may be left out, as recommend's."""
    if body is None:
        return {"body": None, "marker": seen}
    return await endpoint(body, seen)


def _app() -> FastAPI:
    app = FastAPI()
    errors.install(app)
    app.add_api_route("/plain", endpoint, methods=["POST"])
    direct = APIRouter(route_class=DirectRoute)

    async def served(request: Request):  # type: ignore[no-untyped-def]
        from fastapi.responses import JSONResponse

        return JSONResponse(await _serve(request))

    direct.add_api_route(
        "/direct", served_by(served, performs=[marker])(endpoint), methods=["POST"]
    )
    app.add_api_route("/plain-optional", optional, methods=["POST"])

    async def served_optional(request: Request):  # type: ignore[no-untyped-def]
        from fastapi.responses import JSONResponse

        return JSONResponse(await _serve_optional(request))

    direct.add_api_route(
        "/direct-optional",
        served_by(served_optional, performs=[marker])(optional),
        methods=["POST"],
    )
    app.include_router(direct)
    return app


GOOD = {"name": "tea", "items": [{"id": "a"}, {"id": "b", "weight": 2}]}
NESTED = b'{"name": "x", "items": ' + b"[" * 5000 + b"]" * 5000 + b"}"

CASES = [
    pytest.param(json.dumps(GOOD).encode(), "application/json", id="valid"),
    pytest.param(json.dumps(GOOD).encode(), "application/vnd.oo+json", id="json-subtype"),
    pytest.param(json.dumps(GOOD).encode(), "application/json; charset=utf-8", id="charset"),
    pytest.param(b"", "application/json", id="empty"),
    pytest.param(b"null", "application/json", id="null"),
    pytest.param(b"[1, 2]", "application/json", id="array"),
    pytest.param(b'{"name": ', "application/json", id="broken"),
    pytest.param(json.dumps(GOOD).encode(), "text/plain", id="text"),
    pytest.param(json.dumps(GOOD).encode(), None, id="no-content-type"),
    pytest.param(NESTED, "application/json", id="too-deep"),
    pytest.param(b'{"name": "\xff"}', "application/json", id="not-utf8"),
    pytest.param(b'{"items": [{"id": "a"}]}', "application/json", id="missing-field"),
    pytest.param(b'{"name": "TEA", "items": [{"id": "a"}]}', "application/json", id="validator"),
    pytest.param(
        b'{"name": "t", "items": [{"id": "a"}, {"id": "", "weight": -1}]}',
        "application/json",
        id="nested-errors",
    ),
]


@pytest.mark.parametrize("body", ["required", "optional"])
@pytest.mark.parametrize(("content", "content_type"), CASES)
def test_the_direct_handler_answers_as_fastapi_does(
    content: bytes, content_type: str | None, body: str
) -> None:
    headers = {"x-marker": "m"} | ({"content-type": content_type} if content_type else {})
    suffix = "-optional" if body == "optional" else ""
    with TestClient(_app(), raise_server_exceptions=False) as client:
        plain = client.post(f"/plain{suffix}", content=content, headers=headers)
        direct = client.post(f"/direct{suffix}", content=content, headers=headers)
    assert plain.status_code != 500, plain.text
    assert (direct.status_code, direct.json()) == (plain.status_code, plain.json())


def test_a_dependency_the_handler_does_not_perform_refuses_the_route() -> None:
    async def served(request: Request):  # type: ignore[no-untyped-def]
        raise AssertionError("never served")

    router = APIRouter(route_class=DirectRoute)
    with pytest.raises(RuntimeError, match="does not perform the dependencies marker"):
        router.add_api_route("/direct", served_by(served, performs=[])(endpoint), methods=["POST"])


def test_the_openapi_operation_is_the_endpoints() -> None:
    schema = _app().openapi()
    plain, direct = (schema["paths"][p]["post"] for p in ("/plain", "/direct"))
    assert direct["requestBody"] == plain["requestBody"]
    assert direct["responses"].keys() == plain["responses"].keys() == {"200", "422"}
