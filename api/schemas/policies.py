"""Wire schemas of the policy registry."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from api.schemas.base import Strict


class PolicyBase(Strict):
    name: str = Field(description="Lowercase letters, digits, '.', '_' or '-'; 1-64 characters")
    kind: Literal["random", "vw", "rule"]
    args: str = Field(
        default="",
        max_length=2000,
        description="vw: VW arguments with --cb_explore_adf; rule: the rule, e.g. most-urgent-todo",
    )
    description: str = Field(default="", max_length=500)


class PolicyCreate(PolicyBase):
    pass


class PolicyPublic(PolicyBase):
    version: int = Field(description="1 for the first registration (and built-ins), then 2, 3...")
    id: str = Field(
        description="What decisions log and model keys embed: `name` for version 1, `name@vN` after"
    )
    builtin: bool


class PolicyHistory(PolicyPublic):
    """The latest version of a policy, with every version oldest first."""

    versions: list[PolicyPublic]
