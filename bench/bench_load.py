"""Load on the production shape: a realistic request mix against 2 `oo api` processes, 1 learner,
PostgreSQL (fsync on) and Redis, started with infra/local-cluster, beside the minimal reference
outside oO in the same run.

    .venv/bin/python bench/bench_load.py          # starts its own cluster (infra/local-cluster)
    infra/local-cluster -- .venv/bin/python bench/bench_load.py   # or against a running one

The mix, in user operations: 60% `/v1/recommend` then `/v1/feedback`, 30% Personalizer rank then
reward, 10% `/v1/signals`; requests are spread round-robin over the api URLs.

Authenticated as in production (unless `--local`): the cluster runs in sign-in mode (a provider is
configured but never contacted), `--people` people are created in the auth store and send
`Authorization: Bearer` access tokens, and the Personalizer calls send an API key made with
`oo keys create`. So every request goes through token or key verification and the per-principal
rate limiter (one GCRA script in Redis per budget). People keep the default budgets, which the mix
stays well under when spread over enough people; the one key's budget is raised so that it does
not bind (`--key-budget`). A 429 is counted as an error like any other non-success status.

1. Closed loop, concurrency stepped up until throughput stops rising: the peak (HTTP requests/s).
2. The same, level by level alternating with the mix, for the minimal reference outside oO
   (`bench/reference/app.py`: FastAPI + VW, one uvicorn worker, no validation, no auth, no
   logging): one reference process per api process, on free loopback ports, its Personalizer
   rank driven round-robin with the tip candidates recommend ranks. The mix's peak over the
   reference's is the ratio.
3. Open loop (requests scheduled at a fixed rate, latency counted from the scheduled moment, so
   queueing shows) at 50%, 80% and 100% of the peak: p50/p99.

Prints tables; never fails on time. The load generator shares the machine with the cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import ROOT, free_port, reference, table, tip_payload

RANK = "/personalizer/v1.0/rank"
REFERENCE = "reference (FastAPI + VW, outside oO)"
REACTIONS = ["done", "useful", "later", "dismiss"]
KINDS = ("recommend", "feedback", "rank", "reward", "signal", "reference")
SERVER_ERRORS: dict[str, int] = {}
"""Every 5xx of the whole run by request kind and status, except capacity 503s: each is a bug."""
SHED_BY_SERVER: dict[str, int] = {}
"""503s: an api past OO_MAX_IN_FLIGHT refuses the excess (with Retry-After) by design."""


@dataclass
class Sample:
    """Latencies (seconds) by request kind, errors, and what the client process cost."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    client_cpu: float = 0.0
    shed: int = 0

    def record(self, kind: str, seconds: float, status: int, ok: tuple[int, ...]) -> None:
        self.latencies[kind].append(seconds)
        if status not in ok:
            name = f"{kind} {status}"
            self.errors[name] = self.errors.get(name, 0) + 1
            if status == 503:
                SHED_BY_SERVER[name] = SHED_BY_SERVER.get(name, 0) + 1
            elif status >= 500:
                SERVER_ERRORS[name] = SERVER_ERRORS.get(name, 0) + 1

    def error(self, name: str) -> None:
        self.errors[name] = self.errors.get(name, 0) + 1

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float, kind: str | None = None) -> float:
        values = self.latencies[kind] if kind else [x for v in self.latencies.values() for x in v]
        return float(np.percentile(values, q)) * 1000 if values else float("nan")

    def error_text(self) -> str:
        return ",".join(f"{k}:{v}" for k, v in sorted(self.errors.items())) or "0"


@dataclass(frozen=True)
class Credentials:
    """Headers per person (taken in turn) and for the Personalizer key, and how they were made."""

    people: list[dict[str, str]]
    integrator: dict[str, str]
    mode: str


def signin_env(key_budget: str) -> dict[str, str]:
    """Sign-in mode for the cluster: a provider nobody signs in with (its discovery document is
    only fetched when someone starts a sign-in), a fresh token key, and the key's budget."""
    provider = {
        "discovery_url": "https://id.invalid/.well-known/openid-configuration",
        "client_id": "oo-bench",
        "client_secret": "unused",
        "label": "Load test",
    }
    return {
        "OO_OIDC_PROVIDERS": json.dumps({"bench": provider}),
        "OO_TOKEN_KEYS": "bench:" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "OO_PUBLIC_URL": "http://127.0.0.1",
        "OO_ACCESS_TOKEN_MINUTES": "60",
        "OO_RATE_LIMIT_PERSONALIZER": key_budget,
    }


