r"""A DSJSON file as a :class:`~rewards.ope.logged.Log`, read straight into columns.

Reads the same events as :func:`rewards.ope.logged.dsjson_events` (the ordinary read: every
line through `parse_record`, featurized as the live service featurizes it), with the same
errors, in two passes over the file and flat memory:

- **Summary** (`total`, reward range, largest weight): a line laid out as `oo export` writes it
  gives its reward, propensity and `_skipLearn` flag by pattern
  (:func:`rewards.logs.dsjson_scan.summary_fields`); any other line is parsed in full.
- **Each evaluation pass**: every line is parsed once and checked as `parse_record` checks it,
  but a batch is kept as columns (:class:`~rewards.ope.logged.Columns`): pmfs, chosen indices,
  rewards, timestamps and each candidate's VW action line. A candidate's line is built once per
  distinct candidate (a catalog's actions repeat across decisions; at most `LINE_CACHE` kept);
  the shared line and `LoggedEvent`s are built only when a target asks for the events (a
  replayed VW policy, the VW reward model).

The pass checks its events against the summary and raises if they differ (a bug, never a
property of the file): the summary's ranges bound what the estimators accept.
"""

from __future__ import annotations

import marshal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any, cast

from bandit.features import line as features_line
from rewards.logs.dsjson_import import (
    MAX_LINE_BYTES,
    bounded_lines,
    line_content,
    load_line,
    parse_action,
    parse_label,
    parse_record,
    record_context,
)
from rewards.logs.dsjson_scan import summary_fields
from rewards.ope.logged import Columns, Log, LoggedEvent, epoch, ranges

LINE_CACHE = 1 << 16
"""Distinct candidate texts whose VW line is kept; the cache starts over past this."""


@dataclass(frozen=True)
class Summary:
    total: int
    reward_min: float | None
    reward_max: float | None
    propensity_min: float


def summary(path: Path) -> Summary:
    """The learnable events' count, reward range and smallest propensity (`LoggedEvent`'s:
    the pmf's entry for the chosen action)."""
    total, r_min, r_max, p_min = 0, float("inf"), float("-inf"), 1.0
    with open(path, "rb") as handle:
        for number, raw in enumerate(bounded_lines(handle), start=1):
            if not raw or raw.isspace():
                continue
            fields = summary_fields(raw) if len(raw) <= MAX_LINE_BYTES else None
            if fields is None:
                event = parse_record(load_line(line_content(raw), number, MAX_LINE_BYTES), number)
                fields = (event.reward, event.pmf[event.chosen_index], event.skip_learn)
            reward, propensity, skip = fields
            if skip:
                continue
            total += 1
            r_min, r_max = min(r_min, reward), max(r_max, reward)
            p_min = min(p_min, propensity)
    return Summary(total, r_min if total else None, r_max if total else None, p_min)


def dsjson_log(path: Path, *, batch: int = 1000) -> Log:
    """The learnable events of the DSJSON file at `path` as a :class:`Log` (see the module).

    Raises
    ------
    rewards.logs.dsjson_import.DsjsonError
        At the first malformed line, naming it and the field: when the summary reads it, or
        during a pass for a line the summary read by pattern.
    """
    told = summary(path)
    reward_range, max_weight = ranges(told.reward_min, told.reward_max, told.propensity_min)

    def batches() -> Iterator[Columns]:
        seen = Summary(0, None, None, 1.0)
        for chunk in _passes(path, batch):
            seen = _checked(seen, chunk)
            yield chunk
        if seen != told:
            raise RuntimeError(f"{path}: the pass read {seen}, the summary {told}")

    return Log(batches, told.total, reward_range, max_weight)


def _checked(seen: Summary, chunk: _Chunk) -> Summary:
    rewards = chunk.reward
    propensities = [pmf[c] for pmf, c in zip(chunk.pmfs, chunk.chosen, strict=True)]
    low, high = min(rewards), max(rewards)
    return Summary(
        seen.total + len(rewards),
        low if seen.reward_min is None else min(seen.reward_min, low),
        high if seen.reward_max is None else max(seen.reward_max, high),
        min(seen.propensity_min, *propensities),
    )


class _Chunk(Columns):
    """Columns of one batch of DSJSON events, and what it takes to build their events."""

    def __init__(self) -> None:
        self.pmfs: list[tuple[float, ...]] = []
        self.chosen: list[int] = []
        self.reward: list[float] = []
        self.created: list[float] = []
        self.lines: list[list[str]] = []
        # Event id, timestamp, shared features: not the parsed line, whose thousands of objects
        # would keep the garbage collector busy.
        self.rest: list[tuple[str, Any, dict[str, Any]]] = []
        super().__init__(self.pmfs, self.chosen, self.reward, self.created, self.lines)

    def make_events(self) -> Sequence[LoggedEvent]:
        events = []
        for (event_id, moment, shared), pmf, chosen, reward, lines in zip(
            self.rest, self.pmfs, self.chosen, self.reward, self.lines, strict=True
        ):
            example = (f"shared {features_line([shared] if shared else [])}", *lines)
            events.append(LoggedEvent(event_id, moment, pmf, chosen, reward, example))
        return events


def _passes(path: Path, batch: int) -> Iterator[_Chunk]:
    """One pass over the file's learnable events, `batch` at a time, as columns."""
    cache: dict[bytes, str] = {}
    chunk = _Chunk()
    with open(path, "rb") as handle:
        for number, raw in enumerate(bounded_lines(handle), start=1):
            content = line_content(raw)
            if not content.strip():
                continue
            record = load_line(content, number, MAX_LINE_BYTES)
            context, multi = record_context(record, number)
            # marshal's bytes (version 2: no back-references) tell apart what `==` does not
            # and the featurizer does (True and 1, key order): equal bytes, equal line.
            keys = list(map(marshal.dumps, multi, repeat(2)))
            found = list(map(cache.get, keys))
            if None in found:
                if len(cache) >= LINE_CACHE:
                    cache.clear()
                for i, (obj, key) in enumerate(zip(multi, keys, strict=True)):
                    if found[i] is None:
                        found[i] = cache[key] = features_line(parse_action(obj, i, number).features)
            lines = cast(list[str], found)
            label = parse_label(record, len(multi), number)
            if label.skip_learn:
                continue
            chunk.pmfs.append(label.pmf)
            chunk.chosen.append(label.chosen_index)
            chunk.reward.append(label.reward)
            chunk.created.append(epoch(label.timestamp))
            chunk.lines.append(lines)
            shared = {k: v for k, v in context.items() if k != "_multi"}
            chunk.rest.append((label.event_id, label.timestamp, shared))
            if len(chunk) >= batch:
                yield chunk
                chunk = _Chunk()
    if len(chunk):
        yield chunk
