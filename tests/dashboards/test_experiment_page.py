"""The experimenter page: pure SVG helpers, the time-bucketed SQL aggregate, and the page in a
real headless Chromium against a live server (embedded backend)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from playwright.sync_api import ConsoleMessage, Page, expect

from bandit.events import Action, Decision
from bandit.store.rows import decisions
from dashboards.charts import (
    Point,
    Series,
    band_path,
    nice_ticks,
    point,
    svg_band_chart,
)
from dashboards.experiments import DAY, HOUR, bucket_seconds, experiment_page, reward_series
from experiments.lifecycle import ArmSpec, Experiment
from experiments.stats import AnalysisConfig, ArmData, MinimumData, Moments, results
from tests.browser import DESKTOP, PHONE, SCREENSHOTS
from tests.conftest import LiveServer, wait_until

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _svg(markup: str) -> ElementTree.Element:
    return ElementTree.fromstring(markup)


# --- pure helpers ----------------------------------------------------------------------------


def test_point_is_mean_plus_minus_196_sd_over_root_n() -> None:
    # rewards 1, 0, 1, 1: mean 0.75, sample variance 0.25, sd 0.5, half-width 1.96 * 0.5 / 2
    p = point(T0, n=4, total=3.0, squares=3.0)
    assert p.mean == pytest.approx(0.75)
    assert (p.low, p.high) == (pytest.approx(0.26), pytest.approx(1.24))
    single = point(T0, n=1, total=0.5, squares=0.25)
    assert single.low == single.mean == single.high == 0.5
    with pytest.raises(ValueError, match="`n` must be at least 1"):
        point(T0, n=0, total=0.0, squares=0.0)


def test_band_path_runs_along_the_upper_bounds_and_back_along_the_lower() -> None:
    assert band_path([0, 10, 20.5], [5, 6, 7], [1, 2, 3]) == (
        "M0,1 L10,2 L20.5,3 L20.5,7 L10,6 L0,5 Z"
    )
    with pytest.raises(ValueError, match="`xs`, `lows` and `highs` must be non-empty"):
        band_path([0, 1], [0], [0])


def test_nice_ticks_cover_the_range_in_round_steps() -> None:
    assert nice_ticks(0.0, 1.0) == [0.0, 0.5, 1.0]
    assert nice_ticks(-0.13, 0.41) == [-0.2, 0.0, 0.2, 0.4, 0.6]
    assert nice_ticks(0.3, 0.3) == [0.2, 0.25, 0.3, 0.35, 0.4]


def test_band_chart_draws_a_hand_made_series_where_it_belongs() -> None:
    # Ticks 0, 0.5, 1; the default frame plots x in [48, 704] and y from 228 (0) up to 16 (1).
    series = Series(
        "control",
        (
            Point(T0, 10, 0.5, 0.0, 1.0),
            Point(T0 + timedelta(hours=1), 10, 0.5, 0.25, 0.75),
        ),
    )
    svg = _svg(svg_band_chart([series]))
    group = svg.find("g[@class='series s0']")
    assert group is not None and group.get("data-arm") == "control"
    band = group.find("path[@class='band']")
    line = group.find("path[@class='line']")
    assert band is not None and band.get("d") == "M48,16 L704,69 L704,175 L48,228 Z"
    assert line is not None and line.get("d") == "M48,122 L704,122"
    assert [c.get("cx") for c in group.iter("circle")] == ["48", "704"]


def test_a_single_bucket_still_draws_a_band_and_a_dot() -> None:
    svg = _svg(svg_band_chart([Series("a", (Point(T0, 3, 0.5, 0.0, 1.0),))]))
    band = svg.find(".//path[@class='band']")
    assert band is not None and band.get("d") == "M370,16 L382,16 L382,228 L370,228 Z"
    assert svg.find(".//path[@class='line']") is None
    assert len(list(svg.iter("circle"))) == 1

    # Several arms in that one bucket stand side by side around the middle, control first.
    one = (Point(T0, 3, 0.5, 0.0, 1.0),)
    pair = _svg(svg_band_chart([Series("control", one), Series("treatment", one)]))
    assert [c.get("cx") for c in pair.iter("circle")] == ["362", "390"]


@pytest.mark.parametrize("series", [[], [Series("control", ()), Series("treatment", ())]])
def test_empty_series_render_a_calm_no_data_state(series: list[Series]) -> None:
    markup = svg_band_chart(series, title="reward")
    svg = _svg(markup)
    assert svg.get("class") == "chart empty"
    assert svg.find("path") is None
    assert "no data yet" in markup


def test_text_is_escaped() -> None:
    hostile = '<script>alert("x")</script> & co'
    markup = svg_band_chart([Series(hostile, (Point(T0, 2, 0.1, 0.0, 0.2),))], title=hostile)
    assert "<script>" not in markup
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in markup
    _svg(markup)  # still well-formed

    experiment = _experiment(description=hostile)
    page = experiment_page(experiment, _results(), _no_reward(experiment), now=T0)
    assert "<script>" not in page
    assert "&lt;script&gt;" in page


def test_bucket_size_follows_the_span() -> None:
    assert bucket_seconds(timedelta(hours=5)) == HOUR
    assert bucket_seconds(timedelta(days=3)) == HOUR
    assert bucket_seconds(timedelta(days=12)) == DAY


def _experiment(description: str = "") -> Experiment:
    return Experiment(
        name="exp",
        surface="tips",
        status="running",
        arms=(ArmSpec("control", "vw-epsilon", 1), ArmSpec("treatment", "random", 1)),
        salt="s",
        description=description,
        min_units_per_arm=2,
        min_decisions_per_arm=0,
        created_at=T0,
        started_at=T0,
        stopped_at=None,
        shipped_arm=None,
    )


def _results() -> Any:
    def arm(name: str, total: float) -> ArmData:
        moments = Moments(10, total, total)
        return ArmData(name, 1, 10, 10, moments, {"dismiss_rate": Moments(10, 1.0, 1.0)})

    from experiments.results import GUARDRAILS

    config = AnalysisConfig(minimum=MinimumData(2, 0), guardrails=GUARDRAILS[:1])
    return results([arm("control", 4.0), arm("treatment", 6.0)], control="control", config=config)


def _no_reward(experiment: Experiment) -> Any:
    from dashboards.experiments import RewardOverTime

    return RewardOverTime(HOUR, tuple(Series(a.name, ()) for a in experiment.arms))


# --- the SQL aggregate, on both backends -----------------------------------------------------


def test_reward_series_buckets_learned_rewards_per_arm_and_hour(client: TestClient) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    experiment = services.experiments.create(
        "buckets",
        "tips",
        [ArmSpec("control", "vw-epsilon", 1), ArmSpec("treatment", "random", 1)],
    )
    # (arm, minutes after T0, learned reward or None)
    seeded = [
        ("control", 5, 1.0),
        ("control", 10, 0.0),
        ("control", 70, 1.0),
        ("treatment", 20, 0.5),
        ("treatment", 25, None),  # not learned yet: left out
    ]
    for i, (arm, minutes, _) in enumerate(seeded):
        decision = Decision(
            event_id=f"b-{i}",
            surface="tips",
            principal=f"u{i}",
            context=[],
            actions=(Action("x"), Action("y")),
            pmf=(0.5, 0.5),
            chosen_index=0,
            policy="random",
            model_key=f"tips:random:buckets/{arm}",
            model_version=0,
            created_at=T0 + timedelta(minutes=minutes),
            activated_at=None,
            experiment="buckets",
            arm=arm,
            example=("shared |c x", "|a x", "|a y"),
        )
        assert services.store.insert_decision(decision)
    with services.store.engine.begin() as conn:
        for i, (_, _, reward) in enumerate(seeded):
            conn.execute(
                decisions.update()
                .where(decisions.c.event_id == f"b-{i}")
                .values(learned_reward=reward)
            )
    got = reward_series(services.store, experiment, now=T0 + timedelta(hours=2))
    assert got.bucket_seconds == HOUR
    by_arm = {s.name: s.points for s in got.series}
    control, treatment = by_arm["control"], by_arm["treatment"]
    assert [(p.start, p.n, p.mean) for p in control] == [
        (T0, 2, 0.5),
        (T0 + timedelta(hours=1), 1, 1.0),
    ]
    assert control[0].low == pytest.approx(0.5 - 1.96 * (0.5**0.5) / 2**0.5)
    assert [(p.start, p.n, p.mean) for p in treatment] == [(T0, 1, 0.5)]


# --- the page in Chromium ---------------------------------------------------------------------

RANK = "/personalizer/v1.0/rank"
ACTIONS = [
    {"id": "calm", "features": [{"kind": {"name": "calm"}}]},
    {"id": "loud", "features": [{"kind": {"name": "loud"}}]},
]
PREFERENCE = {"calm": 0.8, "loud": 0.3}  # chance of reward 1 for each action
EVENTS = 300


def _learned(live: LiveServer, name: str) -> int:
    query = (
        sa.select(sa.func.count())
        .select_from(decisions)
        .where(decisions.c.experiment == name, decisions.c.learned_reward.is_not(None))
    )
    with live.services.store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def _drive(live: LiveServer, name: str) -> None:
    """Create and start an experiment, then rank and reward EVENTS events with a seeded taste."""
    rng = random.Random(20261125)
    with httpx.Client(base_url=live.url, timeout=10) as http:
        created = http.post(
            "/v1/experiments",
            json={
                "name": name,
                "surface": "personalizer",
                "description": "Softmax exploration against epsilon-greedy on the calm/loud pair",
                "arms": [
                    {"name": "control", "policy": "vw-epsilon", "weight": 1},
                    {"name": "softmax", "policy": "vw-softmax", "weight": 1},
                ],
                "salt": "dash-salt",
                "min_units_per_arm": 50,
                "min_decisions_per_arm": 50,
            },
        )
        assert created.status_code == 201, created.text
        assert http.post(f"/v1/experiments/{name}/start").status_code == 200
        for i in range(EVENTS):
            event_id = f"dash-{i}"
            ranked = http.post(RANK, json={"eventId": event_id, "actions": ACTIONS})
            assert ranked.status_code == 201, ranked.text
            chosen = ranked.json()["rewardActionId"]
            value = 1.0 if rng.random() < PREFERENCE[chosen] else 0.0
            rewarded = http.post(
                f"/personalizer/v1.0/events/{event_id}/reward", json={"value": value}
            )
            assert rewarded.status_code == 204, rewarded.text


@pytest.mark.browser
@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_experiment_page_in_chromium(
    live_server: Callable[..., LiveServer],
    open_page: Callable[..., Page],
) -> None:
    started = time.monotonic()
    live = live_server()
    _drive(live, "calm-vs-loud")
    wait_until(lambda: _learned(live, "calm-vs-loud") >= EVENTS, timeout=30)
    print(f"\n{EVENTS} events ranked, rewarded and learned in {time.monotonic() - started:.1f}s")

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    for viewport, label, shown in ((DESKTOP, "desktop", "wide"), (PHONE, "phone", "narrow")):
        page = open_page(live, viewport=viewport)
        page.on("console", console)
        response = page.goto("/dashboards/experiments/calm-vs-loud")
        assert response is not None and response.status == 200
        assert "default-src 'self'" in response.headers["content-security-policy"]
        expect(page.locator("h1")).to_have_text("calm-vs-loud")
        chart = page.locator(f"#reward svg.chart.{shown}")
        expect(chart).to_be_visible()
        expect(chart.locator("g.series")).to_have_count(2)
        expect(page.locator("#arms tbody tr")).to_have_count(2)
        expect(page.locator("#arms tr[data-arm='control']")).to_contain_text("vw-epsilon")
        expect(page.locator("#arms tr[data-arm='softmax'] .verdict")).not_to_have_text("–")
        expect(page.locator("#srm .srm")).to_have_attribute("data-flagged", "false")
        expect(page.locator("#srm")).to_contain_text("chi-square p =")
        expect(page.locator("#guardrails tbody tr")).to_have_count(2)
        expect(page.locator("#guardrails tr[data-metric='dismiss_rate']")).to_contain_text("ok")
        # The stylesheet applied (the page is black), so nothing was refused by the CSP.
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(0, 0, 0)"
        page.evaluate("document.fonts.ready")
        path = SCREENSHOTS / f"experiments-{label}.png"
        page.screenshot(path=str(path), full_page=True, animations="disabled")
        print(f"screenshot: {path}")

    index = open_page(live, viewport=DESKTOP)
    index.on("console", console)
    index.goto("/dashboards/experiments")
    expect(index.locator("a[href='/dashboards/experiments/calm-vs-loud']")).to_be_visible()
    expect(index.locator("td .status.running")).to_have_text("running")
    assert not errors, errors
    print(f"browser test took {time.monotonic() - started:.1f}s")
