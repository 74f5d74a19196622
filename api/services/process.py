"""Everything a process holds while it runs, built once at start-up and kept on `app.state`."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import cached_property

from api.auth.principal import Authenticator, LocalAuthenticator
from api.auth.signin import SignInAuthenticator
from api.auth.store import AuthStore
from api.db import prepare
from api.integration_setup import local_folder, make_integrations, open_vault
from api.job_runner import JobRunner
from api.jobstore import JobStore  # shared evaluation / policy-search jobs
from api.services.recommend_reads import RecommendReads
from api.services.surfaces import SURFACES, TIMING, TIPS, surface_configs
from api.settings import Settings
from bandit.apprentice import Imitation
from bandit.bus import EventBus, Message, make_bus
from bandit.decide import Decider
from bandit.errors import DomainError, Kind
from bandit.events import new_event_id
from bandit.hub import ModelHub
from bandit.learner import Learner
from bandit.metrics import BUS_ERRORS
from bandit.policy import Policy
from bandit.private_files import private_folder
from bandit.settings import LearnerSettings
from bandit.store import GroupCommit, Store
from bandit.surface_config import SurfaceConfigs, floor_share  # Personalizer admin (issue 6)
from bandit.surfaces import Surface, Surfaces
from experiments.lifecycle import Experiment, Experiments
from integrations.catalog import load_catalog
from integrations.connections import Integrations  # people's integrations (issue 4)
from integrations.context import TipSource
from integrations.history import HistoryCache  # personal-history features
from integrations.live_signals import LiveSignals  # integration signals (issue 4)
from integrations.personal_data import PersonalData, register_core
from integrations.profiles import People
from integrations.signal_stream import SignalIngest, SignalWorker, make_signal_bus
from integrations.tip_decisions import TipDecisions
from notifier.push import Push  # Web Push delivery (ADR 0012)
from notifier.settings import PushSettings
from notifier.timing import Timing  # the timing surface (ADR 0014)
from notifier.timing_points import TimingPoints
from notifier.vapid import KEY_FILE
from policies.registry import Registry, validate
from policies.serving import serving
from policies.spec import PolicySpec, PolicySpecError
from policies.store import PolicyStore
from rewards.mapping import RewardMapping

log = logging.getLogger(__name__)

Assigned = tuple[Policy, str | None, str | None]
"""The policy that decides, with its experiment and arm (None outside experiments)."""


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
    surfaces: Surfaces
    defaults: dict[str, Policy]
    """The policy each surface serves outside experiments: shipped to it, or its setting's."""
    policies: PolicyStore
    experiments: Experiments
    auth: Authenticator
    learner: Learner | None = None
    event_ids: Callable[[], str] = new_event_id
    """Names the decisions whose caller did not; the id seeds the draw (tests pin it)."""
    stop_event: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    _running: dict[str, Experiment] = field(default_factory=dict)
    _running_at: float = -1.0
    _arm_policies: dict[tuple[str, str, str], Policy] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # signals, profile and consent (issue 4): set by `start`
    signals: SignalIngest = field(init=False)
    personal_data: PersonalData = field(init=False)
    signal_worker: SignalWorker | None = field(init=False, default=None)
    # people's integrations (issue 4): set by `start`
    integrations: Integrations = field(init=False)
    # run-time surface configuration, Personalizer admin (issue 6): set by `start`
    surface_configs: SurfaceConfigs = field(init=False)
    # evaluation and policy-search jobs shared by every api process: set by `start`
    jobs: JobStore = field(init=False)
    runner: JobRunner = field(init=False)
    # the tips surface's personal-history features, cached per person: set by `start`
    history: HistoryCache = field(init=False)
    # Web Push: devices, the outbox, and (in `oo serve`) the sending loop: set by `start`
    push: Push = field(init=False)
    # the tips decision, which the recommend route and the timing surface both make
    tip_decisions: TipDecisions = field(init=False)
    # the timing surface: decision points (run by the notifier loop), opens and visits
    timing: Timing = field(init=False)
    # recommend's reads batched on the event loop, on PostgreSQL (ADR 0020, 0024); None on SQLite
    recommend_reads: RecommendReads | None = None

    def policy_for(self, surface: str, unit: str) -> Assigned:
        """The policy deciding for `unit` on `surface`: its arm's while an experiment runs there.

        The unit is what the surface assigns (its registration's `unit`): the person on the tips
        surface, the event id on the Personalizer surface. Assignment is sticky (a hash of unit
        and salt); each arm learns its own model, keyed `{surface}:{policy}:{experiment}/{arm}`.
        """
        experiment = self.running().get(surface)
        if experiment is None:
            return self.default_policy(surface), None, None
        arm = experiment.assign(unit)
        key = (surface, experiment.name, arm.name)
        policy = self._arm_policies.get(key)
        if policy is None:
            try:
                policy = self.registry.build(
                    arm.policy, surface, self.hub, experiment=experiment.name, arm=arm.name
                )
            except PolicySpecError as exc:  # a stored spec the VW allow-list refuses
                raise PolicyNotServed(
                    f"experiment {experiment.name!r}, arm {arm.name!r}: {exc}"
                ) from None
            self._arm_policies[key] = policy
        return policy, experiment.name, arm.name

    def serving_policy(self, surface: str, unit: str) -> Assigned:
        """`policy_for`, shaped by the surface's configuration: its learning mode and its
        exploration share (`policies.serving`). Experiment arms keep their own exploration."""
        policy, experiment, arm = self.policy_for(surface, unit)
        config = self.surface_configs.get(surface)
        shaped = serving(
            policy,
            surface,
            mode=config.learning_mode,
            exploration=config.exploration if experiment is None else None,
            args=self.registry.args_for(policy.model_key),
        )
        return shaped, experiment, arm

    def default_policy(self, surface: str) -> Policy:
        """The policy `surface` serves outside experiments."""
        return self.defaults[surface]

    def running(self) -> dict[str, Experiment]:
        """Running experiments by surface, from memory.

        The refresh thread re-reads them every `model_refresh_seconds` (so a change made through
        another replica arrives within that), and a change through this process refreshes them
        at once. Only if that thread has fallen far behind does a request read them itself.
        """
        if time.monotonic() - self._running_at > 3 * self.settings.model_refresh_seconds:
            self.refresh_experiments()
        return self._running

    def refresh_experiments(self) -> None:
        """Re-read running experiments and shipped defaults (call after changing them)."""
        with self._lock:
            self._running = self.experiments.running()
            shipped = self.experiments.default_policies()
            for surface in self.surfaces:
                name = shipped.get(surface)
                if name is not None and self.registry.refusal(name) is not None:
                    continue  # logged at start-up; the surface keeps its configured policy
                if name is not None and name != self.default_policy(surface).name:
                    self.defaults[surface] = self.registry.build(name, surface, self.hub)
            self._running_at = time.monotonic()

    def register_policy(self, spec: PolicySpec) -> tuple[PolicySpec, bool]:
        """Register `spec` as the next version of its name; True when a version was created.

        A version with the same kind and arguments is returned as it is (registering is
        idempotent, and the version keeps its model). Otherwise the spec is validated (VW builds
        and predicts with its arguments), stored as the next version and served.
        """
        for existing in self.registry.versions(spec.name):
            if (existing.kind, existing.args) == (spec.kind, spec.args):
                return existing, False
        version = replace(spec, version=self.registry.next_version(spec.name))
        validate(version)
        if not self.policies.insert(version):
            raise PolicyExists(
                f"`name` {spec.name!r} got version {version.version} from another request; retry"
            )
        self.registry.add(version)
        return version, True

    def publish(self, kind: str, event_id: str) -> None:
        """Tell the learner, without waiting: a failure only delays learning (the learner's
        sweep catches up), so nobody waits for it. A bus that waits on the network (Redis) is
        told from one thread, everything queued at once in one pipeline, so a coroutine may
        call this on the event loop."""
        message: Message = ("activate" if kind == "activate" else "reward", event_id)
        if self.bus.blocking:
            self._publisher.submit(message)
        else:
            self._publish([message])

    @cached_property
    def _publisher(self) -> GroupCommit[Message, None]:
        return GroupCommit(self._publish, name="bus-publish")

    def _publish(self, messages: Sequence[Message]) -> list[None]:
        try:
            self.bus.publish_many(messages)
        except Exception:
            BUS_ERRORS.inc(len(messages))
            log.warning(
                "event bus unavailable; the learner's sweep will pick up %d event(s)",
                len(messages),
            )
        return [None] * len(messages)

    async def close_on_loop(self) -> None:
        """Close the running event loop's PostgreSQL connections (recommend's reads, the
        decision and reward logs' batches: ADR 0024) once what is queued on them is sent;
        `close` then stops the rest."""
        if self.recommend_reads is not None:
            await self.recommend_reads.close()
        await self.store.close_on_loop()

    def close(self) -> None:
        self.stop_event.set()
        notifier = self.push.notifier
        if notifier is not None:
            notifier.wake()  # it waits for work on its own event between passes
        for thread in self.threads:
            thread.join(timeout=10)
        if notifier is not None:
            notifier.close()
        self.bus.close()
        self.signals.bus.close()
        self.integrations.close()
        self.store.engine.dispose()


