"""Evaluation and policy-search results as JSON: the wire form of `rewards.ope`'s domain records.

Each function returns the JSON-ready dict of one wire schema (`EvaluationResult`,
`PolicyEvaluationPublic` of `api.schemas.evaluations`; `PolicySearchResult`,
`PolicySearchCandidatePublic` of `api.schemas.policy_searches`): what a job
stores as its result, what the API serves from it, and what `oo evaluate --json` and
`oo search-policies --json` print. Estimates that are not numbers (NaN, an infinite weight)
become null; times are ISO 8601.
"""

from __future__ import annotations

import math
from typing import Any

from rewards.estimators import Interval
from rewards.ope.grid import Candidate
from rewards.ope.results import Evaluation, PolicyResult
from rewards.ope.search import SearchResult


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _interval(interval: Interval, method: str) -> dict[str, Any]:
    return {"method": method, "low": _finite(interval.low), "high": _finite(interval.high)}


def policy_evaluation(p: PolicyResult) -> dict[str, Any]:
    """One policy's result (`PolicyEvaluationPublic`)."""
    w = p.diagnostics.weights
    return {
        "name": p.name,
        "kind": p.kind,
        "estimates": [
            {
                "estimator": e.estimator,
                "value": _finite(e.value),
                "intervals": [
                    _interval(e.gaussian, "gaussian"),
                    _interval(e.second, e.second_method),
                ],
            }
            for e in p.estimates
        ],
        "diagnostics": {
            "ess": _finite(w.ess),
            "ess_ratio": _finite(w.ess_ratio),
            "min_weight": _finite(w.min),
            "max_weight": _finite(w.max),
            "mean_weight": _finite(w.mean),
            "low_overlap_share": _finite(p.diagnostics.low_overlap_share),
            "low_overlap_threshold": p.diagnostics.threshold,
        },
        "verdict": {"recommended": p.verdict.recommended, "reason": p.verdict.reason},
    }


def evaluation_result(e: Evaluation) -> dict[str, Any]:
    """One evaluation run's result (`EvaluationResult`)."""
    return {
        "n": e.n,
        "surface": e.surface,
        "model_key": e.model_key,
        "start": e.start.isoformat() if e.start else None,
        "end": e.end.isoformat() if e.end else None,
        "alpha": e.alpha,
        "reward_range": list(e.reward_range),
        "max_weight": _finite(e.max_weight),
        "reward_model": e.reward_model,
        "verdict_estimator": e.verdict_estimator,
        "recommended": e.recommended,
        "seconds": e.seconds,
        "policies": [policy_evaluation(p) for p in e.policies],
    }


def search_candidate(c: Candidate) -> dict[str, Any]:
    """One configuration of a search's grid (`PolicySearchCandidatePublic`)."""
    return {
        "index": c.index,
        "name": c.name,
        "args": c.args,
        "exploration": str(c.exploration),
        "interactions": list(c.interactions),
        "learning_rate": c.learning_rate,
        "cb_type": c.cb_type,
    }


def search_result(r: SearchResult) -> dict[str, Any]:
    """One policy search's result (`PolicySearchResult`)."""
    winner, leader = r.winner, r.leader
    return {
        "n": r.n,
        "alpha": r.alpha,
        "estimator": r.estimator,
        "reward_model": r.reward_model,
        "grid_size": r.grid_size,
        "seed": r.seed,
        "stopped": r.stopped,
        "seconds": r.seconds,
        "surface": r.surface,
        "model_key": r.model_key,
        "start": r.start.isoformat() if r.start else None,
        "end": r.end.isoformat() if r.end else None,
        "online": None if r.online is None else policy_evaluation(r.online),
        "winner": None if winner is None else winner.candidate.index,
        "leader": None if leader is None else leader.candidate.index,
        "trials": [
            {
                "candidate": search_candidate(t.candidate),
                "seconds": t.seconds,
                "error": t.error,
                "result": None if t.result is None else policy_evaluation(t.result),
            }
            for t in r.trials
        ],
    }
