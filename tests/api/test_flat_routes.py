"""The decision routes are the app's own (`api.flat`): matched once, and what `include_router`
would have served, rate limits first."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Match
from starlette.types import Scope

from api import flat
from api.app import create_app
from api.personalizer import decisions
from api.ratelimit import Bucket, limited
from api.routers import tips
from api.settings import Settings

HOT = [(decisions.router, Bucket.PERSONALIZER), (tips.router, Bucket.DEFAULT)]


def _request_for(route: APIRoute) -> tuple[str, str]:
    return sorted(route.methods)[0], route.path.replace("{event_id}", "e1")


def _calls(dependant: Dependant) -> list[Callable[..., Any]]:
    """The dependency callables of `dependant`'s tree, depth first, in the order they run."""
    found: list[Callable[..., Any]] = []
    for sub in dependant.dependencies:
        found += _calls(sub)
        if sub.call is not None:
            found.append(sub.call)
    return found


@pytest.mark.parametrize(
    "route",
    [route for router, _ in HOT for route in router.routes],
    ids=lambda route: route.name,
)
def test_a_decision_route_is_matched_once(route: APIRoute, monkeypatch: pytest.MonkeyPatch) -> None:
    # FastAPI 0.165 matches an included router's routes twice: to choose it and to enter it.
    matched: list[APIRoute] = []
    matches = APIRoute.matches

    def counted(self: APIRoute, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = matches(self, scope)
        if match is not Match.NONE:
            matched.append(self)
        return match, child_scope

    monkeypatch.setattr(APIRoute, "matches", counted)
    app = create_app(Settings())
    method, path = _request_for(route)
    # Not started: the handler fails for want of services, after the routing under test.
    TestClient(app, raise_server_exceptions=False).request(method, path)
    assert [(m.name, m.path) for m in matched] == [(route.name, route.path)]
    assert matched[0] in app.router.routes


@pytest.mark.parametrize(("router", "bucket"), HOT, ids=["personalizer", "tips"])
def test_flat_routes_are_what_include_router_serves(router: APIRouter, bucket: Bucket) -> None:
    limit = [Depends(limited(bucket))]
    included, flattened = FastAPI(), FastAPI()
    included.include_router(router, dependencies=limit)
    flat.include(flattened, router, dependencies=limit)

    assert flattened.openapi() == included.openapi()
    theirs = [
        c for c in iter_route_contexts(included.routes) if isinstance(c.original_route, APIRoute)
    ]
    ours = [r for r in flattened.routes if isinstance(r, APIRoute)]
    for mine, its in zip(ours, theirs, strict=True):
        for name in ("path", "name", "methods", "unique_id", "status_code", "response_class"):
            assert getattr(mine, name) == getattr(its, name), (mine.name, name)
        assert mine.max_body_size == its.max_body_size
        assert mine.dependency_overrides_provider is flattened
        # The rate limit runs first, as an included router's dependency does.
        assert _calls(mine.dependant) == _calls(its.dependant)
        assert limited(bucket) in _calls(mine.dependant)


def test_a_router_with_more_than_api_routes_is_refused() -> None:
    router = APIRouter()
    router.add_route("/page", lambda request: None)
    with pytest.raises(TypeError, match="not an API route"):
        flat.include(FastAPI(), router)


def test_a_router_with_form_limits_is_refused() -> None:
    with pytest.raises(ValueError, match="sets form limits"):
        flat.include(FastAPI(), APIRouter(form_limits={"max_fields": 10}))
