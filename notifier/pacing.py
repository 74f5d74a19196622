"""Dose-aware pacing: send now only if now is among the day's best moments left (ADR 0014).

A decision-by-decision timing policy is myopic: it sends as soon as sending beats waiting, so the
first points of the day (where a push pays on average) spend the dose, and the evening's peaks
are never decision points at all. Pacing wraps the policy that serves a decision point and looks
at the rest of the day, which is known (`notifier.schedule`): a secretary-style threshold rule
under a budget, with the learned model as the judge of every moment.

With `k` pushes left today and the remaining decision points of today ``t_1 .. t_n`` (each with
the context the person will have then if nothing is pushed before: its clock, calendar, recency
and engagement at that time), the send score of a moment is the served policy's probability of
`send` there, ``s(t) = pmf(send | context(t))``. Now is *among the best* when fewer than `k` of
the remaining moments score strictly higher than now:

    #{i : s(t_i) > s(now)} < k

Then the policy's pmf is served unchanged. Otherwise a better moment is still ahead for each push
left, and `send` keeps only the floor (``min(pmf(send), floor)``, the rest to `wait`): pushes are
held back for the hours the model rates higher, while the floor keeps exploring every hour.

Why the pmf is the score: for SquareCB (Foster & Rakhlin 2020) the probability of an action is a
decreasing function of its predicted reward gap to the best action, ``1 / (K + gamma * gap)``,
under one `gamma` for one model state, and the uniform floor mixes in linearly; so ranking moments
by the served ``pmf(send)`` ranks them by the model's send advantage
``reward(send) - reward(wait)``, and a policy without a model (uniform random) scores every moment
alike, ties count for now, and it serves as it did. The logged pmf is this wrapper's: exactly the
pmf the decision is drawn from.

The random-time rule (`policies.rule.RANDOM_TIME`, the baseline arm of a timing experiment) is
not paced but served at the dose: `send` with probability ``pushes_left / points_left``
(`RandomTime`), which `at_point` chooses for it.
"""

from __future__ import annotations

from collections.abc import Sequence

from bandit.events import Action, Features
from bandit.policy import Policy
from policies import rule
from policies.serving import LoggingOnly, Wrapped


def among_best(now: float, ahead: Sequence[float], pushes_left: int) -> bool:
    """True when fewer than `pushes_left` of the `ahead` scores beat the score of `now`.

    >>> among_best(0.6, [0.9, 0.2, 0.7], pushes_left=2)
    False
    >>> among_best(0.6, [0.9, 0.2, 0.7], pushes_left=3)
    True
    >>> among_best(0.5, [0.5, 0.5], pushes_left=1)  # ties count for now
    True
    """
    if pushes_left < 1:
        raise ValueError(f"`pushes_left` must be at least 1 (got {pushes_left})")
    return sum(score > now for score in ahead) < pushes_left


class Paced(Wrapped):
    """`inner`'s pmf at a decision point, with `send` held at the floor when `pushes_left`
    better moments are still ahead today (see the module doc).

    Parameters
    ----------
    inner
        The policy that serves the point (an experiment's arm, or the surface's policy).
    send
        The id of the `send` action.
    ahead
        The contexts of today's remaining decision points, in time order.
    pushes_left
        Pushes of today's dose not spent yet (at least 1: a point past the dose is not a point).
    floor
        The probability `send` keeps when held back (the surface's uniform floor, ``delta / K``).
    """

    def __init__(
        self,
        inner: Policy,
        *,
        send: str,
        ahead: Sequence[Features],
        pushes_left: int,
        floor: float,
    ) -> None:
        _check_dose(pushes_left, floor)
        super().__init__(inner)
        self.send = send
        self.ahead = list(ahead)
        self.pushes_left = pushes_left
        self.floor = floor

    def pmf(
        self, context: Features, actions: Sequence[Action], action_lines: Sequence[str]
    ) -> list[float]:
        pmf = self.inner.pmf(context, actions, action_lines)
        if len(self.ahead) < self.pushes_left:
            return pmf  # fewer points left than pushes: now is among them whatever they score
        i = next((j for j, action in enumerate(actions) if action.id == self.send), None)
        if i is None:
            raise ValueError(f"`actions` must include {self.send!r}")
        ahead = [self.inner.pmf(later, actions, action_lines)[i] for later in self.ahead]
        if among_best(pmf[i], ahead, self.pushes_left) or pmf[i] <= self.floor:
            return pmf
        held = [0.0 if j == i else p for j, p in enumerate(pmf)]
        rest = sum(held)
        if rest <= 0.0:  # only `send` had probability: the rest goes to the others alike
            return [
                self.floor if j == i else (1.0 - self.floor) / (len(pmf) - 1)
                for j in range(len(pmf))
            ]
        return [self.floor if j == i else p * (1.0 - self.floor) / rest for j, p in enumerate(held)]


