"""Small pieces the `oo` sub-commands share."""

from __future__ import annotations

from datetime import UTC, datetime

import typer


def parse_moment(value: str | None, name: str) -> datetime | None:
    """An ISO 8601 option value as an aware UTC datetime (naive input is taken as UTC)."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"must be ISO 8601, e.g. 2026-11-25 or 2026-11-25T09:00Z (got {value!r})",
            param_hint=f"--{name}",
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
