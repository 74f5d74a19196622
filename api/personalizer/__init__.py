"""The Azure AI Personalizer-compatible API (facts: `shared/PERSONALIZER.md`, decision: ADR 0003).

Every route is written once and served under both of Personalizer's path styles,
`/personalizer/v1.0/...` and `/personalizer/...?api-version=2022-09-01-preview`
(`routing.PathStyles`).

- `decisions`: rank, reward, activate;
- `admin`: service configuration, policy, model, logs, over the `service.Personalizer` service;
- `evaluations`: offline evaluations and feature importances, over `jobs.PersonalizerJobs`
  (background jobs on the shared runner, `api.job_runner`);
- `schemas` and `wire`: the camelCase bodies and ISO 8601 durations, which live only here;
  `config`: the fields Personalizer configures that are not the loop's (acted on by `schedule`,
  or refused); `results`: an evaluation's time series; `errors`:
  Personalizer's error codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI


def mount_decisions(app: FastAPI, *, dependencies: Sequence[Any] = ()) -> None:
    """Add rank, reward and activate (both path styles) as the app's own routes, matched once
    per request (`api.flat`)."""
    from api import flat
    from api.personalizer import decisions

    flat.include(app, decisions.router, dependencies=dependencies)


def mount_admin(app: FastAPI, *, dependencies: Sequence[Any] = ()) -> None:
    """Include the rest: configuration, policy, model, logs and evaluations (both path styles)."""
    from api.personalizer import admin, evaluations

    for router in (
        admin.router,
        evaluations.shared,
        evaluations.v1_only,
        evaluations.preview_only,
    ):
        app.include_router(router, dependencies=list(dependencies))
