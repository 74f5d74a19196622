"""How a reward becomes the cost VW learns: one mapping, chosen by the model's loss function.

VW minimizes cost. Its reward regressors (the MTR model under `--cb_explore_adf`) fit the
chosen action's cost with the workspace's `--loss_function`, so the cost must be a label that
loss understands:

``squared`` and the other regression losses (VW's default)
    cost = -reward: a reward in [-1, 1] is a cost in [-1, 1], fitted as a number (a linear
    probability model when rewards are clicks).
``logistic`` and ``hinge``
    Classification losses over labels -1 and +1: VW's logistic loss is log(1 + exp(-y·s)) for
    label y and score s, so a label of 0 — a click-less decision under cost = -reward — has no
    gradient at all, and the model never learns what is *not* clicked. Rewards are read as
    clicks: cost = 1 - 2·r on r clipped to [0, 1], so a click (1) is cost -1 and no click (0)
    is cost +1; the score is then the log-odds of *no* click, and the lowest score is the most
    probable click, which is the action VW ranks first. A fractional reward r in (0, 1) gives
    the label 1 - 2r between them: the loss log(1 + exp(-(1 - 2r)·s)) pulls the score toward
    the nearer outcome with strength |1 - 2r| (r = 0.5 teaches nothing); a negative reward
    counts as no click, one above 1 as a click.

The loss function is part of a policy's VW arguments, so the mapping is part of the policy's
definition: a model keeps learning with the mapping its arguments name, fresh or loaded from a
snapshot (`bandit.model` hands VW the loss again when it loads model bytes, because VW does not
keep it in the model file).
"""

from __future__ import annotations

from enum import Enum

from bandit.vw_args import VwArgs

CLASSIFICATION_LOSSES = frozenset({"logistic", "hinge"})
"""VW losses whose labels are -1 and +1."""


class Costs(Enum):
    """The mapping from a reward to VW's cost label."""

    NEGATED = "negated"
    """cost = -reward (regression losses)."""
    CLICKS = "clicks"
    """cost = 1 - 2·clip(reward, 0, 1): click -1, no click +1 (classification losses)."""

    @classmethod
    def of(cls, args: VwArgs) -> Costs:
        """The mapping gated arguments `args` learn with: their `--loss_function`'s."""
        loss = args.value("--loss_function")
        return cls.CLICKS if loss in CLASSIFICATION_LOSSES else cls.NEGATED

    def cost(self, reward: float) -> float:
        """The cost VW learns for `reward`.

        >>> Costs.NEGATED.cost(1.0), Costs.NEGATED.cost(0.0)
        (-1.0, -0.0)
        >>> Costs.CLICKS.cost(1.0), Costs.CLICKS.cost(0.0), Costs.CLICKS.cost(0.25)
        (-1.0, 1.0, 0.5)
        """
        if self is Costs.NEGATED:
            return -reward
        return 1.0 - 2.0 * min(max(reward, 0.0), 1.0)
