"""Everything a process holds while it runs, built once at start-up and kept on `app.state`."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from api.settings import Settings
from bandit.bus import EventBus, make_bus
from bandit.decide import Decider
from bandit.hub import ModelHub
from bandit.learner import Learner
from bandit.metrics import BUS_ERRORS
from bandit.policy import Policy
from bandit.settings import LearnerSettings
from bandit.store import Store
from integrations.catalog import load_catalog
from integrations.context import TipSource
from integrations.profiles import People
from policies.registry import Registry
from rewards.mapping import RewardMapping

log = logging.getLogger(__name__)

TIPS = "tips"
PERSONALIZER = "personalizer"


@dataclass
class Services:
    settings: Settings
    learner_settings: LearnerSettings
    store: Store
    people: People
    registry: Registry
    hub: ModelHub
    bus: EventBus
    decider: Decider
    tips: TipSource
    rewards: RewardMapping
    tips_policy: Policy
    personalizer_policy: Policy
    learner: Learner | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def publish(self, kind: str, event_id: str) -> None:
        """Tell the learner; a failure only delays learning (the learner's sweep catches up)."""
        try:
            self.bus.publish("activate" if kind == "activate" else "reward", event_id)
        except Exception:
            BUS_ERRORS.inc()
            log.warning("event bus unavailable; the learner's sweep will pick up %s", event_id)

    def close(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=10)
        self.bus.close()
        self.store.engine.dispose()


def start(settings: Settings, learner_settings: LearnerSettings | None = None) -> Services:
    learner_settings = learner_settings or LearnerSettings()
    store = Store.connect(settings.database)
    store.create_schema()
    registry = Registry()
    embedded = settings.role == "all"
    hub = ModelHub(store, registry.args_for, replay=embedded)
    bus = make_bus(settings.redis_url)
    services = Services(
        settings=settings,
        learner_settings=learner_settings,
        store=store,
        people=People(store.engine),
        registry=registry,
        hub=hub,
        bus=bus,
        decider=Decider(store),
        tips=TipSource(load_catalog(), max_candidates=settings.max_candidates),
        rewards=settings.rewards,
        tips_policy=registry.build(settings.tips_policy, TIPS, hub),
        personalizer_policy=registry.build(settings.personalizer_policy, PERSONALIZER, hub),
    )
    # Load (and in the embedded process, recover) the served models before taking traffic.
    for policy in (services.tips_policy, services.personalizer_policy):
        hub.get(policy.model_key)
    if embedded:
        services.learner = Learner(store, hub, bus, learner_settings)
        thread = threading.Thread(
            target=services.learner.run, args=(services.stop_event,), name="learner", daemon=True
        )
    else:
        thread = threading.Thread(
            target=_refresh_models, args=(services,), name="model-refresh", daemon=True
        )
    thread.start()
    services.threads.append(thread)
    return services


def _refresh_models(services: Services) -> None:
    interval = services.settings.model_refresh_seconds
    while not services.stop_event.wait(interval):
        try:
            refreshed = services.hub.refresh()
            if refreshed:
                log.info("loaded new model versions for %s", ", ".join(refreshed))
        except Exception:
            log.warning("model refresh failed; serving the current versions", exc_info=True)
