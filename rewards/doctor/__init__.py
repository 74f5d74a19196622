"""Is it learning? A checkup of a surface's decision log (`GET /v1/diagnostics`, `oo doctor`).

People who ran Personalizer kept asking why its probabilities did not change. The usual causes
show in the log: identifiers or timestamps used as features, rewards that never arrive (or
arrive late), a learner that stopped, exploration left at zero. `diagnose` reads one window of
the log in bounded work and says which, naming the namespace and feature at fault and what to
do; docs/diagnostics.md explains each warning.

- `checkup`: `diagnose`, the counts and the warnings;
- `features`: the feature checks over the logged VW examples;
- `report`: the records it returns.
"""

from rewards.doctor.checkup import DEFAULT_SAMPLE, diagnose
from rewards.doctor.report import Diagnosis, Finding, ModelStatus, ValueEstimate

__all__ = ["DEFAULT_SAMPLE", "Diagnosis", "Finding", "ModelStatus", "ValueEstimate", "diagnose"]
