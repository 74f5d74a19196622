"""Features as VW saw them, checked over a sample of decisions: identifiers, timestamps and
features too rare to learn.

The logged VW example is read, not the feature JSON: it is what the model learned from, and its
namespaces and feature names are the ones a warning must name. Our featurizer writes
categorical features as `name=value` and numeric ones as `name:number`
(`bandit.features`); a bare token is a feature with no value.

Memory stays flat whatever the sample: each feature keeps counters and a bounded distinct-value
sketch (`rewards.distinct`), at most `MAX_FEATURES` features are tracked, and parsed lines are
cached in a dictionary that is cleared when it grows past `LINE_CACHE` (candidate lines repeat
from decision to decision, so parsing is mostly a lookup).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from rewards.distinct import Distinct, stable_hash

Where = Literal["context", "action"]

MAX_FEATURES = 2000
"""Features tracked; names past this many are counted per namespace (keys that carry data)."""
LINE_CACHE = 4096

IDENTIFIER_RATIO = 0.8
"""A feature whose distinct values reach this share of its occurrences is identifier-like."""
MIN_OCCURRENCES = 50
"""Fewer occurrences say nothing about how many values a feature takes."""
TIME_SHARE = 0.5
"""A feature is timestamp-like when at least this share of its values look like instants."""
RARE_SHARE = 0.01
"""A feature present in fewer than this share of the decisions is too rare to learn."""

# Epoch seconds, milliseconds, microseconds and nanoseconds between 2000 and 2100.
_EPOCH_SECONDS = (946_684_800.0, 4_102_444_800.0)
_EPOCHS = tuple((_EPOCH_SECONDS[0] * f, _EPOCH_SECONDS[1] * f) for f in (1, 1e3, 1e6, 1e9))
# An ISO 8601 date, with a time whose colons the featurizer turned into underscores.
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T_]\d{2}(?:_\d{2}){1,2}.*)?")


def looks_like_time(text: str, number: float | None) -> bool:
    """Whether a feature value reads as an instant: an epoch number (seconds to nanoseconds,
    years 2000-2100) or an ISO 8601 date.

    >>> looks_like_time("", 1764000000.0), looks_like_time("2026-11-25T09_30_00Z", None)
    (True, True)
    >>> looks_like_time("", 31.0), looks_like_time("h09", None)
    (False, False)
    """
    if number is None and text.isdigit():
        number = float(text)
    if number is None:
        return _ISO.fullmatch(text) is not None
    magnitude = abs(number)
    return any(low <= magnitude < high for low, high in _EPOCHS)


@dataclass(frozen=True, slots=True)
class Parsed:
    """One feature of a VW line: its namespace, name, value (text), number and value hash."""

    namespace: str
    name: str
    value: str
    number: float | None
    value_hash: int
    time_like: bool


def parse_line(line: str) -> tuple[Parsed, ...]:
    """The features of one VW text line (`shared |ns a=b c:1.5 |ns2 d`), in order."""
    body = line[len("shared ") :] if line.startswith("shared ") else line
    parsed: list[Parsed] = []
    for chunk in body.split("|")[1:]:
        if chunk.startswith(" "):
            namespace, tokens = " ", chunk.split()
        else:
            namespace, *tokens = chunk.split()
            namespace = namespace.split(":", 1)[0]  # a namespace may carry a weight: `ns:2`
        for token in tokens:
            number: float | None = None
            if ":" in token:
                name, _, text = token.rpartition(":")
                try:
                    number = float(text)
                except ValueError:
                    number = None
            elif "=" in token:
                name, _, text = token.partition("=")
            else:
                name, text = token, ""
            if number is not None and not math.isfinite(number):
                number = None
            parsed.append(
                Parsed(
                    namespace,
                    name,
                    text,
                    number,
                    stable_hash(text),
                    looks_like_time(text, number),
                )
            )
    return tuple(parsed)


@dataclass(slots=True, eq=False)
class FeatureStats:
    """What one feature did across the sample (hashed by identity: a decision collects the
    features it holds in a set)."""

    where: Where
    namespace: str
    name: str
    occurrences: int = 0
    decisions: int = 0
    numeric: int = 0
    large_integers: int = 0
    times: int = 0
    distinct: Distinct = field(default_factory=Distinct)
    example: str = ""

    def add(self, feature: Parsed) -> None:
        self.occurrences += 1
        self.distinct.add(feature.value_hash)
        if feature.time_like:
            self.times += 1
        number = feature.number
        if number is not None:
            self.numeric += 1
            if number.is_integer() and abs(number) >= 1000:
                self.large_integers += 1
        if not self.example:
            self.example = feature.value


@dataclass(frozen=True, slots=True)
class FeatureFinding:
    """A feature that cannot help the model learn, and why (`kind`)."""

    kind: Literal["identifier", "timestamp", "rare", "generated_names"]
    where: Where
    namespace: str
    feature: str
    share: float
    """identifier: distinct values per occurrence; timestamp: share of values that look like
    instants; rare: share of decisions with the feature; generated_names: names past the cap
    per decision."""
    example: str


class FeatureCheck:
    """Per-feature statistics over the sampled decisions' VW examples."""

    def __init__(self) -> None:
        self.decisions = 0
        self.features: dict[tuple[Where, str, str], FeatureStats] = {}
        self.untracked: dict[tuple[Where, str], tuple[int, str]] = {}
        self._lines: dict[str, tuple[Parsed, ...]] = {}

    def _parsed(self, line: str) -> tuple[Parsed, ...]:
        cached = self._lines.get(line)
        if cached is None:
            if len(self._lines) >= LINE_CACHE:
                self._lines.clear()
            cached = self._lines[line] = parse_line(line)
        return cached

    def add(self, example: Sequence[str]) -> None:
        """One decision's logged example: the shared line, then one line per candidate."""
        if not example:
            return
        self.decisions += 1
        present: set[FeatureStats] = set()
        for index, line in enumerate(example):
            where: Where = "context" if index == 0 else "action"
            for feature in self._parsed(line):
                stats = self._stats(where, feature)
                if stats is not None:
                    stats.add(feature)
                    present.add(stats)
        for stats in present:
            stats.decisions += 1

    def _stats(self, where: Where, feature: Parsed) -> FeatureStats | None:
        key = (where, feature.namespace, feature.name)
        stats = self.features.get(key)
        if stats is None:
            if len(self.features) >= MAX_FEATURES:
                count, example = self.untracked.get((where, feature.namespace), (0, feature.name))
                self.untracked[(where, feature.namespace)] = (count + 1, example)
                return None
            stats = self.features[key] = FeatureStats(where, feature.namespace, feature.name)
        return stats

    def findings(self) -> Iterator[FeatureFinding]:
        """Identifier-like, timestamp-like and rare features, worst first within each kind."""
        n = self.decisions
        if n == 0:
            return
        timestamps, identifiers, rare = [], [], []
        for stats in self.features.values():
            distinct = stats.distinct.count()
            share_times = stats.times / stats.occurrences
            ratio = distinct / stats.occurrences
            if share_times >= TIME_SHARE and distinct >= 2:
                timestamps.append((share_times, stats))
            elif (
                stats.occurrences >= MIN_OCCURRENCES
                and ratio >= IDENTIFIER_RATIO
                and (stats.numeric == 0 or stats.large_integers >= stats.occurrences / 2)
            ):
                identifiers.append((min(ratio, 1.0), stats))
            if stats.decisions / n < RARE_SHARE:
                rare.append((stats.decisions / n, stats))
        for share, stats in sorted(timestamps, key=lambda t: -t[0]):
            yield _finding("timestamp", stats, share)
        for share, stats in sorted(identifiers, key=lambda t: -t[0]):
            yield _finding("identifier", stats, share)
        for (where, namespace), (count, example) in sorted(self.untracked.items()):
            yield FeatureFinding("generated_names", where, namespace, example, count / n, example)
        for share, stats in sorted(rare, key=lambda t: t[0]):
            yield _finding("rare", stats, share)


def _finding(
    kind: Literal["identifier", "timestamp", "rare"], stats: FeatureStats, share: float
) -> FeatureFinding:
    return FeatureFinding(kind, stats.where, stats.namespace, stats.name, share, stats.example)