class RandomTime(Wrapped):
    """Random-time delivery at the dose: `send` with probability ``pushes_left / points_left``.

    With ``k`` pushes left and ``n`` decision points left today (this one included), sending
    with probability ``k / n`` at each point, and counting down whichever way it goes, draws
    the day's pushes at a uniformly random ``k``-subset of its points: the sequential form of
    drawing ``k`` of ``n`` without replacement (the simulation's random-time baseline, ADR 0014).
    A coin flip at each point (the `random` policy) spends the dose on the day's first points
    instead. The probability is clipped to ``[floor, 1 - floor]`` so both actions stay
    evaluable: with more than ``1 / floor`` points per push left the floor sends a little more
    often than ``k / n``, and with as many pushes as points left `wait` keeps the floor.

    Parameters
    ----------
    inner
        The served random-time policy (logged as it: its name and model key).
    send
        The id of the `send` action.
    points_left
        Today's decision points from this one on (this one included, so at least 1).
    pushes_left
        Pushes of today's dose not spent yet (at least 1).
    floor
        The least probability of either action (the surface's uniform floor, ``delta / K``).
    """

    def __init__(
        self, inner: Policy, *, send: str, points_left: int, pushes_left: int, floor: float
    ) -> None:
        if points_left < 1:
            raise ValueError(f"`points_left` must be at least 1 (got {points_left})")
        _check_dose(pushes_left, floor)
        super().__init__(inner)
        self.send = send
        self.p_send = min(max(pushes_left / points_left, floor), 1.0 - floor)

    def pmf(
        self, context: Features, actions: Sequence[Action], action_lines: Sequence[str]
    ) -> list[float]:
        if len(actions) != 2 or self.send not in (a.id for a in actions):
            raise ValueError(f"`actions` must be {self.send!r} and one other")
        return [self.p_send if a.id == self.send else 1.0 - self.p_send for a in actions]


def at_point(
    policy: Policy, *, send: str, ahead: Sequence[Features], pushes_left: int, floor: float
) -> Policy:
    """What serves a decision point: the random-time rule at the dose (`RandomTime`), any other
    policy paced over `ahead`, the contexts of today's remaining points (`Paced`)."""
    if follows_random_time(policy):
        return RandomTime(
            policy, send=send, points_left=len(ahead) + 1, pushes_left=pushes_left, floor=floor
        )
    return Paced(policy, send=send, ahead=ahead, pushes_left=pushes_left, floor=floor)


def follows_random_time(policy: Policy) -> bool:
    """True for the random-time rule as served (also in LoggingOnly mode, which serves its
    inner pmf under a model key that is never learned)."""
    served = policy.inner if isinstance(policy, LoggingOnly) else policy
    return isinstance(served, rule.Policy) and served.rule == rule.RANDOM_TIME


def _check_dose(pushes_left: int, floor: float) -> None:
    """Refuse a dose already spent or a floor that leaves an action no room (names the argument)."""
    if pushes_left < 1:
        raise ValueError(f"`pushes_left` must be at least 1 (got {pushes_left})")
    if not 0.0 <= floor <= 0.5:
        raise ValueError(f"`floor` must be in [0, 0.5] (got {floor})")
