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
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

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

MISSED_PAGE = 1000
"""Rewards with a lost message read at a time (`Learner.recover_missed`)."""

RETENTION_CHECK_SECONDS = 600.0
"""How often decisions past their surface's log retention are deleted."""

PIPELINE_CHUNK = 512
"""Decisions per chunk when a batch is learned while its database work runs beside it.
Smaller chunks hide more of the reads and commits behind learning but commit more often."""

T = TypeVar("T")


class _Executor(Protocol):
    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]: ...


class _Serial:
    """Runs each call at once, in the caller's thread: a one-chunk batch needs no I/O thread."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        done: Future[T] = Future()
        try:
            done.set_result(fn(*args, **kwargs))
        except Exception as error:
            done.set_exception(error)
        return done


class _NotMarked(RuntimeError):
    """A chunk's marks were not written because an earlier chunk's failed."""


@dataclass
class _Chunk:
    """One chunk's learning marks, each model's examples, and what the watchers asked for."""

    marks: list[Learned] = field(default_factory=list)
    batches: dict[str, list[LearnExample]] = field(default_factory=dict)
    watched: dict[str, set[int]] = field(default_factory=dict)
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)


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
        self._last_sweep = -math.inf  # the first step sweeps and recovers, whatever the clock
        self._last_recovery = -math.inf
        self._last_snapshot = time.monotonic()
        self._last_prune = time.monotonic()
        self._lock = threading.Lock()
        self.healthy = True

    # one step ---------------------------------------------------------------------------

    def learn_events(self, event_ids: Sequence[str], *, allow_default: bool = False) -> int:
        """Learn the given decisions that are ready; returns how many were learned.

        Ready means activated, not yet learned, and either rewarded on time or, when
        `allow_default`, past its window (then it gets the default reward).

        A batch longer than `PIPELINE_CHUNK` is learned in chunks whose database work overlaps
        the learning: the next chunk is read, and the previous chunk's marks committed, by one
        I/O thread while the models learn this chunk. The models learn the same examples in the
        same order as in one pass, and the call returns only when every mark is committed. If a
        commit fails, the chunks committed before it stay learned (their marks are durable) and
        every model the call touched is rebuilt from the log, as a failed one-pass batch is.
        """
        ids = list(dict.fromkeys(event_ids))  # a repeated id is one decision
        if not ids:
            return 0
        chunks = [ids[i : i + PIPELINE_CHUNK] for i in range(0, len(ids), PIPELINE_CHUNK)]
        with self._lock, LEARNER_BATCH.time():
            now = utcnow()
            if len(chunks) == 1:
                return self._learn_chunks(chunks, allow_default, now, _Serial())
            with ThreadPoolExecutor(1, thread_name_prefix="learner-io") as io:
                return self._learn_chunks(chunks, allow_default, now, io)

    def _learn_chunks(
        self, chunks: list[list[str]], allow_default: bool, now: datetime, io: _Executor
    ) -> int:
        touched: set[str] = set()
        pending: list[tuple[Future[None], _Chunk]] = []
        learned = 0
        broken = threading.Event()

        def commit(marks: list[Learned]) -> None:
            """Mark a chunk learned, unless an earlier chunk's marks failed: the log then never
            holds a later chunk's marks without an earlier one's."""
            if broken.is_set():
                raise _NotMarked("an earlier chunk of this batch was not marked learned")
            try:
                self.store.mark_learned(marks, at=now)
            except Exception:
                broken.set()
                raise

        def settle() -> int:
            """Wait for the submitted marks; count and report the chunks they make durable."""
            settled = 0
            while pending:
                marked, chunk = pending.pop(0)
                marked.result()
                settled += len(chunk.marks)
                self.learned += len(chunk.marks)
                for (model_key, source), n in chunk.counts.items():
                    LEARNED.labels(model_key, source).inc(n)
            for watcher in self.watchers:
                watcher.committed(now)
            return settled

        try:
            reading = io.submit(self.store.learnables, chunks[0])
            for i, ids in enumerate(chunks):
                logged = reading.result()
                if i + 1 < len(chunks):
                    reading = io.submit(self.store.learnables, chunks[i + 1])
                chunk = self._prepare(ids, logged, allow_default, now)
                if broken.is_set() or (chunk.watched and pending):
                    # Settling raises a failed commit's error, so nothing more is learned in
                    # vain; and watchers are told what is durable before they see more, so
                    # their counts follow the marks exactly, whichever commit fails.
                    learned += settle()
                for model_key, examples in chunk.batches.items():
                    model = self.hub.get(model_key)
                    if model is not None:
                        touched.add(model_key)
                        self._learn(model_key, model, examples, chunk.watched.get(model_key, set()))
                pending.append((io.submit(commit, chunk.marks), chunk))
            learned += settle()
        except Exception:
            # Nothing may still be writing when the marks are counted again.
            wait([marked for marked, _ in pending])
            # The models may hold examples the log does not mark as learned: rebuild them
            # from the log so the retry does not learn those examples twice.
            for model_key in touched:
                self.hub.forget(model_key)
            self.seq = self.store.max_learn_seq()
            for watcher in self.watchers:
                watcher.rolled_back()
            raise
        return learned

    def _prepare(
        self, ids: list[str], logged: list[Learnable], allow_default: bool, now: datetime
    ) -> _Chunk:
        """Issue the marks of a chunk's ready decisions, in the order they were given, and
        build each model's examples."""
        order = {event_id: i for i, event_id in enumerate(ids)}
        logged.sort(key=lambda item: order[item.event_id])
        chunk = _Chunk()
        for item in logged:
            config = self._config(surface_of(item.model_key))
            reward = self._reward_for(item, allow_default, config)
            if reward is None:
                continue
            self.seq += 1
            chunk.marks.append(Learned(item.event_id, self.seq, reward))
            if item.activated_at is not None:
                JOIN_LAG.observe(max(0.0, (now - item.activated_at).total_seconds()))
            source = "reward" if item.reward is not None and not item.reward_late else "default"
            chunk.counts[item.model_key, source] += 1
            if self.hub.get(item.model_key) is not None:
                examples = chunk.batches.setdefault(item.model_key, [])
                if any(watcher.wants(item) for watcher in self.watchers):
                    chunk.watched.setdefault(item.model_key, set()).add(len(examples))
                examples.append(learn_example(item, reward))
        return chunk

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
        """Pick up rewards whose message was lost, then close expired reward windows."""
        return self.recover_missed() + self.close_windows()

    def recover_missed(self) -> int:
        """Learn the on-time rewards whose bus message was lost (a crash between the reward's
        commit and its publish, a Redis outage). It reads every decision still waiting, so the
        loop runs it every `missed_seconds`, not every sweep: a lost message is rare, and
        waiting a little longer to be learned costs it nothing. A backlog (after an outage) is
        learned in one call, page after page, while pages come back full and get learned."""
        configured = self._sync_generations()
        summing = [s for s, c in configured.items() if c.reward_aggregation == "sum"]
        longest = max([self.settings.reward_window, *(c.reward_wait for c in configured.values())])
        since = utcnow() - longest - timedelta(hours=1)
        learned = 0
        while True:
            missed = self.store.rewarded_unlearned(since, MISSED_PAGE, exclude=summing)
            page = self.learn_events(missed)
            learned += page
            if len(missed) < MISSED_PAGE or page == 0:
                return learned

    def close_windows(self) -> int:
        """Learn the decisions whose reward window closed, with their reward or the default.

        Each configured surface closes its windows with its own reward wait time; surfaces
        that sum rewards are learned only when their window closes.
        """
        now = utcnow()
        grace = timedelta(seconds=self.settings.sweep_grace_seconds)
        configured = self._sync_generations()
        learned = 0
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
        if now - self._last_recovery >= self.settings.missed_seconds:
            self._last_recovery = now
            learned += self.recover_missed()
        if now - self._last_sweep >= self.settings.sweep_seconds:
            self._last_sweep = now
            learned += self.close_windows()
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
