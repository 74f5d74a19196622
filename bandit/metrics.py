"""Prometheus metrics of the decision loop. Names are documented in docs/operations.md."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

DECISIONS = Counter("oo_decisions_total", "Decisions logged", ["surface", "policy"])
RECOMMEND_LATENCY = Histogram(
    "oo_recommend_latency_seconds", "Latency of /v1/recommend", buckets=_LATENCY_BUCKETS
)
RANK_LATENCY = Histogram(
    "oo_rank_latency_seconds", "Latency of Personalizer-compatible rank", buckets=_LATENCY_BUCKETS
)
REWARDS = Counter("oo_rewards_total", "Rewards recorded", ["surface", "reaction", "late"])
JOIN_LAG = Histogram(
    "oo_join_lag_seconds",
    "Time from a decision's activation to its being learned",
    buckets=(0.01, 0.1, 0.5, 1, 5, 15, 60, 300, 600, 1200, 3600),
)
MODEL_VERSION = Gauge("oo_model_version", "Examples learned by the served model", ["model"])
LEARNED = Counter("oo_learner_events_total", "Decisions learned", ["model", "source"])
LEARNER_BATCH = Histogram("oo_learner_batch_seconds", "Time to learn one batch")
BUS_ERRORS = Counter("oo_bus_errors_total", "Event-bus publish failures (the sweep recovers)")
