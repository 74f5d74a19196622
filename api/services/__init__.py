"""The service layer: what the routes and the `oo` command line both call.

Routes stay thin (read the request, call a service, shape the answer); commands do the same
for a terminal. A service never imports a route, no route imports another route, and a command
imports services, never routes (tests/test_import_rules.py). Services raise domain errors
(`bandit.errors.DomainError`); `api.errors` answers them over HTTP, the commands in one line.

- `process`: everything one process holds while it runs (`Services`, built once by `start`):
  the decision log, the policy registry and model hub, the policy each surface serves, the
  experiments, the jobs, people's data and integrations.
- `surfaces`: the surfaces the api serves, registered once (`bandit.surfaces`).
- `experiments`, `policies`: the operations of `/v1/experiments` and `oo experiments`, and of
  `/v1/policies` and the analysis page.
- `evaluations`, `policy_searches`: counterfactual evaluations and policy searches as
  background jobs on the process's job runner (`api.job_runner`), and a candidate's promotion.
"""
