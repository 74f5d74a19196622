"""`oo simulate --timing`, seeded and in process: the learned timing policy beats random-time
delivery at the same number of pushes (figures: ADR 0014)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from api.simulate.suite import embedded_app, scratch
from api.simulate.timing import SurfaceDriver, TimingWorld, run_timing


def test_learned_timing_beats_random_time_at_the_same_number_of_pushes() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="oo-timing-", dir=scratch()) as tmp,
        embedded_app(Path(tmp)) as client,
    ):
        report = run_timing(
            SurfaceDriver(client.app.state.services),  # type: ignore[attr-defined]
            TimingWorld(10, 1),
            days=14,
            run_id="x",
        )
    figures = report.as_json()
    print(f"timing simulation: {figures}")
    # Same pushes per person-day for every strategy; the learned one chose when.
    assert len(report.learned) == len(report.random_time) == len(report.fixed_time)
    assert figures["lift_vs_random_time"] > 0.15
