"""A Personalizer evaluation's results as the wire shows them: a summary and a time series per
policy, over the range, interval and window `GET /evaluations/{id}` asks for.

The job stores the run (`api.evaluation_wire.stored_evaluation`: every policy's IPS terms summed
per bucket, the bucket as fine as the window allows, `bucket_seconds`), so each read
re-aggregates the buckets (`rewards.ope.timeseries`) instead of returning one stored point.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from api.errors import BadRequest
from api.personalizer.schemas import (
    EvaluationContent,
    PolicyResult,
    PolicyResultPoint,
    PolicyResultSummary,
    PolicyResultTimeseries,
)
from rewards.estimators import Interval
from rewards.ope.errors import EvaluationError
from rewards.ope.results import Evaluation
from rewards.ope.results import PolicyResult as PolicyEvaluation
from rewards.ope.timeseries import overall, series

Source = Literal["Online", "Baseline", "Random", "Custom", "OfflineExperimentation"]
WindowName = Literal["Expanding", "Rolling"]

BUCKET_MINUTES = (5, 60, 360, 720, 1440)
"""The intervals Personalizer allows; an evaluation's buckets are the finest of them that keeps
`MAX_BUCKETS` over its window (5 minutes up to ten days), and any multiple of its bucket is an
interval it can show."""
MAX_BUCKETS = 2880
_TARGETS = {"startTime": "startTime", "start": "startTime", "interval": "intervalInMinutes"}


def bucket_seconds(start: datetime, end: datetime) -> int:
    """The finest bucket of `BUCKET_MINUTES` with at most `MAX_BUCKETS` over [start, end)."""
    span = (end - start).total_seconds()
    for minutes in BUCKET_MINUTES:
        if span / (minutes * 60) <= MAX_BUCKETS:
            return minutes * 60
    return BUCKET_MINUTES[-1] * 60


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _summary(value: float, interval: Interval) -> dict[str, Any]:
    return {
        "expectedReward": _finite(value),
        "confidenceInterval": [_finite(interval.low), _finite(interval.high)],
    }


def summary_of(p: PolicyEvaluation) -> dict[str, Any]:
    """A policy's IPS estimate over the whole evaluation, with its Gaussian interval."""
    ips = p.estimate("ips")
    return _summary(ips.value, ips.gaussian)


def content(
    run: Evaluation,
    policies: Mapping[str, tuple[str, str]],
    sources: Mapping[str, Source],
    *,
    evaluated: tuple[datetime, datetime],
    start: datetime | None,
    end: datetime | None,
    interval_minutes: int | None,
    window: WindowName | None,
) -> EvaluationContent:
    """Each policy's summary and time series over [start, end) (the evaluation's own window,
    `evaluated`, by default): points every `interval_minutes` (by default the evaluation's
    bucket: 5 minutes, as Personalizer's default, over windows up to ten days), `Expanding`
    (from `start`; the default) or `Rolling`. Over the whole window the summary is the run's
    IPS estimate; over part of it, the IPS estimate of the buckets in the range.

    Raises
    ------
    BadRequest
        Naming `intervalInMinutes` when it is not a whole number of the evaluation's buckets or
        makes too many points.
    """
    begin, finish = start or evaluated[0], end or evaluated[1]
    bucket = run.bucket_seconds
    interval = bucket if interval_minutes is None else interval_minutes * 60
    whole = begin <= evaluated[0] and finish >= evaluated[1]
    # The points cover the buckets that hold data within the range: a window asked from the
    # first instant to the last (year 1 to 9999) draws the weeks of the log, not ten millennia.
    held = [b.start for p in run.policies for b in p.over_time if begin <= b.start < finish]
    last = max(held) + timedelta(seconds=bucket) if held else begin + timedelta(seconds=bucket)
    drawn = (max(begin, min(held)) if held else begin, min(finish, last))
    values = []
    try:
        for p in run.policies:
            name, arguments = policies[p.name]
            if whole:
                summary = summary_of(p)
            else:
                _, value, ci = overall(p.over_time, start=begin, end=finish, alpha=run.alpha)
                summary = _summary(value, ci)
            points = series(
                p.over_time,
                bucket_seconds=bucket,
                start=drawn[0],
                end=drawn[1],
                interval_seconds=interval,
                window="rolling" if window == "Rolling" else "expanding",
                alpha=run.alpha,
            )
            values.append(
                PolicyResult.model_validate(
                    {
                        "name": name,
                        "arguments": arguments,
                        "policySource": sources.get(p.name, "Custom"),
                        "summary": PolicyResultSummary.model_validate(summary),
                        "timeseries": PolicyResultTimeseries(
                            data=[
                                PolicyResultPoint.model_validate(
                                    {**_summary(q.value, q.interval), "timeStamp": q.start}
                                )
                                for q in points
                            ]
                        ),
                    }
                )
            )
    except EvaluationError as exc:
        target = _TARGETS.get(exc.target or "", "intervalInMinutes")
        message = (
            str(exc).replace("`interval`", "`intervalInMinutes`").replace("`start`", "`startTime`")
        )
        raise BadRequest(message, target=target) from None
    return EvaluationContent.model_validate(
        {
            "startTime": begin,
            "endTime": finish,
            "intervalInMinutes": interval // 60,
            "value": values,
        }
    )
