"""One call from per-arm sufficient statistics to a typed, serializable experiment result.

:func:`results` composes the rest of :mod:`experiments.stats`:

1. sample-ratio mismatch on units per arm (:mod:`~experiments.stats.srm`);
2. CUPED, when every arm's metric comes with a pre-period covariate
   (:mod:`~experiments.stats.cuped`);
3. per arm: the mean and its t interval (:mod:`~experiments.stats.intervals`);
4. per treatment arm against control: Welch's test and the relative lift
   (:mod:`~experiments.stats.welch`, fixed horizon, for reference), the always-valid p-value and
   confidence sequence (:mod:`~experiments.stats.sequential`), guardrails
   (:mod:`~experiments.stats.guardrails`) and the :class:`Verdict`.

Figures are shown from the first look, marked ``provisional`` until both arms meet
:class:`MinimumData`; the verdict waits for the floors. A provisional look never constrains a
later one: early plug-in variances are noisy, so the running minimum and intersection of
``previous`` start at the first look that meets the floors.

The verdict comes from the always-valid confidence sequence, because experiments are watched while
they run. With several treatment arms, comparisons use ``alpha / (arms - 1)`` (Bonferroni), so the
chance of any false "better"/"worse" verdict in the experiment stays below ``alpha``. Guardrails
use the unadjusted ``alpha``: a false alarm costs a look, a missed harm costs users.

All results are frozen dataclasses of plain floats, ints, strings, tuples and a ``StrEnum``, with
no NaN or infinity, so ``dataclasses.asdict`` followed by ``json.dumps`` serializes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from experiments.stats import _checks
from experiments.stats.cuped import CupedResult, cuped_adjust
from experiments.stats.guardrails import Guardrail, GuardrailResult, check_guardrail
from experiments.stats.intervals import Interval, mean_ci
from experiments.stats.moments import JointMoments, Moments
from experiments.stats.sequential import DEFAULT_TUNING_N, SequentialResult, msprt
from experiments.stats.srm import DEFAULT_SRM_THRESHOLD, SrmResult, sample_ratio_mismatch
from experiments.stats.verdict import MinimumData, Verdict, decide
from experiments.stats.welch import Comparison, welch_test

__all__ = ["AnalysisConfig", "ArmData", "ArmResult", "ExperimentResults", "results"]


@dataclass(frozen=True, slots=True)
class ArmData:
    """What the statistics need to know about one arm, aggregated by the caller.

    Attributes
    ----------
    name : str
        Arm name.
    weight : float
        The arm's traffic weight (any positive scale), for the sample-ratio check.
    units : int
        Distinct units assigned to the arm.
    decisions : int
        Decisions served in the arm.
    metric : Moments or JointMoments
        The primary metric per unit. Give :class:`JointMoments` (covariate ``x`` = pre-period value,
        ``y`` = metric) for every arm to apply CUPED.
    guardrails : mapping of str to Moments
        Guardrail metrics by name; must hold every metric named in ``AnalysisConfig.guardrails``.
    """

    name: str
    weight: float
    units: int
    decisions: int
    metric: Moments | JointMoments
    guardrails: Mapping[str, Moments] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"`name` of an arm must be a non-empty string (got {self.name!r})")
        weight = _checks.finite(self.weight, "weight")
        if weight <= 0:
            raise ValueError(f"`weight` of arm {self.name!r} must be positive (got {weight})")
        object.__setattr__(self, "weight", weight)
        object.__setattr__(self, "units", _checks.count(self.units, "units"))
        object.__setattr__(self, "decisions", _checks.count(self.decisions, "decisions"))
        if not isinstance(self.metric, Moments | JointMoments):
            raise TypeError(
                f"`metric` of arm {self.name!r} must be Moments or JointMoments "
                f"(got {type(self.metric).__name__})"
            )
        for metric, moments in self.guardrails.items():
            if not isinstance(moments, Moments):
                raise TypeError(
                    f"`guardrails[{metric!r}]` of arm {self.name!r} must be Moments "
                    f"(got {type(moments).__name__})"
                )


@dataclass(frozen=True, slots=True)
class AnalysisConfig:
    """How an experiment is analysed. Keep it fixed for the life of the experiment.

    Attributes
    ----------
    alpha : float
        Family-wise significance level of the verdicts, and one minus the level of intervals.
    higher_is_better : bool
        Direction of the primary metric.
    minimum : MinimumData
        Floors below which every treatment's verdict is "insufficient_data".
    srm_threshold : float
        p-value below which a sample-ratio mismatch is flagged.
    tuning_n : int
        Units per arm at which the always-valid intervals are tightest.
    guardrails : tuple of Guardrail
        Guardrail metrics checked for every treatment arm.
    """

    alpha: float = 0.05
    higher_is_better: bool = True
    minimum: MinimumData = field(default_factory=MinimumData)
    srm_threshold: float = DEFAULT_SRM_THRESHOLD
    tuning_n: int = DEFAULT_TUNING_N
    guardrails: tuple[Guardrail, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha", _checks.probability(self.alpha, "alpha"))
        object.__setattr__(
            self, "srm_threshold", _checks.probability(self.srm_threshold, "srm_threshold")
        )
        object.__setattr__(self, "tuning_n", _checks.count(self.tuning_n, "tuning_n", minimum=2))
        if not isinstance(self.minimum, MinimumData):
            raise TypeError(f"`minimum` must be MinimumData (got {type(self.minimum).__name__})")
        names = [g.metric for g in self.guardrails]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"`guardrails` names metric {name!r} more than once")


@dataclass(frozen=True, slots=True)
class ArmResult:
    """Statistics of one arm; comparison fields are None for control and before enough data.

    Attributes
    ----------
    name, weight, units, decisions
        Echo of the :class:`ArmData`.
    is_control : bool
        Whether this arm is the control.
    mean : float or None
        Observed mean of the primary metric (None without observations).
    mean_ci : Interval or None
        Its t interval at level ``1 - alpha`` (None below 2 observations).
    adjusted_mean, adjusted_mean_ci : float or None, Interval or None
        The CUPED-adjusted mean and its interval; None without CUPED. With CUPED, comparisons use
        the adjusted metric.
    comparison : Comparison or None
        Fixed-horizon Welch comparison with control, for reference only: not valid under peeking.
        None for control and while either arm has no standard error (fewer than 2 units).
    sequential : SequentialResult or None
        Always-valid p-value and confidence sequence for the difference with control.
    guardrails : tuple of GuardrailResult
        One per configured guardrail (each once both arms have 2 units).
    guardrail_breached : bool
        Whether any guardrail is breached.
    verdict : Verdict or None
        None for control; "insufficient_data" while provisional.
    provisional : bool
        True while this arm or control is below the :class:`MinimumData` floors: the figures are
        shown but not yet worth a decision, and the verdict waits.
    """

    name: str
    is_control: bool
    weight: float
    units: int
    decisions: int
    mean: float | None
    mean_ci: Interval | None
    adjusted_mean: float | None
    adjusted_mean_ci: Interval | None
    comparison: Comparison | None
    sequential: SequentialResult | None
    guardrails: tuple[GuardrailResult, ...]
    guardrail_breached: bool
    verdict: Verdict | None
    provisional: bool


@dataclass(frozen=True, slots=True)
class ExperimentResults:
    """Results of an experiment at one look.

    Attributes
    ----------
    control : str
        Name of the control arm.
    alpha : float
        Family-wise level from the config.
    comparison_alpha : float
        Level of each treatment-vs-control comparison: ``alpha / (arms - 1)``.
    arms : tuple of ArmResult
        In the order the arms were given.
    srm : SrmResult
        Sample-ratio mismatch check over all arms.
    cuped : CupedResult or None
        The CUPED adjustment, when applied.
    """

    control: str
    alpha: float
    comparison_alpha: float
    arms: tuple[ArmResult, ...]
    srm: SrmResult
    cuped: CupedResult | None

    def arm(self, name: str) -> ArmResult:
        """The result of the arm called ``name``."""
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise KeyError(f"`name` {name!r} is not an arm of this experiment")


def results(
    arms: Sequence[ArmData],
    *,
    control: str,
    config: AnalysisConfig | None = None,
    previous: ExperimentResults | None = None,
) -> ExperimentResults:
    """Analyse an experiment from per-arm sufficient statistics.

    Parameters
    ----------
    arms : sequence of ArmData, length k >= 2
        Cumulative statistics of every arm at this look.
    control : str
        Name of the control arm.
    config : AnalysisConfig, optional
        Defaults to ``AnalysisConfig()``.
    previous : ExperimentResults, optional
        The result of the previous look with the same config. Makes always-valid p-values running
        minima and confidence sequences running intersections, so verdicts do not flip back and
        forth as data arrive. Without it each look stands alone, which is still valid for the rule
        "stop the first time a verdict is reached".

    Returns
    -------
    ExperimentResults
    """
    config = AnalysisConfig() if config is None else config
    arms = _checked_arms(arms, control)
    control_index = next(i for i, arm in enumerate(arms) if arm.name == control)
    control_arm = arms[control_index]
    if previous is not None and previous.control != control:
        raise ValueError(f"`previous` has control {previous.control!r}, not {control!r}")
    previous_arms = {arm.name: arm for arm in previous.arms} if previous is not None else {}

    srm = sample_ratio_mismatch(
        [arm.units for arm in arms], [arm.weight for arm in arms], threshold=config.srm_threshold
    )
    observed = [
        arm.metric.y if isinstance(arm.metric, JointMoments) else arm.metric for arm in arms
    ]
    cuped = _cuped(arms)
    analysed = list(cuped.adjusted) if cuped is not None else observed
    comparison_alpha = config.alpha / (len(arms) - 1)

    arm_results: list[ArmResult] = []
    for i, arm in enumerate(arms):
        adjusted = analysed[i] if cuped is not None else None
        comparison: Comparison | None = None
        sequential: SequentialResult | None = None
        guardrails: tuple[GuardrailResult, ...] = ()
        verdict: Verdict | None = None
        enough = config.minimum.met_by(arm.units, arm.decisions) and config.minimum.met_by(
            control_arm.units, control_arm.decisions
        )
        if i != control_index:
            before = previous_arms.get(arm.name)
            if before is not None and before.provisional:
                before = None  # a provisional look never narrows a later one
            if _has_standard_error(analysed[control_index], analysed[i]):
                comparison = welch_test(
                    analysed[control_index], analysed[i], alpha=comparison_alpha
                )
                sequential = msprt(
                    analysed[control_index],
                    analysed[i],
                    alpha=comparison_alpha,
                    tuning_n=config.tuning_n,
                    previous=before.sequential if before is not None else None,
                )
            guardrails = _guardrails(config, control_arm, arm, before)
            verdict = decide(
                sequential.always_valid_ci if sequential is not None else None,
                enough_data=enough,
                srm_flagged=srm.flagged,
                higher_is_better=config.higher_is_better,
            )
        arm_results.append(
            ArmResult(
                name=arm.name,
                is_control=i == control_index,
                weight=arm.weight,
                units=arm.units,
                decisions=arm.decisions,
                mean=observed[i].mean if observed[i].n >= 1 else None,
                mean_ci=mean_ci(observed[i], alpha=config.alpha) if observed[i].n >= 2 else None,
                adjusted_mean=adjusted.mean if adjusted is not None and adjusted.n >= 1 else None,
                adjusted_mean_ci=(
                    mean_ci(adjusted, alpha=config.alpha)
                    if adjusted is not None and adjusted.n >= 2
                    else None
                ),
                comparison=comparison,
                sequential=sequential,
                guardrails=guardrails,
                guardrail_breached=any(g.breached for g in guardrails),
                verdict=verdict,
                provisional=not enough,
            )
        )
    return ExperimentResults(
        control=control,
        alpha=config.alpha,
        comparison_alpha=comparison_alpha,
        arms=tuple(arm_results),
        srm=srm,
        cuped=cuped,
    )


def _checked_arms(arms: Sequence[ArmData], control: str) -> list[ArmData]:
    checked = list(arms)
    if len(checked) < 2:
        raise ValueError(
            f"`arms` must hold a control and at least one treatment (got {len(checked)})"
        )
    seen: set[str] = set()
    for i, arm in enumerate(checked):
        if not isinstance(arm, ArmData):
            raise TypeError(f"`arms[{i}]` must be ArmData (got {type(arm).__name__})")
        if arm.name in seen:
            raise ValueError(f"`arms` has a duplicate arm name {arm.name!r}")
        seen.add(arm.name)
    if control not in seen:
        raise ValueError(f"`control` {control!r} is not one of the arms {sorted(seen)}")
    return checked


def _cuped(arms: Sequence[ArmData]) -> CupedResult | None:
    joint = [arm.metric for arm in arms if isinstance(arm.metric, JointMoments)]
    if not joint:
        return None
    if len(joint) != len(arms):
        plain = next(arm.name for arm in arms if not isinstance(arm.metric, JointMoments))
        raise ValueError(
            f"`metric` of arm {plain!r} is Moments while other arms give JointMoments; "
            "CUPED needs the covariate in every arm"
        )
    if all(moments.n < 2 for moments in joint):
        return None
    return cuped_adjust(joint)


def _has_standard_error(control: Moments, treatment: Moments) -> bool:
    if control.n < 2 or treatment.n < 2:
        return False
    return control.variance / control.n + treatment.variance / treatment.n > 0


def _guardrails(
    config: AnalysisConfig,
    control: ArmData,
    treatment: ArmData,
    before: ArmResult | None,
) -> tuple[GuardrailResult, ...]:
    previous = {g.metric: g for g in before.guardrails} if before is not None else {}
    checked: list[GuardrailResult] = []
    for guardrail in config.guardrails:
        pair = []
        for arm in (control, treatment):
            if guardrail.metric not in arm.guardrails:
                raise ValueError(
                    f"`guardrails` of arm {arm.name!r} has no metric {guardrail.metric!r}"
                )
            pair.append(arm.guardrails[guardrail.metric])
        if pair[0].n < 2 or pair[1].n < 2:
            continue
        checked.append(
            check_guardrail(
                guardrail,
                pair[0],
                pair[1],
                alpha=config.alpha,
                tuning_n=config.tuning_n,
                previous=previous.get(guardrail.metric),
            )
        )
    return tuple(checked)
