r"""Direct method (DM): the reward model's own value of the target policy.

    V̂_DM = (1/n) Σ_i v̂_i,        v̂_i = Σ_a π_target(a|x_i) r̂(x_i, a)

Low variance and no importance weights, but biased by the model's error, which no interval here
can see: its intervals cover the *model's* value of the policy, not the policy's value. Written as
the DR family member whose residual weight is 0 (the logged reward is validated but unused).

References: A. Beygelzimer & J. Langford (2009), "The offset tree for learning with partial
labels", KDD; M. Dudík, J. Langford & L. Li (2011), "Doubly robust policy evaluation and
learning", ICML (DM as the baseline DR corrects).
"""

from __future__ import annotations

import numpy as np

from rewards.estimators import dr
from rewards.estimators._validation import FloatArray


class Estimator(dr.Estimator):
    """Streaming, mergeable DM; same inputs and parameters as :class:`.dr.Estimator`."""

    def _transform(self, w: FloatArray) -> FloatArray:
        return np.zeros_like(w)

    def _weight_cap(self) -> float:
        return 0.0
