"""Policy specs: a name, a version, a kind and its arguments (VW arguments, or the rule's name).

Specs are versioned: registering a name again with other arguments makes its next version. A
spec's `id` names one version unambiguously: the bare name for version 1 (so built-ins, which are
version 1, and everything logged before versions existed keep their ids), `name@vN` after.
Decisions log the id as their policy and model keys embed it, so two versions never share a
model. Names cannot contain '@', so ids never collide with names.

A VW spec's arguments pass the allow-list of `bandit.vw_args` when the spec is made, and the
spec keeps the canonical text the gate returns: that is what is stored, compared and served.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from bandit.errors import DomainError
from bandit.vw_args import VwArgsError, parse

PolicyKind = Literal["random", "vw", "rule"]
KINDS: tuple[PolicyKind, ...] = ("random", "vw", "rule")

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_ID = re.compile(r"^(?P<name>[a-z0-9][a-z0-9._-]{0,63})(?:@v(?P<version>[1-9][0-9]{0,8}))?$")


class PolicySpecError(DomainError, ValueError):
    """A spec that cannot serve; the message names the offending field or argument.

    `target` is the field (or, for VW arguments, the option such as `--epsilon`) at fault.
    """

    target: str

    def __init__(self, message: str, *, target: str = "name") -> None:
        super().__init__(message, target=target)


@dataclass(frozen=True, slots=True)
class PolicySpec:
    name: str
    kind: PolicyKind
    args: str = ""
    description: str = ""
    version: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise PolicySpecError(
                f"`version` must be a positive integer (got {self.version!r})", target="version"
            )
        if not _NAME.match(self.name):
            raise PolicySpecError(
                "`name` must be 1-64 lowercase letters, digits, '.', '_' or '-' "
                f"(got {self.name!r})"
            )
        for field, value in (("args", self.args), ("description", self.description)):
            if "\x00" in value:
                # PostgreSQL text cannot hold NUL, and no VW argument or description needs one.
                raise PolicySpecError(f"`{field}` must not contain NUL characters", target=field)
        if self.kind not in KINDS:
            raise PolicySpecError(
                f"`kind` must be one of {KINDS} (got {self.kind!r})", target="kind"
            )
        if self.kind == "vw":
            # The spec keeps the allow-list's canonical text: stored, compared and served as such.
            object.__setattr__(self, "args", vw_args(self.args))
        if self.kind == "random" and self.args:
            raise PolicySpecError("`args` must be empty for a random policy", target="args")

    @property
    def id(self) -> str:
        """`name` for version 1, `name@vN` after: what decisions log and model keys embed."""
        return spec_id(self.name, self.version)


@dataclass(frozen=True, slots=True)
class RefusedSpec:
    """A stored spec that cannot be made now, e.g. VW arguments stored before the allow-list
    existed: it keeps its version number, and is never served."""

    name: str
    version: int
    reason: PolicySpecError

    @property
    def id(self) -> str:
        return spec_id(self.name, self.version)


StoredSpec = PolicySpec | RefusedSpec


def stored(name: str, kind: str, args: str, description: str, version: int) -> StoredSpec:
    """The spec a stored row holds, or a `RefusedSpec` saying why it cannot serve."""
    try:
        return PolicySpec(name, kind, args, description, version)  # type: ignore[arg-type]
    except PolicySpecError as exc:
        return RefusedSpec(name, version, exc)


def spec_id(name: str, version: int) -> str:
    return name if version == 1 else f"{name}@v{version}"


def vw_args(text: str, field: str = "args", *, target: str | None = None) -> str:
    """`text` as the canonical arguments of a VW policy: gated, with `--cb_explore_adf`.

    `field` is the name the caller gave the arguments (`args`, Personalizer's `arguments`);
    the error's message names it.

    Raises
    ------
    PolicySpecError
        `target` the refused option as spelled (or `field` when the fault is no one option's);
        a caller whose contract points at fields only passes `target` to have that instead.
    """
    try:
        args = parse(text)
    except VwArgsError as exc:
        raise PolicySpecError(f"`{field}`: {exc}", target=target or exc.target or field) from None
    if "--cb_explore_adf" not in args:
        raise PolicySpecError(
            f"`{field}` of a VW policy must include --cb_explore_adf", target=target or field
        )
    return str(args)


def parse_id(policy_id: str) -> tuple[str, int]:
    """`(name, version)` of a policy id; a bare name is version 1."""
    match = _ID.match(policy_id)
    if match is None:
        raise PolicySpecError(
            f"`policy` must be a policy name or `name@vN` (got {policy_id!r})", target="policy"
        )
    return match["name"], int(match["version"] or 1)


def canonical_id(policy_id: str) -> str:
    """The id as specs spell it: `name@v1` is `name`."""
    name, version = parse_id(policy_id)
    return name if version == 1 else f"{name}@v{version}"
