"""The learner: joins rewards to decisions and teaches each decision's model, exactly once.

Exactly-once comes from the decision log, not from the bus. Every learned decision gets a
learning mark `(learn_seq, learned_reward)` in the database right after the model learned it;
a snapshot records the last mark it contains (`through_seq`). A restarted learner loads the
newest snapshot and replays the marked decisions after it in mark order, then skips every bus
message whose decision already carries a mark. A crash between learning and marking loses only
in-memory state, and the unmarked decision is learned again from the redelivered message.

Aggregation is "earliest" by default: a decision is learned as soon as its first on-time reward
arrives and it is activated; an activated decision whose reward window closes without a reward is
learned with the default reward; a decision never activated is never learned. A surface whose
configuration (`bandit.surface_config`) says "sum" is learned when its window closes, with the sum
of the rewards that arrived in time. The reward window and default reward are per surface too.

The learner learns whatever is logged under a key its hub builds a model for, whatever mode the
surface serves in. Watchers (:class:`Watcher`) see the model just before it learns an example
they asked for; apprentice-mode metrics are one (`bandit.apprentice.Imitation`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Protocol

from bandit.bus import EventBus
from bandit.events import utcnow
from bandit.hub import ModelHub, learn_example
from bandit.metrics import JOIN_LAG, LEARNED, LEARNER_BATCH, MODEL_VERSION
from bandit.model import LearnExample, Model
from bandit.model_keys import surface_of
from bandit.settings import LearnerSettings
from bandit.store import Learnable, Learned, Snapshot, Store
from bandit.surface_config import SurfaceConfig, SurfaceConfigs

log = logging.getLogger(__name__)

RETENTION_CHECK_SECONDS = 600.0
"""How often decisions past their surface's log retention are deleted."""


class Watcher(Protocol):
    """Sees a model just before it learns an example the watcher asked for."""

    def wants(self, item: Learnable) -> bool:
        """Whether to be shown `item`'s example before its model learns it."""
        ...

    def before_learning(self, model_key: str, model: Model, example: LearnExample) -> None: ...

    def committed(self, at: datetime) -> None:
        """The batch shown since the last call is durably marked learned."""
        ...

    def rolled_back(self) -> None:
        """The batch shown since the last call was not marked (it will be learned again)."""
        ...


