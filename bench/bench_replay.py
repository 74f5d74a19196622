"""Progressive replay of a VW candidate beside a plain pyvw predict+learn loop, same examples.

    .venv/bin/python bench/bench_replay.py [--n 20000] [--actions 8] [--repeat 3] [--args "..."]

Generates ``n`` logged events (seeded: 50 contexts of 3 namespaces, ``actions`` candidates with
2 namespaces each, uniform logging, Bernoulli rewards) as the logged ADF examples evaluation
replays. Measured in the same run, over the same examples and VW arguments:

* plain pyvw: ``predict(lines)`` then ``learn(labeled lines)`` per event, labels prepared before
  the clock starts (the goal: replay at >= 80% of its speed);
* ``Replay.pmfs`` alone (the candidate's predict-then-learn, pmf rows, labeling included);
* a whole ``rewards.ope.runs.run`` of the online policy and the candidate: IPS, SNIPS, DR with both
  intervals and diagnostics, with the default ``action-mean`` DR reward model and with ``vw``;
* the same whole run reading the events from a SQLite decision log (``rewards.ope.runs.evaluate``),
  and from PostgreSQL when ``OO_TEST_DATABASE_URL`` is set (``infra/scripts/with-services``).

Each path reports wall time and this process's CPU time, best of ``repeat`` runs each. On a
shared machine the CPU ratio is the steadier one; PostgreSQL's own work is in wall time only.
Prints figures only; nothing is asserted on time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import vowpalwabbit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api import db
from bandit.costs import Costs
from bandit.events import Action, Decision
from bandit.features import action_lines, adf_example
from bandit.store import Learned, Store
from bandit.vw_args import parse
from bench._harness import fresh_schema, table
from rewards.ope.logged import Batch, LoggedEvent
from rewards.ope.reward_models import RewardModelName
from rewards.ope.runs import evaluate, run
from rewards.ope.targets import Online, Replay, Target

START = datetime(2026, 11, 1, tzinfo=UTC)


def make_events(n: int, k: int, seed: int = 3) -> list[Decision | LoggedEvent]:
    rng = np.random.default_rng(seed)
    contexts = [
        [
            {"user": {"group": f"g{c % 5}", "tier": f"t{c % 3}"}},
            {"time": {"hour": f"h{c % 24}"}},
            {"device": {"kind": f"d{c % 2}"}},
        ]
        for c in range(50)
    ]
    actions = tuple(
        Action(id=f"a{j}", features=[{"item": {"name": f"a{j}", "kind": f"k{j % 3}"}}])
        for j in range(k)
    )
    lines = action_lines(actions)
    # Each context group prefers one candidate.
    click = rng.uniform(0.05, 0.3, size=(5, k))
    click[np.arange(5), rng.integers(0, k, size=5)] = 0.8
    pmf = tuple([1.0 / k] * k)
    ctx = rng.integers(0, 50, size=n)
    chosen = rng.integers(0, k, size=n)
    draws = rng.random(n)
    out: list[Decision | LoggedEvent] = []
    for i in range(n):
        c, a = int(ctx[i]), int(chosen[i])
        reward = float(draws[i] < click[c % 5, a])
        example = tuple(adf_example(contexts[c], lines))  # type: ignore[arg-type]
        out.append(LoggedEvent(f"e{i}", START + timedelta(seconds=i), pmf, a, reward, example))
    return out


def write_store(url: str, events: list[LoggedEvent], k: int) -> Store:
    db.upgrade(url)  # a SQLite file; a PostgreSQL schema from fresh_schema is at head already
    store = Store.connect(url, pool_size=2)
    actions = tuple(Action(id=f"a{j}", features=[]) for j in range(k))
    marks = []
    for i, e in enumerate(events):
        store.insert_decision(
            Decision(
                event_id=e.event_id,
                surface="personalizer",
                principal="bench",
                context=[],
                actions=actions,
                pmf=e.pmf,
                chosen_index=e.chosen_index,
                policy="bench",
                model_key="personalizer:bench",
                model_version=0,
                created_at=e.created_at or START,
                activated_at=e.created_at,
                example=e.example,
            )
        )
        marks.append(Learned(e.event_id, i + 1, e.reward))
    store.mark_learned(marks)
    return store


Seconds = tuple[float, float]
"""(wall, CPU of this process)."""


class Clock:
    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self) -> Seconds:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def plain(events: list[LoggedEvent], args: str) -> Seconds:
    vw = vowpalwabbit.Workspace(f"{args} --quiet")
    unlabeled = [list(e.example) for e in events]
    costs = Costs.of(parse(args))  # the labels oO's own replay would learn
    labeled = [e.labeled(costs) for e in events]
    clock = Clock()
    for u, lab in zip(unlabeled, labeled, strict=True):
        vw.predict(u)
        vw.learn(lab)
    seconds = clock.stop()
    vw.finish()
    return seconds


def replay_only(events: list[LoggedEvent], args: str, batch: int) -> Seconds:
    replay = Replay("candidate", args)
    batches = [Batch.of(events[i : i + batch]) for i in range(0, len(events), batch)]
    clock = Clock()
    for b in batches:
        replay.pmfs(b)
    seconds = clock.stop()
    replay.close()
    return seconds


def whole(events: list[LoggedEvent], args: str, batch: int, model: RewardModelName) -> Seconds:
    targets: list[Target] = [Online(), Replay("candidate", args)]
    batches = [events[i : i + batch] for i in range(0, len(events), batch)]
    clock = Clock()
    run(
        batches,
        targets,
        total=len(events),
        reward_range=(0.0, 1.0),
        max_weight=float(len(events[0].pmf)),
        reward_model_name=model,
    )
    return clock.stop()


def from_store(store: Store, args: str, batch: int) -> Seconds:
    targets: list[Target] = [Online(), Replay("candidate", args)]
    clock = Clock()
    evaluate(store, targets, surface="personalizer", batch=batch)
    return clock.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--actions", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="Best of this many runs per path")
    parser.add_argument("--args", default="--cb_explore_adf --epsilon 0.2 --cb_type mtr -q ::")
    options = parser.parse_args()
    events = [e for e in make_events(options.n, options.actions) if isinstance(e, LoggedEvent)]
    args, batch = options.args, options.batch

    repeat = options.repeat

    def best(run: Callable[[], Seconds]) -> Seconds:
        runs = [run() for _ in range(repeat)]
        return min(w for w, _ in runs), min(c for _, c in runs)

    base = best(lambda: plain(events, args))
    rows: list[tuple[str, Seconds]] = [("plain pyvw predict+learn", base)]
    rows.append(("Replay.pmfs (candidate only)", best(lambda: replay_only(events, args, batch))))
    models: tuple[RewardModelName, ...] = ("action-mean", "vw")
    for model in models:
        seconds = best(lambda m=model: whole(events, args, batch, m))  # type: ignore[misc]
        rows.append((f"runs.run, DR model {model}", seconds))
    urls = {"SQLite": ""}
    if os.environ.get("OO_TEST_DATABASE_URL"):
        urls["PostgreSQL"] = fresh_schema(os.environ["OO_TEST_DATABASE_URL"])
    with tempfile.TemporaryDirectory() as tmp:
        for name, url in urls.items():
            store = write_store(url or f"sqlite:///{tmp}/bench.sqlite3", events, options.actions)
            seconds = best(lambda s=store: from_store(s, args, batch))  # type: ignore[misc]
            rows.append((f"runs.evaluate from {name}", seconds))
            store.engine.dispose()

    print(
        f"progressive replay: {options.n:,} events, {options.actions} actions, VW {args!r}, "
        f"batch {batch}, best of {repeat}"
    )
    print(
        table(
            [
                [
                    name,
                    f"{wall:.2f}",
                    f"{options.n / wall:,.0f}",
                    f"{base[0] / wall:.0%}",
                    f"{cpu:.2f}",
                    f"{base[1] / cpu:.0%}",
                ]
                for name, (wall, cpu) in rows
            ],
            ["path", "wall s", "events/s", "vs plain", "CPU s", "CPU vs plain"],
        )
    )


if __name__ == "__main__":
    main()
