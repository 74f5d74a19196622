"""Off-policy (counterfactual) evaluation over logged decisions: how would another policy have done?

- `logged`: logged events, their columns (`Batch`) and the window a run reads (`Log`: the
  decision log, a DSJSON file, any source of events), with its summary.
- `targets`: policies under evaluation — online, baseline, random, VW specs by progressive
  replay.
- `reward_models`: DR's reward model (running action means, or a VW regressor).
- `runs`: an evaluation run — estimators, diagnostics, reward over time; `results`: what it
  returns, and the auto-optimize verdict.
- `grid`, `search`: policy search — the grid of VW configurations, the budgeted search.
- `importance`: feature importance by leave-one-namespace-out replay.
- `errors`: why a run does not finish.

The estimators themselves are `rewards.estimators`; every VW model is a `bandit.model.Model`,
built through the VW allow-list.
"""
