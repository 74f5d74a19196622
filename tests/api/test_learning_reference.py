"""The learning suite's independent reference (`bench/reference/bayes.py`): its posterior is the
closed-form one, its pmf is a floored distribution, and on a known world it learns.

The reference is the yardstick docs/learning-suite.md compares the default against, so its
maths is checked here against hand-computed and closed-form answers, not against itself.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from api.simulate import run
from api.simulate.worlds import TIPS6, World


def _load_reference():  # type: ignore[no-untyped-def]
    """`bench/reference/bayes.py` by its path: `bench` is the repository's, not an installed
    package, and the suite runs from the installed ones."""
    path = Path(__file__).resolve().parents[2] / "bench" / "reference" / "bayes.py"
    spec = importlib.util.spec_from_file_location("oo_bench_reference_bayes", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module's names through it
    spec.loader.exec_module(module)
    return module


bayes = _load_reference()
INTERCEPT = bayes.INTERCEPT
INTERCEPT_VARIANCE = bayes.INTERCEPT_VARIANCE
Posterior = bayes.Posterior
Reference = bayes.Reference
ReferenceLoop = bayes.ReferenceLoop
tokens = bayes.tokens


def _examples(seed: int, n: int, width: int) -> list[tuple[list[int], float]]:
    rng = np.random.default_rng(seed)
    return [
        (sorted(rng.choice(width, size=3, replace=False).tolist()), float(rng.integers(0, 2)))
        for _ in range(n)
    ]


def test_tokens_name_every_feature_by_namespace() -> None:
    assert tokens([{"user": {"tier": "gold", "age": 31}}, {"time": {"hour": "h09"}}]) == [
        "user.tier=gold",
        "user.age=31",
        "time.hour=h09",
    ]


def test_the_linear_posterior_is_ridge_regression_in_closed_form() -> None:
    # 40 examples over 6 features (more than 64 positions are never needed, but the arrays
    # grow past their first capacity of 64 below, so growing is covered too).
    posterior = Posterior("linear", "full", prior_variance=2.0)
    for i in range(70):
        posterior.position(f"f{i}")
    examples = _examples(1, 40, 6)
    for row, y in examples:
        posterior.learn(row, y)
    design = np.zeros((len(examples), 6))
    for k, (row, _) in enumerate(examples):
        design[k, row] = 1.0
    target = np.array([y for _, y in examples])
    precision = np.eye(6) / 2.0 + design.T @ design
    expected_mean = np.linalg.solve(precision, design.T @ target)
    mean, spread = posterior.scores([[0], [1, 2]])
    assert mean == pytest.approx([expected_mean[0], expected_mean[1] + expected_mean[2]], abs=1e-9)
    covariance = np.linalg.inv(precision)
    expected_spread = covariance[1, 1] + covariance[2, 2] + 2 * covariance[1, 2]
    assert spread[1, 1] == pytest.approx(expected_spread, abs=1e-9)
    assert spread[0, 1] == pytest.approx(covariance[0, 1] + covariance[0, 2], abs=1e-9)
    # An unseen feature keeps its prior.
    assert posterior.scores([[69]])[1][0, 0] == pytest.approx(2.0)


def test_one_logistic_step_from_the_prior_by_hand() -> None:
    # From mean 0 the click probability is 1/2, so the curvature is 1/4. One feature of prior
    # variance 1: precision 1 + 1/4 → variance 0.8; the Newton step 0.8 · (1 − 1/2) = 0.4.
    posterior = Posterior("logistic", "full")
    at = posterior.position("a")
    posterior.learn([at], 1.0)
    mean, spread = posterior.scores([[at]])
    assert spread[0, 0] == pytest.approx(0.8)
    assert mean[0] == pytest.approx(0.4)
    # Two features on one example share the step: precision [[1.25, .25], [.25, 1.25]] → the
    # covariance's row sum 1/1.5, and each mean moves by (1/1.5) · 1/2.
    pair = Posterior("logistic", "full")
    a, b = pair.position("a"), pair.position("b")
    pair.learn([a, b], 1.0)
    mean, spread = pair.scores([[a], [b]])
    assert mean == pytest.approx([1 / 3, 1 / 3])
    assert spread[0, 1] == pytest.approx(-0.25 / (1.25**2 - 0.25**2))


def test_the_diagonal_logistic_step_by_hand() -> None:
    # Each weight on its own: variance 1 / (1 + 1/4) = 0.8 whatever the other feature, mean
    # 0.8 · 1/2 for both, no covariance between them.
    posterior = Posterior("logistic", "diagonal")
    a, b = posterior.position("a"), posterior.position("b")
    posterior.learn([a, b], 1.0)
    mean, spread = posterior.scores([[a], [b]])
    assert mean == pytest.approx([0.4, 0.4])
    assert spread == pytest.approx(np.array([[0.8, 0.0], [0.0, 0.8]]))


def test_the_logistic_full_posterior_agrees_with_a_newton_step_on_the_whole_objective() -> None:
    # The online Laplace step is one Newton step per example from the previous posterior; on a
    # single example from the prior it equals the batch Newton step on the log-posterior.
    posterior = Posterior("logistic", "full")
    for name in "abcd":
        posterior.position(name)
    posterior.mean[:4] = [0.3, -0.2, 0.1, 0.5]
    row, y = [0, 2, 3], 0.0
    x = np.zeros(4)
    x[row] = 1.0
    prior_precision = np.eye(4)
    p = 1 / (1 + math.exp(-(x @ posterior.mean[:4])))
    hessian = prior_precision + p * (1 - p) * np.outer(x, x)
    expected_mean = posterior.mean[:4] + np.linalg.solve(hessian, x * (y - p))
    posterior.learn(row, y)
    assert posterior.mean[:4] == pytest.approx(expected_mean, abs=1e-12)
    assert posterior.covariance[:4, :4] == pytest.approx(np.linalg.inv(hessian), abs=1e-12)


def test_a_logistic_models_intercept_starts_wide() -> None:
    posterior = Posterior("logistic", "diagonal")
    at = posterior.position(INTERCEPT)
    assert posterior.scores([[at]])[1][0, 0] == pytest.approx(INTERCEPT_VARIANCE)


@pytest.mark.parametrize("covariance", ["full", "diagonal"])
def test_the_pmf_is_floored_thompson_sampling(covariance: str) -> None:
    loop = ReferenceLoop(Reference("logistic", covariance, 0.25), 0.02, seed=0, world="w")  # type: ignore[arg-type]
    rows = [[loop.posterior.position(f"a{k}")] for k in range(5)]
    cold = loop.pmf(rows)
    assert cold.sum() == pytest.approx(1.0)
    assert cold.min() >= 0.02 / 5
    for _ in range(300):  # action 3 always clicked, the others never
        for k, row in enumerate(rows):
            loop.posterior.learn(row, 1.0 if k == 3 else 0.0)
    learned = loop.pmf(rows)
    assert learned[3] == pytest.approx(1 - 0.02 + 0.02 / 5)
    assert learned.min() == pytest.approx(0.02 / 5)


def test_a_run_is_reproducible_and_logs_the_pmf_it_drew_from() -> None:
    def once() -> list[float]:
        loop = ReferenceLoop(Reference("logistic", "diagonal", 0.35), 0.02, seed=3, world="tips6")
        return run(loop, World(TIPS6, 3), decisions=300, run_id="r").trace.propensity

    first = once()
    assert first == once()
    assert min(first) >= 0.02 / 6


@pytest.mark.parametrize(
    "reference",
    [Reference("linear", "full", 0.05), Reference("logistic", "diagonal", 0.35)],
    ids=lambda r: f"{r.family}-{r.covariance}",
)
def test_the_reference_learns_a_known_world(reference: Reference) -> None:
    # tips6 on seed 0: the default captures 93% of the lift in its last 1,000 of 5,000. Over
    # 2,000 decisions a working reference is well past half; a broken update (sign, scale)
    # stays near 0 or below.
    loop = ReferenceLoop(reference, 0.02, seed=0, world="tips6")
    trace = run(loop, World(TIPS6, 0), decisions=2000, run_id="tips6-0").trace
    assert trace.share(1500, 2000) > 0.7
