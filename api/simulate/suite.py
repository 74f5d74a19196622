"""The learning suite: exploration candidates run on every simulated world through the server.

Each (world, candidate) pair gets a fresh all-in-one app on the embedded backend (SQLite file,
in-process learner) driven through the ASGI test client: the candidate is set as Personalizer's
policy and exploration with the administration calls (`PUT …/configurations/policy`, `PUT
…/configurations/service`), then the world ranks and rewards through the rank and reward calls,
exactly as an integrator would. After every step the runner waits until the learner has learned
every reward sent, so a run does not depend on how fast the learner thread was scheduled.

Figures per pair: the share of the oracle's lift over random captured in the first 200 and the
first 1,000 decisions (cold start) and in the last 1,000, and the importance-weight bound of the
log (1 / the smallest logged propensity). Candidates come from the policy-search grid
(`rewards.ope.grid.DEFAULT_EXPLORATIONS`) plus floored variants of its adaptive explorers.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from fastapi.testclient import TestClient

from api.simulate import HttpLoop, Loop, RouteLoop, Trace, run
from api.simulate.worlds import World, WorldSpec
from bandit.settings import LearnerSettings
from rewards.ope.grid import DEFAULT_EXPLORATIONS, Exploration
from rewards.ope.grid import Candidate as GridCandidate

CallPath = Literal["routes", "asgi"]
KEY_HEADER = {"Ocp-Apim-Subscription-Key": "simulation"}
COLD = 200
EARLY = 1000
LATE = 1000


@dataclass(frozen=True, slots=True)
class Candidate:
    """VW arguments served on the Personalizer surface with an exploration percentage.

    `exploration` None leaves the surface's default (what a new deployment gets).
    """

    name: str
    arguments: str
    exploration: float | None = None


def _grid(exploration: Exploration) -> str:
    """The search grid's arguments for `exploration`, with MTR and all quadratic interactions."""
    return GridCandidate(0, exploration, ("::",), None, "mtr").args


OLD_DEFAULT = Candidate(
    "epsilon-0.2 (old default)", "--cb_explore_adf --epsilon 0.2 --cb_type mtr -q ::", 0.2
)

CANDIDATES: tuple[Candidate, ...] = (
    OLD_DEFAULT,
    *(
        Candidate(str(e), _grid(e), e.value if e.algorithm == "epsilon" else 0.0)
        for e in DEFAULT_EXPLORATIONS
        if str(e) != "epsilon=0.2"
    ),
    Candidate("epsilon=0.1", "--cb_explore_adf --epsilon 0.1 --cb_type mtr -q ::", 0.1),
    Candidate("squarecb+floor 0.02", "--cb_explore_adf --squarecb --cb_type mtr -q ::", 0.02),
    Candidate("squarecb+floor 0.05", "--cb_explore_adf --squarecb --cb_type mtr -q ::", 0.05),
    Candidate(
        "softmax=10+floor 0.05", "--cb_explore_adf --softmax --lambda 10 --cb_type mtr -q ::", 0.05
    ),
    Candidate("regcb+floor 0.05", "--cb_explore_adf --regcb --cb_type mtr -q ::", 0.05),
)
"""What the suite compares; exploration 0.0 on an adaptive explorer is its unfloored pmf."""


@dataclass(frozen=True, slots=True)
class Result:
    world: str
    candidate: str
    cold: float
    early: float
    late: float
    min_propensity: float
    weight_bound: float
    seconds: float

    @classmethod
    def of(cls, world: str, candidate: str, trace: Trace, seconds: float) -> Result:
        n = len(trace)
        return cls(
            world,
            candidate,
            trace.share(0, COLD),
            trace.share(0, EARLY),
            trace.share(max(0, n - LATE), n),
            trace.min_propensity(),
            trace.weight_bound(),
            seconds,
        )

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def learner_settings() -> LearnerSettings:
    """Learn as soon as a reward arrives; windows long enough that none closes mid-run."""
    return LearnerSettings(
        reward_wait_seconds=3600, sweep_seconds=5.0, sweep_grace_seconds=0.0, snapshot_seconds=60
    )


@contextmanager
def embedded_app(directory: Path) -> Iterator[TestClient]:
    """A started all-in-one app on a fresh SQLite file, without rate limits."""
    from api.app import create_app
    from api.settings import Settings

    settings = Settings(
        database_url=f"sqlite:///{directory / 'oo.sqlite3'}",
        data_dir=directory,
        redis_url=None,
        rate_limit_personalizer="off",
        rate_limit_default="off",
    )
    with TestClient(create_app(settings, learner_settings())) as client:
        yield client


def scratch() -> str | None:
    """Memory-backed scratch space where the machine has it: the log of a simulation is thrown
    away, and a disk's fsync per decision would dominate the run."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def configure(client: TestClient, candidate: Candidate) -> None:
    """Serve `candidate` through the administration calls, as an operator would."""
    base = "/personalizer/v1.0/configurations"
    client.put(
        f"{base}/policy",
        json={"name": "candidate", "arguments": candidate.arguments},
        headers=KEY_HEADER,
    ).raise_for_status()
    if candidate.exploration is None:
        return
    config = client.get(f"{base}/service", headers=KEY_HEADER)
    config.raise_for_status()
    body = {k: v for k, v in config.json().items() if k != "latestApprenticeModeMetrics"}
    body["explorationPercentage"] = candidate.exploration
    client.put(f"{base}/service", json=body, headers=KEY_HEADER).raise_for_status()


def settle_on(client: TestClient, timeout: float = 30.0) -> Callable[[int], None]:
    """Wait until the app's in-process learner has learned `n` rewards."""
    learner = client.app.state.services.learner  # type: ignore[attr-defined]

    def settle(n: int) -> None:
        deadline = time.monotonic() + timeout
        while learner.learned < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the learner learned {learner.learned} of {n} rewards")
            time.sleep(0.0005)

    return settle


def run_pair(
    spec: WorldSpec,
    candidate: Candidate | None,
    *,
    seed: int = 0,
    decisions: int | None = None,
    path: CallPath = "routes",
    on_event: Callable[[int], None] | None = None,
) -> Result:
    """One candidate (None: the surface's defaults, untouched) on one world, on a fresh app.

    `path` "asgi" sends rank and reward through the ASGI test client; "routes" calls the same
    route functions directly (identical figures, a fraction of the time: `RouteLoop`).
    """
    with (
        tempfile.TemporaryDirectory(prefix="oo-suite-", dir=scratch()) as tmp,
        embedded_app(Path(tmp)) as client,
    ):
        if candidate is not None:
            configure(client, candidate)
        loop: Loop = (
            HttpLoop(client) if path == "asgi" else RouteLoop(client.app.state.services)  # type: ignore[attr-defined]
        )
        report = run(
            loop,
            World(spec, seed),
            decisions=decisions,
            run_id=f"{spec.name}-{seed}",
            on_event=on_event,
            settle=settle_on(client),
        )
    name = candidate.name if candidate is not None else "default"
    return Result.of(spec.name, name, report.trace, report.seconds)


def medians(results: Sequence[Result]) -> dict[str, dict[str, float]]:
    """Per candidate, the median over worlds of each share and the worst weight bound."""
    out: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(r.candidate for r in results):
        rows = [r for r in results if r.candidate == name]
        out[name] = {
            "cold": statistics.median(r.cold for r in rows),
            "early": statistics.median(r.early for r in rows),
            "late": statistics.median(r.late for r in rows),
            "weight_bound": max(r.weight_bound for r in rows),
        }
    return out
