"""The api's surfaces: one registry, and everything keyed by surface agrees with it."""

from __future__ import annotations

from typing import get_args

import pytest

from api.schemas.base import SurfaceName
from api.services.surfaces import PERSONALIZER, SURFACES, TIMING, TIPS
from api.settings import Settings
from bandit.surfaces import Surface


def test_the_wire_names_every_registered_surface() -> None:
    assert get_args(SurfaceName) == tuple(SURFACES)
    assert tuple(SURFACES) == (TIPS, PERSONALIZER, TIMING)


def test_every_registered_surface_has_its_policy_setting() -> None:
    settings = Settings(
        tips_policy="random", personalizer_policy="vw-softmax", timing_policy="vw-epsilon"
    )
    assert {name: settings.surface_policy(s) for name, s in SURFACES.items()} == {
        TIPS: "random",
        PERSONALIZER: "vw-softmax",
        TIMING: "vw-epsilon",
    }
    with pytest.raises(ValueError, match=r"add `later_policy` \(OO_LATER_POLICY\)"):
        settings.surface_policy(Surface("later"))


def test_personalizer_assigns_events_and_tips_people() -> None:
    assert (SURFACES[TIPS].unit, SURFACES[PERSONALIZER].unit) == ("principal", "event")
