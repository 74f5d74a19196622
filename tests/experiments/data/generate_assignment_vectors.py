"""Regenerate ``assignment_vectors.json`` from the written contract, not from the implementation.

Run ``.venv/bin/python tests/experiments/data/generate_assignment_vectors.py`` only when the
contract itself changes on purpose (that moves live units between arms). It deliberately does not
import ``experiments.assignment``: the vectors are an independent oracle, computed here with the
contract's second formulation ("bucket b goes to the first arm whose cumulative share reaches
(b + 1) / 10000") and a hex-digest route to the bucket.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

BUCKETS = 10_000
OUT = Path(__file__).with_name("assignment_vectors.json")

ARM_SETS: dict[str, list[tuple[str, int]]] = {
    "even": [("control", 1), ("treatment", 1)],
    "thirds": [("a", 1), ("b", 1), ("c", 1)],
    "ninety_ten": [("control", 9), ("treatment", 1)],
    "ramp": [("w1", 1), ("w2", 2), ("w3", 3), ("w4", 4)],
    "single": [("only", 1)],
    "sevenths": [("ctl", 3), ("t1", 3), ("t2", 1)],
    "sliver": [("big", 9999), ("tiny", 1)],
}

UNITS = [
    "user-0",
    "user-1",
    "user-42",
    "42",
    "0",
    "a",
    "person:7",
    "5f0c6f0e-8d2a-4c55-9f57-3c4c2b1f1a9e",
    "ünïcødé",
    "ユーザー",
    "用户一号",
    "🙂👍",
    "Ελληνικά",
    "مستخدم",
    "é",  # U+00E9, precomposed
    "e\u0301",  # e + combining acute: a different unit from the line above
    " padded ",
    "tab\tand\nnewline",
    "x" * 300,
]
SALTS = ["exp-1", "exp-2", "2026-tip-ranker-v3", "ünï-salt", "S"]


def bucket(unit_id: str, salt: str) -> int:
    hex_digest = hashlib.sha256((salt + ":" + unit_id).encode("utf-8")).hexdigest()
    return int(hex_digest[:16], 16) % BUCKETS


def expected_arm(b: int, arms: list[tuple[str, int]]) -> str:
    total = sum(weight for _, weight in arms)
    cumulative = 0
    for name, weight in arms:
        cumulative += weight
        if (b + 1) * total <= BUCKETS * cumulative:
            return name
    raise AssertionError("unreachable: the last arm's cumulative share is 1")


def boundary_units(salt: str, wanted: set[int]) -> dict[int, str]:
    """Find unit ids landing exactly on the given buckets, to pin the rounding rule's edges."""
    found: dict[int, str] = {}
    i = 0
    while wanted - found.keys():
        unit = f"edge-{i}"
        b = bucket(unit, salt)
        if b in wanted and b not in found:
            found[b] = unit
        i += 1
    return found


def main() -> None:
    cases = []
    set_names = list(ARM_SETS)
    for i, unit in enumerate(UNITS):
        for j, salt in enumerate(SALTS[:3] if i % 2 else SALTS[2:]):
            arm_set = set_names[(i + j) % len(set_names)]
            cases.append((unit, salt, arm_set))
    # Boundaries: thirds at 3333 and 6666 (floored); sevenths at 4285 and 8571; sliver at 9999.
    edges = {
        "thirds": {0, 3332, 3333, 6665, 6666, 9999},
        "sevenths": {4284, 4285, 8570, 8571},
        "sliver": {9998, 9999},
    }
    for arm_set, wanted in edges.items():
        for _, unit in sorted(boundary_units("edge", wanted).items()):
            cases.append((unit, "edge", arm_set))

    vectors = []
    for unit, salt, arm_set in cases:
        arms = ARM_SETS[arm_set]
        b = bucket(unit, salt)
        vectors.append(
            {
                "unit_id": unit,
                "salt": salt,
                "bucket": b,
                "arms": [[name, weight] for name, weight in arms],
                "expected_arm": expected_arm(b, arms),
            }
        )
    document = {
        "contract": (
            "bucket = int.from_bytes(sha256(f'{salt}:{unit_id}'.encode('utf-8')).digest()[:8], "
            "'big') % 10000; arm i owns buckets [floor(10000*C[i-1]/W), floor(10000*C[i]/W)) "
            "for cumulative weights C and total weight W, arms in the given order"
        ),
        "buckets": BUCKETS,
        "cases": vectors,
    }
    # One case per line keeps a diff of the vectors reviewable.
    lines = [json.dumps(case, ensure_ascii=False) for case in vectors]
    head = json.dumps({k: v for k, v in document.items() if k != "cases"}, ensure_ascii=False)
    text = head[:-1] + ', "cases": [\n  ' + ",\n  ".join(lines) + "\n]}\n"
    assert json.loads(text) == document
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {len(vectors)} cases to {OUT}")


if __name__ == "__main__":
    main()
