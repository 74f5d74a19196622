"""The Personalizer surface's administration: service configuration, policy, model and logs.

Routes (`api.personalizer.admin`) only call this; a CLI can too. The loop's settings live in
`bandit.surface_config` (every api worker and the learner apply them), the other fields in
`api.personalizer.config`, the policy in the registry and the surface's default policy. Model
import and reset replace the surface model's snapshots and bump its generation
(`bandit.hub.ModelHub.install`), so the learner rebuilds from the new model without learning
any example twice (ADR 0001, ADR 0007).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from api.errors import BadRequest, NotFound
from api.personalizer.config import PersonalizerConfig
from api.personalizer.errors import InvalidConfiguration, InvalidPolicy
from api.personalizer.schemas import (
    ApprenticeModeBatch,
    ApprenticeModeMetrics,
    DateRange,
    LogsProperties,
    ModelProperties,
    PolicyContract,
    ServiceConfigurationPublic,
    ServiceConfigurationUpdate,
)
from api.personalizer.wire import (
    WireError,
    format_duration,
    from_config_error,
    parse_duration,
)
from api.services.process import Services
from api.services.surfaces import PERSONALIZER
from bandit.apprentice import ApprenticeCounts
from bandit.events import utcnow
from bandit.model import Model, ModelError
from bandit.surface_config import DEFAULT_EXPLORATION, ConfigError, SurfaceConfig
from policies.registry import validate
from policies.serving import epsilon_of, is_epsilon_greedy, with_epsilon, without_epsilon
from policies.spec import PolicySpec, PolicySpecError

POLICY_NAME = "personalizer"
"""The registry name under which policies set through this surface are versioned."""
VW_DEFAULT_EPSILON = 0.05


class Personalizer:
    """The Personalizer surface's administration over one process's services."""

    def __init__(self, services: Services) -> None:
        self.services = services

    # --- what serves ---------------------------------------------------------------------------

    def settings(self) -> SurfaceConfig:
        """The loop's settings of the surface, read now."""
        return self.services.surface_configs.read(PERSONALIZER)[0]

    def stored(self) -> PersonalizerConfig:
        """What this API keeps beside the loop's settings, as oO acts on it (a refused setting
        stored by an older version reads as off: `PersonalizerConfig.effective`)."""
        stored = PersonalizerConfig.from_json(self.services.surface_configs.extra(PERSONALIZER))
        return stored.effective()

    def stored_as_is(self) -> PersonalizerConfig:
        """What the configuration row holds, refused settings included."""
        return PersonalizerConfig.from_json(self.services.surface_configs.extra(PERSONALIZER))

    def policy_spec(self) -> PolicySpec:
        """The spec of the policy the surface serves outside experiments."""
        services = self.services
        return services.registry.get(services.default_policy(PERSONALIZER).name)

    def exploration(self, spec: PolicySpec, settings: SurfaceConfig) -> float:
        """The share the surface spreads uniformly (what Personalizer calls the percentage):
        epsilon for an epsilon-greedy policy, the floor of any other VW explorer."""
        if spec.kind == "random":
            return 1.0
        if spec.kind != "vw":
            return 0.0
        if settings.exploration is not None:
            return settings.exploration
        if not is_epsilon_greedy(spec.args):
            return DEFAULT_EXPLORATION
        own = epsilon_of(spec.args)
        return VW_DEFAULT_EPSILON if own is None else own

    def effective_args(self, spec: PolicySpec, settings: SurfaceConfig) -> str:
        """The VW arguments the surface serves with: the spec's, with the configured epsilon."""
        if spec.kind == "vw" and is_epsilon_greedy(spec.args) and settings.exploration is not None:
            return with_epsilon(spec.args, settings.exploration)
        return spec.args

    def online_policy(self) -> tuple[str, str]:
        """The serving policy's name, as the operator gave it, and its effective arguments."""
        spec = self.policy_spec()
        return self.stored().policy_name or spec.name, self.effective_args(spec, self.settings())

    # --- service configuration -----------------------------------------------------------------

    def configuration(self) -> ServiceConfigurationPublic:
        """The service configuration, with the apprentice-mode metrics once apprentice mode ran."""
        return self._public(self.settings(), self.stored())

    def update_configuration(self, body: ServiceConfigurationUpdate) -> ServiceConfigurationPublic:
        """Change the configuration; it takes effect in every process within a second."""
        current, stored = self.settings(), self.stored()
        spec = self.policy_spec()
        try:
            exploration = body.exploration_percentage
            if not 0.0 <= exploration <= 1.0:
                raise WireError(
                    f"`explorationPercentage` must be in [0, 1] (got {exploration})",
                    target="explorationPercentage",
                )
            if not math.isclose(exploration, self.exploration(spec, current)) and spec.kind != "vw":
                raise WireError(
                    "`explorationPercentage` can only change for a VW policy (epsilon of "
                    f"epsilon-greedy, the floor of other explorers); the policy is {spec.kind!r}",
                    target="explorationPercentage",
                )
            settings = replace(
                current,
                reward_wait=parse_duration(body.reward_wait_time, "rewardWaitTime"),
                default_reward=body.default_reward,
                reward_aggregation=body.reward_aggregation,  # type: ignore[arg-type]
                exploration=exploration if spec.kind == "vw" else current.exploration,
                log_retention_days=body.log_retention_days,
            )
            if body.learning_mode is not None:
                settings = replace(settings, learning_mode=body.learning_mode)
            echoed = replace(
                stored,
                model_export_frequency=parse_duration(
                    body.model_export_frequency, "modelExportFrequency"
                ),
            )
            optional: dict[str, Any] = {
                "log_mirror_enabled": body.log_mirror_enabled,
                "log_mirror_sas_uri": body.log_mirror_sas_uri,
                "auto_optimization_enabled": body.is_auto_optimization_enabled,
                "auto_optimization_start": body.auto_optimization_start_date,
                "model_retrain_days": body.model_retrain_days,
            }
            if body.auto_optimization_frequency is not None:
                optional["auto_optimization_frequency"] = parse_duration(
                    body.auto_optimization_frequency, "autoOptimizationFrequency"
                )
            echoed = replace(echoed, **{k: v for k, v in optional.items() if v is not None})
            settings, echoed = self._put(settings, echoed)
        except WireError as exc:
            raise InvalidConfiguration(str(exc), target=exc.target) from None
        return self._public(settings, echoed)

    def _put(
        self, settings: SurfaceConfig, echoed: PersonalizerConfig
    ) -> tuple[SurfaceConfig, PersonalizerConfig]:
        """Store both, validated, as one edit; loop errors are spelled as the wire names them."""
        try:
            settings.validate()
        except ConfigError as exc:
            raise from_config_error(exc) from None
        echoed.validate()
        echoed = replace(echoed, edited_at=utcnow())
        stored = self.services.surface_configs.put(PERSONALIZER, settings, extra=echoed.as_json())
        return stored, echoed

    def _public(
        self, settings: SurfaceConfig, echoed: PersonalizerConfig
    ) -> ServiceConfigurationPublic:
        return ServiceConfigurationPublic.model_validate(
            {
                "rewardWaitTime": format_duration(settings.reward_wait),
                "defaultReward": settings.default_reward,
                "rewardAggregation": settings.reward_aggregation,
                "explorationPercentage": self.exploration(self.policy_spec(), settings),
                "modelExportFrequency": format_duration(echoed.model_export_frequency),
                "logRetentionDays": settings.log_retention_days,
                "logMirrorEnabled": echoed.log_mirror_enabled,
                "logMirrorSasUri": echoed.log_mirror_sas_uri,
                "learningMode": settings.learning_mode,
                "isAutoOptimizationEnabled": echoed.auto_optimization_enabled,
                "autoOptimizationFrequency": format_duration(echoed.auto_optimization_frequency),
                "autoOptimizationStartDate": echoed.auto_optimization_start,
                "modelRetrainDays": echoed.model_retrain_days,
                "lastConfigurationEditDate": echoed.edited_at,
                "latestApprenticeModeMetrics": self._apprentice_metrics(),
            }
        )

    def _apprentice_metrics(self) -> ApprenticeModeMetrics | None:
        metrics = self.services.surface_configs.apprentice(PERSONALIZER)
        if metrics is None:
            return None

        def counts(c: ApprenticeCounts) -> dict[str, Any]:
            return {
                "numberOfEvents": c.events,
                "sumOfRewards": c.rewards,
                "numberOfImitatedEvents": c.imitated_events,
                "sumOfImitatedRewards": c.imitated_rewards,
            }

        return ApprenticeModeMetrics.model_validate(
            {
                **counts(metrics.total),
                "startTime": metrics.start,
                "lastProcessedEventTime": metrics.last_event_at,
                "lastBatchMetrics": ApprenticeModeBatch.model_validate(counts(metrics.last_batch)),
            }
        )

    # --- policy --------------------------------------------------------------------------------

    def policy(self) -> PolicyContract:
        """The serving policy's name and its VW arguments (with the configured exploration)."""
        spec = self.policy_spec()
        name, arguments = self.online_policy()
        return PolicyContract(name=name, arguments=arguments or spec.kind)

    def apply_policy(self, name: str, arguments: str) -> PolicyContract:
        """Serve `arguments` (through the VW allow-list) on the surface. A change of `--epsilon`
        alone keeps the model (it only changes exploration); any other change starts a new
        policy version with a fresh model."""
        services = self.services
        current = self.policy_spec()
        try:
            candidate = PolicySpec(
                POLICY_NAME, "vw", " ".join(arguments.split()), description=f"Personalizer {name!r}"
            )
            if current.kind == "vw" and without_epsilon(current.args) == without_epsilon(
                candidate.args
            ):
                spec = current
            else:
                validate(candidate)
                spec, _ = services.register_policy(candidate)
        except PolicySpecError as exc:
            message = str(exc).replace("`args`", "`arguments`")
            target = "arguments" if exc.target == "args" else exc.target
            raise InvalidPolicy(message, target=target) from None
        if spec.id != current.id:
            services.experiments.set_default(PERSONALIZER, spec.id)
            services.refresh_experiments()
        epsilon = epsilon_of(candidate.args)
        exploration = epsilon if is_epsilon_greedy(candidate.args) else None
        self._put(
            replace(self.settings(), exploration=exploration),
            replace(self.stored(), policy_name=name),
        )
        return self.policy()

    def reset_policy(self) -> PolicyContract:
        """Back to the configured default policy and its own exploration."""
        services = self.services
        default = services.registry.get(services.settings.personalizer_policy)
        services.experiments.set_default(PERSONALIZER, default.id)
        services.refresh_experiments()
        self._put(
            replace(self.settings(), exploration=None), replace(self.stored(), policy_name=None)
        )
        return self.policy()

    # --- model ---------------------------------------------------------------------------------

    def model_key(self) -> tuple[str, str]:
        """The serving model's key and VW arguments; 404 when the policy learns no model."""
        services = self.services
        policy = services.default_policy(PERSONALIZER)
        args = services.registry.args_for(policy.model_key)
        if args is None:
            raise NotFound(
                f"the policy {policy.name!r} learns no model (it is not a VW policy)",
                target="model",
            )
        return policy.model_key, args

    def _install(self, key: str, args: str, data: bytes) -> None:
        services = self.services
        paused = services.learner.paused() if services.learner is not None else None
        services.hub.install(key, args, data, services.surface_configs, paused=paused)

    def export_model(self, *, signed: bool = False) -> bytes:
        """The serving VW model (VW's binary format with `--save_resume` state).

        oO does not sign models: `signed` is refused rather than ignored.
        """
        if signed:
            raise BadRequest(
                "`signed` must be false: oO does not sign models; it exports the VW model "
                "as is (compare a download with the exporting server's over TLS)",
                target="signed",
            )
        key, _ = self.model_key()
        model = self.services.hub.get(key)
        if model is None:
            raise NotFound("the serving model could not be loaded", target="model")
        data, _ = model.serialize()
        return data

    def import_model(self, data: bytes) -> None:
        """Replace the serving model with VW model bytes, once they load and predict."""
        key, args = self.model_key()
        if not data:
            raise BadRequest("the body must hold the VW model bytes", target="body")
        try:
            model = Model(args, data=data)
        except ModelError as exc:
            raise BadRequest(f"`body`: {exc}", target="body") from None
        try:
            model.probe()
        except ModelError as exc:
            raise BadRequest(
                f"`body`: the model is not a --cb_explore_adf model: {exc}", target="body"
            ) from None
        finally:
            model.close()
        self._install(key, args, data)

    def reset_model(self) -> None:
        """Start the serving model over: a fresh model with the policy's arguments."""
        key, args = self.model_key()
        fresh = Model(args)
        try:
            data, _ = fresh.serialize()
        finally:
            fresh.close()
        self._install(key, args, data)

    def model_properties(self) -> ModelProperties:
        """When the serving model was created (or last imported or reset) and last modified."""
        key, _ = self.model_key()
        services = self.services
        lineage = services.surface_configs.lineage(PERSONALIZER)
        times = services.store.snapshot_times(key)
        created = lineage.created_at
        if lineage.generation == 0 and times is not None:
            created = min(created, times[0])
        modified = max(created, times[1]) if times is not None else created
        return ModelProperties(creation_time=created, last_modified_time=modified)

    # --- logs ----------------------------------------------------------------------------------

    def log_properties(self) -> LogsProperties:
        """The time span of the surface's logged decisions (both null when there are none)."""
        span = self.services.store.date_range(PERSONALIZER)
        return LogsProperties(
            date_range=DateRange.model_validate(
                {"from": span[0] if span else None, "to": span[1] if span else None}
            )
        )

    def delete_logs(self) -> None:
        """Delete the surface's decisions and rewards; the models keep what they learned.

        Models are snapshotted first; decisions a model would still need to be rebuilt (learned
        after its newest snapshot, possible when the learner runs in another process and has
        not published yet) are kept until the next delete.
        """
        services = self.services
        if services.learner is not None:
            services.learner.publish_snapshots(force=True)
        keep_after = services.store.needed_marks(
            PERSONALIZER, lambda key: services.registry.args_for(key) is not None
        )
        services.store.delete_logs(PERSONALIZER, keep_after)
