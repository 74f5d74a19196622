r"""The logged decisions an evaluation reads: events, their columns, and the window they come from.

A :class:`Log` is a window of learned decisions that can be read again, once per pass (a
search replays it once per candidate): the decision log of the service (:meth:`Log.of_store`),
a DSJSON file (:meth:`Log.of_dsjson`) or any source of events (:meth:`Log.of_events`). Its
summary — the number of events, the reward range and the largest weight the finite-sample
intervals need (:func:`ranges`) — is read before the first pass, whatever the source, so
evaluations, searches and feature importance all judge a window the same way.

A pass yields events in batches, oldest first; :meth:`Batch.of` turns a batch into columns
once (the logged pmfs, chosen indices, propensities, rewards), and everything downstream —
targets, the DR reward model, the estimators' ``add_arrays`` — works on those columns. A faster
reader (a DSJSON file parsed straight into columns) plugs in here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any, overload

import numpy as np

from bandit.costs import Costs
from bandit.features import action_lines, adf_example
from bandit.model import LearnExample
from bandit.store import LearnedRow, Store
from rewards.estimators._validation import FloatArray
from rewards.logs.dsjson_import import ImportedEvent, bounded_lines, read_dsjson
from rewards.ope.errors import EvaluationError


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """One learned decision as evaluation needs it.

    `example` is the unlabeled ADF example the logging policy saw, shared line first, one line
    per candidate after it.
    """

    event_id: str
    created_at: datetime | None
    pmf: tuple[float, ...]
    chosen_index: int
    reward: float
    example: tuple[str, ...]

    @property
    def propensity(self) -> float:
        return self.pmf[self.chosen_index]

    def learn_example(self, lines: Sequence[str] | None = None) -> LearnExample:
        """The event as a model learns it, on its own example or on `lines` (the same example
        with features left out)."""
        example = self.example if lines is None else lines
        return LearnExample(example, self.chosen_index, self.propensity, self.reward)

    def labeled(self, costs: Costs = Costs.NEGATED) -> list[str]:
        """The example labeled as a learner with the cost mapping `costs` learns it (cost
        ``-reward`` on the chosen line unless the loss is logistic, `bandit.costs`)."""
        return self.learn_example().labeled(costs)


@dataclass(frozen=True, slots=True)
class Batch:
    """Events with their columns as arrays; pmfs padded with NaN to the widest event.

    `events` may be a :class:`Columns` whose events are only built when a target asks for them
    (a learning target reads each example); the columns are what everything else reads.
    """

    events: Sequence[LoggedEvent]
    p_log_all: FloatArray
    """Shape ``(n, max_actions)``, NaN past each event's candidates."""
    chosen: np.ndarray[Any, np.dtype[np.intp]]
    p_log: FloatArray
    reward: FloatArray
    created: FloatArray
    """Seconds since the epoch (UTC), NaN for an event without a timestamp."""
    action_lines: Sequence[Sequence[str]]
    """Each event's candidates as VW action lines (its example past the shared line)."""

    @classmethod
    def of(cls, events: Sequence[LoggedEvent]) -> Batch:
        if isinstance(events, Columns):
            return events.batch()
        p_log_all = padded([e.pmf for e in events])
        chosen = np.fromiter((e.chosen_index for e in events), dtype=np.intp, count=len(events))
        rows = np.arange(len(events))
        reward = np.fromiter((e.reward for e in events), dtype=np.float64, count=len(events))
        created = np.fromiter(
            (epoch(e.created_at) for e in events), dtype=np.float64, count=len(events)
        )
        lines = [e.example[1:] for e in events]
        return cls(events, p_log_all, chosen, p_log_all[rows, chosen], reward, created, lines)

    def __len__(self) -> int:
        return len(self.events)

    def uniform(self) -> FloatArray:
        """The uniform pmf over each event's candidates, NaN-padded like `p_log_all`."""
        real = ~np.isnan(self.p_log_all)
        counts = real.sum(axis=1, keepdims=True)
        return np.where(real, 1.0 / counts, np.nan)


def epoch(moment: datetime | None) -> float:
    """Seconds since the epoch, NaN for no moment; a naive moment (SQLite) is UTC."""
    if moment is None:
        return math.nan
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp()


class Columns(Sequence[LoggedEvent]):
    """A batch read straight into columns; its events are built on first access only, by
    `make_events` (a reader's subclass: the `LoggedEvent`s, with their VW examples, that the
    columns came from)."""

    def __init__(
        self,
        pmfs: Sequence[Sequence[float]],
        chosen: Sequence[int],
        reward: Sequence[float],
        created: Sequence[float],
        action_lines: Sequence[Sequence[str]],
    ) -> None:
        self._pmfs = pmfs
        self._chosen = chosen
        self._reward = reward
        self._created = created
        self._lines = action_lines
        self._events: Sequence[LoggedEvent] | None = None

    def batch(self) -> Batch:
        n = len(self._chosen)
        p_log_all = padded(self._pmfs)
        chosen = np.array(self._chosen, dtype=np.intp).reshape(n)
        reward = np.array(self._reward, dtype=np.float64).reshape(n)
        created = np.array(self._created, dtype=np.float64).reshape(n)
        p_log = p_log_all[np.arange(n), chosen]
        return Batch(self, p_log_all, chosen, p_log, reward, created, self._lines)

    def make_events(self) -> Sequence[LoggedEvent]:
        raise NotImplementedError

    def _built(self) -> Sequence[LoggedEvent]:
        if self._events is None:
            self._events = self.make_events()
        return self._events

    def __len__(self) -> int:
        return len(self._chosen)

    @overload
    def __getitem__(self, index: int) -> LoggedEvent: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[LoggedEvent]: ...

    def __getitem__(self, index: int | slice) -> LoggedEvent | Sequence[LoggedEvent]:
        return self._built()[index]

    def __iter__(self) -> Iterator[LoggedEvent]:
        return iter(self._built())


