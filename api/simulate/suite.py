"""The learning suite: exploration candidates run on every simulated world through the server.

Each (world, candidate) pair gets a fresh all-in-one app on the embedded backend (SQLite file,
in-process learner) driven through the ASGI test client: the candidate is set as Personalizer's
policy and exploration with the administration calls (`PUT …/configurations/policy`, `PUT
…/configurations/service`), then the world ranks and rewards through the rank and reward calls,
exactly as an integrator would. After every step the runner waits until the learner has learned
every reward sent, so a run does not depend on how fast the learner thread was scheduled.

Figures per pair: the share of the oracle's lift over random captured in the first 200 and the
first 1,000 decisions (cold start) and in the last 1,000, and the importance-weight bound of the
log (1 / the smallest logged propensity). A seed draws both the world's hidden preferences and
its traffic, so several seeds are several worlds of one design: `summarize` gives each figure's
mean over seeds with a 95% interval, per world and for the median over worlds. Candidates come
from the policy-search grid (`rewards.ope.grid.DEFAULT_EXPLORATIONS`) plus floored variants of its
adaptive explorers and the tuned SquareCB that became the default (ADR 0011).
"""

from __future__ import annotations

import math
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

from api.simulate import HttpLoop, Loop, ModelLoop, RouteLoop, Trace, run
from api.simulate.worlds import World, WorldSpec
from bandit.settings import LearnerSettings
from bandit.surface_config import DEFAULT_EXPLORATION, floor_share
from experiments.stats import Moments, mean_ci
from policies.registry import DEFAULT_POLICY, Registry
from rewards.ope.grid import DEFAULT_EXPLORATIONS, Exploration
from rewards.ope.grid import Candidate as GridCandidate

CallPath = Literal["routes", "asgi", "model"]
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


def squarecb(
    floor: float, *, gamma_scale: float = 10, learning_rate: float = 0.5, extra: str = ""
) -> Candidate:
    """SquareCB over an MTR model with all quadratic interactions, under a uniform `floor`.

    `gamma_scale` (VW's default 10) sets how fast SquareCB turns greedy as examples accumulate
    (gamma = gamma_scale * t^0.5); `learning_rate` is VW's `-l` (default 0.5); `extra` appends
    further allow-listed options. Defaults are left out of the arguments, so the untuned
    candidate is exactly `vw-squarecb`'s.
    """
    args = "--cb_explore_adf --squarecb"
    name = f"squarecb gs={gamma_scale:g} l={learning_rate:g}"
    if gamma_scale != 10:
        args += f" --gamma_scale {gamma_scale:g}"
    args += " --cb_type mtr -q ::"
    if learning_rate != 0.5:
        args += f" -l {learning_rate:g}"
    if extra:
        args += f" {extra}"
        name += f" {extra}"
    return Candidate(f"{name} floor={floor:g}", args, floor)


def logistic(gamma_scale: float, *, learning_rate: float = 2, floor: float = 0.02) -> Candidate:
    """The default's SquareCB with a reward model matched to clicks: logistic loss on costs
    -1 (click) and +1 (no click), `bandit.costs`. Its scores are log-odds, so SquareCB's gaps,
    and the `gamma_scale` that suits them, are on another scale than the squared loss's."""
    extra = "--clip_p 0.1 --loss_function logistic"
    return squarecb(floor, gamma_scale=gamma_scale, learning_rate=learning_rate, extra=extra)


TUNING: tuple[Candidate, ...] = (
    squarecb(0.05),
    squarecb(0.05, gamma_scale=100),
    squarecb(0.05, gamma_scale=30, learning_rate=1),
    squarecb(0.05, gamma_scale=100, learning_rate=1),
    squarecb(0.05, gamma_scale=300, learning_rate=1),
    squarecb(0.05, gamma_scale=100, learning_rate=2),
    squarecb(0.03, gamma_scale=100, learning_rate=2),
    squarecb(0.02, gamma_scale=100, learning_rate=2),
    squarecb(0.02, gamma_scale=300, learning_rate=2),
    squarecb(0.02, gamma_scale=100, learning_rate=4),
    squarecb(0.02, gamma_scale=100, learning_rate=2, extra="--clip_p 0.1"),
    squarecb(0.02, gamma_scale=100, learning_rate=2, extra="--clip_p 0.2"),
    squarecb(0.02, gamma_scale=100, learning_rate=2, extra="--clip_p 0.5"),
    squarecb(0.02, gamma_scale=100, learning_rate=2, extra="--clip_p 1"),
    *(logistic(gamma_scale) for gamma_scale in (10, 30, 100, 300)),
    logistic(30, learning_rate=4),
)
"""The grid the default was tuned on (docs/learning-suite.md): SquareCB's greediness
(`--gamma_scale`), the learning rate and the floor, piloted over seeds on the model-only path
(`bench/bench_learning.py --tuning --path model`); the finalists run through the routes. The
last five are the logistic reward model's best settings (measured below the default)."""


