"""The analyst page: the forest plot helper, the logged-reward aggregate, the page over HTTP, and
the page in a real headless Chromium against a live server's own decisions."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from playwright.sync_api import Page, expect

from bandit.tables import DecisionRow
from dashboards.analysis import ForestRow, reward_series, svg_forest
from dashboards.charts import Frame
from dashboards.experiments import DAY, HOUR
from policies.registry import Registry
from rewards.ope.logged import LoggedEvent
from rewards.ope.runs import run
from rewards.ope.targets import resolve
from tests.api.decision_helpers import services
from tests.browser import DESKTOP, PHONE, SCREENSHOTS
from tests.conftest import LiveServer, wait_until
from tests.rewards.synthetic import START, events, write_log


def batches(logged: list[LoggedEvent], size: int) -> Iterator[list[LoggedEvent]]:
    for i in range(0, len(logged), size):
        yield logged[i : i + size]


FRAME = Frame(width=600, height=0, left=8, right=16, top=12, bottom=28)
ROWS = [
    ForestRow("online", 0.40, 0.35, 0.45, None),
    ForestRow("baseline", 0.20, 0.10, 0.30, False),
    ForestRow("<vw>", 0.60, 0.50, 0.70, True),
]


def _forest(rows: list[ForestRow], reference: float | None = 0.4) -> ElementTree.Element:
    markup = svg_forest(
        rows, reference=reference, title="t", frame=FRAME, label_width=100, variant="wide"
    )
    return ElementTree.fromstring(markup)


# --- the forest plot -------------------------------------------------------------------------


def test_forest_has_one_row_per_policy_with_whiskers_where_the_values_are() -> None:
    svg = _forest(ROWS)
    rows = svg.findall("g")[1:]  # the grid first
    assert [r.get("data-policy") for r in rows] == ["online", "baseline", "<vw>"]
    # Ticks 0, 0.2, ..., 0.8 over x in [108, 584]: 595 units per 1.0 of reward.
    scale = (584 - 108) / 0.8
    for row, expected in zip(rows, ROWS, strict=True):
        whisker = row.find("line[@class='whisker']")
        assert whisker is not None
        assert float(whisker.get("x1", "nan")) == pytest.approx(
            108 + expected.low * scale, abs=0.01
        )
        assert float(whisker.get("x2", "nan")) == pytest.approx(
            108 + expected.high * scale, abs=0.01
        )
        assert len(row.findall("line[@class='cap']")) == 2
        dot = row.find("circle[@class='dot']")
        assert dot is not None
        assert float(dot.get("cx", "nan")) == pytest.approx(108 + expected.value * scale, abs=0.01)
    reference = svg.find("line[@class='reference']")
    assert reference is not None
    assert float(reference.get("x1", "nan")) == pytest.approx(108 + 0.4 * scale, abs=0.01)
    assert "is-recommended" in rows[2].get("class", "").split()
    assert "is-reference" in rows[0].get("class", "").split()


def test_a_policy_without_an_estimate_keeps_its_row_without_a_whisker() -> None:
    svg = _forest([*ROWS[:1], ForestRow("never", math.nan, math.nan, math.nan, False)])
    rows = svg.findall("g")[1:]
    assert [r.get("data-policy") for r in rows] == ["online", "never"]
    assert rows[1].find("line[@class='whisker']") is None
    assert "no estimate" in "".join(rows[1].itertext())


def test_nothing_drawable_is_a_calm_empty_chart() -> None:
    svg = _forest([ForestRow("x", math.nan, math.nan, math.nan, None)], reference=None)
    assert "empty" in svg.get("class", "")


# --- reward over time ------------------------------------------------------------------------


def test_reward_series_draws_each_policys_hourly_ips_terms() -> None:
    logged = events(5400, seed=41)  # one a second from START: an hour and a half
    result = run(
        batches(logged, 700),
        resolve(["baseline"], Registry()),
        total=len(logged),
        reward_range=(0.0, 1.0),
        max_weight=3.0,
    )
    size, series = reward_series(result)
    assert size == HOUR
    assert [s.name for s in series] == ["online", "baseline"]
    online, baseline = series
    assert [p.start for p in online.points] == [START, START + timedelta(hours=1)]
    assert [p.n for p in online.points] == [3600, 1800]
    rewards = [e.reward for e in logged]
    assert online.points[0].mean == pytest.approx(sum(rewards[:3600]) / 3600)
    # The baseline's terms are r / p on events that chose the first candidate, else 0.
    terms = [e.reward / e.propensity if e.chosen_index == 0 else 0.0 for e in logged[3600:]]
    assert baseline.points[1].mean == pytest.approx(sum(terms) / 1800)
    # Every hour together is the IPS estimate.
    for policy in result.policies:
        n = sum(b.n for b in policy.over_time)
        total = sum(b.total for b in policy.over_time)
        assert n == 5400
        assert total / n == pytest.approx(policy.estimate("ips").value)


def test_reward_series_turns_to_days_past_three_days() -> None:
    logged = events(200, seed=43)
    spread = [replace(e, created_at=START + timedelta(hours=12 * i)) for i, e in enumerate(logged)]
    result = run(
        batches(spread, 50),
        resolve([], Registry()),
        total=len(spread),
        reward_range=(0.0, 1.0),
        max_weight=3.0,
    )
    size, (online,) = reward_series(result)
    assert size == DAY
    assert [p.n for p in online.points] == [2] * 100
    assert online.points[1].start == START + timedelta(days=1)


# --- the page over HTTP ----------------------------------------------------------------------


def test_the_page_evaluates_a_window_and_draws_every_policy(client: TestClient) -> None:
    write_log(services(client).store, 400, seed=42)
    reply = client.get(
        "/dashboards/analysis",
        params={"surface": "personalizer", "policy": ["baseline", "vw-epsilon"], "start": ""},
    )
    assert reply.status_code == 200, reply.text
    csp = reply.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "form-action 'self'" in csp
    assert "<script" not in reply.text and "style=" not in reply.text
    forest = reply.text.split('class="chart forest wide"', 1)[1].split("</svg>", 1)[0]
    assert forest.count('<g class="row series') == 3
    for name in ("online", "baseline", "vw-epsilon"):
        assert f'data-policy="{name}"' in forest
    assert "400 learned decisions on personalizer" in reply.text

    empty = client.get("/dashboards/analysis")
    assert empty.status_code == 200
    assert "nothing evaluated yet" in empty.text


def test_the_page_says_whether_the_surface_is_learning(client: TestClient) -> None:
    write_log(services(client).store, 200, seed=43)  # learned, but no reward was ever sent
    window = {"start": "2026-10-31T00:00", "end": "2026-11-03T00:00"}
    reply = client.get("/dashboards/analysis", params={"surface": "personalizer", **window})
    assert reply.status_code == 200, reply.text
    panel = reply.text.split('<section id="learning"', 1)[1].split("</section>", 1)[0]
    assert "is it learning? · personalizer" in panel
    assert '<dt>decisions</dt><dd class="num">200</dd>' in panel
    assert '<li data-code="few_rewards">' in panel and "what to do: send a reward" in panel
    assert "2026-10-31 00:00 to 2026-11-03 00:00 UTC" in panel
    # the panel comes first, above the form
    assert reply.text.index('id="learning"') < reply.text.index('id="pick"')


@pytest.mark.parametrize(
    ("params", "status", "target"),
    [
        ({"surface": "personalizer", "start": "yesterday"}, 400, "start"),
        ({"surface": "personalizer", "start": "2026-11-02", "end": "2026-11-01"}, 400, "start"),
        ({"surface": "personalizer", "policy": "nope"}, 400, "policy"),
        ({"evaluation": "missing"}, 404, "id"),
    ],
)
def test_bad_picks_name_the_field(
    client: TestClient, params: dict[str, Any], status: int, target: str
) -> None:
    reply = client.get("/dashboards/analysis", params=params)
    assert reply.status_code == status, reply.text
    assert reply.json()["error"]["target"] == target


# --- in Chromium, against the live server's own decisions ------------------------------------

RANK = "/personalizer/v1.0/rank"
ACTIONS = [
    {"id": "calm", "features": [{"kind": {"name": "calm"}}]},
    {"id": "loud", "features": [{"kind": {"name": "loud"}}]},
    {"id": "none", "features": [{"kind": {"name": "none"}}]},
]
PREFERENCE = {"calm": 0.8, "loud": 0.3, "none": 0.1}
EVENTS = 300
POLICIES = ["baseline", "random", "vw-softmax"]


def _learned(live: LiveServer) -> int:
    table = DecisionRow.__table__  # type: ignore[attr-defined]
    query = sa.select(sa.func.count()).where(table.c.learned_reward.is_not(None))
    with live.services.store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def _drive(http: httpx.Client) -> None:
    rng = random.Random(20261126)
    for i in range(EVENTS):
        context = [{"mood": {"level": f"m{i % 3}"}}]
        ranked = http.post(
            RANK, json={"eventId": f"ana-{i}", "contextFeatures": context, "actions": ACTIONS}
        )
        assert ranked.status_code == 201, ranked.text
        chosen = ranked.json()["rewardActionId"]
        value = 1.0 if rng.random() < PREFERENCE[chosen] else 0.0
        rewarded = http.post(f"/personalizer/v1.0/events/ana-{i}/reward", json={"value": value})
        assert rewarded.status_code == 204, rewarded.text


def _check_forest(page: Page, shown: str, names: list[str]) -> None:
    forest = page.locator(f"#policies svg.forest.{shown}")
    expect(forest).to_be_visible()
    rows = forest.locator("g.row")
    expect(rows).to_have_count(len(names))
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.policy)") == names
    for i in range(len(names)):
        row = rows.nth(i)
        expect(row.locator("line.whisker")).to_have_count(1)
        expect(row.locator("line.cap")).to_have_count(2)
        low, high = (
            float(row.get_attribute("data-low") or "nan"),
            float(row.get_attribute("data-high") or "nan"),
        )
        assert low < high
        box = row.locator("line.whisker").bounding_box()
        assert box is not None and box["width"] > 1  # a visible whisker, not a point
    expect(forest.locator("line.reference")).to_have_count(1)
    expect(page.locator("#policies tbody tr")).to_have_count(len(names))


@pytest.mark.browser
@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_analysis_page_in_chromium(
    live_server: Callable[..., LiveServer],
    open_page: Callable[..., Page],
) -> None:
    started = time.monotonic()
    live = live_server()
    with httpx.Client(base_url=live.url, timeout=30) as http:
        _drive(http)
        wait_until(lambda: _learned(live) >= EVENTS, timeout=30)
        job = http.post(
            "/v1/evaluations", json={"surface": "personalizer", "policies": POLICIES}
        ).json()
        wait_until(
            lambda: http.get(f"/v1/evaluations/{job['id']}").json()["status"] == "succeeded",
            timeout=60,
        )
    print(f"\n{EVENTS} events learned and evaluated in {time.monotonic() - started:.1f}s")

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    names = ["online", *POLICIES]
    for viewport, label, shown in ((DESKTOP, "desktop", "wide"), (PHONE, "phone", "narrow")):
        page = open_page(live, viewport=viewport)
        response = page.goto(f"/dashboards/analysis?evaluation={job['id']}")
        assert response is not None and response.status == 200
        expect(page.locator("h1")).to_have_text("counterfactual evaluation")
        _check_forest(page, shown, names)
        expect(page.locator("#policies tr[data-policy='online']")).to_contain_text("reference")
        expect(page.locator(f"#reward svg.chart.{shown} g.series")).to_have_count(len(names))
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(0, 0, 0)"  # the stylesheet applied: nothing refused
        page.evaluate("document.fonts.ready")
        path = SCREENSHOTS / f"analysis-{label}.png"
        page.screenshot(path=str(path), full_page=True, animations="disabled")
        print(f"screenshot: {path}")

    # The form, as an analyst uses it: a window (all of it) and one more policy.
    page = open_page(live, viewport=DESKTOP)
    page.goto("/dashboards/analysis")
    expect(page.locator("#message")).to_contain_text("nothing evaluated yet")
    page.locator("input[name='policy'][value='vw-epsilon']").check()
    page.locator("form.pick button[type='submit']").click()
    page.wait_for_url("**/dashboards/analysis?*")
    _check_forest(page, "wide", ["online", "baseline", "random", "vw-epsilon"])
    print(f"browser test took {time.monotonic() - started:.1f}s")
