"""A seeded DSJSON log with the shapes a fast reader could get wrong, for evaluation tests.

Lines come from `to_dsjson` (the export), then some are varied: skipped lines, lines with fewer
candidates, without `_label_probability` or `Timestamp`, spaced JSON, `\\u` escapes, keys in
another order, candidates that differ only in key order or in `true` against `1`, and
different tags with the same features (one VW line, one reward-model key).
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bandit.events import Action, Decision
from rewards.logs.dsjson_export import dumps, to_dsjson

T0 = datetime(2026, 11, 1, 8, 30, tzinfo=UTC)


def _catalog() -> list[Action]:
    catalog = [
        Action(
            f"tip-{i}",
            [{"tip": {"kind": ("todo", "advice", "walk")[i % 3], "effort": i % 4, "fast": i % 2}}],
        )
        for i in range(40)
    ]
    catalog += [Action(f"twin-{i}", catalog[i].features) for i in range(5)]  # same features
    catalog += [
        Action("flag-1", [{"tip": {"fast": True}}]),
        Action("flag-2", [{"tip": {"fast": 1}}]),
    ]
    return catalog


def _record(
    rng: random.Random, i: int, catalog: list[Action], spacing: timedelta
) -> dict[str, Any]:
    n = rng.choice((6, 12, 12, 12))
    actions = tuple(rng.sample(catalog, n))
    greedy = rng.randrange(n)
    pmf = [0.3 / n] * n
    pmf[greedy] += 0.7
    chosen = greedy if rng.random() < 0.7 else rng.randrange(n)
    kind = actions[chosen].features[0]["tip"].get("kind")  # type: ignore[call-overload,union-attr]
    reward = rng.choice((0.0, 1.0, 0.5)) if kind == "todo" else rng.choice((0.0, 0.0, 1.0, -0.5))
    decision = Decision(
        event_id=f"e{i}",
        surface="tips",
        principal=f"p{i % 7}",
        context=[{"user": {"tier": ("free", "gold")[i % 2], "mood": i % 5}}] if i % 9 else [],
        actions=actions,
        pmf=tuple(pmf),
        chosen_index=chosen,
        policy="vw-epsilon",
        model_key="tips:vw-epsilon",
        model_version=0,
        created_at=T0 + spacing * i,
        activated_at=T0,
    )
    return to_dsjson(decision, reward, skip_learn=i % 17 == 3)


def _line(rng: random.Random, record: dict[str, Any], i: int) -> str:
    multi = record["c"]["_multi"]
    if i % 13 == 5:
        del record["_label_probability"]
    if i % 23 == 7:
        del record["Timestamp"]
    if i % 11 == 4:  # the same candidate with its features in another order
        first = multi[0]
        multi[0] = dict(reversed(list(first.items())))
    if i % 19 == 2:  # another key order at the top level
        record = dict(reversed(list(record.items())))
    if i % 7 == 1:
        return json.dumps(record)  # spaced, `\u` escapes for non-ASCII
    if i % 29 == 6:
        multi[-1]["note"] = 'caf\u00e9 "quoted" }, {'
        return json.dumps(record, indent=1).replace("\n", " ")
    return dumps(record)


def write(
    path: Path, n: int = 600, *, seed: int = 14, spacing: timedelta = timedelta(minutes=11)
) -> Path:
    rng = random.Random(seed)
    catalog = _catalog()
    with open(path, "w", encoding="utf-8") as out:
        for i in range(n):
            out.write(_line(rng, _record(rng, i, catalog, spacing), i) + "\n")
            if i % 50 == 10:
                out.write("\n")
    return path
