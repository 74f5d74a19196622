"""`oo simulate` against a running server: the VW policy clearly beats random."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from api import simulate
from tests.conftest import LiveServer


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_vw_clearly_beats_random(live_server: Callable[..., LiveServer]) -> None:
    live = live_server()
    with httpx.Client(base_url=live.url, timeout=10) as client:
        report = simulate.run(
            simulate.HttpLoop(client),
            simulate.World(simulate.TIPS6, 11),
            decisions=1500,
            window=250,
        )
    tail = report.tail(share=0.5)
    margin = tail["policy_expected"] - tail["random_expected"]
    print(f"simulate: policy {tail['policy_expected']:.3f} random {tail['random_expected']:.3f}")
    assert margin > 0.15
    assert tail["policy_expected"] <= tail["best_expected"]
