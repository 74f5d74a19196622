"""Personalizer's schedules: auto-optimization and model export, once per slot across replicas.

Every api process (and `oo serve`) ticks every `OO_SCHEDULE_SECONDS`: it reads the surface's
configuration, works out the latest slot of each schedule that is due, and claims it in the
shared jobs table (`JobStore.claim`, keyed by the slot: a unique run key). The process whose
claim lands runs it; the others see the claim and do nothing, so a slot runs once however
many replicas tick. Only the latest slot is ever run: a process that was down for several
slots catches up with one run, not a burst.

- **Auto-optimization** (`isAutoOptimizationEnabled`): slots every `autoOptimizationFrequency`
  from `autoOptimizationStartDate` (from the last configuration edit when no start is set,
  the first slot one period after it). Each slot evaluates the period before it with policy
  optimization as an `Auto` evaluation (`PersonalizerJobs.create_evaluation`), which serves
  the search's winner only when its lower confidence bound beats the online policy's.
- **Model export** (`modelExportFrequency`, where `OO_MODEL_EXPORT_DIR` is set): slots every
  period since the epoch; each writes the serving model (VW's binary format) and a JSON file
  of metadata to the folder, keeping the newest `OO_MODEL_EXPORT_KEEP`.

The clock is the caller's (`Schedules.tick(now)`), so tests drive it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from api.job_runner import JobRunner
from api.personalizer.config import PersonalizerConfig
from api.personalizer.errors import JobExists
from api.personalizer.jobs import PersonalizerJobs
from api.personalizer.schemas import EvaluationContract
from api.personalizer.service import Personalizer
from api.services.process import Services
from api.services.surfaces import PERSONALIZER
from bandit.events import utcnow
from bandit.private_files import private_file, private_folder

log = logging.getLogger(__name__)

AUTO = "schedule-auto-optimization"
EXPORT = "schedule-model-export"
KEEP_CLAIMS = 10
"""Claims kept per schedule; only the latest slot's is ever checked."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def latest_slot(
    anchor: datetime, every: timedelta, now: datetime, *, first: int = 0
) -> datetime | None:
    """The latest ``anchor + k·every`` (k >= `first`) at or before `now`; None before the first."""
    if now < anchor + first * every:
        return None
    return anchor + ((now - anchor) // every) * every


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


@dataclass(frozen=True)
class Ran:
    """What one tick started: an `Auto` evaluation's id, a model export's file."""

    auto_evaluation: str | None = None
    export: Path | None = None


class Schedules:
    """The Personalizer surface's schedules over one process's services and job runner."""

    def __init__(self, services: Services, runner: JobRunner) -> None:
        self.services = services
        self.personalizer = Personalizer(services)
        self.jobs = PersonalizerJobs(self.personalizer, runner)

    def tick(self, now: datetime) -> Ran:
        """Run what is due at `now` and not yet claimed by any process."""
        stored = self.personalizer.stored()
        return Ran(self._auto_optimize(stored, now), self._export(stored, now))

    def _auto_optimize(self, stored: PersonalizerConfig, now: datetime) -> str | None:
        if not stored.auto_optimization_enabled:
            return None
        every = stored.auto_optimization_frequency
        if stored.auto_optimization_start is not None:
            slot = latest_slot(stored.auto_optimization_start, every, now)
        elif stored.edited_at is not None:
            slot = latest_slot(stored.edited_at, every, now, first=1)
        else:
            return None
        if slot is None:
            return None
        evaluation_id = f"auto-{_stamp(slot)}"
        if not self.services.jobs.claim(AUTO, evaluation_id, keep=KEEP_CLAIMS):
            return None
        contract = EvaluationContract.model_validate(
            {
                "name": f"Auto-optimization {slot.isoformat()}",
                "startTime": slot - every,
                "endTime": slot,
                "enablePolicyOptimization": True,
            }
        )
        try:
            self.jobs.create_evaluation(evaluation_id, contract, evaluation_type="Auto")
        except JobExists:  # a client chose this id first: the slot is skipped, not retried
            log.warning("auto-optimization slot %s skipped: id %r is taken", slot, evaluation_id)
            return None
        log.info("auto-optimization %s started over [%s, %s)", evaluation_id, slot - every, slot)
        return evaluation_id

    def _export(self, stored: PersonalizerConfig, now: datetime) -> Path | None:
        folder = self.services.settings.model_export_dir
        if folder is None:
            return None
        slot = latest_slot(EPOCH, stored.model_export_frequency, now)
        assert slot is not None  # every `now` is after the epoch
        name = f"personalizer-{_stamp(slot)}"
        if not self.services.jobs.claim(EXPORT, name, keep=KEEP_CLAIMS):
            return None
        return export(self.personalizer, private_folder(folder), name, slot, now)


def export(
    personalizer: Personalizer, folder: Path, name: str, slot: datetime, now: datetime
) -> Path:
    """Write the serving model to `folder/name.vw` and its metadata to `folder/name.json`
    (each complete or absent: written aside, then renamed), then keep the newest
    `OO_MODEL_EXPORT_KEEP` exports."""
    data = personalizer.export_model()
    key, arguments = personalizer.model_key()
    model = personalizer.services.hub.get(key)
    meta = {
        "surface": PERSONALIZER,
        "model_key": key,
        "arguments": arguments,
        "version": model.version if model is not None else None,
        "learned_decisions": personalizer.services.store.learned_summary(surface=PERSONALIZER)[0],
        "slot": slot.isoformat(),
        "exported_at": now.isoformat(),
        "bytes": len(data),
    }
    target = folder / f"{name}.vw"
    for path, body in ((target, data), (folder / f"{name}.json", json.dumps(meta).encode())):
        aside = private_file(path.with_name(f".{path.name}.tmp"))
        aside.write_bytes(body)
        os.replace(aside, path)
    keep = personalizer.services.settings.model_export_keep
    exports = sorted(folder.glob("personalizer-*.vw"))
    for old in exports[: max(0, len(exports) - keep)]:
        old.unlink(missing_ok=True)
        old.with_suffix(".json").unlink(missing_ok=True)
    log.info("exported the Personalizer model to %s", target)
    return target


def start(services: Services) -> None:
    """Tick the schedules on a thread of this process until it stops; report stored settings
    oO does not act on (`PersonalizerConfig.inert`)."""
    schedules = Schedules(services, services.runner)
    for message in schedules.personalizer.stored_as_is().inert():
        log.warning("Personalizer configuration: %s", message)
    every = services.settings.schedule_seconds

    def run() -> None:
        while not services.stop_event.wait(every):
            try:
                schedules.tick(utcnow())
            except Exception:  # a failed tick is retried at the next one
                log.warning("Personalizer schedules failed; retrying", exc_info=True)

    thread = threading.Thread(target=run, name="personalizer-schedules", daemon=True)
    thread.start()
    services.threads.append(thread)
