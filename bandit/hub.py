"""Where a process keeps its models, keyed by model key.

The learner (and the embedded all-in-one process) recovers a model as the newest snapshot plus
a replay of everything learned after it, so no learned example is lost or applied twice. An api
process only loads snapshots and refreshes when the learner publishes a newer one.

A serving model can also be replaced from outside the learner (Personalizer's model import and
reset): :meth:`ModelHub.install` makes new bytes the model of every process (ADR 0007).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

from bandit.events import utcnow
from bandit.metrics import MODEL_VERSION
from bandit.model import LearnExample, Model, ModelError
from bandit.model_keys import surface_of
from bandit.store import Learnable, Snapshot, Store

if TYPE_CHECKING:
    from bandit.surface_config import SurfaceConfigs

log = logging.getLogger(__name__)

ArgsFor = Callable[[str], str | None]
"""Maps a model key to the VW arguments of a fresh model, or None if the key is not learnable."""


def learn_example(item: Learnable, reward: float) -> LearnExample:
    return LearnExample(
        lines=item.example,
        chosen_index=item.chosen_index,
        propensity=item.propensity,
        reward=reward,
    )


class ModelHub:
    def __init__(self, store: Store, args_for: ArgsFor, *, replay: bool) -> None:
        self.store = store
        self.args_for = args_for
        self.replay = replay
        self._models: dict[str, Model] = {}
        self._lock = threading.Lock()

    def get(self, model_key: str) -> Model | None:
        model = self._models.get(model_key)
        if model is not None:
            return model
        with self._lock:
            model = self._models.get(model_key)
            if model is None:
                model = self._load(model_key)
                if model is not None:
                    self._models[model_key] = model
                    MODEL_VERSION.labels(model_key).set(model.version)
            return model

    def model_keys(self) -> list[str]:
        return list(self._models)

    def _load(self, model_key: str) -> Model | None:
        args = self.args_for(model_key)
        if args is None:
            return None
        snapshot = self.store.latest_snapshot(model_key)
        model: Model | None = None
        through = 0
        if snapshot is not None:
            try:
                model = Model(snapshot.args, data=snapshot.data, version=snapshot.version)
                through = snapshot.through_seq
            except ModelError as exc:
                # A snapshot whose header the VW allow-list refuses (imported before it existed)
                # is never loaded: the model starts over from the log it still has.
                log.warning(
                    "model %s: snapshot %d not loaded: %s", model_key, snapshot.version, exc
                )
        if model is None:
            model = Model(args)
        if self.replay:
            replayed = 0
            batch: list[LearnExample] = []
            for item in self.store.learned_after(model_key, through):
                reward = item.learned_reward if item.learned_reward is not None else 0.0
                batch.append(learn_example(item, reward))
                if len(batch) >= 1000:
                    model.learn(batch)
                    replayed += len(batch)
                    batch = []
            if batch:
                model.learn(batch)
                replayed += len(batch)
            if replayed:
                log.info("model %s: replayed %d examples after the snapshot", model_key, replayed)
        return model

    def refresh(self) -> list[str]:
        """Load newer snapshots for the models this process serves; returns refreshed keys."""
        latest = self.store.latest_versions()
        refreshed = []
        for key, model in list(self._models.items()):
            if latest.get(key, -1) > model.version:
                snapshot = self.store.latest_snapshot(key)
                if snapshot is None:
                    continue
                try:
                    fresh = Model(snapshot.args, data=snapshot.data, version=snapshot.version)
                except ModelError as exc:
                    log.warning("model %s: snapshot %d not loaded: %s", key, snapshot.version, exc)
                    continue
                with self._lock:
                    self._models[key] = fresh
                MODEL_VERSION.labels(key).set(fresh.version)
                refreshed.append(key)
        return refreshed

    def forget(self, model_key: str) -> None:
        """Drop a model so the next `get` rebuilds it from the log."""
        with self._lock:
            self._models.pop(model_key, None)

    def replace(self, model_key: str, model: Model) -> None:
        with self._lock:
            self._models[model_key] = model
        MODEL_VERSION.labels(model_key).set(model.version)

    def install(
        self,
        model_key: str,
        args: str,
        data: bytes,
        configs: SurfaceConfigs,
        *,
        paused: AbstractContextManager[None] | None = None,
    ) -> int:
        """Make `data` the model of `model_key` in every process, with no example learned twice.

        The new snapshot replaces every older one of the model, covers every learning mark
        issued so far, and has a version above any served one (so api processes load it by
        version). The bump of the surface's model generation in `configs` makes a learner in
        another process rebuild from it and replay only what it learns after; `paused` holds
        this process's learner between batches meanwhile. Returns the new model version.
        """
        with paused or nullcontext():
            current = self.get(model_key)
            latest = self.store.latest_snapshot(model_key)
            version = 1 + max(
                current.version if current is not None else 0,
                latest.version if latest is not None else 0,
            )
            self.store.replace_snapshots(
                Snapshot(model_key, args, version, self.store.max_learn_seq(), utcnow(), data)
            )
            configs.new_model(surface_of(model_key))
            self.forget(model_key)
            self.get(model_key)
        return version