class PolicyExists(PolicySpecError):
    """Another request registered the same version of that name first (`target`: `name`)."""

    kind = Kind.CONFLICT


class PolicyNotServed(DomainError):
    """A request needs a stored policy the VW allow-list refuses (stored before it existed)."""

    kind = Kind.CONFLICT
    code = "PolicyNotServed"

    def __init__(self, message: str) -> None:
        super().__init__(message, target="policy")


def start(
    settings: Settings,
    learner_settings: LearnerSettings | None = None,
    push_settings: PushSettings | None = None,
) -> Services:
    learner_settings = learner_settings or LearnerSettings()
    if settings.database_url is None:  # the embedded default keeps people's data in data_dir
        private_folder(settings.data_dir)
    # The embedded SQLite file is upgraded here; PostgreSQL must be at head already (a process
    # never migrates a database its replicas share): SchemaNotReady names `oo db upgrade`.
    prepare(settings.database)
    store = Store.connect(
        settings.database,
        pool_size=settings.database_pool_size,
        statement_timeout=settings.database_timeout_seconds,
    )
    policy_store = PolicyStore(store.engine)
    registry = Registry(loader=policy_store.get, history=policy_store.versions)
    for spec in policy_store.all():
        registry.add(spec)
    for refused in registry.refused():
        log.warning("policy %r is not served: %s", refused.id, refused.reason)
    experiments = Experiments(
        store.engine,
        SURFACES,
        lambda policy: registry.find(policy) is not None,
        pin_policy=registry.pin,
    )
    shipped = experiments.default_policies()
    embedded = settings.role == "all"
    hub = ModelHub(store, registry.args_for, replay=embedded)
    bus = make_bus(settings.redis_url)
    services = Services(
        settings=settings,
        learner_settings=learner_settings,
        store=store,
        people=People(store),
        registry=registry,
        hub=hub,
        bus=bus,
        decider=Decider(store),
        tips=TipSource(load_catalog(), max_candidates=settings.max_candidates),
        rewards=settings.rewards,
        surfaces=SURFACES,
        defaults={
            surface.name: _surface_policy(registry, hub, surface, shipped, settings)
            for surface in SURFACES.values()
        },
        policies=policy_store,
        experiments=experiments,
        auth=make_authenticator(settings, store),
    )
    services.surface_configs = surface_configs(
        store, learner_settings, refreshed_every=settings.model_refresh_seconds
    )
    services.jobs = JobStore(store.engine)
    services.history = HistoryCache(store, TIPS, services.tips.category)
    services.jobs.fail_abandoned()
    services.runner = JobRunner(services.jobs, services.stop_event)
    services.refresh_experiments()
    _start_signals(services)
    _start_integrations(services)
    push_settings = push_settings or PushSettings()
    services.tip_decisions = TipDecisions(
        people=services.people,
        integrations=services.integrations,
        tips=services.tips,
        history=services.history,
        decider=services.decider,
        serving=services.serving_policy,
        cooldown=timedelta(hours=settings.tip_cooldown_hours),
    )
    _start_push(services, push_settings)
    if not store.is_sqlite:  # SQLite's reads run on the event loop itself (ADR 0020)
        services.recommend_reads = RecommendReads(store, services.tip_decisions, services.timing)
    _register_account(services)
    # Load (and in the embedded process, recover) the served models before taking traffic.
    for policy in services.defaults.values():
        hub.get(policy.model_key)
    if embedded:
        configs = services.surface_configs
        services.learner = Learner(
            store, hub, bus, learner_settings, configs=configs, watchers=[Imitation(configs)]
        )
        thread = threading.Thread(
            target=services.learner.run, args=(services.stop_event,), name="learner", daemon=True
        )
        thread.start()
        services.threads.append(thread)
    refresh = threading.Thread(target=_refresh, args=(services,), name="refresh", daemon=True)
    refresh.start()
    services.threads.append(refresh)
    return services


