"""The one base of every error a caller can act on: bad input, a missing thing, a state conflict.

Every package raises its own subclasses (`PolicySpecError`, `VwArgsError`, `ModelError`,
`ConfigError`, experiment, evaluation, signal and integration errors, …). Each says what kind of
failure it is and which field or option it is about (`target`, named as the caller spelled it:
`arms[1].policy`, `--epsilon`, `arguments`). The message names that field too, where it is
raised: nothing downstream rewrites it.

The front doors translate the kind once: `api.errors` into an HTTP status and Personalizer's
`{"error": {code, message, target}}` body, the `oo` command line into a one-line refusal.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar


class Kind(StrEnum):
    """What went wrong, as a caller needs to know it (HTTP: 400, 404, 409, 503)."""

    INVALID = "invalid"
    """The input cannot be used as given; fix it and ask again."""
    NOT_FOUND = "not_found"
    """It names something that does not exist (or that the caller may not know exists)."""
    CONFLICT = "conflict"
    """The input is fine, but does not fit the current state (a running experiment, a
    deployment setting that is missing)."""
    UNAVAILABLE = "unavailable"
    """Something it depends on is down; the same request may work later."""


class DomainError(Exception):
    """An error a caller can act on; subclasses set `kind` (and, rarely, `code`).

    Parameters
    ----------
    message
        What went wrong, naming the field: "`pmf` must sum to 1 (got 0.93)".
    target
        The field or option at fault, as the caller spelled it; None when no one field is.
    """

    kind: ClassVar[Kind] = Kind.INVALID
    code: ClassVar[str | None] = None
    """A code of its own for callers that must tell this error apart; None: the kind's code."""

    def __init__(self, message: str, *, target: str | None = None) -> None:
        super().__init__(message)
        self.target = target

    @property
    def message(self) -> str:
        """What the caller is told: the message itself, unless the error keeps its reason for
        the logs (see `integrations.oauth.StateRejected`)."""
        return str(self)
