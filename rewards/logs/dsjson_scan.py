r"""A DSJSON line's summary fields read off its bytes, without parsing its actions.

A shortcut over :mod:`.dsjson_import`, never a replacement: :func:`summary_fields` returns None
for any line it does not recognise with certainty, and the caller then reads that line the
ordinary way (`load_line` and `parse_record`), so a result never differs from the ordinary read
and a malformed line is refused by the same `DsjsonError`.
"""

from __future__ import annotations

import math
import re

_NUMBER = rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?"
_HEAD = re.compile(
    rb'\{"_label_cost":(' + _NUMBER + rb'),"_label_probability":' + _NUMBER
    + rb',"_label_Action":[0-9]+,"_labelIndex":[0-9]+,"a":\[[0-9,]*\],"p":\[(' + _NUMBER + rb")"
)  # fmt: skip
_SKIP_TAIL = re.compile(rb',"_skipLearn":true,"pdrop":0\}[ \t\r\n]*\Z')


def summary_fields(raw: bytes) -> tuple[float, float, bool] | None:
    r"""`(reward, propensity, skip_learn)` of a line laid out as `to_dsjson` writes it, or None.

    The leading keys are matched from the first byte, so they are the line's own, not a
    feature's; each key read must occur once in the line (a later duplicate would win in
    `json.loads`), and a line with a ``\u`` escape (a key could be spelled with one) is left
    to the ordinary read. The propensity is ``p[0]``, the chosen action's logged probability.
    The rest of the line is not checked here: the evaluation pass reads it in full.
    """
    head = _HEAD.match(raw)
    if head is None or b"\\u" in raw:
        return None
    if raw.count(b'"_label_cost"') != 1 or raw.count(b'"p"') != 1:
        return None
    skips = raw.count(b'"_skipLearn"')
    if skips > 1 or (skips == 1 and _SKIP_TAIL.search(raw) is None):
        return None
    cost, propensity = float(head.group(1)), float(head.group(2))
    if not (math.isfinite(cost) and math.isfinite(propensity)):
        return None
    return (-cost if cost else 0.0), propensity, skips == 1
