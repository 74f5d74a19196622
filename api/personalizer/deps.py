"""Typed dependencies of the Personalizer routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from api.deps import JobRunnerDep, ServicesDep
from api.personalizer.jobs import PersonalizerJobs
from api.personalizer.service import Personalizer


def get_personalizer(services: ServicesDep) -> Personalizer:
    return Personalizer(services)


PersonalizerDep = Annotated[Personalizer, Depends(get_personalizer)]


def get_personalizer_jobs(personalizer: PersonalizerDep, runner: JobRunnerDep) -> PersonalizerJobs:
    return PersonalizerJobs(personalizer, runner)


PersonalizerJobsDep = Annotated[PersonalizerJobs, Depends(get_personalizer_jobs)]
