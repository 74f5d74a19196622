"""Counterfactual (off-policy) estimators: how would a policy that never ran have done?

Every logged decision carries the logged propensity of the chosen action ``p_log``, its
``reward`` and, for the policy under evaluation, ``p_target`` — the target's probability of that
same action; model-based estimators also take the reward model's prediction ``r_hat`` for the
logged action and its value ``v_hat = Σ_a π_target(a|x) r̂(x, a)`` of the target at the context.

One algorithm per module, each with a class named ``Estimator``:

==================  ==============================  =====================================
module              estimate                        intervals (``interval(method=...)``)
==================  ==============================  =====================================
:mod:`.ips`         Horvitz-Thompson IPS            gaussian, bernstein, cressie_read
:mod:`.clipped_ips` IPS, weights capped at ``clip`` gaussian, bernstein
:mod:`.snips`       self-normalized IPS             gaussian, cressie_read
:mod:`.dm`          direct method (model only)      gaussian, bernstein
:mod:`.dr`          doubly robust                   gaussian, bernstein
:mod:`.sndr`        self-normalized DR              gaussian
:mod:`.switch_dr`   DR, DM above weight ``tau``     gaussian, bernstein
:mod:`.dr_os`       DR with weight shrinkage ``λ``  gaussian, bernstein
==================  ==============================  =====================================

Every estimator streams and merges::

    from rewards.estimators import snips

    est = snips.Estimator(reward_range=(0.0, 1.0))
    est.add(p_log=0.2, reward=1.0, p_target=0.6)             # one event
    est.add_arrays(p_log_batch, reward_batch, p_target_batch)  # a batch, shape (n,) each
    total = est + other_shard_estimator                       # = the estimator over both shards
    total.get()                                               # point estimate
    total.interval(alpha=0.05, method="cressie_read")         # Interval(low, high)
    total.estimate()                                          # Estimate(value, ci, n, ...)

Generic code can address inputs by name (``est.inputs`` lists them in order)::

    batch = {"p_log": p_log_batch, "reward": reward_batch, "p_target": p_target_batch,
             "r_hat": r_hat_batch, "v_hat": v_hat_batch}
    for est in (ips.Estimator(), dr.Estimator()):
        est.add_batch(batch)                                  # extra keys are ignored
        est.bootstrap_interval(batch, n_resamples=200, rng=7)  # needs the events themselves

Interval algorithms live in :mod:`.gaussian`, :mod:`.bernstein`, :mod:`.cressie_read` and
:mod:`.bootstrap`; overlap and weight diagnostics in :mod:`.diagnostics`; result records in
:mod:`.results`; the shared state in :mod:`.base`.
"""

from rewards.estimators import (
    base,
    bernstein,
    bootstrap,
    clipped_ips,
    cressie_read,
    diagnostics,
    dm,
    dr,
    dr_os,
    gaussian,
    ips,
    sndr,
    snips,
    switch_dr,
)
from rewards.estimators.results import Estimate, Interval, IntervalMethod, WeightSummary

__all__ = [
    "Estimate",
    "Interval",
    "IntervalMethod",
    "WeightSummary",
    "base",
    "bernstein",
    "bootstrap",
    "clipped_ips",
    "cressie_read",
    "diagnostics",
    "dm",
    "dr",
    "dr_os",
    "gaussian",
    "ips",
    "sndr",
    "snips",
    "switch_dr",
]