def _surface_policy(
    registry: Registry,
    hub: ModelHub,
    surface: Surface,
    shipped: dict[str, str],
    settings: Settings,
) -> Policy:
    """The surface's shipped policy, or its configured one (`OO_TIPS_POLICY`,
    `OO_PERSONALIZER_POLICY`, …) where none was shipped or the shipped one is refused.

    Raises
    ------
    ValueError
        When the configured policy is unknown or refused: a settings error naming the variable.
    """
    configured = settings.surface_policy(surface)
    name = shipped.get(surface.name)
    if name is not None:
        refusal = registry.refusal(name)
        if refusal is None:
            return registry.build(name, surface.name, hub)
        log.warning("%s: serving %r instead of the refused %r", surface.name, configured, name)
    try:
        return registry.build(configured, surface.name, hub)
    except PolicySpecError as exc:
        raise ValueError(
            f"`{surface.policy_variable}` names {configured!r}, which cannot serve: {exc}"
        ) from exc


def _refresh(services: Services) -> None:
    """Keep what every request reads in memory: running experiments and shipped defaults, the
    surfaces' configuration, and (in an api process) the newest model versions."""
    interval = services.settings.model_refresh_seconds
    while not services.stop_event.wait(interval):
        try:
            services.refresh_experiments()
            services.surface_configs.refresh(SURFACES)
        except Exception:
            log.warning("configuration refresh failed; serving the cached one", exc_info=True)
        if services.learner is not None:
            continue  # the embedded learner updates the served models itself
        try:
            refreshed = services.hub.refresh()
            if refreshed:
                log.info("loaded new model versions for %s", ", ".join(refreshed))
        except Exception:
            log.warning("model refresh failed; serving the current versions", exc_info=True)


