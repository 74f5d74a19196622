"""Throughput of the counterfactual estimators on synthetic logs, beside plain-numpy baselines.

    .venv/bin/python bench/bench_estimators.py [--n 1000000] [--loop-n 100000] [--resamples 200]

Generates ``n`` logged events (seeded numpy: 1000 contexts, 8 actions, an epsilon-softmax logging
policy, a mostly greedy target policy, Bernoulli rewards, an imperfect reward model) and times
IPS, SNIPS and DR on the vectorized path with the Gaussian interval, the second interval kind
(Cressie-Read for IPS/SNIPS, empirical Bernstein for DR) and the percentile bootstrap. Baselines
measured in the same run: a bare ``np.mean(w * r)`` pass over the same arrays, and the per-event
streaming ``add`` loop on a ``loop-n`` subset, extrapolated. Prints figures only; nothing is
asserted on time.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rewards.estimators import IntervalMethod, base, diagnostics, dr, ips, snips

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Logs:
    batch: dict[str, Array]
    p_log_all: Array  # (n, K)
    p_target_all: Array  # (n, K)
    chosen: npt.NDArray[np.int64]
    truth: float
    max_weight: float


def synthesize(n: int, seed: int, contexts: int = 1_000, k: int = 8, epsilon: float = 0.05) -> Logs:
    rng = np.random.default_rng(seed)
    mu = rng.uniform(0.05, 0.95, size=(contexts, k))
    scores = np.exp(rng.normal(size=(contexts, k)))
    p_log = (1 - epsilon) * scores / scores.sum(axis=1, keepdims=True) + epsilon / k
    p_target = np.full((contexts, k), 0.2 / k)
    p_target[np.arange(contexts), mu.argmax(axis=1)] += 0.8
    model = np.clip(mu + rng.normal(0.0, 0.1, size=mu.shape), 0.0, 1.0)
    v_model = (p_target * model).sum(axis=1)

    x = rng.integers(0, contexts, n)
    a = np.minimum((p_log[x].cumsum(axis=1) < rng.random(n)[:, None]).sum(axis=1), k - 1)
    batch = {
        "p_log": p_log[x, a],
        "reward": (rng.random(n) < mu[x, a]).astype(np.float64),
        "p_target": p_target[x, a],
        "r_hat": model[x, a],
        "v_hat": v_model[x],
    }
    return Logs(
        batch=batch,
        p_log_all=p_log[x],
        p_target_all=p_target[x],
        chosen=a,
        truth=float((p_target * mu).sum(axis=1).mean()),
        max_weight=float((p_target / p_log).max()),
    )


def timed(work: Callable[[], str], repeat: int) -> tuple[float, str]:
    """Best wall time of ``repeat`` runs, and the last run's summary."""
    best, summary = float("inf"), ""
    for _ in range(repeat):
        start = time.perf_counter()
        summary = work()
        best = min(best, time.perf_counter() - start)
    return best, summary


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        # Task and summary read left-aligned; the figures between them right-aligned.
        cells = [row[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(row[1:-1], widths[1:-1], strict=True)]
        lines.append("  ".join([*cells, row[-1]]))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="events to generate")
    parser.add_argument("--loop-n", type=int, default=100_000, help="events for the add() loop")
    parser.add_argument("--resamples", type=int, default=200, help="bootstrap resamples")
    parser.add_argument("--repeat", type=int, default=5, help="runs per vectorized timing (best)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    logs = synthesize(args.n, args.seed)
    batch, n = logs.batch, args.n
    print(
        f"{n:,} synthetic events generated in {time.perf_counter() - start:.2f}s; "
        f"true target value {logs.truth:.4f}, max importance weight {logs.max_weight:.1f}"
    )

    def baseline() -> str:
        w = batch["p_target"] / batch["p_log"]
        return f"{np.mean(w * batch['reward']):.4f}"

    # One untimed pass first, so page-faulting the freshly generated arrays is charged to nobody.
    baseline()
    base_seconds, base_value = timed(baseline, args.repeat)
    rows: list[list[str]] = []

    def row(task: str, events: int, seconds: float, summary: str, note: str = "") -> None:
        ratio = seconds / (base_seconds * events / n)
        rows.append(
            [
                task,
                f"{events:,}",
                f"{seconds:.3f}",
                f"{events / seconds:,.0f}",
                f"{ratio:.1f}x",
                summary + note,
            ]
        )

    row("baseline: np.mean(w * r)", n, base_seconds, base_value)

    reward_range, max_weight = (0.0, 1.0), logs.max_weight
    makers: list[tuple[str, Callable[[], base.Estimator], IntervalMethod]] = [
        (
            "IPS",
            lambda: ips.Estimator(reward_range=reward_range, max_weight=max_weight),
            "cressie_read",
        ),
        (
            "SNIPS",
            lambda: snips.Estimator(reward_range=reward_range, max_weight=max_weight),
            "cressie_read",
        ),
        ("DR", lambda: dr.Estimator(reward_range=reward_range, max_weight=max_weight), "bernstein"),
    ]
    for name, make, second in makers:

        def point(make: Callable[[], base.Estimator] = make) -> str:
            est = make()
            est.add_batch(batch)
            return f"{est.get():.4f}"

        def with_interval(
            method: IntervalMethod, make: Callable[[], base.Estimator] = make
        ) -> Callable[[], str]:
            def work() -> str:
                est = make()
                est.add_batch(batch)
                ci = est.interval(0.05, method)
                return f"{est.get():.4f} [{ci.low:.4f}, {ci.high:.4f}]"

            return work

        def with_bootstrap(make: Callable[[], base.Estimator] = make) -> str:
            est = make()
            est.add_batch(batch)
            ci = est.bootstrap_interval(batch, n_resamples=args.resamples, rng=args.seed)
            return f"{est.get():.4f} [{ci.low:.4f}, {ci.high:.4f}]"

        row(f"{name}: add_arrays + get", n, *timed(point, args.repeat))
        row(f"{name} + gaussian CI", n, *timed(with_interval("gaussian"), args.repeat))
        row(f"{name} + {second} CI", n, *timed(with_interval(second), args.repeat))
        row(f"{name} + bootstrap CI ({args.resamples})", n, *timed(with_bootstrap, 1))

    loop_n = min(args.loop_n, n)
    events = list(zip(*(batch[k][:loop_n].tolist() for k in dr.Estimator.inputs), strict=True))

    def ips_loop() -> str:
        est = ips.Estimator(reward_range=reward_range, max_weight=max_weight)
        for p_log, reward, p_target, _, _ in events:
            est.add(p_log, reward, p_target)
        return f"{est.get():.4f}"

    def dr_loop() -> str:
        est = dr.Estimator(reward_range=reward_range, max_weight=max_weight)
        for p_log, reward, p_target, r_hat, v_hat in events:
            est.add(p_log, reward, p_target, r_hat, v_hat)
        return f"{est.get():.4f}"

    for name, loop in (("IPS", ips_loop), ("DR", dr_loop)):
        seconds, summary = timed(loop, 1)
        note = f" (on {loop_n:,}, time extrapolated)"
        row(f"{name}: streaming add() loop", n, seconds * n / loop_n, summary, note)

    def overlap() -> str:
        report = diagnostics.diagnose(logs.p_log_all, logs.p_target_all, logs.chosen)
        return f"ESS {report.weights.ess:,.0f}, low-overlap {report.low_overlap_share:.4f}"

    row("diagnostics over (n, 8) pmfs", n, *timed(overlap, 1))

    header = ["task", "events", "seconds", "rows/s", "x baseline", "estimate [95% CI]"]
    print(table(rows, header))
    print(f"baseline time for {n:,} events: {base_seconds * 1e3:.2f} ms; 'x baseline' = time ratio")


if __name__ == "__main__":
    main()
