"""results(): composition, verdicts, CUPED, chaining looks, serialization, an end-to-end A/A."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from experiments.stats import (
    AnalysisConfig,
    ArmData,
    ExperimentResults,
    Guardrail,
    Interval,
    JointMoments,
    MinimumData,
    Moments,
    Verdict,
    cuped_adjust,
    decide,
    msprt,
    results,
    welch_test,
)

DISMISS = Guardrail("dismiss_rate", 0.05, "relative", higher_is_better=False)
CONFIG = AnalysisConfig(guardrails=(DISMISS,))


def _arm(
    rng: np.random.Generator,
    name: str,
    units: int,
    effect: float = 0.0,
    dismiss_rate: float = 0.1,
    weight: float = 1.0,
) -> ArmData:
    decisions = 5 * units
    return ArmData(
        name=name,
        weight=weight,
        units=units,
        decisions=decisions,
        metric=Moments.from_values(rng.normal(1.0 + effect, 1.0, size=units)),
        guardrails={
            "dismiss_rate": Moments.bernoulli(decisions, rng.binomial(decisions, dismiss_rate))
        },
    )


def test_three_arm_experiment() -> None:
    rng = np.random.default_rng(60)
    arms = [
        _arm(rng, "control", 4000),
        _arm(rng, "better", 4000, effect=0.2),
        _arm(rng, "same", 4000, dismiss_rate=0.15),
    ]
    out = results(arms, control="control", config=CONFIG)
    assert out.comparison_alpha == pytest.approx(0.025)
    assert [a.name for a in out.arms] == ["control", "better", "same"]
    control, better, same = out.arms
    assert control.is_control
    assert control.verdict is None
    assert control.comparison is None
    assert control.sequential is None
    assert control.mean_ci is not None
    assert control.mean_ci.level == pytest.approx(0.95)
    assert better.verdict is Verdict.TREATMENT_BETTER
    assert same.verdict is Verdict.NO_DIFFERENCE
    assert not better.guardrail_breached
    assert same.guardrail_breached
    assert same.guardrails[0].metric == "dismiss_rate"
    assert not out.srm.flagged
    # Each comparison is exactly the standalone functions at the Bonferroni level.
    metric = [arm.metric for arm in arms]
    assert isinstance(metric[0], Moments)
    assert isinstance(metric[1], Moments)
    assert better.comparison == welch_test(metric[0], metric[1], alpha=0.025)
    assert better.sequential == msprt(metric[0], metric[1], alpha=0.025)
    assert better.sequential is not None
    assert better.sequential.always_valid_ci.level == pytest.approx(0.975)
    assert out.arm("same") is same
    with pytest.raises(KeyError, match=r"`name` 'nope' is not an arm"):
        out.arm("nope")


def test_results_serialize_to_strict_json() -> None:
    rng = np.random.default_rng(61)
    out = results(
        [_arm(rng, "control", 300), _arm(rng, "treatment", 300)], control="control", config=CONFIG
    )
    text = json.dumps(dataclasses.asdict(out), allow_nan=False)
    parsed = json.loads(text)
    assert parsed["arms"][1]["verdict"] in {v.value for v in Verdict}
    assert parsed["srm"]["flagged"] is False


def test_lower_is_better_flips_the_verdict() -> None:
    rng = np.random.default_rng(62)
    arms = [_arm(rng, "control", 4000), _arm(rng, "treatment", 4000, effect=0.2)]
    config = AnalysisConfig(higher_is_better=False)
    assert (
        results(arms, control="control", config=config).arms[1].verdict is Verdict.TREATMENT_WORSE
    )


def test_too_little_data_shows_provisional_figures_and_waits_for_the_verdict() -> None:
    # Below the floors (200 units, 1000 decisions) the figures are shown, marked provisional;
    # only the verdict waits (it used to hide the comparison, the tests and the guardrails too).
    rng = np.random.default_rng(63)
    arms = [_arm(rng, "control", 150), _arm(rng, "treatment", 150, effect=2.0)]
    control, treatment = results(arms, control="control", config=CONFIG).arms
    assert treatment.verdict is Verdict.INSUFFICIENT_DATA
    assert treatment.provisional and control.provisional
    assert treatment.comparison is not None and treatment.comparison.difference > 1.0
    assert treatment.sequential is not None
    assert treatment.sequential.always_valid_ci.low > 0  # it would be a verdict, were it not early
    assert [g.metric for g in treatment.guardrails] == ["dismiss_rate"]
    assert treatment.mean is not None
    relaxed = AnalysisConfig(minimum=MinimumData(units_per_arm=100, decisions_per_arm=500))
    decided = results(arms, control="control", config=relaxed).arms[1]
    assert decided.verdict is Verdict.TREATMENT_BETTER
    assert not decided.provisional
    assert decided.comparison == treatment.comparison


def test_an_arm_just_under_the_decision_floor_is_provisional() -> None:
    rng = np.random.default_rng(68)
    metric = Moments.from_values(rng.normal(1.0, 1.0, size=300))
    arms = [
        ArmData("control", 1, 300, 1500, metric),
        ArmData("treatment", 1, 300, 994, Moments.from_values(rng.normal(1.1, 1.0, size=300))),
    ]
    control, treatment = results(arms, control="control").arms
    assert not control.provisional
    assert treatment.provisional and treatment.verdict is Verdict.INSUFFICIENT_DATA
    assert treatment.comparison is not None and treatment.sequential is not None


def test_a_provisional_look_never_narrows_a_later_one() -> None:
    rng = np.random.default_rng(69)
    config = AnalysisConfig(minimum=MinimumData(units_per_arm=100, decisions_per_arm=100))
    # Ten units each with almost no spread: the plug-in variance makes the early look sure of
    # a difference that the later, larger look does not see.
    small = [
        ArmData(n, 1, 10, 10, Moments.from_values(rng.normal(shift, 0.01, size=10)))
        for n, shift in (("control", 0.0), ("treatment", 1.0))
    ]
    early = results(small, control="control", config=config)
    assert early.arms[1].provisional and early.arms[1].sequential is not None
    assert early.arms[1].sequential.always_valid_p < 0.001
    large = [
        ArmData(n, 1, 400, 400, Moments.from_values(rng.normal(size=400)))
        for n in ("control", "treatment")
    ]
    chained = results(large, control="control", config=config, previous=early)
    alone = results(large, control="control", config=config)
    assert chained.arms[1].sequential == alone.arms[1].sequential
    assert chained.arms[1].sequential is not None
    assert chained.arms[1].sequential.always_valid_p > 0.05


def test_sample_ratio_mismatch_overrides_the_verdict() -> None:
    rng = np.random.default_rng(64)
    arms = [_arm(rng, "control", 52_000), _arm(rng, "treatment", 48_000, effect=0.2)]
    out = results(arms, control="control")
    assert out.srm.flagged
    assert out.arms[1].verdict is Verdict.SAMPLE_RATIO_MISMATCH
    assert out.arms[1].sequential is not None  # still shown, for diagnosis


def test_cuped_is_applied_when_every_arm_has_a_covariate() -> None:
    rng = np.random.default_rng(65)

    def joint_arm(name: str, effect: float) -> ArmData:
        x = rng.normal(size=3000)
        y = 0.8 * x + 0.6 * rng.normal(size=3000) + effect
        return ArmData(name, 1, 3000, 9000, JointMoments.from_values(x, y))

    arms = [joint_arm("control", 0.0), joint_arm("treatment", 0.06)]
    out = results(arms, control="control")
    assert out.cuped is not None
    joint = [arm.metric for arm in arms]
    assert all(isinstance(m, JointMoments) for m in joint)
    expected = cuped_adjust(joint)  # type: ignore[arg-type]
    assert out.cuped == expected
    treatment = out.arms[1]
    assert treatment.adjusted_mean == pytest.approx(expected.adjusted[1].mean)
    assert treatment.mean == pytest.approx(joint[1].y.mean)  # type: ignore[union-attr]
    assert treatment.comparison == welch_test(expected.adjusted[0], expected.adjusted[1])
    raw = welch_test(joint[0].y, joint[1].y)  # type: ignore[union-attr]
    assert treatment.comparison is not None
    assert treatment.comparison.difference_ci.width < 0.7 * raw.difference_ci.width


def test_chained_looks_never_flip_a_verdict_back() -> None:
    rng = np.random.default_rng(66)
    control = treatment = Moments(0, 0.0, 0.0)
    previous: ExperimentResults | None = None
    p_values, verdicts = [], []
    for _ in range(25):
        control = control + Moments.from_values(rng.normal(size=400))
        treatment = treatment + Moments.from_values(rng.normal(0.1, 1.0, size=400))
        arms = [
            ArmData("control", 1, control.n, control.n, control),
            ArmData("treatment", 1, treatment.n, treatment.n, treatment),
        ]
        previous = results(arms, control="control", previous=previous)
        sequential = previous.arms[1].sequential
        if sequential is not None and not previous.arms[1].provisional:
            p_values.append(sequential.always_valid_p)  # a running minimum from the floors on
        verdicts.append(previous.arms[1].verdict)
    assert verdicts[0] is Verdict.INSUFFICIENT_DATA
    assert len(p_values) > 15
    assert p_values == sorted(p_values, reverse=True)
    first = verdicts.index(Verdict.TREATMENT_BETTER)
    assert set(verdicts[first:]) == {Verdict.TREATMENT_BETTER}


def test_aa_experiments_rarely_get_a_verdict_through_the_whole_pipeline() -> None:
    rng = np.random.default_rng(67)
    experiments, looks, batch, alpha = 300, 20, 100, 0.05
    config = AnalysisConfig(minimum=MinimumData(units_per_arm=100, decisions_per_arm=100))
    wrong = 0
    for _ in range(experiments):
        previous: ExperimentResults | None = None
        data = rng.binomial(1, 0.3, size=(2, looks * batch)).astype(np.float64)
        for look in range(1, looks + 1):
            n = look * batch
            arms = [
                ArmData(name, 1, n, n, Moments.from_values(data[i, :n]))
                for i, name in enumerate(["control", "treatment"])
            ]
            previous = results(arms, control="control", config=config, previous=previous)
        assert previous is not None
        wrong += previous.arms[1].verdict in (Verdict.TREATMENT_BETTER, Verdict.TREATMENT_WORSE)
    rate = wrong / experiments
    print(f"\nA/A through results(), {looks} chained looks: false verdict rate {rate:.3f}")
    assert rate <= alpha + 2.33 * math.sqrt(alpha * (1 - alpha) / experiments)


def test_decide_precedence_and_direction() -> None:
    above, across = Interval(0.1, 0.3, 0.95), Interval(-0.1, 0.3, 0.95)
    below = Interval(-0.3, -0.1, 0.95)
    assert decide(above, enough_data=True, srm_flagged=True) is Verdict.SAMPLE_RATIO_MISMATCH
    assert decide(above, enough_data=False) is Verdict.INSUFFICIENT_DATA
    assert decide(None, enough_data=True) is Verdict.INSUFFICIENT_DATA
    assert decide(across, enough_data=True) is Verdict.NO_DIFFERENCE
    assert decide(above, enough_data=True) is Verdict.TREATMENT_BETTER
    assert decide(below, enough_data=True) is Verdict.TREATMENT_WORSE
    assert decide(above, enough_data=True, higher_is_better=False) is Verdict.TREATMENT_WORSE
    assert decide(below, enough_data=True, higher_is_better=False) is Verdict.TREATMENT_BETTER
    assert json.dumps(Verdict.NO_DIFFERENCE) == '"no_difference"'


def test_minimum_data() -> None:
    minimum = MinimumData(units_per_arm=10, decisions_per_arm=50)
    assert minimum.met_by(10, 50)
    assert not minimum.met_by(9, 500)
    assert not minimum.met_by(100, 49)
    with pytest.raises(ValueError, match=r"`units_per_arm` must be at least 2 \(got 1\)"):
        MinimumData(units_per_arm=1)


def _two_arms() -> list[ArmData]:
    rng = np.random.default_rng(68)
    return [_arm(rng, "control", 300), _arm(rng, "treatment", 300)]


def test_invalid_experiments_name_the_argument() -> None:
    arms = _two_arms()
    with pytest.raises(ValueError, match=r"`control` 'ctl' is not one of the arms"):
        results(arms, control="ctl")
    with pytest.raises(ValueError, match=r"`arms` must hold a control and at least one treatment"):
        results(arms[:1], control="control")
    with pytest.raises(ValueError, match=r"`arms` has a duplicate arm name 'control'"):
        results([arms[0], arms[0]], control="control")
    missing = AnalysisConfig(guardrails=(Guardrail("tips_per_day", 0.1),))
    with pytest.raises(
        ValueError, match=r"`guardrails` of arm 'control' has no metric 'tips_per_day'"
    ):
        results(arms, control="control", config=missing)
    mixed = [
        arms[0],
        ArmData("treatment", 1, 300, 300, JointMoments.from_values([1.0, 2.0], [1.0, 3.0])),
    ]
    with pytest.raises(ValueError, match=r"`metric` of arm 'control' is Moments while other arms"):
        results(mixed, control="control")
    earlier = results(arms, control="control")
    renamed = [dataclasses.replace(arms[0], name="base"), arms[1]]
    with pytest.raises(ValueError, match=r"`previous` has control 'control', not 'base'"):
        results(renamed, control="base", previous=earlier)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (
            lambda: ArmData("a", 0, 1, 1, Moments(0, 0.0, 0.0)),
            ValueError,
            r"`weight` of arm 'a' must be positive",
        ),
        (
            lambda: ArmData("a", 1, -1, 1, Moments(0, 0.0, 0.0)),
            ValueError,
            r"`units` must be at least 0",
        ),
        (
            lambda: ArmData("a", 1, 1, 1, [1.0]),  # type: ignore[arg-type]
            TypeError,
            r"`metric` of arm 'a' must be Moments or JointMoments",
        ),
        (
            lambda: ArmData("a", 1, 1, 1, Moments(0, 0.0, 0.0), {"d": 0.1}),  # type: ignore[dict-item]
            TypeError,
            r"`guardrails\['d'\]` of arm 'a' must be Moments",
        ),
        (lambda: AnalysisConfig(alpha=0.0), ValueError, r"`alpha` must be in \(0, 1\) \(got 0.0\)"),
        (lambda: AnalysisConfig(tuning_n=0), ValueError, r"`tuning_n` must be at least 2"),
        (
            lambda: AnalysisConfig(guardrails=(DISMISS, DISMISS)),
            ValueError,
            r"`guardrails` names metric 'dismiss_rate' more than once",
        ),
    ],
)
def test_invalid_configuration_names_the_argument(
    make: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        make()  # type: ignore[operator]
