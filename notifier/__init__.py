"""The notifier: Web Push delivery of tips to people's devices.

A front door beside `api` (it imports `integrations` and `bandit`, never `api`):

- `endpoints`: which URLs a push may be POSTed to (the push-service allow-list, no SSRF);
- `vapid`: the deployment's VAPID key pair (RFC 8292);
- `subscriptions`: people's devices, sealed in the token vault;
- `outbox`: pushes recorded before they are sent, one row per (event id, device);
- `webpush`: one encrypted POST to a push service (RFC 8030, RFC 8291);
- `worker`: the loop that sends what the outbox holds, honouring each push service's answer;
- `process`: `oo notifier`, the loop with /health and /metrics.

The timing surface (when to send a tip) plugs in above the outbox: it decides, has the tips
surface pick the tip, and calls `Push.enqueue` with that decision's event id.
"""
