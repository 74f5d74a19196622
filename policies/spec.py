"""Policy specs: a name, a kind and its arguments (VW arguments, or the rule's name)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

PolicyKind = Literal["random", "vw", "rule"]
KINDS: tuple[PolicyKind, ...] = ("random", "vw", "rule")

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class PolicySpecError(ValueError):
    """A spec that cannot serve; the message names the offending field or argument."""

    def __init__(self, message: str, *, target: str = "name") -> None:
        super().__init__(message)
        self.target = target
        """The field (or, for VW arguments, the option such as `--epsilon`) at fault."""


@dataclass(frozen=True, slots=True)
class PolicySpec:
    name: str
    kind: PolicyKind
    args: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise PolicySpecError(
                "`name` must be 1-64 lowercase letters, digits, '.', '_' or '-' "
                f"(got {self.name!r})"
            )
        if self.kind not in KINDS:
            raise PolicySpecError(
                f"`kind` must be one of {KINDS} (got {self.kind!r})", target="kind"
            )
        if self.kind == "vw" and "--cb_explore_adf" not in self.args.split():
            raise PolicySpecError(
                "`args` of a VW policy must include --cb_explore_adf", target="args"
            )
        if self.kind == "random" and self.args:
            raise PolicySpecError("`args` must be empty for a random policy", target="args")
