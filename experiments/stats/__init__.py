"""Experiment statistics from per-arm sufficient statistics.

Every function here takes counts, sums and sums of squares per arm (:class:`Moments`, or
:class:`JointMoments` for CUPED), never raw rows, so a database can aggregate millions of decisions
and hand over a few numbers. All functions are pure and synchronous (CPU-bound; call them off the
event loop).

Modules, one method each:

=================  ==================================================================
``moments``        :class:`Moments`, :class:`JointMoments`: the sufficient statistics
``intervals``      :class:`Interval`, :func:`mean_ci`: per-arm t interval
``welch``          :func:`welch_test`: difference, relative lift, Welch's t-test
``sequential``     :func:`msprt`: always-valid p-value and confidence sequence (mSPRT)
``srm``            :func:`sample_ratio_mismatch`: chi-square check of the traffic split
``guardrails``     :class:`Guardrail`, :func:`check_guardrail`: one-sided degradation tests
``cuped``          :func:`cuped_adjust`: variance reduction with a pre-period covariate
``verdict``        :class:`Verdict`, :class:`MinimumData`, :func:`decide`
``analysis``       :func:`results`: all of the above composed into :class:`ExperimentResults`
=================  ==================================================================
"""

from experiments.stats.analysis import (
    AnalysisConfig,
    ArmData,
    ArmResult,
    ExperimentResults,
    results,
)
from experiments.stats.cuped import CupedResult, cuped_adjust
from experiments.stats.guardrails import Guardrail, GuardrailKind, GuardrailResult, check_guardrail
from experiments.stats.intervals import Interval, mean_ci
from experiments.stats.moments import JointMoments, Moments
from experiments.stats.sequential import DEFAULT_TUNING_N, SequentialResult, msprt
from experiments.stats.srm import DEFAULT_SRM_THRESHOLD, SrmResult, sample_ratio_mismatch
from experiments.stats.verdict import MinimumData, Verdict, decide
from experiments.stats.welch import Comparison, welch_test

__all__ = [
    "DEFAULT_SRM_THRESHOLD",
    "DEFAULT_TUNING_N",
    "AnalysisConfig",
    "ArmData",
    "ArmResult",
    "Comparison",
    "CupedResult",
    "ExperimentResults",
    "Guardrail",
    "GuardrailKind",
    "GuardrailResult",
    "Interval",
    "JointMoments",
    "MinimumData",
    "Moments",
    "SequentialResult",
    "SrmResult",
    "Verdict",
    "check_guardrail",
    "cuped_adjust",
    "decide",
    "mean_ci",
    "msprt",
    "results",
    "sample_ratio_mismatch",
    "welch_test",
]
