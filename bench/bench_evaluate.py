"""`oo evaluate --log` over a DSJSON file beside a minimal reference pass over the same file.

    .venv/bin/python bench/bench_evaluate.py [--impressions 10000] [--actions 80] [--json]

Writes a seeded DSJSON log (`rewards.logs.dsjson_export.to_dsjson`): `--impressions` decisions
of an epsilon-greedy logging policy, each over `--actions` candidates drawn from a catalog of
tips with features, a user context, timestamps a few seconds apart. Then, alternating rounds:

- reference: `json.loads` of every line and the IPS estimate of the baseline and random
  policies, nothing else;
- evaluate: `rewards.ope.runs.evaluate_log` over `Log.of_dsjson`, the call `oo evaluate --log`
  makes (baseline, random and online; IPS, SNIPS, DR with the action-mean reward model, their
  intervals, diagnostics, hourly buckets);
- once, the CLI itself (`python -m api.cli evaluate --log FILE --json`) in a fresh process,
  with its peak RSS.

Figures only; nothing here passes or fails on time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bandit.events import Action, Decision
from rewards.logs.dsjson_export import dumps, to_dsjson
from rewards.ope.logged import Log
from rewards.ope.runs import evaluate_log
from rewards.ope.targets import Baseline, Online, Uniform

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("advice", "todo", "recipe", "exercise", "reading")
TOPICS = ("sleep", "food", "move", "focus", "social", "calm", "money", "home")


def write_log(path: Path, impressions: int, n_actions: int, *, seed: int = 14) -> None:
    """A seeded DSJSON log of an epsilon-greedy policy (epsilon 0.2) over a tip catalog."""
    rng = random.Random(seed)
    catalog = [
        Action(
            f"tip-{i}",
            [
                {
                    "tip": {
                        "kind": KINDS[i % len(KINDS)],
                        "topic": TOPICS[i % len(TOPICS)],
                        "effort": i % 4,
                        "minutes": 5 * (1 + i % 6),
                    }
                }
            ],
        )
        for i in range(max(4 * n_actions, 200))
    ]
    start = datetime(2026, 11, 1, tzinfo=UTC)
    epsilon = 0.2
    with open(path, "w", encoding="utf-8") as out:
        for i in range(impressions):
            actions = tuple(rng.sample(catalog, n_actions))
            greedy = rng.randrange(n_actions)
            pmf = [epsilon / n_actions] * n_actions
            pmf[greedy] += 1.0 - epsilon
            chosen = greedy if rng.random() < 1.0 - epsilon else rng.randrange(n_actions)
            kind = actions[chosen].features[0]["tip"]["kind"]  # type: ignore[call-overload,index]
            reward = float(rng.random() < (0.6 if kind == "todo" else 0.2))
            moment = start + timedelta(seconds=7 * i)
            decision = Decision(
                event_id=f"e{i}",
                surface="tips",
                principal=f"p{i % 500}",
                context=[
                    {
                        "user": {"tier": ("free", "gold")[i % 2], "mood": 1 + i % 5},
                        "time": {"hour": moment.hour, "weekday": moment.weekday()},
                    }
                ],
                actions=actions,
                pmf=tuple(pmf),
                chosen_index=chosen,
                policy="vw-epsilon",
                model_key="tips:vw-epsilon",
                model_version=0,
                created_at=moment,
                activated_at=moment,
            )
            out.write(dumps(to_dsjson(decision, reward)) + "\n")


def reference(path: Path) -> dict[str, float]:
    """The minimal pass: `json.loads` every line, IPS of the baseline and random policies."""
    n = 0
    baseline = uniform = 0.0
    with open(path, "rb") as handle:
        for line in handle:
            record = json.loads(line)
            reward = -record["_label_cost"]
            p = record["_label_probability"]
            if record["a"][0] == 1:
                baseline += reward / p
            uniform += reward / (p * len(record["a"]))
            n += 1
    return {"baseline": baseline / n, "random": uniform / n}


def evaluate(path: Path) -> dict[str, float]:
    """What `oo evaluate --log` computes, in process."""
    result = evaluate_log(Log.of_dsjson(path), [Online(), Baseline(), Uniform()])
    return {
        p.name: next(e.value for e in p.estimates if e.estimator == "ips") for p in result.policies
    }


def timed(call: object, path: Path) -> tuple[float, dict[str, float]]:
    started = time.perf_counter()
    values = call(path)  # type: ignore[operator]
    return time.perf_counter() - started, values


def cli(path: Path) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of `oo evaluate --log path --json` in a fresh process."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "api.cli", "evaluate", "--log", str(path), "--json"],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "OO_DATABASE_URL": f"sqlite:///{path.parent / 'bench.db'}"},
    )
    elapsed = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, peak_kb / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--impressions", type=int, default=10_000)
    parser.add_argument("--actions", type=int, default=80)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.dsjson"
        write_log(path, args.impressions, args.actions)
        size_mb = path.stat().st_size / 1e6
        rounds = []
        for _ in range(args.rounds):
            ref_s, ref = timed(reference, path)
            ours_s, ours = timed(evaluate, path)
            for name in ("baseline", "random"):
                assert abs(ref[name] - ours[name]) < 1e-9, (name, ref[name], ours[name])
            rounds.append({"reference_s": ref_s, "evaluate_s": ours_s, "ratio": ref_s / ours_s})
        cli_s, cli_peak_mb = cli(path)
    ratios = sorted(r["ratio"] for r in rounds)
    figures = {
        "impressions": args.impressions,
        "actions": args.actions,
        "file_mb": round(size_mb, 1),
        "rounds": rounds,
        "median_ratio": ratios[len(ratios) // 2],
        "cli_s": cli_s,
        "cli_peak_rss_mb": cli_peak_mb,
        "ips": ours,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"\n{args.impressions:,} impressions x {args.actions} actions, {size_mb:.1f} MB DSJSON\n")
    print(f"{'round':>5}  {'reference s':>11}  {'evaluate s':>10}  {'evaluate vs reference':>21}")
    for i, r in enumerate(rounds, start=1):
        print(f"{i:>5}  {r['reference_s']:>11.2f}  {r['evaluate_s']:>10.2f}  {r['ratio']:>21.0%}")
    print(f"\nmedian ratio: {figures['median_ratio']:.0%}")
    print(f"CLI (fresh process, --json): {cli_s:.2f} s, peak RSS {cli_peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
