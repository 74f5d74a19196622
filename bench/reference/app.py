"""The least a rank service must do, outside oO: the baseline of `bench/bench_rank.py`.

One async route reads the JSON body, builds the same VW lines oO builds, predicts, samples and
answers. No validation, no logging, no middleware; one uvicorn worker. Imports nothing of oO.

    python -m uvicorn bench.reference.app:app --port 8100 --log-level warning
"""

import json
import random
import re
import uuid

import vowpalwabbit
from fastapi import FastAPI, Request

vw = vowpalwabbit.Workspace("--cb_explore_adf --squarecb --cb_type mtr -q :: --quiet")
app = FastAPI()
_RESERVED = re.compile(r"[\s|:]+")


def _feature(path, value):
    if isinstance(value, list):
        return " ".join(_feature(path, item) for item in value)
    if isinstance(value, str):
        return f"{path}={_RESERVED.sub('_', value)}"
    if isinstance(value, bool):
        return f"{path}={'true' if value else 'false'}"
    return f"{path}:{value:.9g}"


def _line(features):
    return " ".join(
        f"|{ns} " + " ".join(_feature(f"{k}", v) for k, v in values.items())
        for obj in features
        for ns, values in obj.items()
    )


@app.post("/personalizer/v1.0/rank", status_code=201)
async def rank(request: Request):
    body = json.loads(await request.body())
    actions = body["actions"]
    lines = [f"shared {_line(body['contextFeatures'])}"] + [_line(a["features"]) for a in actions]
    pmf = vw.predict(lines)
    chosen = random.choices(range(len(actions)), weights=pmf)[0]
    order = sorted(range(len(actions)), key=lambda i: -pmf[i])
    return {
        "eventId": body.get("eventId") or uuid.uuid4().hex,
        "rewardActionId": actions[chosen]["id"],
        "ranking": [{"id": actions[i]["id"], "probability": pmf[i]} for i in order],
    }
