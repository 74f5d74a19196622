"""The experimenter's pages: an index of experiments and one page per experiment, as HTML.

The page reads like the results API (`GET /v1/experiments/{name}/results`), drawn: reward over
time per arm with its 95% band, assignment counts against the configured weights, the
sample-ratio check, guardrails, and per arm the mean with its interval, the lift against control,
the always-valid p-value and the verdict. Rendering is pure (data in, HTML string out); the one
read here is the time-bucketed reward aggregate, :func:`reward_series`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape

from bandit.events import utcnow
from bandit.store import Store
from dashboards.charts import Frame, Point, Series, point, svg_band_chart, svg_interval_row
from experiments.lifecycle import Experiment
from experiments.stats import ArmResult, ExperimentResults, GuardrailResult

HOUR, DAY = 3_600, 86_400
STYLESHEET = "/dashboards/dashboard.css"
ICON = "/dashboards/icon.svg"
INDEX = "/dashboards/experiments"
WIDE = Frame(width=1000, height=300)
NARROW = Frame(width=360, height=220, left=36, right=10)
ICON_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32"/>'
    '<circle cx="11" cy="16" r="6" fill="none" stroke="#ecebe8" stroke-width="2"/>'
    '<circle cx="23" cy="18" r="3.5" fill="none" stroke="#ecebe8" stroke-width="2"/></svg>'
)


@dataclass(frozen=True, slots=True)
class RewardOverTime:
    bucket_seconds: int
    series: tuple[Series, ...]


def bucket_seconds(span: timedelta) -> int:
    """Hourly buckets for the first three days of an experiment, daily buckets after."""
    return HOUR if span <= timedelta(days=3) else DAY


def reward_series(
    store: Store, experiment: Experiment, now: datetime | None = None
) -> RewardOverTime:
    """Per arm and per time bucket of decision time: n, mean and 95% interval of learned reward.

    One GROUP BY (arm, bucket) (`Store.reward_buckets`) returns n, the sum and the sum of squares
    of `learned_reward`; only learned decisions count, as in the results. The interval is per
    decision within a bucket (``mean ± 1.96·sd/√n``), a picture of the trend; the per-unit
    statistics are in the table.
    """
    started = experiment.started_at or experiment.created_at
    until = experiment.stopped_at or now or utcnow()
    size = bucket_seconds(until - started)
    points: dict[str, list[Point]] = {arm.name: [] for arm in experiment.arms}
    for bucket in store.reward_buckets(experiment.name, experiment.surface, size):
        if bucket.arm not in points:
            continue
        points[bucket.arm].append(point(bucket.start, bucket.n, bucket.total, bucket.squares))
    return RewardOverTime(size, tuple(Series(name, tuple(p)) for name, p in points.items()))


# --- rendering -----------------------------------------------------------------------------


def page(title: str, body: str) -> str:
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="dark">'
        f"<title>{escape(title)} · oO</title>"
        f'<link rel="icon" type="image/svg+xml" href="{ICON}">'
        f'<link rel="stylesheet" href="{STYLESHEET}">'
        f'</head><body class="dashboard"><main>{body}</main></body></html>\n'
    )


def fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def fmt_p(value: float | None) -> str:
    if value is None:
        return "–"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def fmt_pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value * 100:+.1f} %" if signed else f"{value * 100:.1f} %"


def when(moment: datetime | None) -> str:
    return "–" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def running_for(experiment: Experiment, now: datetime | None = None) -> str:
    """How long it has run (paused time counts, as in the results): '5 h', '3.2 days'."""
    if experiment.started_at is None:
        return ""
    elapsed = (experiment.stopped_at or now or utcnow()) - experiment.started_at
    hours = max(0.0, elapsed.total_seconds() / 3600)
    if hours < 1:
        return "under 1 h"
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.1f} days"


def swatch(index: int) -> str:
    return f'<span class="swatch series s{index % 6}" aria-hidden="true"></span>'


def verdict_label(arm: ArmResult) -> str:
    if arm.is_control:
        return "control"
    return "–" if arm.verdict is None else arm.verdict.value.replace("_", " ")


def index_page(experiments: Sequence[Experiment]) -> str:
    """Every experiment with its status, newest last (the order of `GET /v1/experiments`)."""
    if not experiments:
        rows = '<p class="quiet">no experiments yet</p>'
    else:
        body = "".join(
            "<tr>"
            f'<td><a href="{INDEX}/{escape(e.name)}">{escape(e.name)}</a></td>'
            f'<td><span class="status {escape(e.status)}">{escape(e.status)}</span></td>'
            f"<td>{escape(e.surface)}</td>"
            f"<td>{escape(' · '.join(a.name for a in e.arms))}</td>"
            f"<td>{escape(when(e.started_at))}</td>"
            "</tr>"
            for e in experiments
        )
        rows = (
            '<table class="list"><thead><tr><th scope="col">experiment</th>'
            '<th scope="col">status</th><th scope="col">surface</th><th scope="col">arms</th>'
            f'<th scope="col">started</th></tr></thead><tbody>{body}</tbody></table>'
        )
    return page(
        "experiments",
        f'<header><p class="crumb">oO</p><h1>experiments</h1></header><section>{rows}</section>',
    )


def experiment_page(
    experiment: Experiment,
    outcome: ExperimentResults,
    reward: RewardOverTime,
    now: datetime | None = None,
) -> str:
    """One experiment: header, reward over time, arms, sample ratio, guardrails."""
    meta = " · ".join(
        [
            experiment.status,
            experiment.surface,
            f"started {when(experiment.started_at)}" if experiment.started_at else "not started",
            running_for(experiment, now),
        ]
    ).strip(" ·")
    header = (
        f'<header><p class="crumb"><a href="{INDEX}">experiments</a></p>'
        f"<h1>{escape(experiment.name)}</h1>"
        f'<p class="meta"><span class="status {escape(experiment.status)}">'
        f"{escape(meta)}</span></p>"
        + (
            f'<p class="description">{escape(experiment.description)}</p>'
            if experiment.description
            else ""
        )
        + "</header>"
    )
    return page(
        experiment.name,
        header
        + reward_section(experiment, reward)
        + arms_section(experiment, outcome)
        + srm_section(outcome)
        + guardrails_section(experiment, outcome),
    )


def legend(experiment: Experiment) -> str:
    items = "".join(
        f"<li>{swatch(i)}{escape(arm.name)}</li>" for i, arm in enumerate(experiment.arms)
    )
    return f'<ul class="legend">{items}</ul>'


def reward_section(experiment: Experiment, reward: RewardOverTime) -> str:
    unit = "hour" if reward.bucket_seconds == HOUR else "day"
    title = "mean learned reward per arm over time, 95% band"
    time_format = "%b %d %H:%M" if unit == "hour" else "%b %d"
    # Two drawings, one shown per screen width (CSS): SVG text scales with the viewBox, so
    # one drawing cannot keep its labels legible both on a phone and on a desktop.
    chart = "".join(
        svg_band_chart(
            reward.series, title=title, time_format=time_format, frame=frame, variant=variant
        )
        for frame, variant in ((WIDE, "wide"), (NARROW, "narrow"))
    )
    return (
        '<section id="reward" aria-labelledby="reward-h">'
        f'<h2 id="reward-h">reward over time</h2>{legend(experiment)}{chart}'
        f'<p class="note">mean learned reward of the decisions of each {unit} (UTC), '
        "with its 95% interval</p></section>"
    )


def arms_section(experiment: Experiment, outcome: ExperimentResults) -> str:
    total_weight = sum(a.weight for a in experiment.arms) or 1
    total_units = sum(a.units for a in outcome.arms)
    bounds = [
        bound
        for arm in outcome.arms
        if arm.mean_ci is not None
        for bound in (arm.mean_ci.low, arm.mean_ci.high)
    ]
    lo, hi = (min(bounds), max(bounds)) if bounds else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    rows = []
    for i, (spec, arm) in enumerate(zip(experiment.arms, outcome.arms, strict=True)):
        interval = (
            svg_interval_row(
                arm.mean_ci.low, arm.mean or 0.0, arm.mean_ci.high, lo=lo, hi=hi, index=i
            )
            if arm.mean_ci is not None
            else ""
        )
        ci = (
            f'<span class="ci">[{fmt(arm.mean_ci.low)}, {fmt(arm.mean_ci.high)}]</span>'
            if arm.mean_ci is not None
            else ""
        )
        lift = "–"
        if arm.comparison is not None and arm.comparison.relative_lift is not None:
            lift_ci = arm.comparison.relative_lift_ci
            lift = fmt_pct(arm.comparison.relative_lift, signed=True) + (
                f' <span class="ci">[{fmt_pct(lift_ci.low, True)}, {fmt_pct(lift_ci.high, True)}]'
                "</span>"
                if lift_ci is not None
                else ""
            )
        p = fmt_p(arm.sequential.always_valid_p) if arm.sequential is not None else "–"
        verdict = verdict_label(arm)
        rows.append(
            f'<tr data-arm="{escape(arm.name)}">'
            f'<th scope="row">{swatch(i)}{escape(arm.name)}</th>'
            f"<td>{escape(spec.policy)}</td>"
            f'<td class="num">{arm.units}</td>'
            f'<td class="num">{arm.decisions}</td>'
            f'<td class="num">{fmt_pct(arm.units / total_units if total_units else None)}'
            f' <span class="ci">of {fmt_pct(spec.weight / total_weight)}</span></td>'
            f'<td class="num">{fmt(arm.mean)} {ci}</td>'
            f'<td class="plot">{interval}</td>'
            f'<td class="num">{lift}</td>'
            f'<td class="num">{p}</td>'
            f'<td><span class="verdict {escape(verdict.replace(" ", "-"))}">'
            f"{escape(verdict)}</span></td>"
            "</tr>"
        )
    head = "".join(
        f'<th scope="col">{escape(name)}</th>'
        for name in (
            "arm",
            "policy",
            "units",
            "decisions",
            "share vs weight",
            "mean [95% CI]",
            "",
            "lift vs control",
            "always-valid p",
            "verdict",
        )
    )
    minimum = (
        f"verdicts wait for {experiment.min_units_per_arm} units and "
        f"{experiment.min_decisions_per_arm} decisions per arm; "
        f"each comparison at level {outcome.comparison_alpha:g}"
    )
    return (
        '<section id="arms" aria-labelledby="arms-h"><h2 id="arms-h">arms</h2>'
        '<div class="scroll"><table class="arms">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        f'<p class="note">{escape(minimum)}</p></section>'
    )


def srm_section(outcome: ExperimentResults) -> str:
    srm = outcome.srm
    state = "flagged" if srm.flagged else "ok"
    text = (
        "units are not split as the weights promise: no result can be trusted"
        if srm.flagged
        else "units are split as the weights promise"
    )
    return (
        '<section id="srm" aria-labelledby="srm-h"><h2 id="srm-h">sample ratio</h2>'
        f'<p class="srm {state}" data-flagged="{str(srm.flagged).lower()}">'
        f'<span class="status {state}">{state}</span> {escape(text)}</p>'
        f'<p class="note">chi-square p = {fmt_p(srm.p_value)} '
        f"(flagged below {srm.threshold:g}); observed units "
        f"{escape(' / '.join(str(n) for n in srm.observed))}, expected "
        f"{escape(' / '.join(f'{e:.0f}' for e in srm.expected))}</p></section>"
    )


def guardrail_row(arm: ArmResult, result: GuardrailResult, index: int) -> str:
    allowed = (
        f"up to {result.max_degradation * 100:g} % worse"
        if result.kind == "relative"
        else f"up to {result.max_degradation:g} worse"
    )
    direction = "higher is better" if result.higher_is_better else "lower is better"
    state = "breached" if result.breached else "ok"
    return (
        f'<tr data-metric="{escape(result.metric)}" data-arm="{escape(arm.name)}">'
        f'<th scope="row">{escape(result.metric.replace("_", " "))}'
        f' <span class="ci">{escape(direction)}</span></th>'
        f"<td>{swatch(index)}{escape(arm.name)}</td>"
        f'<td class="num">{fmt(result.control_mean)}</td>'
        f'<td class="num">{fmt(result.treatment_mean)}</td>'
        f"<td>{escape(allowed)}</td>"
        f'<td class="num">{fmt_p(result.always_valid_p)}</td>'
        f'<td><span class="status {state}">{state}</span></td>'
        "</tr>"
    )


def guardrails_section(experiment: Experiment, outcome: ExperimentResults) -> str:
    rows = [
        guardrail_row(arm, result, i)
        for i, arm in enumerate(outcome.arms)
        for result in arm.guardrails
    ]
    if rows:
        head = "".join(
            f'<th scope="col">{name}</th>'
            for name in ("metric", "arm", "control", "arm value", "allowed", "always-valid p", "")
        )
        body = (
            f'<div class="scroll"><table class="guardrails"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>"
        )
    else:
        body = (
            '<p class="quiet">guardrails are checked once control and a treatment each have '
            f"{experiment.min_units_per_arm} units and {experiment.min_decisions_per_arm} "
            "decisions</p>"
        )
    return (
        '<section id="guardrails" aria-labelledby="guardrails-h">'
        f'<h2 id="guardrails-h">guardrails</h2>{body}</section>'
    )
