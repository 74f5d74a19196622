"""The learner: joins rewards to decisions and teaches each decision's model, exactly once.

Exactly-once comes from the decision log, not from the bus. Every learned decision gets a
learning mark `(learn_seq, learned_reward)` in the database right after the model learned it;
a snapshot records the last mark it contains (`through_seq`). A restarted learner loads the
newest snapshot and replays the marked decisions after it in mark order, then skips every bus
message whose decision already carries a mark. A crash between learning and marking loses only
in-memory state, and the unmarked decision is learned again from the redelivered message.

Aggregation is "earliest": a decision is learned as soon as its first on-time reward arrives
and it is activated; an activated decision whose reward window closes without a reward is
learned with the default reward; a decision never activated is never learned.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import timedelta

from bandit.bus import EventBus
from bandit.events import utcnow
from bandit.hub import ModelHub, learn_example
from bandit.metrics import JOIN_LAG, LEARNED, LEARNER_BATCH, MODEL_VERSION
from bandit.model import LearnExample
from bandit.settings import LearnerSettings
from bandit.store import Learnable, Learned, Snapshot, Store

log = logging.getLogger(__name__)


class Learner:
    def __init__(
        self, store: Store, hub: ModelHub, bus: EventBus, settings: LearnerSettings
    ) -> None:
        self.store = store
        self.hub = hub
        self.bus = bus
        self.settings = settings
        self.seq = store.max_learn_seq()
        self.learned = 0
        self._published: dict[str, int] = {}
        self._last_sweep = 0.0
        self._last_snapshot = time.monotonic()
        self._lock = threading.Lock()
        self.healthy = True

    # one step ---------------------------------------------------------------------------

    def learn_events(self, event_ids: Sequence[str], *, allow_default: bool = False) -> int:
        """Learn the given decisions that are ready; returns how many were learned.

        Ready means activated, not yet learned, and either rewarded on time or, when
        `allow_default`, past its window (then it gets the default reward).
        """
        if not event_ids:
            return 0
        with self._lock, LEARNER_BATCH.time():
            order = {event_id: i for i, event_id in enumerate(event_ids)}
            logged = self.store.learnables(event_ids)
            logged.sort(key=lambda item: order[item.event_id])
            batches: dict[str, list[LearnExample]] = {}
            marks: list[Learned] = []
            now = utcnow()
            for item in logged:
                reward = self._reward_for(item, allow_default)
                if reward is None:
                    continue
                self.seq += 1
                marks.append(Learned(item.event_id, self.seq, reward))
                if item.activated_at is not None:
                    JOIN_LAG.observe(max(0.0, (now - item.activated_at).total_seconds()))
                source = "reward" if item.reward is not None and not item.reward_late else "default"
                LEARNED.labels(item.model_key, source).inc()
                if self.hub.get(item.model_key) is not None:
                    batches.setdefault(item.model_key, []).append(learn_example(item, reward))
            try:
                for model_key, examples in batches.items():
                    model = self.hub.get(model_key)
                    if model is not None:
                        MODEL_VERSION.labels(model_key).set(model.learn(examples))
                self.store.mark_learned(marks, at=now)
            except Exception:
                # The models may hold examples the log does not mark as learned: rebuild them
                # from the log so the retry does not learn those examples twice.
                for model_key in batches:
                    self.hub.forget(model_key)
                self.seq = self.store.max_learn_seq()
                raise
            self.learned += len(marks)
            return len(marks)

    def _reward_for(self, item: Learnable, allow_default: bool) -> float | None:
        if item.learn_seq is not None or item.activated_at is None:
            return None
        if item.reward is not None and not item.reward_late:
            return item.reward
        return self.settings.default_reward if allow_default else None

    def sweep(self) -> int:
        """Close expired reward windows and pick up rewards whose message was lost."""
        now = utcnow()
        window = self.settings.reward_window
        grace = timedelta(seconds=self.settings.sweep_grace_seconds)
        learned = 0
        missed = self.store.rewarded_unlearned(now - window - timedelta(hours=1), 1000)
        learned += self.learn_events(missed)
        expired = self.store.expired_unrewarded(now - window - grace, 1000)
        learned += self.learn_events(expired, allow_default=True)
        return learned

    def publish_snapshots(self, *, force: bool = False) -> int:
        """Save every model whose version moved since its last snapshot."""
        published = 0
        with self._lock:
            for key in self.hub.model_keys():
                model = self.hub.get(key)
                if model is None:
                    continue
                if not force and self._published.get(key) == model.version:
                    continue
                data, version = model.serialize()
                self.store.save_snapshot(
                    Snapshot(key, model.args, version, self.seq, utcnow(), data)
                )
                self.store.prune_snapshots(key)
                self._published[key] = version
                published += 1
        return published

    # the loop ---------------------------------------------------------------------------

    def step(self, block_ms: int = 200) -> int:
        """Read one batch from the bus, learn it, and run the periodic chores."""
        messages = self.bus.read(self.settings.consumer, self.settings.batch_size, block_ms)
        learned = self.learn_events([m.event_id for m in messages])
        self.bus.ack(messages)
        now = time.monotonic()
        if now - self._last_sweep >= self.settings.sweep_seconds:
            self._last_sweep = now
            learned += self.sweep()
        if now - self._last_snapshot >= self.settings.snapshot_seconds:
            self._last_snapshot = now
            self.publish_snapshots()
        return learned

    def run(self, stop: threading.Event) -> None:
        """Learn until `stop` is set; survives database and bus outages by retrying."""
        backoff = 0.5
        while not stop.is_set():
            try:
                self.step()
                self.healthy = True
                backoff = 0.5
            except Exception:
                self.healthy = False
                log.exception("learner step failed; retrying in %.1fs", backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)
        try:
            self.publish_snapshots()
        except Exception:
            log.exception("final snapshot failed; the next start replays from the log")