class Learner:
    def __init__(
        self,
        store: Store,
        hub: ModelHub,
        bus: EventBus,
        settings: LearnerSettings,
        configs: SurfaceConfigs | None = None,
        watchers: Sequence[Watcher] = (),
    ) -> None:
        self.store = store
        self.hub = hub
        self.bus = bus
        self.settings = settings
        self.configs = configs
        self.watchers = tuple(watchers)
        # The model generation of each surface this learner's models come from (a surface
        # without a configuration row is at generation 0).
        self._generations: dict[str, int] = (
            {s: generation for s, (_, generation) in configs.configured().items()}
            if configs is not None
            else {}
        )
        self.seq = store.max_learn_seq()
        self.learned = 0
        self._published: dict[str, int] = {}
        self._last_sweep = 0.0
        self._last_snapshot = time.monotonic()
        self._last_prune = time.monotonic()
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
            watched: dict[str, set[int]] = {}
            marks: list[Learned] = []
            counts: Counter[tuple[str, str]] = Counter()  # counted here, reported once
            now = utcnow()
            for item in logged:
                config = self._config(surface_of(item.model_key))
                reward = self._reward_for(item, allow_default, config)
                if reward is None:
                    continue
                self.seq += 1
                marks.append(Learned(item.event_id, self.seq, reward))
                if item.activated_at is not None:
                    JOIN_LAG.observe(max(0.0, (now - item.activated_at).total_seconds()))
                source = "reward" if item.reward is not None and not item.reward_late else "default"
                counts[item.model_key, source] += 1
                if self.hub.get(item.model_key) is not None:
                    examples = batches.setdefault(item.model_key, [])
                    if any(watcher.wants(item) for watcher in self.watchers):
                        watched.setdefault(item.model_key, set()).add(len(examples))
                    examples.append(learn_example(item, reward))
            try:
                for model_key, examples in batches.items():
                    model = self.hub.get(model_key)
                    if model is not None:
                        self._learn(model_key, model, examples, watched.get(model_key, set()))
                self.store.mark_learned(marks, at=now)
            except Exception:
                # The models may hold examples the log does not mark as learned: rebuild them
                # from the log so the retry does not learn those examples twice.
                for model_key in batches:
                    self.hub.forget(model_key)
                self.seq = self.store.max_learn_seq()
                for watcher in self.watchers:
                    watcher.rolled_back()
                raise
            self.learned += len(marks)
            for (model_key, source), n in counts.items():
                LEARNED.labels(model_key, source).inc(n)
            for watcher in self.watchers:
                watcher.committed(now)
        return len(marks)

    def _learn(
        self, model_key: str, model: Model, examples: list[LearnExample], watched: set[int]
    ) -> None:
        """Learn `examples` in order, showing the watched ones to the watchers first."""
        begin = 0
        for i in sorted(watched):
            if begin < i:
                model.learn(examples[begin:i])
            for watcher in self.watchers:
                watcher.before_learning(model_key, model, examples[i])
            model.learn([examples[i]])
            begin = i + 1
        if begin < len(examples):
            model.learn(examples[begin:])
        MODEL_VERSION.labels(model_key).set(model.version)

    def _reward_for(
        self, item: Learnable, allow_default: bool, config: SurfaceConfig
    ) -> float | None:
        if item.learn_seq is not None or item.activated_at is None:
            return None
        on_time = item.reward is not None and not item.reward_late
        if config.reward_aggregation == "sum" and not allow_default:
            return None  # the sum is final only when the window closes
        if on_time:
            return item.reward
        return config.default_reward if allow_default else None

    def _defaults(self) -> SurfaceConfig:
        return SurfaceConfig(self.settings.reward_window, self.settings.default_reward)

    def _config(self, surface: str) -> SurfaceConfig:
        if self.configs is None:
            return self._defaults()
        return self.configs.get(surface)

    def sweep(self) -> int:
        """Close expired reward windows and pick up rewards whose message was lost.

        Each configured surface closes its windows with its own reward wait time; surfaces
        that sum rewards are learned only when their window closes.
        """
        now = utcnow()
        grace = timedelta(seconds=self.settings.sweep_grace_seconds)
        configured = self._sync_generations()
        summing = [s for s, c in configured.items() if c.reward_aggregation == "sum"]
        longest = max([self.settings.reward_window, *(c.reward_wait for c in configured.values())])
        learned = 0
        missed = self.store.rewarded_unlearned(
            now - longest - timedelta(hours=1), 1000, exclude=summing
        )
        learned += self.learn_events(missed)
        for surface, config in configured.items():
            expired = self.store.expired_unrewarded(
                now - config.reward_wait - grace, 1000, surfaces=[surface]
            )
            learned += self.learn_events(expired, allow_default=True)
        expired = self.store.expired_unrewarded(
            now - self.settings.reward_window - grace, 1000, exclude=list(configured)
        )
        learned += self.learn_events(expired, allow_default=True)
        return learned

    def prune_logs(self) -> int:
        """Delete decisions older than their surface's log retention (when it has one).

        Decisions still inside their reward window, and decisions a model still needs to be
        rebuilt (learned after its newest snapshot), are kept. Returns how many were deleted.
        """
        if self.configs is None:
            return 0
        now = utcnow()
        deleted = 0
        for surface, (config, _) in self.configs.configured().items():
            if config.log_retention_days < 1:
                continue
            age = max(timedelta(days=config.log_retention_days), config.reward_wait)
            before = now - age - timedelta(seconds=self.settings.sweep_grace_seconds)
            keep_after = self.store.needed_marks(
                surface, lambda key: self.hub.args_for(key) is not None
            )
            deleted += self.store.delete_logs(surface, keep_after, before=before)
        if deleted:
            log.info("deleted %d decisions past their log retention", deleted)
        return deleted

    def _sync_generations(self) -> dict[str, SurfaceConfig]:
        """The configured surfaces; rebuild the models of any whose model was replaced by
        another process (imported or reset) since this learner last looked."""
        if self.configs is None:
            return {}
        configured = self.configs.configured()
        for surface, generation in configured.items():
            if self._generations.get(surface, 0) != generation[1]:
                with self._lock:
                    for key in self.hub.model_keys():
                        if surface_of(key) == surface:
                            self.hub.forget(key)
                            self._published.pop(key, None)
                            self.hub.get(key)  # the newest snapshot + the marks after it
                    self._generations[surface] = generation[1]
                log.info("the %s model was replaced; rebuilt from its newest snapshot", surface)
        return {surface: pair[0] for surface, pair in configured.items()}

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Hold the learner between batches (to replace a model it serves)."""
        with self._lock:
            yield

    def publish_snapshots(self, *, force: bool = False) -> int:
        """Save every model whose version moved since its last snapshot."""
        published = 0
        # A model replaced by another process must not be overwritten by the old lineage.
        self._sync_generations()
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
        if now - self._last_prune >= RETENTION_CHECK_SECONDS:
            self._last_prune = now
            self.publish_snapshots()  # what the snapshots cover can be deleted
            self.prune_logs()
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