def make_authenticator(settings: Settings, store: Store) -> Authenticator:
    """Local single-user mode until a sign-in provider is configured."""
    if not settings.signin_providers:
        return LocalAuthenticator(settings.personalizer_key)
    return SignInAuthenticator(settings, AuthStore(store.engine))


def _start_signals(services: Services) -> None:
    """Signal ingestion, the personal-data registry, and (where the stream is in-process or
    this is the all-in-one process) the worker that consumes signals and prunes old ones."""
    settings = services.settings
    retention = timedelta(days=settings.signal_retention_days)
    store = services.people.signals
    services.signals = SignalIngest(store, make_signal_bus(settings.redis_url), retention=retention)
    services.personal_data = PersonalData()
    services.personal_data.add_erase_hook("history", services.history.forget)
    register_core(
        services.personal_data,
        people=services.people,
        signals=store,
        tip_title=lambda tip_id: tip.title if (tip := services.tips.tip(tip_id)) else None,
    )
    if settings.role == "all" or settings.redis_url is None:
        worker = SignalWorker(
            store,
            services.signals.bus,
            retention=retention,
            prune_seconds=settings.signal_prune_seconds,
        )
        services.signal_worker = worker
        thread = threading.Thread(
            target=worker.run, args=(services.stop_event,), name="signals", daemon=True
        )
        thread.start()
        services.threads.append(thread)


def _start_integrations(services: Services) -> None:
    """Todoist and Google Calendar for people; DELETE /v1/me revokes their tokens first."""
    services.integrations = make_integrations(services.settings, services.store.engine)
    # Integrations emit signals too (issue 4): completed tasks, calendar changes.
    services.integrations.emit_signals(LiveSignals(services.signals))

    def revoke_tokens(principal: str) -> None:
        services.integrations.forget_person(principal)

    services.personal_data.add_erase_hook("integrations", revoke_tokens)


def _start_push(services: Services, push_settings: PushSettings) -> None:
    """Web Push; `oo serve` sends too, on a thread, where it has a key (a set one, or the
    generated one of the embedded SQLite default). Elsewhere `oo notifier` sends."""
    settings = services.settings
    folder = local_folder(settings)
    services.push = Push(
        services.store.engine,
        push_settings,
        vault_factory=lambda: open_vault(settings),
        local_key_file=None if folder is None else folder / KEY_FILE,
    )
    services.push.register(services.personal_data)
    services.timing = timing(services, push_settings)
    if settings.role == "all" and (folder is not None or push_settings.private_key):
        notifier = services.push.loop(timing=services.timing.run_once)
        thread = threading.Thread(
            target=notifier.run, args=(services.stop_event,), name="notifier", daemon=True
        )
        thread.start()
        services.threads.append(thread)


def timing(services: Services, push_settings: PushSettings) -> Timing:
    """The timing surface over this process's services; the notifier loop runs its passes."""
    points = TimingPoints(services.store.engine)
    services.personal_data.add_export_section(
        "timing",
        "When tips are pushed to you: your interval and daily dose, and each decision point "
        "(send or wait)",
        points.export,
    )
    services.personal_data.add_eraser("timing", points.forget)
    return Timing(
        store=services.store,
        people=services.people,
        integrations=services.integrations,
        history=services.history,
        decider=services.decider,
        serving=services.serving_policy,
        tips=services.tip_decisions,
        push=services.push,
        points=points,
        reward_window=lambda: services.surface_configs.get(TIMING).reward_wait,
        exploration=lambda: floor_share(services.surface_configs.get(TIMING).exploration),
        publish=services.publish,
        push_cost=push_settings.timing_push_cost,
    )


def _register_account(services: Services) -> None:
    """In sign-in mode, the account (identities, sessions) is personal data too."""
    auth = services.auth
    if not isinstance(auth, SignInAuthenticator):
        return
    accounts = auth.store
    services.personal_data.add_export_section(
        "account",
        "Your sign-in account: email, roles, provider identities and sessions (no credentials)",
        accounts.export_person,
    )
    # Last, after the decisions are anonymized: the account goes with everything else.
    services.personal_data.add_eraser("account", accounts.forget_person)
