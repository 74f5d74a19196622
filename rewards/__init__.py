"""Rewards: where a reward comes from, and what the logged rewards say about other policies.

- `mapping`: a person's reaction → a reward (configuration).
- `estimators`: counterfactual estimators and their intervals, one algorithm per module,
  streaming (`add`, `add_arrays`, `+`). Pure math over arrays (numpy, scipy): no VW, no store,
  no I/O, so any package can use them and they are tested as math.
- `ope`: off-policy evaluation over the decision log — targets, DR reward models, evaluation
  runs, policy search, feature importance — built on `estimators` and on `bandit`'s VW model.
- `logs`: the decision log's file formats, DSJSON (export and import) and Parquet.
"""
