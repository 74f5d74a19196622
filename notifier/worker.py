"""The notifier's loop: send what the outbox holds and act on each push service's answer.

- 201 (any 2xx): sent; the device's last success is noted.
- 404, 410: the subscription has ended: the device is removed, its open pushes closed.
- 413: sent again at once with the title alone (shortened); a second 413 fails it.
- 429, 5xx, no answer: tried again after `Retry-After` or the backoff, whichever is later,
  until the push's TTL or `OO_PUSH_MAX_ATTEMPTS` runs out.
- other 4xx, 3xx: failed (a 401/403 usually means the VAPID key is not the one the browser
  subscribed with).
- endpoint refused: the allow-list no longer admits it: the device is removed.
- address refused: its host resolves to a private address now: this push fails, the device
  stays.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta

from bandit.events import utcnow
from notifier.endpoints import EndpointRefused
from notifier.metrics import DELIVERIES, OUTBOX_DUE, SENDS
from notifier.outbox import Claim, Outbox, encode, trimmed
from notifier.settings import PushSettings
from notifier.tables import EXPIRED, FAILED, GONE
from notifier.webpush import AddressRefused, Answer, WebPushSender

log = logging.getLogger(__name__)

BATCH = 32
SENDERS = 4
FIRST_BACKOFF_SECONDS = 5.0
LAST_BACKOFF_SECONDS = 3600.0
KEEP_DAYS = 30
"""Closed pushes are forgotten after this long (the opens the timing step learns from are
read well within it)."""
PRUNE_SECONDS = 3600.0


TimingPass = Callable[[], object]
"""One pass over the timing surface's due decision points (`notifier.timing.Timing`)."""


def backoff(attempts: int) -> float:
    """Seconds before attempt `attempts + 1`: 5 s doubling per attempt, at most an hour."""
    return float(min(LAST_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** max(0, attempts - 1)))


class Notifier:
    def __init__(
        self,
        outbox: Outbox,
        sender: WebPushSender,
        settings: PushSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
        timing: TimingPass | None = None,
    ) -> None:
        self.outbox = outbox
        self.timing = timing
        self.sender = sender
        self.settings = settings
        self.clock = clock
        self.healthy = True
        self.passes = 0
        self._wake = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=SENDERS, thread_name_prefix="push")
        self._pruned_at = float("-inf")
        self._timed_at = time.monotonic()  # the first pass one interval after start

    def wake(self) -> None:
        """Something was enqueued: look now rather than at the next poll."""
        self._wake.set()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.sender.close()

    def run(self, stop: threading.Event) -> None:
        self.outbox.recover()
        while not stop.is_set():
            try:
                busy = self.run_once() == BATCH
                self.healthy = True
            except Exception:
                self.healthy = False
                busy = False
                log.exception("push: a pass over the outbox failed; trying again")
            if time.monotonic() - self._pruned_at > PRUNE_SECONDS:
                self._prune()
            if (
                self.timing is not None
                and time.monotonic() - self._timed_at >= self.settings.timing_poll_seconds
            ):
                self._decide()
            if not busy:
                self._wake.wait(self.settings.push_poll_seconds)
                self._wake.clear()

    def run_once(self) -> int:
        """Claim due pushes and send them; how many were claimed."""
        lease = timedelta(seconds=self.settings.push_lease_seconds)
        claims, settled = self.outbox.claim(limit=BATCH, lease=lease)
        for state, count in settled.states.items():
            DELIVERIES.labels(state).inc(count)
        OUTBOX_DUE.set(len(claims))
        for future in [self._pool.submit(self.deliver, claim) for claim in claims]:
            future.result()
        self.passes += 1
        return len(claims)

    def deliver(self, claim: Claim) -> str:
        """Send one push and settle its delivery; the outcome (sent, retry, gone, failed...)."""
        try:
            answer = self._post(claim)
            if answer.status == 413 and not claim.trimmed:
                self.outbox.mark_trimmed(claim)
                claim = _trimmed(claim)
                answer = self._post(claim)
        except AddressRefused as exc:
            SENDS.labels("refused").inc()
            log.warning("push: %s not sent to %s: %s", claim.event_id, claim.subscription_id, exc)
            return self._settle(claim, FAILED, None, f"address refused: {exc}")
        except EndpointRefused as exc:
            SENDS.labels("refused").inc()
            log.warning("push: device %s refused by the allow-list: %s", claim.subscription_id, exc)
            outcome = self._settle(claim, GONE, None, f"endpoint refused: {exc}")
            self.outbox.subscriptions.remove(claim.subscription_id)
            return outcome
        return self._act(claim, answer)

    def _post(self, claim: Claim) -> Answer:
        answer = self.sender.send(
            claim.subscription,
            claim.body(),
            ttl=claim.ttl(self.clock()),
            urgency=claim.urgency,
            topic=claim.topic,
        )
        SENDS.labels(str(answer.status) if answer.status is not None else "error").inc()
        return answer

    def _act(self, claim: Claim, answer: Answer) -> str:
        status = answer.status
        if status is not None and 200 <= status < 300:
            self.outbox.sent(claim, status=status)
            DELIVERIES.labels("sent").inc()
            return "sent"
        if status in (404, 410):
            # Settled first: removing the device closes its open deliveries, this one included.
            outcome = self._settle(claim, GONE, status, answer.error or "subscription gone")
            self.outbox.subscriptions.remove(claim.subscription_id)
            return outcome
        if status is None or status == 429 or status >= 500:
            return self._retry(claim, answer)
        if status in (401, 403):
            log.error(
                "push: %s refused our VAPID token (%s); is OO_VAPID_PRIVATE_KEY the key the "
                "browsers subscribed with?",
                claim.subscription_id,
                status,
            )
        return self._settle(claim, FAILED, status, answer.error or f"status {status}")

    def _retry(self, claim: Claim, answer: Answer) -> str:
        now = self.clock()
        wait = max(answer.retry_after or 0.0, backoff(claim.attempts))
        at = now + timedelta(seconds=wait)
        error = answer.error or f"status {answer.status}"
        if claim.attempts >= self.settings.push_max_attempts:
            return self._settle(
                claim, FAILED, answer.status, f"gave up after {claim.attempts} attempts: {error}"
            )
        if at >= claim.expires_at:
            return self._settle(claim, EXPIRED, answer.status, f"TTL runs out first: {error}")
        self.outbox.retry(claim, at=at, status=answer.status, error=error)
        DELIVERIES.labels("retry").inc()
        return "retry"

    def _settle(self, claim: Claim, state: str, status: int | None, error: str) -> str:
        self.outbox.settle(claim, state, status=status, error=error)
        DELIVERIES.labels(state).inc()
        return state

    def _decide(self) -> None:
        """The timing surface's due decision points; a push it enqueues is sent next pass."""
        self._timed_at = time.monotonic()
        if self.timing is None:
            return
        try:
            self.timing()
        except Exception:
            self.healthy = False
            log.exception("timing: a pass over the decision points failed; trying again")

    def _prune(self) -> None:
        self._pruned_at = time.monotonic()
        try:
            pruned = self.outbox.prune(self.clock() - timedelta(days=KEEP_DAYS))
        except Exception:
            log.warning("push: pruning old pushes failed", exc_info=True)
            return
        if pruned:
            log.info("push: forgot %d pushes older than %d days", pruned, KEEP_DAYS)


def _trimmed(claim: Claim) -> Claim:
    size = len(encode(claim.payload))
    log.info("push: %s was too large (%d bytes); sending the title alone", claim.event_id, size)
    return replace(claim, payload=trimmed(claim.payload), trimmed=True)