@dataclass(frozen=True, slots=True)
class Result:
    world: str
    candidate: str
    seed: int
    cold: float
    early: float
    late: float
    min_propensity: float
    weight_bound: float
    seconds: float

    @classmethod
    def of(cls, world: str, candidate: str, seed: int, trace: Trace, seconds: float) -> Result:
        n = len(trace)
        return cls(
            world,
            candidate,
            seed,
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
    route functions directly (identical figures, a fraction of the time: `RouteLoop`); "model"
    runs only the decision and learning steps, without an app (`ModelLoop`: identical figures
    again, for pilots over many candidates).
    """
    name = candidate.name if candidate is not None else "default"
    world = World(spec, seed)
    run_id = f"{spec.name}-{seed}"
    if path == "model":
        loop = model_loop(candidate)
        try:
            report = run(loop, world, decisions=decisions, run_id=run_id, on_event=on_event)
        finally:
            loop.close()
        return Result.of(spec.name, name, seed, report.trace, report.seconds)
    with (
        tempfile.TemporaryDirectory(prefix="oo-suite-", dir=scratch()) as tmp,
        embedded_app(Path(tmp)) as client,
    ):
        if candidate is not None:
            configure(client, candidate)
        served: Loop = (
            HttpLoop(client) if path == "asgi" else RouteLoop(client.app.state.services)  # type: ignore[attr-defined]
        )
        report = run(
            served,
            world,
            decisions=decisions,
            run_id=run_id,
            on_event=on_event,
            settle=settle_on(client),
        )
    return Result.of(spec.name, name, seed, report.trace, report.seconds)


def model_loop(candidate: Candidate | None) -> ModelLoop:
    """`candidate` as `configure` serves it on a new surface (None: the built-in default policy
    under the default exploration), without the app."""
    if candidate is None:
        return ModelLoop(Registry().get(DEFAULT_POLICY).args, DEFAULT_EXPLORATION)
    return ModelLoop(candidate.arguments, floor_share(candidate.exploration))


@dataclass(frozen=True, slots=True)
class Spread:
    """One figure over seeds: its mean and the half-width of a 95% Student-t interval for it
    (NaN from a single seed)."""

    mean: float
    half_width: float
    seeds: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        """The mean of `values` with `mean_ci`'s interval, mean ± t_{0.975, n-1} s / sqrt(n).

        >>> Spread.of([0.8, 0.9, 1.0]).mean, round(Spread.of([0.8, 0.9, 1.0]).half_width, 4)
        (0.9, 0.2484)
        """
        moments = Moments.from_values(values)
        if moments.n < 2:
            return cls(moments.mean, math.nan, moments.n)
        interval = mean_ci(moments)
        return cls(moments.mean, interval.width / 2, moments.n)


MEDIAN = "median"
"""The `world` of a summary over all worlds."""


@dataclass(frozen=True, slots=True)
class Summary:
    """A candidate's figures on one world (or `MEDIAN`) over seeds; `weight_bound` is the worst
    seed's (and, for the median, the worst world's)."""

    world: str
    candidate: str
    cold: Spread
    early: Spread
    late: Spread
    weight_bound: float

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def summarize(results: Sequence[Result]) -> list[Summary]:
    """Per (world, candidate), each share's mean over seeds with its 95% interval."""
    pairs = dict.fromkeys((r.world, r.candidate) for r in results)
    return [
        _summary(world, name, [r for r in results if (r.world, r.candidate) == (world, name)])
        for world, name in pairs
    ]


def medians(results: Sequence[Result]) -> list[Summary]:
    """Per candidate, the median world: for each seed the median over worlds of each share,
    then its mean over seeds with a 95% interval (`Spread`).

    A seed draws every world of the suite afresh, so each seed is one replicate of the whole
    suite and its median one draw of the figure the goal is set on; seeds missing a world are
    left out.
    """
    out = []
    for name in dict.fromkeys(r.candidate for r in results):
        rows = [r for r in results if r.candidate == name]
        worlds = {r.world for r in rows}
        by_seed = {s: [r for r in rows if r.seed == s] for s in dict.fromkeys(r.seed for r in rows)}
        complete = [group for group in by_seed.values() if {r.world for r in group} == worlds]
        if not complete:
            continue
        medians_of = [
            Result(
                MEDIAN,
                name,
                group[0].seed,
                statistics.median(r.cold for r in group),
                statistics.median(r.early for r in group),
                statistics.median(r.late for r in group),
                min(r.min_propensity for r in group),
                max(r.weight_bound for r in group),
                sum(r.seconds for r in group),
            )
            for group in complete
        ]
        out.append(_summary(MEDIAN, name, medians_of))
    return out


def _summary(world: str, name: str, rows: Sequence[Result]) -> Summary:
    return Summary(
        world,
        name,
        Spread.of([r.cold for r in rows]),
        Spread.of([r.early for r in rows]),
        Spread.of([r.late for r in rows]),
        max(r.weight_bound for r in rows),
    )
