"""Experiment results for 1M logged decisions, computed from PostgreSQL (goal: at most 2 s).

    make bench   (or run it under infra/scripts/with-services)

Beside it, in the same run: a bare `SELECT count(*), avg(learned_reward)` over the same rows,
the floor any aggregate over them pays.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import psycopg
import sqlalchemy as sa

from bandit.store import Store
from bench._harness import database_url, fresh_schema, table
from experiments.lifecycle import ArmSpec, Experiments
from experiments.results import experiment_results

COLUMNS = (
    "event_id, surface, principal, created_at, context, actions, pmf, chosen_index, "
    "chosen_action, propensity, policy, model_key, model_version, experiment, arm, "
    "missing_sources, excluded, vw_example, deferred, activated_at, learn_seq, learned_at, "
    "learned_reward"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    url = fresh_schema(database_url())
    store = Store.connect(url)
    experiments = Experiments(store.engine, ("tips", "personalizer"), lambda name: True)
    arms = [ArmSpec("control", "vw-epsilon", 1), ArmSpec("squarecb", "vw-squarecb", 1)]
    experiment = experiments.start(experiments.create("bench", "tips", arms).name)

    rng = np.random.default_rng(5)
    units = rng.integers(0, args.units, args.decisions)
    arm_of = {u: experiment.assign(f"u{u}").name for u in range(args.units)}
    start = datetime.now(UTC) - timedelta(days=3)
    started = time.perf_counter()
    raw = store.engine.raw_connection()
    dbapi: psycopg.Connection = raw.driver_connection  # type: ignore[assignment]
    with dbapi.cursor() as cursor, cursor.copy(f"COPY decisions ({COLUMNS}) FROM STDIN") as copy:
        for i in range(args.decisions):
            unit = int(units[i])
            arm = arm_of[unit]
            p_click = 0.30 if arm == "control" else 0.33
            reward = 1.0 if rng.random() < p_click else 0.0
            at = start + timedelta(seconds=i * 0.2)
            copy.write_row(
                (
                    f"e{i}",
                    "tips",
                    f"u{unit}",
                    at,
                    "[]",
                    "[]",
                    "[0.5, 0.5]",
                    0,
                    "tip",
                    0.5,
                    "vw-epsilon",
                    f"tips:vw-epsilon:bench/{arm}",
                    0,
                    "bench",
                    arm,
                    "[]",
                    "[]",
                    "",
                    False,
                    at,
                    i + 1,
                    at,
                    reward,
                )
            )
    dbapi.commit()
    raw.close()
    with store.engine.begin() as conn:
        conn.execute(sa.text("ANALYZE decisions"))
    load_seconds = time.perf_counter() - started

    def best(run: object) -> float:
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            run()  # type: ignore[operator]
            times.append(time.perf_counter() - t)
        return min(times)

    def bare() -> None:
        with store.engine.connect() as conn:
            conn.execute(sa.text("SELECT count(*), avg(learned_reward) FROM decisions")).one()

    outcome = experiment_results(store, experiment)
    bare_s = best(bare)
    results_s = best(lambda: experiment_results(store, experiment))
    rows = [
        ["SELECT count(*), avg(learned_reward)", f"{bare_s * 1000:,.0f}", "1.0x"],
        [
            "experiment results (per unit, per arm, stats)",
            f"{results_s * 1000:,.0f}",
            f"{results_s / bare_s:.1f}x",
        ],
    ]
    print(
        f"\n{args.decisions:,} decisions, {args.units:,} units, 2 arms "
        f"(loaded with COPY in {load_seconds:.0f}s); best of {args.repeat}\n"
    )
    print(table(rows, ["query", "ms", "vs bare"]))
    for arm in outcome.arms:
        print(
            f"  {arm.name}: units {arm.units:,}, decisions {arm.decisions:,}, "
            f"mean {arm.mean}, verdict {arm.verdict}"
        )
    print(f"  SRM p = {outcome.srm.p_value:.3g}")


if __name__ == "__main__":
    main()
