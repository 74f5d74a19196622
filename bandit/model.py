"""A VW `--cb_explore_adf` workspace with the lock, version and (de)serialization it needs.

VW workspaces are not thread-safe, so every call goes through one lock. The version is the
number of examples the model has learned: it names the model state exactly, because the
learner applies examples in one recorded order (see `bandit.learner`).

This is the only module that builds VW workspaces (`workspace`, `Model`): every argument string
and every model header goes through the allow-list of `bandit.vw_args` first.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import pylibvw
import vowpalwabbit

from bandit.costs import Costs
from bandit.errors import DomainError
from bandit.events import Features
from bandit.features import adf_example
from bandit.vw_args import VwArgs, VwArgsError, parse
from bandit.vw_header import HeaderError, header_options


class ModelError(DomainError, ValueError):
    """The VW arguments or a serialized model could not be used; `target` is the VW option at
    fault when the allow-list refused one (as spelled), else None (or the field the model bytes
    came in, when the caller named it)."""


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

    def labeled(self, costs: Costs) -> list[str]:
        """The lines with the reward's cost under `costs` on the chosen action's line (VW
        minimizes cost; the mapping follows the model's loss function, `bandit.costs`)."""
        lines = list(self.lines)
        i = self.chosen_index + 1
        lines[i] = f"0:{costs.cost(self.reward):.9g}:{self.propensity:.9g} {lines[i]}"
        return lines


def workspace(args: str) -> vowpalwabbit.Workspace:
    """A quiet VW workspace built from `args`, once the allow-list has passed them.

    VW is handed the gate's canonical tokens as a list, never the text: nothing the gate did not
    read (quotes, escapes, other whitespace) reaches VW's own parsing.

    Raises
    ------
    ModelError
        When the allow-list refuses `args` (`target` names the option) or VW does.
    """
    return _workspace(_gated(args), args)


def _workspace(gated: VwArgs, args: str) -> vowpalwabbit.Workspace:
    """`workspace` of arguments the allow-list has passed (`gated`, read from `args`)."""
    tokens = gated.tokens if "--quiet" in gated else [*gated.tokens, "--quiet"]
    try:
        return vowpalwabbit.Workspace(arg_list=tokens)
    except Exception as exc:  # VW raises plain RuntimeError/ValueError with its own message
        raise ModelError(f"VW refused the arguments {args!r}: {exc}") from exc


def _gated(args: str) -> VwArgs:
    try:
        return parse(args)
    except VwArgsError as exc:
        raise ModelError(str(exc), target=exc.target) from exc


_ACTION_SCORES = (
    vowpalwabbit.PredictionType.ACTION_PROBS,
    vowpalwabbit.PredictionType.ACTION_SCORES,
)


def _native(vw: vowpalwabbit.Workspace) -> bool:
    """Whether `Model` can drive `vw` through VW's native example calls: a multi-line learner
    (every ADF reduction) whose prediction is one score or probability per action."""
    return bool(vw._is_multiline()) and vw.get_prediction_type() in _ACTION_SCORES


ACTIONS_KEPT = 256
"""How many parsed action examples a model keeps for its predictions (`Model.predict`): VW's
native examples take about 28 KB each, so about 7 MB a model. The catalog holds 208 tips; a
person's history adds a part to each line, so a catalog tip is one line per distinct history
of its category among the people deciding at the moment."""

_PROBE_CONTEXT: Features = [{"probe": {"x": 1}}]
_PROBE_LINES = ("|a y:1", "|a z:1")


class Model:
    """One learnable policy model: predict a pmf over actions, learn from rewarded decisions."""

    def __init__(
        self, args: str, *, data: bytes | None = None, version: int = 0, field: str | None = None
    ) -> None:
        """A fresh model of `args`, or the model `data` holds.

        `field` names where `data` came from (a request's `body`): a refusal of the bytes then
        names that field and targets it. Loaded or fresh, the model learns with the loss
        function `args` name and that loss's cost mapping (`bandit.costs`).
        """
        self.args = args
        self.version = version
        self._lock = threading.Lock()
        gated = _gated(args)
        self._vw = _workspace(gated, args) if data is None else _load(data, field, _unkept(gated))
        self.costs = Costs.of(gated)
        self._native = _native(self._vw)
        self._actions: OrderedDict[str, pylibvw.example] = OrderedDict()
        """Action line -> its parsed native example, least recently predicted on first."""

    def predict(self, context: Features, action_lines: Sequence[str]) -> list[float]:
        """The pmf over `action_lines`, in their order."""
        example = adf_example(context, action_lines)
        with self._lock:
            prediction = self._predict_keeping(example) if self._native else self._predict(example)
        pmf = [float(p) for p in prediction]
        total = sum(pmf)
        # VW returns float32 probabilities; renormalize so the logged pmf sums to 1 in double.
        return [p / total for p in pmf] if total > 0 else [1.0 / len(pmf)] * len(pmf)

    @contextmanager
    def _parsed(self, lines: list[str]) -> Iterator[list[pylibvw.example]]:
        """`lines` parsed into VW's native examples, finished on exit. Use under the lock.

        This is what pyvw's `predict` and `learn` do with text, through the same native calls
        (`_parse`, `predict_multi`/`learn_multi`, `_finish_example_multi_ex`), without the
        Python `Example` wrapper pyvw builds around every line (and the label type it looks up
        for each): on a 30-action example that wrapping is more than half of a learn. The
        model learns and predicts bit for bit as through pyvw (`tests/bandit/test_model.py`
        pins it on every built-in policy).
        """
        vw = self._vw
        examples = pylibvw.vw._parse(vw, "\n".join(lines).replace("\r", "").strip())
        try:
            yield examples
        finally:
            pylibvw.vw._finish_example_multi_ex(vw, examples)

    @contextmanager
    def _pyvw_parsed(self, lines: list[str]) -> Iterator[list[vowpalwabbit.Example]]:
        """`lines` parsed by pyvw's own API, finished on exit: for a workspace whose predictions
        are not one score per action (`_native`). Use under the lock."""
        vw = self._vw
        examples = vw.parse(lines, vw.get_label_type())
        try:
            yield examples
        finally:
            vw.finish_example(examples)

    def _predict(self, lines: list[str]) -> list[float]:
        prediction: list[float]
        if not self._native:
            with self._pyvw_parsed(lines) as examples:
                prediction = self._vw.predict(examples)
            return prediction
        with self._parsed(lines) as examples:
            pylibvw.vw.predict_multi(self._vw, examples)
            prediction = examples[0].get_action_scores()
        return prediction

    def _predict_keeping(self, lines: list[str]) -> list[float]:
        """`_predict` for the decision path, with the actions' examples parsed once.

        Parsing the text was more than half of a prediction on the recommend path (31 lines:
        13.8 of 24.8 µs), and the same catalog lines come back on every call. VW's prediction
        leaves an action's example as it found it (a `cb_adf` reduction adds the shared
        example's features to each action for the call and takes them off again), so a parsed
        action is kept (`ACTIONS_KEPT`, least recently used out) and only the shared line is
        parsed anew. Predictions are bit for bit those of a fresh parse
        (`tests/bandit/test_model.py`). Learning always parses afresh: a label changes the
        example. Use under the lock.
        """
        kept = self._actions
        examples: list[pylibvw.example | None] = []
        missing = [lines[0]]  # the shared line, always parsed: the context changes every call
        seen: set[str] = set()
        for line in lines[1:]:
            found = kept.get(line) if line not in seen else None  # twice in one call: a copy
            if found is not None:
                kept.move_to_end(line)
            else:
                missing.append(line)
            examples.append(found)
            seen.add(line)
        vw = self._vw
        parsed = pylibvw.vw._parse(vw, "\n".join(missing).replace("\r", "").strip())
        if len(parsed) != len(missing):  # a line VW read as more or fewer than one example
            pylibvw.vw._finish_example_multi_ex(vw, parsed)
            return self._predict(lines)
        shared, fresh = parsed[0], iter(zip(missing[1:], parsed[1:], strict=True))
        done = [shared]  # examples going back to VW's pool after the call
        for i, found in enumerate(examples):
            if found is None:
                line, example = next(fresh)
                examples[i] = example
                if line in kept:  # the second of a line twice in this call
                    done.append(example)
                else:
                    kept[line] = example
        try:
            pylibvw.vw.predict_multi(vw, [shared, *examples])
            prediction: list[float] = shared.get_action_scores()
        except BaseException:
            # An example VW failed in the middle of may still carry the shared features.
            for line in seen:
                dropped = kept.pop(line, None)
                if dropped is not None:
                    done.append(dropped)
            raise
        finally:
            while len(kept) > ACTIONS_KEPT:
                done.append(kept.popitem(last=False)[1])
            pylibvw.vw._finish_example_multi_ex(vw, done)
        return prediction

    def _learn(self, lines: list[str]) -> None:
        if not self._native:
            with self._pyvw_parsed(lines) as examples:
                self._vw.learn(examples)
            return
        with self._parsed(lines) as examples:
            pylibvw.vw.learn_multi(self._vw, examples)

    def probe(self) -> None:
        """Predict on a made-up example of two actions, to refuse a model that builds but cannot
        serve (a model of another reduction, or options VW only refuses at predict time).

        Raises
        ------
        ModelError
            With VW's reason, or the count of probabilities predicted when it is not 2.
        """
        try:
            pmf = self.predict(_PROBE_CONTEXT, _PROBE_LINES)
        except Exception as exc:  # VW raises plain RuntimeErrors at predict time
            raise ModelError(str(exc)) from exc
        if len(pmf) != len(_PROBE_LINES):
            raise ModelError(f"it predicted {len(pmf)} probabilities for 2 actions")

    def scores(self, lines: Sequence[str]) -> list[float]:
        """VW's prediction on a logged ADF example (shared line first), one number per action in
        the logged order, without learning from it: the pmf of a `--cb_explore_adf` model (as
        VW returns it, in single precision), each action's cost for a `--cb_adf` regressor."""
        with self._lock:
            prediction = self._predict(list(lines))
        return [float(p) for p in prediction]

    def greedy(self, lines: Sequence[str]) -> int:
        """The index of the action this model would choose on a logged ADF example (its most
        probable one; the first on ties), without learning from it."""
        pmf = self.scores(lines)
        return max(range(len(pmf)), key=lambda i: (pmf[i], -i))

    def replay(self, example: LearnExample) -> list[float]:
        """One step of progressive validation: the `scores` of `example`'s lines, then learn it.

        The scores are predicted before the model has seen the example, so a replay over a log
        never scores an event with a model that learned it (counterfactual evaluation).
        """
        with self._lock:
            prediction = self._predict(list(example.lines))
            self._learn(example.labeled(self.costs))
            self.version += 1
        return [float(p) for p in prediction]

    def learn(self, examples: Sequence[LearnExample]) -> int:
        """Learn `examples` in order and return the new version.

        The lock is taken per example, not per batch: decisions predict on the event loop
        (ADR 0016), so a batch must never keep the model from them for longer than one learn.
        """
        for ex in examples:
            labeled = ex.labeled(self.costs)
            with self._lock:
                self._learn(labeled)
                self.version += 1
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
            if self._actions:  # back to VW's pool while the workspace still holds it
                pylibvw.vw._finish_example_multi_ex(self._vw, list(self._actions.values()))
                self._actions.clear()
            self._vw.finish()


UNKEPT = ("--loss_function", "--quantile_tau", "--l1", "--l2")
"""Allowed options that change how a model learns but that VW 9.11 does not write into a model
file (measured: a model loaded with `-i` alone learns otherwise than the one saved)."""


def _unkept(args: VwArgs) -> list[str]:
    """The tokens of `args`' options VW does not keep in a model file (`UNKEPT`)."""
    return [
        token
        for name in UNKEPT
        if (setting := args.find(name)) is not None
        for token in setting.tokens()
    ]


def _load(data: bytes, field: str | None, unkept: list[str]) -> vowpalwabbit.Workspace:
    """A workspace from model bytes whose header options the allow-list passes, learning with
    the gated `unkept` tokens.

    VW applies the options in a model's header when it loads it (`bandit.vw_header`), so they
    are read and gated before VW sees the bytes. VW 9 does not write the loss function and the
    regularization (`UNKEPT`) into the header: a model trained with logistic loss would go on
    learning with squared loss once loaded, while its cost labels still follow the logistic
    mapping, and `--l1`/`--l2` would silently stop. So the ones of the arguments the model was
    built with are handed to VW again.
    """

    def refused(message: str, option: str | None = None) -> ModelError:
        if field is None:
            return ModelError(message, target=option)
        return ModelError(f"`{field}`: {message}", target=field)

    try:
        options = header_options(data)
    except HeaderError as exc:
        raise refused(f"the model bytes are not a VW model VW can load: {exc}") from exc
    try:
        parse(options)
    except VwArgsError as exc:
        raise refused(
            f"the model's header asks VW for options oO does not allow: {exc}", exc.target
        ) from exc
    fd, path = tempfile.mkstemp(prefix="oo-model-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        try:
            return vowpalwabbit.Workspace(arg_list=["--quiet", "-i", path, *unkept])
        except Exception as exc:
            raise refused(f"the model bytes are not a VW model VW can load: {exc}") from exc
    finally:
        os.unlink(path)
