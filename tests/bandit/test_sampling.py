import numpy as np
import pytest
from scipy import stats

from bandit.sampling import sample_index, uniform_for


def test_uniform_is_a_pure_function_of_the_event_id() -> None:
    assert uniform_for("event-1") == uniform_for("event-1")
    assert uniform_for("event-1") != uniform_for("event-2")
    assert 0.0 <= uniform_for("x") < 1.0


def test_uniform_variates_are_uniform() -> None:
    values = np.array([uniform_for(f"e{i}") for i in range(20_000)])
    assert stats.kstest(values, "uniform").pvalue > 0.001


def test_draws_follow_the_pmf() -> None:
    pmf = [0.5, 0.3, 0.2, 0.0]
    counts = np.bincount([sample_index(pmf, f"e{i}") for i in range(20_000)], minlength=4)
    assert counts[3] == 0
    assert stats.chisquare(counts[:3], f_exp=np.array(pmf[:3]) * 20_000).pvalue > 0.001


def test_inverse_cdf_by_hand() -> None:
    # u for this id, then the index whose cumulative interval contains it.
    u = uniform_for("hand")
    pmf = [0.25, 0.25, 0.5]
    expected = 0 if u < 0.25 else 1 if u < 0.5 else 2
    assert sample_index(pmf, "hand") == expected


def test_zero_probability_is_never_drawn_even_with_rounding() -> None:
    pmf = [0.3, 0.3, 0.3999999, 0.0]
    assert all(sample_index(pmf, f"e{i}") != 3 for i in range(5000))


def test_a_pmf_without_mass_is_refused() -> None:
    with pytest.raises(ValueError, match="`pmf` has no action with positive probability"):
        sample_index([0.0, 0.0], "e")
