"""Prometheus metrics of Web Push delivery. Names are documented in docs/operations.md."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

DECISION_POINTS = Counter(
    "oo_push_decision_points_total",
    "Decision points of the timing surface, by outcome (send, wait, failed)",
    ["outcome"],
)
SENDS = Counter(
    "oo_push_sends_total",
    "POSTs to push services, by answer: the HTTP status, `error` (no answer) or `refused` "
    "(the endpoint or its address failed the allow-list)",
    ["status"],
)
DELIVERIES = Counter(
    "oo_push_deliveries_total",
    "Deliveries settled, by outcome: sent, retry, gone, failed, expired",
    ["outcome"],
)
OPENS = Counter("oo_push_opens_total", "Pushes opened by their person (first open of each)")
OUTBOX_DUE = Gauge("oo_push_outbox_due", "Deliveries due or being sent, as the last pass saw")
