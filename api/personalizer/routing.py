"""One route, both of Personalizer's path styles.

Personalizer answers every call at `/personalizer/v1.0/<path>` and, for the 2022-09-01-preview
API version its SDK speaks, at `/personalizer/<path>`. A :class:`PathStyles` router is an
ordinary `APIRouter` (routes are decorated with `@router.get(...)` and the like) that registers
each route once per path style it serves, named — and with the operation id —
`personalizer_{route name}_{v1|preview}`, so `request.url_for("personalizer_get_evaluation_v1")`
names one style.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from fastapi import APIRouter

Style = Literal["v1", "preview"]
PREFIXES: dict[Style, str] = {"v1": "/personalizer/v1.0", "preview": "/personalizer"}
BOTH: tuple[Style, ...] = ("v1", "preview")


class PathStyles(APIRouter):
    """An `APIRouter` whose every route is served under each of `styles`."""

    def __init__(self, *, styles: Sequence[Style] = BOTH, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.styles = tuple(styles)

    def add_api_route(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        name: str | None = None,
        operation_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        if operation_id is not None:
            raise ValueError("`operation_id` is made per path style from the route's name")
        base = name or endpoint.__name__
        for style in self.styles:
            versioned = f"personalizer_{base}_{style}"
            super().add_api_route(
                PREFIXES[style] + path, endpoint, name=versioned, operation_id=versioned, **kwargs
            )
