"""`oo simulate` against a running server: the VW policy clearly beats random."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from api import simulate
from tests.conftest import LiveServer, wait_until


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_vw_clearly_beats_random(live_server: Callable[..., LiveServer]) -> None:
    live = live_server()
    learner = live.services.learner

    def settle(rewards: int) -> None:
        """Rank next only once the learner has learned every reward sent: the same run
        whatever the machine's load."""
        wait_until(lambda: learner.learned >= rewards, timeout=60, interval=0.001)

    with httpx.Client(base_url=live.url, timeout=10) as client:
        report = simulate.run(
            simulate.HttpLoop(client),
            simulate.World(simulate.TIPS6, 11),
            decisions=1500,
            window=250,
            run_id="beats-random",  # named events: the server's draws are the same each run
            settle=settle,
        )
    tail = report.tail(share=0.5)
    margin = tail["policy_expected"] - tail["random_expected"]
    print(f"simulate: policy {tail['policy_expected']:.3f} random {tail['random_expected']:.3f}")
    assert margin > 0.15
    assert tail["policy_expected"] <= tail["best_expected"]
