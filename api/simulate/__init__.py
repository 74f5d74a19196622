"""`oo simulate`: synthetic people drive a running server, and we watch it learn.

Each synthetic person arrives in a context of a simulated world (`api.simulate.worlds`) and is
shown one of the world's actions through the Personalizer-compatible rank call; they click with
their hidden probability, and the reward reaches the server through the reward call, `delay`
decisions later when the world delays rewards. Because the world is known, every decision's
expected reward under the served pmf, under uniform random and under the oracle is exact, on
identical traffic; `Trace.share` is the part of the oracle's lift over random the policy
captured. The loop talks to the server through `Loop`: plain HTTP (`HttpLoop`, which also takes
an ASGI test client), Personalizer's own SDK (`SdkLoop`), the route functions in this process
(`RouteLoop`), or only the server's decision and learning steps (`ModelLoop`, for pilots).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import httpx
import numpy as np

from api.simulate.worlds import SUITE, TIPS6, WORLDS, World, WorldSpec, expected
from bandit.events import Action, Features, validate_pmf
from bandit.features import action_lines as lines_of
from bandit.features import adf_example
from bandit.model import LearnExample, Model
from bandit.policy import Policy
from bandit.sampling import sample_index
from policies.serving import serving
from policies.stateless import NamedPolicy

__all__ = [
    "SUITE",
    "TIPS6",
    "WORLDS",
    "HttpLoop",
    "Loop",
    "ModelLoop",
    "Report",
    "RouteLoop",
    "SdkLoop",
    "Trace",
    "World",
    "WorldSpec",
    "run",
]


class Loop(Protocol):
    """The two calls of Personalizer's loop, however they reach the server."""

    def rank(self, body: dict[str, Any]) -> dict[str, Any]: ...

    def reward(self, event_id: str, value: float) -> None: ...


@dataclass
class HttpLoop:
    """Rank and reward over HTTP (an `httpx.Client`, or FastAPI's ASGI `TestClient`)."""

    client: httpx.Client
    key: str = "simulation"

    def rank(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.client.post(
            "/personalizer/v1.0/rank", json=body, headers={"Ocp-Apim-Subscription-Key": self.key}
        )
        answer.raise_for_status()
        ranked: dict[str, Any] = answer.json()
        return ranked

    def reward(self, event_id: str, value: float) -> None:
        self.client.post(
            f"/personalizer/v1.0/events/{event_id}/reward",
            json={"value": value},
            headers={"Ocp-Apim-Subscription-Key": self.key},
        ).raise_for_status()


@dataclass
class SdkLoop:
    """Rank and reward through `azure-ai-personalizer`'s `PersonalizerClient`, unchanged."""

    client: Any

    def rank(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.client.rank(body))

    def reward(self, event_id: str, value: float) -> None:
        self.client.reward(event_id, {"value": value})


@dataclass
class RouteLoop:
    """Rank and reward through the Personalizer routes' own functions, in this process.

    The request schemas validate each body and the routes serve, log and learn through
    `Services` exactly as over HTTP; only the ASGI dispatch is skipped, whose thread hops cost
    several times the decision itself on a busy machine. The suite checks that a run over the
    ASGI client gives the same figures (`bench/bench_learning.py --path asgi`).
    """

    services: Any

    def rank(self, body: dict[str, Any]) -> dict[str, Any]:
        from api.personalizer import decisions as personalizer
        from api.personalizer.schemas import RankRequest
        from api.services.surfaces import PERSONALIZER

        request = RankRequest.model_validate(body)
        # The route is a coroutine (it awaits its decision's commit): one loop per call.
        answer = asyncio.run(personalizer.rank(request, self.services, PERSONALIZER))
        ranked: dict[str, Any] = json.loads(bytes(answer.body))  # the JSON the route sends
        return ranked

    def reward(self, event_id: str, value: float) -> None:
        from api.personalizer import decisions as personalizer
        from api.personalizer.schemas import RewardRequest
        from api.services.surfaces import PERSONALIZER

        request = RewardRequest.model_validate({"value": value})
        asyncio.run(personalizer.reward(request, event_id, self.services, PERSONALIZER))


@dataclass
class ModelLoop:
    """The server's decision and learning steps on one VW model, without the server.

    A rank predicts with the model, shapes the pmf as a surface configured with `exploration`
    would (`policies.serving.serving`: epsilon, or a floor under other explorers), draws with
    the event id's randomness (`bandit.sampling`) and keeps the logged example; its reward is
    learned at once (`Model.learn`), as the suite's settled learner does. No log, learner
    thread or request validation, but the pmf is checked as the log checks it: the figures
    equal `RouteLoop`'s on the same seed (`tests/api/test_learning_suite.py` checks it) at a
    fraction of the time, which is what a search over many candidates needs. The suite confirms
    its choice through the routes.
    """

    args: str
    exploration: float | None
    _model: Model = field(init=False, repr=False)
    _policy: Policy = field(init=False, repr=False)
    _pending: dict[str, LearnExample] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        from api.services.surfaces import PERSONALIZER

        self._model = Model(self.args)
        self._policy = serving(
            _ModelPolicy(self._model),
            PERSONALIZER,
            mode="Online",
            exploration=self.exploration,
            args=self.args,
        )

    def rank(self, body: dict[str, Any]) -> dict[str, Any]:
        context = body["contextFeatures"]
        actions = [Action(a["id"], a["features"]) for a in body["actions"]]
        lines = lines_of(actions)
        pmf = self._policy.pmf(context, actions, lines)
        # The routes refuse to log a pmf that is not a distribution (a 500): refuse it here too,
        # or a pilot would score an explorer the server cannot serve (VW's `--squarecb --elim`
        # returns negative probabilities on some examples).
        validate_pmf(pmf, len(actions))
        event_id = body["eventId"]
        chosen = sample_index(pmf, event_id)
        self._pending[event_id] = LearnExample(
            tuple(adf_example(context, lines)), chosen, pmf[chosen], 0.0
        )
        ranking = [{"id": a.id, "probability": p} for a, p in zip(actions, pmf, strict=True)]
        return {"eventId": event_id, "rewardActionId": actions[chosen].id, "ranking": ranking}

    def reward(self, event_id: str, value: float) -> None:
        self._model.learn([replace(self._pending.pop(event_id), reward=value)])

    def close(self) -> None:
        self._model.close()


class _ModelPolicy(NamedPolicy):
    """A model served as a policy, without a hub (`ModelLoop`)."""

    def __init__(self, model: Model) -> None:
        super().__init__("candidate", "personalizer:candidate")
        self._model = model

    @property
    def model_version(self) -> int:
        return self._model.version

    def pmf(
        self, context: Features, actions: Sequence[Action], action_lines: Sequence[str]
    ) -> list[float]:
        return self._model.predict(context, action_lines)


@dataclass
class Trace:
    """Per decision: exact expected rewards (policy, random, oracle), the logged propensity
    of the chosen action and the reward drawn."""

    policy: list[float] = field(default_factory=list)
    random: list[float] = field(default_factory=list)
    oracle: list[float] = field(default_factory=list)
    propensity: list[float] = field(default_factory=list)
    reward: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.policy)

    def share(self, start: int = 0, stop: int | None = None) -> float:
        """The share of the oracle's lift over random captured on decisions `[start, stop)`:
        (policy - random) / (oracle - random), each summed over the span; NaN without lift.

        >>> t = Trace([0.5, 0.2], [0.2, 0.2], [0.8, 0.2], [1.0, 1.0], [1.0, 0.0])
        >>> t.share()
        0.5
        """
        span = slice(start, stop)
        lift = sum(self.oracle[span]) - sum(self.random[span])
        if lift <= 0.0:
            return float("nan")
        return (sum(self.policy[span]) - sum(self.random[span])) / lift

    def min_propensity(self) -> float:
        return min(self.propensity) if self.propensity else float("nan")

    def weight_bound(self) -> float:
        """1 / the smallest logged propensity: the largest importance weight the log allows."""
        return 1.0 / self.min_propensity()

    def windows(self, size: int) -> list[dict[str, float]]:
        """Means per window of `size` decisions (the last may be shorter)."""
        rows = []
        for start in range(0, len(self), size):
            span = slice(start, start + size)
            n = len(self.policy[span])
            rows.append(
                {
                    "events": n,
                    "policy_reward": float(np.mean(self.reward[span])),
                    "policy_expected": float(np.mean(self.policy[span])),
                    "random_expected": float(np.mean(self.random[span])),
                    "best_expected": float(np.mean(self.oracle[span])),
                }
            )
        return rows


