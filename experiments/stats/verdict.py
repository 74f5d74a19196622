"""Verdicts: what an experimenter may conclude about a treatment arm, and when."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from experiments.stats import _checks
from experiments.stats.intervals import Interval

__all__ = ["MinimumData", "Verdict", "decide"]


class Verdict(StrEnum):
    """Conclusion about one treatment arm against control on the primary metric.

    Values serialize as their lower-case names.
    """

    INSUFFICIENT_DATA = "insufficient_data"
    """Too few units or decisions for any claim (see :class:`MinimumData`)."""
    SAMPLE_RATIO_MISMATCH = "sample_ratio_mismatch"
    """Units are not split as the weights promise; no result of the experiment can be trusted."""
    NO_DIFFERENCE = "no_difference"
    """No difference detected so far; the interval shows which effects are still plausible."""
    TREATMENT_BETTER = "treatment_better"
    """The treatment is better than control at the experiment's level."""
    TREATMENT_WORSE = "treatment_worse"
    """The treatment is worse than control at the experiment's level."""


@dataclass(frozen=True, slots=True)
class MinimumData:
    """Data every arm needs before any verdict is given.

    Early on, plug-in variances are noisy and a handful of heavy users can dominate a mean, so the
    asymptotic guarantees of the tests have not kicked in; these floors also stop a dashboard from
    announcing a winner in the first minutes. Defaults suit per-person metrics of the tips product.

    Attributes
    ----------
    units_per_arm : int
        Distinct units (people) assigned to each arm; at least 2.
    decisions_per_arm : int
        Decisions served in each arm.
    """

    units_per_arm: int = 200
    decisions_per_arm: int = 1_000

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "units_per_arm", _checks.count(self.units_per_arm, "units_per_arm", minimum=2)
        )
        object.__setattr__(
            self, "decisions_per_arm", _checks.count(self.decisions_per_arm, "decisions_per_arm")
        )

    def met_by(self, units: int, decisions: int) -> bool:
        """Whether an arm with ``units`` units and ``decisions`` decisions has enough data."""
        return units >= self.units_per_arm and decisions >= self.decisions_per_arm


def decide(
    interval: Interval | None,
    *,
    enough_data: bool,
    srm_flagged: bool = False,
    higher_is_better: bool = True,
) -> Verdict:
    """Turn an interval for ``treatment - control`` into a verdict.

    Precedence: a sample-ratio mismatch overrides everything, then missing data; otherwise the
    verdict is "better"/"worse" when the interval excludes 0 and "no difference" when it does not.
    Pass an always-valid interval (:mod:`experiments.stats.sequential`) when the experiment is
    monitored: a fixed-horizon one looked at repeatedly declares spurious winners.

    Parameters
    ----------
    interval : Interval or None
        Interval for the difference; None when it could not be computed (too few observations).
    enough_data : bool
        Whether both arms meet the :class:`MinimumData` floors.
    srm_flagged : bool
        Whether the sample-ratio mismatch check flagged the experiment.
    higher_is_better : bool
        Direction of the metric.
    """
    if srm_flagged:
        return Verdict.SAMPLE_RATIO_MISMATCH
    if not enough_data or interval is None:
        return Verdict.INSUFFICIENT_DATA
    if not interval.excludes_zero():
        return Verdict.NO_DIFFERENCE
    if (interval.low > 0) == higher_is_better:
        return Verdict.TREATMENT_BETTER
    return Verdict.TREATMENT_WORSE