def padded(rows: Sequence[Sequence[float]], width: int = 0) -> FloatArray:
    """`rows` as a float array at least `width` wide, NaN past the end of shorter rows."""
    width = max(width, *(len(r) for r in rows)) if rows else width
    if all(len(r) == width for r in rows):
        return np.array(rows, dtype=np.float64).reshape(len(rows), width)
    out = np.full((len(rows), width), np.nan)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def ranges(
    reward_min: float | None, reward_max: float | None, propensity_min: float | None
) -> tuple[tuple[float, float], float]:
    """The reward range ``[min(0, r_min), max(1, r_max)]`` and largest weight ``1 / p_min``."""
    low = min(0.0, reward_min if reward_min is not None else 0.0)
    high = max(1.0, reward_max if reward_max is not None else 1.0)
    max_weight = 1.0 / propensity_min if propensity_min else 1.0
    # The Cressie-Read interval needs w_max > 1; any bound above the true one stays valid.
    return (low, high), max(max_weight, 1.0 + 1e-6)


Batches = Callable[[], Iterable[Sequence[LoggedEvent]]]
"""Makes a fresh pass over the logged events, oldest first."""


@dataclass(frozen=True)
class Log:
    """A window of learned events that can be read again, once per pass.

    `batches()` starts a fresh pass, oldest event first; `total`, `reward_range` and
    `max_weight` are read before the first (see :func:`ranges`). `surface`, `model_key`,
    `start` and `end` describe the window in results.
    """

    batches: Batches
    total: int
    reward_range: tuple[float, float]
    max_weight: float
    surface: str | None = None
    model_key: str | None = None
    start: datetime | None = None
    end: datetime | None = None

    @classmethod
    def of_store(
        cls,
        store: Store,
        *,
        surface: str | None = None,
        model_key: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        batch: int = 1000,
    ) -> Log:
        """The learned decisions of [start, end) as they are now, in `created_at` order, `batch`
        per query; only learned decisions count (their reward is final).

        Raises
        ------
        EvaluationError
            When `start` is not before `end` (`target` ``start``).
        """
        if start is not None and end is not None and start >= end:
            raise EvaluationError(
                f"`start` ({start.isoformat()}) must be before `end`", target="start"
            )
        total, r_min, r_max, p_min, last_seq = store.learned_summary(
            start=start, end=end, surface=surface, model_key=model_key
        )
        reward_range, max_weight = ranges(r_min, r_max, p_min)

        def batches() -> Iterator[list[LoggedEvent]]:
            # Decisions learned after the summary are left out: the ranges were read before them.
            for rows in store.iter_learned(
                start=start,
                end=end,
                surface=surface,
                model_key=model_key,
                through_seq=last_seq,
                batch=batch,
            ):
                yield [_stored(r) for r in rows]

        return cls(batches, total, reward_range, max_weight, surface, model_key, start, end)

    @classmethod
    def of_events(cls, events: Callable[[], Iterable[LoggedEvent]], *, batch: int = 1000) -> Log:
        """Events from a source read once for the summary and once per pass (a file)."""
        total, r_min, r_max, p_min = 0, math.inf, -math.inf, 1.0
        for event in events():
            total += 1
            r_min, r_max = min(r_min, event.reward), max(r_max, event.reward)
            p_min = min(p_min, event.propensity)
        reward_range, max_weight = ranges(r_min if total else None, r_max if total else None, p_min)

        def batches() -> Iterator[list[LoggedEvent]]:
            source = iter(events())
            while chunk := list(islice(source, batch)):
                yield chunk

        return cls(batches, total, reward_range, max_weight)

    @classmethod
    def of_dsjson(cls, path: Path, *, batch: int = 1000) -> Log:
        """The learnable events of a DSJSON file (`_skipLearn` ones are never evaluated), read
        straight into columns (:mod:`rewards.ope.dsjson_log`); the same events, figures and
        errors as :meth:`of_events` over :func:`dsjson_events`.

        Raises
        ------
        rewards.logs.dsjson_import.DsjsonError
            At the first malformed line, naming it and the field.
        """
        from rewards.ope.dsjson_log import dsjson_log  # it builds on this module

        return dsjson_log(path, batch=batch)


def _stored(row: LearnedRow) -> LoggedEvent:
    event_id, created_at, pmf, chosen_index, reward, example = row
    return LoggedEvent(
        event_id,
        created_at,
        pmf,
        int(chosen_index),
        float(reward),
        tuple(example.split("\n")),
    )


def imported(event: ImportedEvent) -> LoggedEvent:
    """A decision read from DSJSON, featurized as the live service featurizes it."""
    lines = adf_example(event.context, action_lines(event.actions))
    return LoggedEvent(
        event_id=event.event_id,
        created_at=event.timestamp,
        pmf=event.pmf,
        chosen_index=event.chosen_index,
        reward=event.reward,
        example=tuple(lines),
    )


def dsjson_events(path: Path) -> Iterator[LoggedEvent]:
    """Learnable events of a DSJSON file, oldest line first; memory stays flat."""
    with open(path, "rb") as handle:
        for event in read_dsjson(bounded_lines(handle), strict=True):
            if not event.skip_learn:
                yield imported(event)