def credentials(people: int) -> Credentials:
    """People in the auth store with access tokens, and an API key from `oo keys create`."""
    from api.auth.store import AuthStore
    from api.auth.tokens import AccessTokens
    from api.deps import KEY_HEADER
    from api.settings import Settings
    from bandit.store import make_engine

    settings = Settings()
    if not settings.signin_providers or not settings.public_url:
        return Credentials([{}], {}, "local single-user mode: no credentials, no rate limits")
    run = uuid.uuid4().hex[:8]
    engine = make_engine(settings.database, pool_size=1)
    try:
        store = AuthStore(engine)  # the deployment's database, at head (`oo db upgrade`)
        tokens = AccessTokens(
            settings.signin_token_keys,
            issuer=settings.public_url.rstrip("/"),
            lifetime_seconds=round(settings.access_token_minutes * 60),
        )
        headers = []
        for n in range(people):
            person = store.sign_in(
                provider="bench", issuer="bench-load", subject=f"{run}-{n}", email=None, name=None
            )
            headers.append({"Authorization": f"Bearer {tokens.issue(person.id, person.roles)}"})
    finally:
        engine.dispose()
    created = subprocess.run(
        [sys.executable, "-m", "api.cli", "keys", "create", "--name", f"load-{run}", "--json"],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    key = json.loads(created.stdout)["key"]
    budgets = (
        f"people {settings.rate_limit_default} (signals {settings.rate_limit_signals}), "
        f"key {settings.rate_limit_personalizer}"
    )
    return Credentials(
        headers,
        {KEY_HEADER: key},
        f"sign-in mode: {people} people with access tokens, 1 API key; budgets {budgets}",
    )


class Mix:
    """One user operation per call, chosen by its index: 6 recommend+feedback, 3 rank+reward,
    1 signal in every 10; api processes and people taken in turn."""

    def __init__(
        self, clients: list[httpx.AsyncClient], tips: dict[str, Any], auth: Credentials
    ) -> None:
        self.clients = clients
        self.tips = tips
        self.auth = auth
        self.run_id = uuid.uuid4().hex[:8]
        # Event ids new for every rank of the run: the index `i` starts again at each level,
        # and a rank with a logged event id is a retry, answered from the log.
        self._ranks = itertools.count()

    async def __call__(self, i: int, sample: Sample, scheduled: float | None = None) -> None:
        client = self.clients[i % len(self.clients)]
        person = self.auth.people[(i // 10) % len(self.auth.people)]
        slot = i % 10
        started = scheduled if scheduled is not None else time.perf_counter()
        try:
            if slot < 6:
                reply = await client.post("/v1/recommend", headers=person)
                sample.record("recommend", time.perf_counter() - started, reply.status_code, (200,))
                if reply.status_code != 200:
                    return
                started = time.perf_counter()
                body = {"event_id": reply.json()["event_id"], "reaction": REACTIONS[i % 4]}
                reply = await client.post("/v1/feedback", json=body, headers=person)
                sample.record("feedback", time.perf_counter() - started, reply.status_code, (200,))
            elif slot < 9:
                event_id = f"load-{self.run_id}-{next(self._ranks)}"
                body = {**self.tips, "eventId": event_id}
                key = self.auth.integrator
                reply = await client.post(RANK, json=body, headers=key)
                sample.record("rank", time.perf_counter() - started, reply.status_code, (201,))
                if reply.status_code != 201:
                    return
                started = time.perf_counter()
                reply = await client.post(
                    f"/personalizer/v1.0/events/{event_id}/reward",
                    json={"value": float(i % 2)},
                    headers=key,
                )
                sample.record("reward", time.perf_counter() - started, reply.status_code, (204,))
            else:
                body = {"type": "mood", "value": float(1 + i % 5), "source": "bench"}
                reply = await client.post("/v1/signals", json=body, headers=person)
                sample.record("signal", time.perf_counter() - started, reply.status_code, (202,))
        except httpx.HTTPError as exc:
            sample.error(type(exc).__name__)


class ReferenceRank:
    """The reference's rank over the recommend path's candidates, round-robin over its
    processes."""

    def __init__(self, clients: list[httpx.AsyncClient], tips: dict[str, Any]) -> None:
        self.clients = clients
        self.tips = tips

    async def __call__(self, i: int, sample: Sample, scheduled: float | None = None) -> None:
        started = time.perf_counter()
        try:
            reply = await self.clients[i % len(self.clients)].post(RANK, json=self.tips)
            sample.record("reference", time.perf_counter() - started, reply.status_code, (201,))
        except httpx.HTTPError as exc:
            sample.error(type(exc).__name__)


Operation = Callable[[int, Sample, float | None], Coroutine[Any, Any, None]]


async def closed_loop(operation: Operation, *, concurrency: int, seconds: float) -> Sample:
    sample = Sample()
    counter = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal counter
        while time.perf_counter() < stop_at:
            counter += 1
            await operation(counter, sample, None)

    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    sample.seconds = time.perf_counter() - started
    sample.client_cpu = (time.process_time() - cpu) / sample.seconds
    return sample


async def open_loop(
    operation: Operation, *, requests_per_second: float, per_operation: float, seconds: float
) -> Sample:
    """Start operations on a fixed schedule whatever the answers; latency from the schedule."""
    sample = Sample()
    interval = per_operation / requests_per_second
    in_flight: set[asyncio.Task[None]] = set()
    cpu, started = time.process_time(), time.perf_counter()
    i = 0
    while True:
        due = started + i * interval
        if due >= started + seconds:
            break
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(in_flight) >= 4000:  # the server fell far behind: count it, do not pile up more
            sample.shed += 1
        else:
            task = asyncio.create_task(operation(i, sample, due))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        i += 1
    if in_flight:
        await asyncio.wait(in_flight, timeout=60)
    sample.seconds = time.perf_counter() - started
    sample.client_cpu = (time.process_time() - cpu) / sample.seconds
    return sample


async def step_up(
    loads: dict[str, Operation], levels: list[int], seconds: float, rows: list[list[str]]
) -> dict[str, tuple[float, int]]:
    """Raise concurrency until throughput stops rising (two levels without +5%), for every
    load at once: at each level the loads run back to back, so both see the same machine."""
    best = dict.fromkeys(loads, (0.0, levels[0]))
    flat = dict.fromkeys(loads, 0)
    for concurrency in levels:
        for name, operation in loads.items():
            if flat[name] >= 2:
                continue
            sample = await closed_loop(operation, concurrency=concurrency, seconds=seconds)
            rows.append(
                [
                    name,
                    str(concurrency),
                    f"{sample.throughput:,.0f}",
                    f"{sample.percentile(50):.1f}",
                    f"{sample.percentile(99):.1f}",
                    sample.error_text(),
                    f"{sample.client_cpu:.0%}",
                ]
            )
            print("  ".join(rows[-1]), file=sys.stderr, flush=True)
            if sample.throughput > best[name][0] * 1.05:
                best[name], flat[name] = (sample.throughput, concurrency), 0
            else:
                if sample.throughput > best[name][0]:
                    best[name] = (sample.throughput, concurrency)
                flat[name] += 1
        if all(f >= 2 for f in flat.values()):
            break
    return best


def cluster_facts(database_url: str) -> str:
    import sqlalchemy as sa

    engine = sa.create_engine(database_url.split("?")[0])
    with engine.connect() as conn:
        fsync = conn.execute(sa.text("SHOW fsync")).scalar_one()
        sync = conn.execute(sa.text("SHOW synchronous_commit")).scalar_one()
    engine.dispose()
    return f"PostgreSQL fsync={fsync} synchronous_commit={sync}"


async def run(args: argparse.Namespace, urls: list[str], reference_urls: list[str]) -> None:
    tips = tip_payload()
    load_before = os.getloadavg()[0]
    limits = httpx.Limits(max_connections=1024, max_keepalive_connections=1024)
    clients = [httpx.AsyncClient(base_url=u, timeout=60, limits=limits) for u in urls]
    ref_clients = [httpx.AsyncClient(base_url=u, timeout=60, limits=limits) for u in reference_urls]
    auth = credentials(args.people)
    mix, ref = Mix(clients, tips, auth), ReferenceRank(ref_clients, tips)
    levels = [int(c) for c in args.levels.split(",")]
    try:
        probe = await ref_clients[0].post(RANK, json=tips)
        if probe.status_code != 201:
            sys.exit(f"the reference answered {probe.status_code} to rank: {probe.text[:200]}")
        await closed_loop(mix, concurrency=8, seconds=args.warmup)  # warm-up
        await closed_loop(ref, concurrency=8, seconds=min(args.warmup, 2))

        closed_rows: list[list[str]] = []
        best = await step_up({"mix": mix, REFERENCE: ref}, levels, args.seconds, closed_rows)
        (peak, peak_concurrency), (ref_peak, ref_concurrency) = best["mix"], best[REFERENCE]

        per_operation = 0.6 * 2 + 0.3 * 2 + 0.1 * 1  # HTTP requests per user operation
        open_rows = []
        for fraction in (0.5, 0.8, 1.0):
            sample = await open_loop(
                mix,
                requests_per_second=peak * fraction,
                per_operation=per_operation,
                seconds=args.open_seconds,
            )
            open_rows.append(
                [
                    f"{fraction:.0%}",
                    f"{peak * fraction:,.0f}",
                    f"{sample.throughput:,.0f}",
                    f"{sample.percentile(50):.1f}",
                    f"{sample.percentile(99):.1f}",
                    f"{sample.percentile(99, 'recommend'):.1f}",
                    f"{sample.percentile(99, 'rank'):.1f}",
                    f"{sample.percentile(99, 'signal'):.1f}",
                    sample.error_text(),
                    str(sample.shed),
                    f"{sample.client_cpu:.0%}",
                ]
            )
            print("  ".join(open_rows[-1]), file=sys.stderr, flush=True)
        learner = await clients[0].get(os.environ["OO_CLUSTER_LEARNER_URL"] + "/health")
    finally:
        for client in [*clients, *ref_clients]:
            await client.aclose()

    candidates = tips["actions"]
    assert isinstance(candidates, list)
    print(
        f"\n{len(urls)} api processes, 1 learner, Redis, and {len(reference_urls)} reference "
        "processes; "
        f"{cluster_facts(os.environ['OO_DATABASE_URL'])}; {os.cpu_count()} CPUs shared with "
        f"this load generator (1-min load average {load_before:.1f} before the run, "
        f"{os.getloadavg()[0]:.1f} after)\n"
        "mix per 10 operations: 6 recommend+feedback, 3 rank+reward, "
        f"1 signal; {len(candidates)} candidates\n{auth.mode}\n"
    )
    print(
        "closed loop, concurrency stepped up; the mix and the reference's rank alternate at each "
        "level (latency per HTTP request)\n"
    )
    print(
        table(
            closed_rows,
            ["load", "concurrency", "req/s", "p50 ms", "p99 ms", "errors", "client CPU"],
        )
    )
    print(
        f"\npeak mix {peak:,.0f} req/s (concurrency {peak_concurrency}); {REFERENCE} "
        f"{ref_peak:,.0f} req/s (concurrency {ref_concurrency}); ratio {peak / ref_peak:.2f}\n"
    )
    print(
        f"open loop, {args.open_seconds:.0f}s per rate, latency from the scheduled start "
        "(queueing included)\n"
    )
    print(
        table(
            open_rows,
            [
                "of peak",
                "target req/s",
                "req/s",
                "p50 ms",
                "p99 ms",
                "p99 recommend",
                "p99 rank",
                "p99 signal",
                "errors",
                "shed",
                "client CPU",
            ],
        )
    )
    body = learner.json()
    print(f"\nlearner after the run: {body.get('status')}, learned {body.get('learned')}")
    if SHED_BY_SERVER:
        shed = ", ".join(f"{k}: {v}" for k, v in sorted(SHED_BY_SERVER.items()))
        print(f"\nrefused at capacity (503 + Retry-After, by design): {shed}")
    if SERVER_ERRORS:
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(SERVER_ERRORS.items()))
        print(f"\n5xx answers (bugs): {errors}; api logs in {os.environ.get('OO_CLUSTER_DIR')}:")
        for log in sorted(Path(os.environ.get("OO_CLUSTER_DIR", ".")).glob("api-*.log")):
            print(
                f"--- {log.name} (last 30 lines)\n" + "\n".join(log.read_text().splitlines()[-30:])
            )
    else:
        print("no 5xx answers")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--apis", type=int, default=2, help="api processes (own cluster only)")
    parser.add_argument("--seconds", type=float, default=6.0, help="per closed-loop level")
    parser.add_argument("--open-seconds", type=float, default=10.0, help="per open-loop rate")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--levels", default="4,8,16,32,64", help="closed-loop concurrency")
    parser.add_argument("--people", type=int, default=200, help="people sending the mix")
    parser.add_argument(
        "--key-budget", default="1000000/minute", help="the Personalizer key's rate limit"
    )
    parser.add_argument(
        "--local", action="store_true", help="local single-user mode: no sign-in, no limits"
    )
    args = parser.parse_args()

    urls = os.environ.get("OO_CLUSTER_API_URLS", "").split()
    if not urls:
        # Start the cluster and run this script inside it (fsync on).
        env = {
            **os.environ,
            "OO_TEST_PG_FSYNC": "on",
            "OO_TIP_COOLDOWN_HOURS": "0",
            **({} if args.local else signin_env(args.key_budget)),
        }
        script = str(ROOT / "infra" / "local-cluster")
        command = [script, "--apis", str(args.apis), "--base-port", "0", "--"]
        os.execve(script, [*command, sys.executable, __file__, *sys.argv[1:]], env)
    # One reference process per api process, so that the ratio compares like with like.
    ports = [free_port() for _ in urls]
    with ExitStack() as stack:
        for port in ports:
            stack.enter_context(reference(port))
        asyncio.run(run(args, urls, [f"http://127.0.0.1:{port}" for port in ports]))


if __name__ == "__main__":
    main()
