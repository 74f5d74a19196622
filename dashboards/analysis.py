"""The analyst's page: counterfactual estimates of policies side by side, drawn.

One evaluation (:class:`rewards.ope.results.Evaluation`, from a finished `POST /v1/evaluations`
job or run for the window the analyst picks) becomes a forest plot — one row per policy, its
estimate and 95% interval, the online policy's estimate as the reference line — a table of the
same numbers with the overlap diagnostics (ESS, share of target mass on well-logged candidates,
largest weight) and the verdict, and each policy's estimated reward over time. Above them, a
short "is it learning?" panel from the checkup of `GET /v1/diagnostics`
(:class:`rewards.doctor.Diagnosis`). Rendering is pure: no query of its own. No script and no
inline style (the pages' CSP).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from dashboards.charts import Frame, Series, empty_chart, nice_ticks, point, svg_band_chart
from dashboards.experiments import HOUR, NARROW, WIDE, bucket_seconds, fmt, fmt_pct, page, swatch
from rewards.doctor import Diagnosis, ValueEstimate
from rewards.ope.results import ESTIMATORS, EstimatorName, Evaluation, PolicyResult

PATH = "/dashboards/analysis"

ROW = 30.0
"""Height of one forest-plot row, in SVG units."""


@dataclass(frozen=True, slots=True)
class Choice:
    """A finished evaluation the analyst can pick."""

    id: str
    label: str


@dataclass(frozen=True, slots=True)
class Form:
    """What the form shows as chosen."""

    surface: str = "personalizer"
    start: str = ""
    end: str = ""
    policies: tuple[str, ...] = ("baseline", "random")
    estimator: EstimatorName = "ips"
    evaluation: str = ""


# --- reward over time ------------------------------------------------------------------------


def reward_series(evaluation: Evaluation) -> tuple[int, tuple[Series, ...]]:
    """Each policy's IPS estimate per time bucket, with its 95% interval: (bucket seconds,
    series in the evaluation's order). The online policy's weights are all 1, so its series is
    the logged reward. Hourly buckets when the events span three days or less, else daily (the
    evaluation's hourly sums, added up)."""
    starts = [b.start for p in evaluation.policies for b in p.over_time]
    if not starts:
        return HOUR, tuple(Series(p.name, ()) for p in evaluation.policies)
    size = bucket_seconds(max(starts) - min(starts))
    series = []
    for p in evaluation.policies:
        merged: dict[int, list[float]] = {}
        for b in p.over_time:
            sums = merged.setdefault(int(b.start.timestamp()) // size, [0.0, 0.0, 0.0])
            sums[0] += b.n
            sums[1] += b.total
            sums[2] += b.squares
        points = tuple(
            point(datetime.fromtimestamp(key * size, tz=UTC), int(n), total, squares)
            for key, (n, total, squares) in sorted(merged.items())
        )
        series.append(Series(p.name, points))
    return size, tuple(series)


# --- the forest plot -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ForestRow:
    name: str
    value: float
    low: float
    high: float
    recommended: bool | None

    @property
    def drawable(self) -> bool:
        return all(math.isfinite(v) for v in (self.value, self.low, self.high))


def forest_rows(evaluation: Evaluation, estimator: EstimatorName) -> list[ForestRow]:
    """One row per policy, in the evaluation's order (the online policy first)."""
    rows = []
    for p in evaluation.policies:
        e = p.estimate(estimator)
        rows.append(
            ForestRow(p.name, e.value, e.gaussian.low, e.gaussian.high, p.verdict.recommended)
        )
    return rows


def _n(value: float) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def svg_forest(
    rows: Sequence[ForestRow],
    *,
    reference: float | None,
    title: str,
    frame: Frame,
    label_width: float,
    variant: str,
) -> str:
    """Each row's estimate (a dot) and interval (a whisker with end caps) on one shared axis;
    a dashed vertical line at `reference` (the online policy's estimate).

    Rows keep their order, top to bottom; a row without a finite estimate or interval shows
    "no estimate" in place of its whisker. Rows carry ``data-policy``, ``data-low`` and
    ``data-high`` so that tests and readers of the markup find them.
    """
    drawable = [r for r in rows if r.drawable]
    if not drawable:
        return empty_chart(title, "no estimate to draw", frame=frame, variant=f"forest {variant}")
    ticks = nice_ticks(min(r.low for r in drawable), max(r.high for r in drawable))
    v0, v1 = ticks[0], ticks[-1]
    x0, x1 = frame.left + label_width, frame.width - frame.right
    height = frame.top + ROW * len(rows) + frame.bottom

    def x_of(value: float) -> float:
        return x0 + (value - v0) / (v1 - v0) * (x1 - x0)

    axis_y = frame.top + ROW * len(rows)
    parts = [
        f'<svg class="chart forest {escape(variant)}" viewBox="0 0 {_n(frame.width)} {_n(height)}"'
        f' role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>',
        '<g class="grid">',
    ]
    for tick in ticks:
        x = _n(x_of(tick))
        parts.append(
            f'<line x1="{x}" y1="{_n(frame.top)}" x2="{x}" y2="{_n(axis_y)}"/>'
            f'<text class="tick" x="{x}" y="{_n(axis_y + 18)}" text-anchor="middle">'
            f"{escape(f'{tick:g}')}</text>"
        )
    parts.append("</g>")
    if reference is not None and math.isfinite(reference):
        x = _n(x_of(reference))
        parts.append(
            f'<line class="reference" x1="{x}" y1="{_n(frame.top - 4)}" x2="{x}" '
            f'y2="{_n(axis_y)}"><title>online: {reference:.4f}</title></line>'
        )
    for i, row in enumerate(rows):
        y = frame.top + ROW * i + ROW / 2
        verdict = (
            "is-reference"
            if row.recommended is None
            else ("is-recommended" if row.recommended else "is-not-recommended")
        )
        parts.append(
            f'<g class="row series s{i % 6} {verdict}" data-policy="{escape(row.name)}"'
            + (
                f' data-value="{row.value:.6g}" data-low="{row.low:.6g}"'
                f' data-high="{row.high:.6g}">'
                if row.drawable
                else ">"
            )
            + f'<text class="label" x="{_n(frame.left)}" y="{_n(y)}" dominant-baseline="middle">'
            f"{escape(row.name)}</text>"
        )
        if row.drawable:
            lo, hi, mid = x_of(row.low), x_of(row.high), x_of(row.value)
            parts.append(
                f'<line class="whisker" x1="{_n(lo)}" y1="{_n(y)}" x2="{_n(hi)}" y2="{_n(y)}"/>'
                f'<line class="cap" x1="{_n(lo)}" y1="{_n(y - 5)}" x2="{_n(lo)}" y2="{_n(y + 5)}"/>'
                f'<line class="cap" x1="{_n(hi)}" y1="{_n(y - 5)}" x2="{_n(hi)}" y2="{_n(y + 5)}"/>'
                f'<circle class="dot" cx="{_n(mid)}" cy="{_n(y)}" r="4">'
                f"<title>{escape(f'{row.name}: {row.value:.4f} [{row.low:.4f}, {row.high:.4f}]')}"
                "</title></circle>"
            )
        else:
            parts.append(
                f'<text class="quiet" x="{_n(x0)}" y="{_n(y)}" dominant-baseline="middle">'
                "no estimate</text>"
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


# --- the page --------------------------------------------------------------------------------


def _select(name: str, options: Sequence[tuple[str, str]], chosen: str, label: str) -> str:
    items = "".join(
        f'<option value="{escape(value)}"{" selected" if value == chosen else ""}>'
        f"{escape(text)}</option>"
        for value, text in options
    )
    return (
        f'<label><span>{escape(label)}</span><select name="{escape(name)}">{items}</select></label>'
    )


def form_section(form: Form, choices: Sequence[Choice], policies: Sequence[str]) -> str:
    """A GET form: a finished evaluation, or a window and the policies to evaluate on it."""
    finished = _select(
        "evaluation",
        [("", "— a window instead —"), *((c.id, c.label) for c in choices)],
        form.evaluation,
        "finished evaluation",
    )
    boxes = "".join(
        f'<label class="check"><input type="checkbox" name="policy" value="{escape(name)}"'
        f"{' checked' if name in form.policies else ''}>{escape(name)}</label>"
        for name in policies
    )
    return (
        '<section id="pick" aria-labelledby="pick-h"><h2 id="pick-h">what to compare</h2>'
        f'<form class="pick" method="get" action="{PATH}">'
        f"{finished}"
        + _select(
            "surface", [("personalizer", "personalizer"), ("tips", "tips")], form.surface, "surface"
        )
        + f'<label><span>from (UTC)</span><input type="datetime-local" name="start" '
        f'value="{escape(form.start)}"></label>'
        f'<label><span>to (UTC)</span><input type="datetime-local" name="end" '
        f'value="{escape(form.end)}"></label>'
        + _select("estimator", [(e, e.upper()) for e in ESTIMATORS], form.estimator, "estimator")
        + f"<fieldset><legend>policies (the online policy is always in)</legend>{boxes}</fieldset>"
        '<button type="submit">compare</button></form></section>'
    )


def _second(p: PolicyResult, estimator: EstimatorName) -> str:
    e = p.estimate(estimator)
    short = {"cressie_read": "CR", "bernstein": "EB"}.get(e.second_method, e.second_method)
    return f"{short} [{fmt(_f(e.second.low))}, {fmt(_f(e.second.high))}]"


def _f(value: float) -> float | None:
    return value if math.isfinite(value) else None


def policies_section(evaluation: Evaluation, estimator: EstimatorName) -> str:
    level = f"{(1 - evaluation.alpha) * 100:g}%"
    rows = forest_rows(evaluation, estimator)
    reference = rows[0].value if rows else None
    title = f"{estimator.upper()} estimate per policy with its {level} interval"
    chart = "".join(
        svg_forest(
            rows,
            reference=reference,
            title=title,
            frame=Frame(width=frame.width, height=0, left=8, right=16, top=12, bottom=28),
            label_width=label,
            variant=variant,
        )
        for frame, label, variant in ((WIDE, 180.0, "wide"), (NARROW, 110.0, "narrow"))
    )
    body = []
    for i, p in enumerate(evaluation.policies):
        e = p.estimate(estimator)
        w = p.diagnostics.weights
        share = p.diagnostics.low_overlap_share
        verdict = (
            '<span class="verdict control">reference</span>'
            if p.verdict.recommended is None
            else (
                '<span class="verdict treatment-better">recommended</span>'
                if p.verdict.recommended
                else '<span class="verdict insufficient-data">no</span>'
            )
        )
        body.append(
            f'<tr data-policy="{escape(p.name)}">'
            f'<th scope="row">{swatch(i)}{escape(p.name)}</th>'
            f"<td>{escape(p.kind)}</td>"
            f'<td class="num">{fmt(_f(e.value))}</td>'
            f'<td class="num ci">[{fmt(_f(e.gaussian.low))}, {fmt(_f(e.gaussian.high))}]</td>'
            f'<td class="num ci">{escape(_second(p, estimator))}</td>'
            f'<td class="num">{fmt(_f(w.ess), 0)}</td>'
            f'<td class="num">{fmt_pct(_f(w.ess_ratio))}</td>'
            f'<td class="num">{fmt_pct(None if not math.isfinite(share) else 1 - share)}</td>'
            f'<td class="num">{fmt(_f(w.max), 1)}</td>'
            f'<td title="{escape(p.verdict.reason)}">{verdict}</td>'
            "</tr>"
        )
    table = (
        '<div class="scroll"><table class="policies"><thead><tr>'
        '<th scope="col">policy</th><th scope="col">kind</th>'
        f'<th scope="col" class="num">{escape(estimator.upper())}</th>'
        f'<th scope="col" class="num">{level} CI</th><th scope="col" class="num">2nd CI</th>'
        '<th scope="col" class="num">ESS</th><th scope="col" class="num">ESS / n</th>'
        '<th scope="col" class="num">overlap</th><th scope="col" class="num">max weight</th>'
        f'<th scope="col">verdict</th></tr></thead><tbody>{"".join(body)}</tbody></table></div>'
    )
    return (
        '<section id="policies" aria-labelledby="policies-h">'
        f'<h2 id="policies-h">policies side by side</h2>{chart}'
        f'<p class="note">dashed line: the online policy. A candidate is recommended when its '
        f"mean beats the online policy's and its lower {level} bound is above the online "
        f"policy's lower bound (on {evaluation.verdict_estimator.upper()}).</p>{table}"
        '<p class="note">ESS: effective sample size of the importance weights. Overlap: the '
        "share of the policy's probability on candidates the log chose with a propensity above "
        f"{fmt(evaluation.policies[0].diagnostics.threshold if evaluation.policies else None)}; "
        "low overlap means the estimate leans on few events.</p></section>"
    )


def reward_section(evaluation: Evaluation) -> str:
    bucket, series = reward_series(evaluation)
    unit = "hour" if bucket == HOUR else "day"
    time_format = "%b %d %H:%M" if unit == "hour" else "%b %d"
    title = "IPS estimate per policy over time, 95% band"
    chart = "".join(
        svg_band_chart(series, title=title, time_format=time_format, frame=f, variant=v)
        for f, v in ((WIDE, "wide"), (NARROW, "narrow"))
    )
    legend = "".join(f"<li>{swatch(i)}{escape(s.name)}</li>" for i, s in enumerate(series))
    return (
        '<section id="reward" aria-labelledby="reward-h">'
        f'<h2 id="reward-h">reward over time</h2><ul class="legend">{legend}</ul>{chart}'
        f'<p class="note">IPS estimate of each policy over the decisions of each {unit} (UTC), '
        "with its 95% interval; the online policy's is its logged reward</p></section>"
    )


# --- is it learning? --------------------------------------------------------------------------


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never published"
    hours = seconds / 3600
    if hours < 1:
        return f"{seconds / 60:.0f} min ago"
    return f"{hours:.1f} h ago" if hours < 48 else f"{hours / 24:.1f} days ago"


def _estimate(e: ValueEstimate | None) -> str:
    """SNIPS with its 95% interval, and the decisions it effectively rests on when fewer."""
    if e is None or e.value is None:
        return "–"
    text = f"{fmt(e.value)} [{fmt(e.low)}, {fmt(e.high)}]"
    if e.effectively is not None:
        text += f" on ≈{e.effectively:,} of {e.n:,}"
    return text


def learning_section(d: Diagnosis) -> str:
    """The checkup's key figures and its warnings, each with what to do."""
    figures = [
        ("decisions", f"{d.decisions:,}"),
        ("rewarded", fmt_pct(d.rewarded_share)),
        ("default reward", fmt_pct(d.default_reward_share)),
        ("explored", fmt_pct(d.exploration_share)),
        ("smallest propensity", "–" if d.min_propensity is None else f"{d.min_propensity:.3g}"),
        (
            "model",
            "–"
            if d.model_version is None
            else f"v{d.model_version}, changed {_age(d.model_age_seconds)}",
        ),
        ("online", _estimate(d.online)),
        ("baseline (first)", _estimate(d.baseline)),
    ]
    items = "".join(
        f'<div><dt>{escape(name)}</dt><dd class="num">{escape(value)}</dd></div>'
        for name, value in figures
    )
    if d.warnings:
        warnings = "".join(
            f'<li data-code="{escape(w.code)}">'
            f'<span class="status flagged">{escape(w.code.replace("_", " "))}</span> '
            f"{escape(w.message)}"
            f'<span class="action">what to do: {escape(w.action)}</span></li>'
            for w in d.warnings
        )
        body = f'<ul class="warnings">{warnings}</ul>'
    else:
        body = (
            '<p class="quiet"><span class="status ok">ok</span> nothing in this window keeps '
            "the model from learning</p>"
        )
    window = f"{d.start:%Y-%m-%d %H:%M} to {d.end:%Y-%m-%d %H:%M} UTC"
    return (
        '<section id="learning" aria-labelledby="learning-h">'
        f'<h2 id="learning-h">is it learning? · {escape(d.surface)}</h2>'
        f'<dl class="figures">{items}</dl>{body}'
        f'<p class="note">{escape(window)}; {d.sampled:,} decisions read. The whole report: '
        f"<code>oo doctor --surface {escape(d.surface)}</code> or GET /v1/diagnostics.</p>"
        "</section>"
    )


def _window(evaluation: Evaluation) -> str:
    start = evaluation.start.strftime("%Y-%m-%d %H:%M") if evaluation.start else "the start"
    end = evaluation.end.strftime("%Y-%m-%d %H:%M") if evaluation.end else "now"
    where = evaluation.surface or "every surface"
    return f"{evaluation.n:,} learned decisions on {where}, {start} to {end} (UTC)"


def analysis_page(
    evaluation: Evaluation | None,
    *,
    form: Form,
    choices: Sequence[Choice],
    policies: Sequence[str],
    message: str = "",
    learning: Diagnosis | None = None,
) -> str:
    """The whole page; without an evaluation, the form and `message` (or a calm empty state).
    `learning`, the surface's checkup, goes first."""
    meta = _window(evaluation) if evaluation is not None else "pick a window or an evaluation"
    header = (
        '<header><p class="crumb">oO · analysis</p><h1>counterfactual evaluation</h1>'
        f'<p class="meta">{escape(meta)}</p></header>'
    )
    body = header + (learning_section(learning) if learning is not None else "")
    body += form_section(form, choices, policies)
    if message:
        body += f'<section id="message"><p class="quiet">{escape(message)}</p></section>'
    if evaluation is not None:
        body += policies_section(evaluation, form.estimator) + reward_section(evaluation)
    elif not message:
        body += (
            '<section id="message"><p class="quiet">nothing evaluated yet: pick a finished '
            "evaluation, or a window and the policies to compare on it</p></section>"
        )
    return page("analysis", body)


def window_text(moment: datetime | None) -> str:
    """A moment as the form's datetime-local value (UTC, minutes)."""
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")
