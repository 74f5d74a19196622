"""Routers whose routes become the app's own: the decision paths, matched once per request.

`app.include_router` (FastAPI 0.165) adds one route standing for the whole router, and a request
is matched against the router's routes twice: once when the app asks which route matches, and
again when the chosen router is entered. On the decision paths that cost 11 µs for rank and
16-22 µs for recommend, feedback and signals, per request. :func:`include` builds the router's
routes on the app instead, the way FastAPI built included routes before 0.165 (one
`add_api_route` per route), so the app matches a request once against a route of its own.

The routes are rebuilt from every argument of `APIRouter.add_api_route`, read back from the
route, with the include's dependencies first as `include_router` puts them: the same operation,
name, path, tags, responses and body limit, and the app's `dependency_overrides` apply. A
FastAPI upgrade that adds an argument the route does not keep under its name fails at start-up;
`tests/api/test_flat_routes.py` checks the routes against the ones `include_router` builds.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

from fastapi import APIRouter, FastAPI
from fastapi.params import Depends
from fastapi.routing import APIRoute

_SET_HERE = {"self", "path", "endpoint", "dependencies", "route_class_override"}
_KEPT_BY_THE_ROUTE = tuple(
    name for name in inspect.signature(APIRouter.add_api_route).parameters if name not in _SET_HERE
)
"""The arguments of `add_api_route` a built route keeps under the same name."""


def include(app: FastAPI, router: APIRouter, *, dependencies: Sequence[Depends] = ()) -> None:
    """Add `router`'s routes to `app` as the app's own, each with `dependencies` before its own:
    what `app.include_router(router, dependencies=dependencies)` serves, matched once.

    The router may hold nothing but API routes and set no form limits, which an included
    router applies when it is entered and a route of the app's own would lose.
    """
    if router.form_limits:
        raise ValueError(f"`router` sets form limits ({router.form_limits}); include it instead")
    for route in router.routes:
        if not isinstance(route, APIRoute):
            raise TypeError(f"`router` holds {route!r}, not an API route; include it instead")
        app.router.add_api_route(
            route.path,
            route.endpoint,
            dependencies=[*dependencies, *route.dependencies],
            route_class_override=type(route),
            **{name: getattr(route, name) for name in _KEPT_BY_THE_ROUTE},
        )
