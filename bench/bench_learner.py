"""Learner throughput (joined events per second) beside a plain pyvw learn loop over the same
examples, measured in the same run.

    make bench            # or: infra/scripts/with-services .venv/bin/python bench/bench_learner.py

The learner's figure covers the whole join: reading decisions and rewards from PostgreSQL in
batches, featurizing, learning, and writing the learning marks. The baseline learns the same
examples, already formatted as VW text, in a bare loop.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa
import vowpalwabbit

from bandit.bus import InProcessBus
from bandit.events import Decision
from bandit.features import action_lines, adf_example
from bandit.hub import ModelHub
from bandit.learner import Learner
from bandit.sampling import sample_index
from bandit.settings import LearnerSettings
from bandit.store import Store
from bench._harness import database_url, fresh_schema, table
from integrations.catalog import load_catalog
from integrations.context import TipSource, build_context
from integrations.profiles import Profile
from integrations.signals import Signal
from policies.registry import EPSILON_GREEDY_ARGS, Registry

KEY = "tips:vw-epsilon"


def make_decisions(n: int) -> list[Decision]:
    source = TipSource(load_catalog())
    start = datetime.now(UTC) - timedelta(hours=1)
    decisions = []
    for i in range(n):
        now = start + timedelta(seconds=i * 0.1)
        mood = {"mood": Signal(type="mood", value=float(1 + i % 5), occurred_at=now)}
        profile = Profile(f"p{i % 100}")
        context, local = build_context(profile, mood, now)
        candidates = source.candidates(profile, local, {}, f"e{i}")
        k = len(candidates.actions)
        pmf = tuple([1.0 / k] * k)
        decisions.append(
            Decision(
                event_id=f"e{i}",
                surface="tips",
                principal=profile.principal,
                context=context,
                actions=tuple(candidates.actions),
                pmf=pmf,
                chosen_index=sample_index(pmf, f"e{i}"),
                policy="vw-epsilon",
                model_key=KEY,
                model_version=0,
                created_at=now,
                activated_at=now,
                example=tuple(adf_example(context, candidates.lines)),
            )
        )
    return decisions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    decisions = make_decisions(args.events)
    rewards = [float(d.chosen.features[0]["tip"]["kind"] == "todo") for d in decisions]  # type: ignore[index]

    # Baseline: the same examples as VW text, learned in a bare loop.
    examples = [
        adf_example(d.context, action_lines(d.actions), (d.chosen_index, -r, d.propensity))
        for d, r in zip(decisions, rewards, strict=True)
    ]

    def plain() -> tuple[float, float]:
        vw = vowpalwabbit.Workspace(EPSILON_GREEDY_ARGS + " --quiet")
        started, cpu = time.perf_counter(), time.process_time()
        for example in examples:
            vw.learn(example)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        vw.finish()
        return elapsed, cpu

    store = Store.connect(fresh_schema(database_url()))
    window = timedelta(hours=2)
    for d, r in zip(decisions, rewards, strict=True):
        store.insert_decision(d)
        store.record_reward(d.event_id, r, reaction=None, window=window, at=d.created_at)
    registry = Registry()

    def joined() -> tuple[float, float]:
        # A fresh learner over a log with no learning marks: every decision is learned once.
        with store.engine.begin() as conn:
            conn.execute(sa.text("UPDATE decisions SET learn_seq = NULL, learned_reward = NULL"))
        hub = ModelHub(store, registry.args_for, replay=True)
        hub.get(KEY)
        bus = InProcessBus()
        learner = Learner(store, hub, bus, LearnerSettings(batch_size=2048))
        for d in decisions:
            bus.publish("reward", d.event_id)
        started, cpu = time.perf_counter(), time.process_time()
        learned = 0
        while learned < len(decisions):
            messages = bus.read("bench", 2048, 10)
            learned += learner.learn_events([m.event_id for m in messages])
        return time.perf_counter() - started, time.process_time() - cpu

    # Interleaved rounds: the machine's speed drifts, a ratio within one round does not.
    # CPU time (this process's, all threads) is the steadier figure on a shared machine; it
    # leaves out the database server's work, which the wall-clock figure includes.
    rows = []
    ratios = []
    cpu_ratios = []
    for round_ in range(1, args.rounds + 1):
        (baseline, baseline_cpu), (learner_s, learner_cpu) = plain(), joined()
        ratios.append(baseline / learner_s)
        cpu_ratios.append(baseline_cpu / learner_cpu)
        rows.append(
            [
                str(round_),
                f"{len(examples) / baseline:,.0f}",
                f"{len(examples) / learner_s:,.0f}",
                f"{baseline / learner_s:.0%}",
                f"{baseline_cpu / learner_cpu:.0%}",
            ]
        )
    k = len(decisions[0].actions)
    print(f"\n{len(decisions):,} decisions, {k} candidates each, args: {EPSILON_GREEDY_ARGS}")
    print(
        "learner = read from PostgreSQL, join, learn the logged example, mark (batches of 2048)\n"
    )
    header = ["round", "plain pyvw ex/s", "learner ex/s", "learner vs plain", "CPU time ratio"]
    print(table(rows, header))
    print(f"\nmedian ratio: {sorted(ratios)[len(ratios) // 2]:.0%}")
    print(f"median CPU time ratio: {sorted(cpu_ratios)[len(cpu_ratios) // 2]:.0%}")


if __name__ == "__main__":
    main()