@dataclass
class Report:
    trace: Trace
    window: int
    seconds: float = 0.0

    @property
    def windows(self) -> list[dict[str, float]]:
        return self.trace.windows(self.window)

    def tail(self, share: float = 0.25) -> dict[str, float]:
        """Means over the last `share` of windows (after learning had time to happen)."""
        windows = self.windows
        rows = windows[-max(1, int(len(windows) * share)) :]
        keys = ("policy_reward", "policy_expected", "random_expected", "best_expected")
        return {k: float(np.mean([r[k] for r in rows])) for k in keys}


def run(
    loop: Loop,
    world: World,
    *,
    decisions: int | None = None,
    window: int = 500,
    run_id: str | None = None,
    on_event: Callable[[int], None] | None = None,
    settle: Callable[[int], None] | None = None,
) -> Report:
    """Drive `decisions` decisions (the world's own number by default) through `loop`.

    Event ids are `sim-{run_id}-{i}`; the server draws each action with the event id's
    randomness, so a fixed `run_id` on a fresh server replays the same run. `settle(n)` is
    called after each step with the number of rewards sent so far: an in-process caller
    waits there until its learner has learned them, which makes a run independent of how fast
    the learner thread happens to be.
    """
    total = world.spec.decisions if decisions is None else decisions
    run_id = run_id or uuid.uuid4().hex[:12]
    actions = world.actions
    names = [a["id"] for a in actions]
    trace = Trace()
    pending: deque[tuple[int, str, float]] = deque()
    sent = 0
    started = time.perf_counter()

    def send_due(now: int) -> None:
        nonlocal sent
        while pending and pending[0][0] <= now:
            _, event_id, value = pending.popleft()
            loop.reward(event_id, value)
            sent += 1

    for i in range(total):
        ctx = world.context()
        answer = loop.rank(
            {
                "contextFeatures": world.features(ctx),
                "actions": actions,
                "eventId": f"sim-{run_id}-{i}",
            }
        )
        probability = {item["id"]: float(item["probability"]) for item in answer["ranking"]}
        pmf = [probability.get(name, 0.0) for name in names]
        truth = world.probabilities(ctx, i)
        chosen = names.index(answer["rewardActionId"])
        value = world.react(float(truth[chosen]))
        exact = expected(pmf, truth)
        trace.policy.append(exact.policy)
        trace.random.append(exact.random)
        trace.oracle.append(exact.oracle)
        trace.propensity.append(pmf[chosen])
        trace.reward.append(value)
        pending.append((i + world.spec.delay, answer["eventId"], value))
        send_due(i)
        if settle is not None:
            settle(sent)
        if on_event is not None:
            on_event(i + 1)
    send_due(total + world.spec.delay)
    return Report(trace, window, time.perf_counter() - started)
