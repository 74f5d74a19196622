"""Evaluation and policy-search results as JSON: the wire form of `rewards.ope`'s domain records.

Each function returns the JSON-ready dict of one wire schema (`EvaluationResult`,
`PolicyEvaluationPublic` of `api.schemas.evaluations`; `PolicySearchResult`,
`PolicySearchCandidatePublic` of `api.schemas.policy_searches`): what a job
stores as its result, what the API serves from it, and what `oo evaluate --json` and
`oo search-policies --json` print. Estimates that are not numbers (NaN, an infinite weight)
become null; times are ISO 8601.

A job stores a little more than the wire shows (`stored_evaluation`, `stored_search`: each
policy's reward-over-time buckets), so that any api process rebuilds the result object from the
jobs table (`evaluation_of`, `search_of`) to draw its charts or promote a candidate.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from rewards.estimators import Interval, diagnostics
from rewards.estimators.results import WeightSummary
from rewards.ope.grid import Candidate, Exploration
from rewards.ope.results import Bucket, EstimatorResult, Evaluation, PolicyResult, Verdict
from rewards.ope.runs import HOUR
from rewards.ope.search import SearchResult, Trial


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


# --- what a job stores, and the result rebuilt from it by any api process ------------------


def _number(value: float | None, missing: float = math.nan) -> float:
    """A stored estimate: null was a NaN, or an unbounded end of an interval (`missing`)."""
    return missing if value is None else float(value)


def _buckets(p: PolicyResult) -> list[list[Any]]:
    return [[b.start.isoformat(), b.n, b.total, b.squares] for b in p.over_time]


def stored_policy(p: PolicyResult) -> dict[str, Any]:
    """`policy_evaluation`, plus the reward-over-time buckets the charts and time series need."""
    return {**policy_evaluation(p), "over_time": _buckets(p)}


def policy_of(data: dict[str, Any], n: int) -> PolicyResult:
    """The policy result `stored_policy` stored, over `n` events."""
    estimates = []
    for e in data["estimates"]:
        first, second = e["intervals"]
        estimates.append(
            EstimatorResult(
                estimator=e["estimator"],
                value=_number(e["value"]),
                gaussian=Interval(
                    _number(first["low"], -math.inf), _number(first["high"], math.inf)
                ),
                second=Interval(
                    _number(second["low"], -math.inf), _number(second["high"], math.inf)
                ),
                second_method=second["method"],
            )
        )
    d = data["diagnostics"]
    report = diagnostics.Report(
        WeightSummary(
            n=n,
            ess=_number(d["ess"]),
            min=_number(d["min_weight"]),
            max=_number(d["max_weight"], math.inf),
            mean=_number(d["mean_weight"]),
        ),
        low_overlap_share=_number(d["low_overlap_share"]),
        threshold=d["low_overlap_threshold"],
    )
    return PolicyResult(
        data["name"],
        data["kind"],
        tuple(estimates),
        report,
        Verdict(data["verdict"]["recommended"], data["verdict"]["reason"]),
        tuple(
            Bucket(datetime.fromisoformat(start), int(count), float(total), float(squares))
            for start, count, total, squares in data.get("over_time", [])
        ),
    )


def _moment(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def stored_evaluation(e: Evaluation) -> dict[str, Any]:
    """`evaluation_result`, plus what rebuilding the run needs (`evaluation_of`)."""
    return {
        **evaluation_result(e),
        "bucket_seconds": e.bucket_seconds,
        "policies": [stored_policy(p) for p in e.policies],
    }


def evaluation_of(data: dict[str, Any]) -> Evaluation:
    """The evaluation run `stored_evaluation` stored; a result stored before the buckets were
    has no reward over time."""
    return Evaluation(
        n=data["n"],
        surface=data["surface"],
        model_key=data["model_key"],
        start=_moment(data["start"]),
        end=_moment(data["end"]),
        alpha=data["alpha"],
        reward_range=(data["reward_range"][0], data["reward_range"][1]),
        max_weight=_number(data["max_weight"], math.inf),
        reward_model=data["reward_model"],
        verdict_estimator=data["verdict_estimator"],
        policies=tuple(policy_of(p, data["n"]) for p in data["policies"]),
        seconds=data["seconds"],
        bucket_seconds=data.get("bucket_seconds", HOUR),
    )


def candidate_of(data: dict[str, Any]) -> Candidate:
    """The grid configuration `search_candidate` stored."""
    return Candidate(
        index=data["index"],
        exploration=Exploration.parse(data["exploration"]),
        interactions=tuple(data["interactions"]),
        learning_rate=data["learning_rate"],
        cb_type=data["cb_type"],
    )


def stored_search(r: SearchResult) -> dict[str, Any]:
    """`search_result`, with every policy's buckets (`search_of`)."""
    data = search_result(r)
    if r.online is not None:
        data["online"] = stored_policy(r.online)
    for trial, stored in zip(r.trials, data["trials"], strict=True):
        if trial.result is not None:
            stored["result"] = stored_policy(trial.result)
    return data


def search_of(data: dict[str, Any]) -> SearchResult:
    """The policy search `search_result` (or `stored_search`) stored: what promoting a
    candidate needs, on any api process."""
    n = data["n"]
    return SearchResult(
        n=n,
        alpha=data["alpha"],
        estimator=data["estimator"],
        reward_model=data["reward_model"],
        grid_size=data["grid_size"],
        seed=data["seed"],
        stopped=data["stopped"],
        online=None if data["online"] is None else policy_of(data["online"], n),
        trials=tuple(
            Trial(
                candidate_of(t["candidate"]),
                None if t["result"] is None else policy_of(t["result"], n),
                t["seconds"],
                t["error"],
            )
            for t in data["trials"]
        ),
        seconds=data["seconds"],
        surface=data["surface"],
        model_key=data["model_key"],
        start=_moment(data["start"]),
        end=_moment(data["end"]),
    )
