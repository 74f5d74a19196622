"""A VW `--cb_explore_adf` workspace with the lock, version and (de)serialization it needs.

VW workspaces are not thread-safe, so every call goes through one lock. The version is the
number of examples the model has learned: it names the model state exactly, because the
learner applies examples in one recorded order (see `bandit.learner`).
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import vowpalwabbit

from bandit.events import Features
from bandit.features import adf_example


class ModelError(ValueError):
    """The VW arguments or a serialized model could not be used."""


@dataclass(frozen=True, slots=True)
class LearnExample:
    """One decision joined with its reward, ready for `Model.learn`.

    `lines` is the unlabeled ADF example the policy predicted on (shared line first), exactly as
    logged, so learning and replay see the same features the decision saw.
    """

    lines: Sequence[str]
    chosen_index: int
    propensity: float
    reward: float

    def labeled(self) -> list[str]:
        """VW minimizes cost, so the label carries cost = -reward on the chosen action's line."""
        lines = list(self.lines)
        i = self.chosen_index + 1
        lines[i] = f"0:{-self.reward:.9g}:{self.propensity:.9g} {lines[i]}"
        return lines


def _quiet(args: str) -> str:
    return args if "--quiet" in args.split() else f"{args} --quiet"


def _workspace(args: str) -> vowpalwabbit.Workspace:
    try:
        return vowpalwabbit.Workspace(_quiet(args))
    except Exception as exc:  # VW raises plain RuntimeError/ValueError with its own message
        raise ModelError(f"VW refused the arguments {args!r}: {exc}") from exc


class Model:
    """One learnable policy model: predict a pmf over actions, learn from rewarded decisions."""

    def __init__(self, args: str, *, data: bytes | None = None, version: int = 0) -> None:
        self.args = args
        self.version = version
        self._lock = threading.Lock()
        self._vw = _workspace(args) if data is None else _load(data)

    def predict(self, context: Features, action_lines: Sequence[str]) -> list[float]:
        """The pmf over `action_lines`, in their order."""
        example = adf_example(context, action_lines)
        with self._lock:
            prediction = self._vw.predict(example)
        pmf = [float(p) for p in prediction]
        total = sum(pmf)
        # VW returns float32 probabilities; renormalize so the logged pmf sums to 1 in double.
        return [p / total for p in pmf] if total > 0 else [1.0 / len(pmf)] * len(pmf)

    def greedy(self, lines: Sequence[str]) -> int:
        """The index of the action this model would choose on a logged ADF example (its most
        probable one; the first on ties), without learning from it."""
        with self._lock:
            prediction = self._vw.predict(list(lines))
        pmf = [float(p) for p in prediction]
        return max(range(len(pmf)), key=lambda i: (pmf[i], -i))

    def learn(self, examples: Sequence[LearnExample]) -> int:
        """Learn `examples` in order and return the new version."""
        with self._lock:
            for ex in examples:
                self._vw.learn(ex.labeled())
            self.version += len(examples)
            return self.version

    def serialize(self) -> tuple[bytes, int]:
        """The model bytes (VW's own format, with `--save_resume` state) and their version."""
        with self._lock:
            fd, path = tempfile.mkstemp(prefix="oo-model-")
            os.close(fd)
            try:
                self._vw.save(path)
                with open(path, "rb") as handle:
                    return handle.read(), self.version
            finally:
                os.unlink(path)

    def close(self) -> None:
        with self._lock:
            self._vw.finish()


def _load(data: bytes) -> vowpalwabbit.Workspace:
    fd, path = tempfile.mkstemp(prefix="oo-model-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        try:
            return vowpalwabbit.Workspace(f"--quiet -i {path}")
        except Exception as exc:
            raise ModelError(f"the model bytes are not a VW model VW can load: {exc}") from exc
    finally:
        os.unlink(path)
