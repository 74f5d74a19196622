"""The surfaces the api serves: the tips product's two (what, and when) and the
Personalizer-compatible loop's.

Registered once (see `bandit.surfaces`); everything that differs between them is read from
here: the experiments' unit of assignment, the starting reward settings, the policy setting.
"""

from __future__ import annotations

from bandit.settings import LearnerSettings
from bandit.store import Store
from bandit.surface_config import SurfaceConfig, SurfaceConfigs
from bandit.surfaces import Surface, Surfaces
from integrations.context import TIPS, TIPS_SURFACE
from integrations.timing import TIMING, TIMING_SURFACE

PERSONALIZER = "personalizer"
PERSONALIZER_SURFACE = Surface(PERSONALIZER, unit="event")
"""Integrators' decisions: one subscription key speaks for all their users, so experiments
assign (and analyse) each event on its own."""

SURFACES = Surfaces(TIPS_SURFACE, PERSONALIZER_SURFACE, TIMING_SURFACE)

__all__ = [
    "PERSONALIZER",
    "PERSONALIZER_SURFACE",
    "SURFACES",
    "TIMING",
    "TIPS",
    "surface_configs",
]


def surface_configs(
    store: Store, learner_settings: LearnerSettings, *, refreshed_every: float | None = None
) -> SurfaceConfigs:
    """Run-time surface configuration (Personalizer admin, issue 6); a surface nobody configured
    runs with its registration's settings, which default to the learner's.

    Where a refresh thread re-reads it every `refreshed_every` seconds (an api process), the
    cache outlives that interval, so requests never read it themselves unless the thread has
    fallen far behind; elsewhere an entry is re-read after a second.
    """
    return SurfaceConfigs(
        store.engine,
        SurfaceConfig(learner_settings.reward_window, learner_settings.default_reward),
        starting=SURFACES.settings(learner_settings),
        ttl=1.0 if refreshed_every is None else 3 * refreshed_every,
    )
