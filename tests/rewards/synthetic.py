"""A seeded synthetic decision log with known truth, written into a real store.

Two groups of people, three candidates per decision; the click probability of each candidate
depends on the group, so a policy that learns the group's favourite beats both the baseline
(the first candidate) and uniform random. Rewards are clicks (0 or 1).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from bandit.events import Action, Decision, utcnow
from bandit.features import action_lines, adf_example
from bandit.store import Store
from bandit.store.rows import _row
from bandit.store.rows import decisions as decisions_table
from rewards.ope.logged import LoggedEvent

CLICK = np.array([[0.1, 0.3, 0.7], [0.7, 0.2, 0.1]])
"""Click probability by group (row) and candidate (column)."""
GROUPS = np.array([0.5, 0.5])
START = datetime(2026, 11, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Truth:
    baseline: float
    random: float
    best: float
    logging: float
    n: int


def truth(epsilon: float = 1.0) -> Truth:
    """True values of the baseline, random, the best policy and an epsilon-greedy logger."""
    k = CLICK.shape[1]
    best = CLICK.max(axis=1)
    greedy = CLICK[:, 0]  # the logger's greedy choice is the first candidate
    logging = (1.0 - epsilon) * greedy + epsilon * CLICK.mean(axis=1)
    return Truth(
        baseline=float(GROUPS @ CLICK[:, 0]),
        random=float(GROUPS @ CLICK.mean(axis=1)),
        best=float(GROUPS @ best),
        logging=float(GROUPS @ logging),
        n=k,
    )


def decisions(
    n: int,
    *,
    seed: int = 7,
    epsilon: float = 1.0,
    surface: str = "personalizer",
    model_key: str = "personalizer:synthetic",
    start: datetime = START,
) -> Iterator[tuple[Decision, float]]:
    """`n` decisions of an epsilon-greedy logger (greedy = first candidate) with their rewards.

    `epsilon=1` is uniform logging.
    """
    rng = np.random.default_rng(seed)
    k = CLICK.shape[1]
    pmf = [epsilon / k + (1.0 - epsilon if i == 0 else 0.0) for i in range(k)]
    groups = rng.choice(2, size=n, p=GROUPS)
    chosen_all = rng.choice(k, size=n, p=pmf)
    draws = rng.random(n)
    actions = tuple(Action(id=f"a{j}", features=[{"item": {"name": f"a{j}"}}]) for j in range(k))
    lines = action_lines(actions)
    for i in range(n):
        group, chosen = int(groups[i]), int(chosen_all[i])
        reward = float(draws[i] < CLICK[group, chosen])
        context = [{"user": {"group": f"g{group}"}}]
        decision = Decision(
            event_id=f"{surface}-{seed}-{i}",
            surface=surface,
            principal="synthetic",
            context=context,  # type: ignore[arg-type]
            actions=actions,
            pmf=tuple(pmf),
            chosen_index=chosen,
            policy="synthetic",
            model_key=model_key,
            model_version=0,
            created_at=start + timedelta(seconds=i),
            activated_at=start + timedelta(seconds=i),
            example=tuple(adf_example(context, lines)),  # type: ignore[arg-type]
        )
        yield decision, reward


def events(n: int, *, seed: int = 7, epsilon: float = 1.0) -> list[LoggedEvent]:
    """The same log as `decisions`, as evaluation reads it, without a database."""
    return [
        LoggedEvent(d.event_id, d.created_at, d.pmf, d.chosen_index, reward, d.example)
        for d, reward in decisions(n, seed=seed, epsilon=epsilon)
    ]


def write_log(
    store: Store,
    n: int,
    *,
    seed: int = 7,
    epsilon: float = 1.0,
    surface: str = "personalizer",
    model_key: str = "personalizer:synthetic",
    start: datetime = START,
    seq: int = 1_000_000,
    learned: bool = True,
) -> list[float]:
    """Log `n` learned decisions (see `decisions`) into `store`; returns the rewards in order.

    Learned decisions are written with their learning marks in one transaction: their windows
    closed long ago, so a running app's learner would otherwise mark some of them learned with
    the default reward between their insert and their mark (the first mark wins).
    """
    rewards: list[float] = []
    rows: list[dict[str, object]] = []
    now = utcnow()
    for i, (decision, reward) in enumerate(
        decisions(n, seed=seed, epsilon=epsilon, surface=surface, model_key=model_key, start=start)
    ):
        rewards.append(reward)
        if learned:
            rows.append(
                {
                    **_row(decision),
                    "learn_seq": seq + i,
                    "learned_reward": reward,
                    "learned_at": now,
                }
            )
        else:
            store.insert_decision(decision)
    if rows:
        with store.engine.begin() as conn:
            conn.execute(decisions_table.insert(), rows)
    return rewards
