"""Every Personalizer setting acts or is refused (ADR 0015): evaluation time series and filters,
policy optimization, auto-optimization and model export on schedules driven by an injected
clock, and the settings oO refuses with what it does instead."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.ai.personalizer import PersonalizerAdministrationClient
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import HttpResponseError
from fastapi.testclient import TestClient

from api.personalizer.schedule import Schedules, latest_slot
from api.services.surfaces import PERSONALIZER
from api.settings import Settings
from bandit.events import utcnow
from bandit.model import Model
from rewards.ope.grid import Grid
from tests.api.decision_helpers import personalizer_url, services
from tests.conftest import LiveServer, wait_until
from tests.rewards.synthetic import START
from tests.rewards.synthetic import write_log as synthetic_log

StartServer = Callable[..., LiveServer]
HOUR = timedelta(hours=1)


def _log_start() -> datetime:
    """Where a test's log starts: on a 5-minute boundary, and recent enough (inside the reward
    window) that the app's learner does not settle the decisions with the default reward
    before the log marks them learned. Only where the log lies depends on the clock; every
    schedule is driven by the time a test passes."""
    now = utcnow()
    return now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0)


def write_log(store: Any, n: int, *, seed: int, start: datetime) -> None:
    """`n` learned decisions of the synthetic world, one a second from `start`."""
    synthetic_log(store, n, seed=seed, start=start)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%SZ")


def _admin(live: LiveServer) -> PersonalizerAdministrationClient:
    return PersonalizerAdministrationClient(live.url, AzureKeyCredential("k"), retry_total=0)


def _put_config(client: TestClient, **changes: Any) -> Any:
    url = personalizer_url("/configurations/service", "preview")
    current = client.get(url).json()
    current.pop("latestApprenticeModeMetrics", None)
    current.update(changes)
    return client.put(url, json=current)


def _settled(client: TestClient, evaluation_id: str) -> dict[str, Any]:
    url = personalizer_url(f"/evaluations/{evaluation_id}", "preview")

    def done() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(url).json()
        return body if body["status"] != "Running" else None

    found: dict[str, Any] = wait_until(done, timeout=120)
    return found


# --- evaluation time series and filters -------------------------------------------------------


def test_time_series_come_in_buckets_of_the_interval(live_server: StartServer) -> None:
    live = live_server()
    start = _log_start()
    end = start + timedelta(minutes=10)
    write_log(live.services.store, 600, seed=5, start=start)  # one a second: 10 minutes
    admin = _admin(live)
    window = {"startTime": start.isoformat(), "endTime": end.isoformat()}
    admin.create_evaluation("series", {"name": "series", **window})

    def finished() -> Any:
        found = admin.get_evaluation("series", start_time=start, end_time=end)
        return found if found["status"] != "Running" else None

    default = wait_until(finished, timeout=60)
    assert default["status"] == "Succeeded", default.get("description")
    assert default["content"]["intervalInMinutes"] == 5  # Personalizer's default
    for policy in default["content"]["value"]:
        points = policy["timeseries"]["data"]
        stamps = [datetime.fromisoformat(p["timeStamp"]) for p in points]
        assert stamps == [start, start + timedelta(minutes=5)]
        # Expanding: the last point covers the whole window, as the summary does.
        assert points[-1]["expectedReward"] == pytest.approx(policy["summary"]["expectedReward"])
        assert points[-1]["confidenceInterval"] == pytest.approx(
            policy["summary"]["confidenceInterval"]
        )

    rolling = admin.get_evaluation(
        "series", start_time=start, end_time=end, interval_in_minutes=5, window="Rolling"
    )
    online = next(p for p in rolling["content"]["value"] if p["policySource"] == "Online")
    first, second = online["timeseries"]["data"]
    # The online policy's IPS is the mean logged reward: the halves average to the whole.
    whole = online["summary"]["expectedReward"]
    assert (first["expectedReward"] + second["expectedReward"]) / 2 == pytest.approx(whole)
    assert first["expectedReward"] != second["expectedReward"]

    # A part of the window: its summary is that part's, one point per interval.
    part = admin.get_evaluation(
        "series", start_time=start, end_time=start + timedelta(minutes=5), interval_in_minutes=5
    )
    online_part = next(p for p in part["content"]["value"] if p["policySource"] == "Online")
    assert online_part["summary"]["expectedReward"] == pytest.approx(first["expectedReward"])
    assert len(online_part["timeseries"]["data"]) == 1

    with pytest.raises(HttpResponseError, match="`intervalInMinutes`") as refused:
        admin.get_evaluation("series", start_time=start, end_time=end, interval_in_minutes=7)
    assert refused.value.status_code == 400


def test_the_evaluation_list_filters_by_type(make_client: Callable[..., TestClient]) -> None:
    client = make_client(personalizer_search_candidates=1)
    start = _log_start()
    write_log(services(client).store, 300, seed=6, start=start)
    window = {"startTime": start.isoformat(), "endTime": (start + HOUR).isoformat()}
    url = personalizer_url("/evaluations/manual-1", "preview")
    assert client.put(url, json={"name": "by hand", **window}).status_code == 200
    assert (
        _put_config(
            client,
            isAutoOptimizationEnabled=True,
            autoOptimizationFrequency="PT1H",
            autoOptimizationStartDate=START.isoformat(),
        ).status_code
        == 200
    )
    auto = Schedules(services(client), services(client).runner).tick(START + HOUR).auto_evaluation
    assert auto is not None
    _settled(client, auto)

    listed = personalizer_url("/evaluations", "preview")

    def ids(expression: str | None) -> list[str]:
        params = {"filter": expression} if expression else {}
        response = client.get(listed, params=params)
        assert response.status_code == 200, response.text
        return [e["id"] for e in response.json()["value"]]

    assert ids(None) == ["manual-1", auto]
    assert ids("evaluationType eq 'Manual'") == ["manual-1"]
    assert ids("evaluationType eq 'Auto'") == [auto]
    bad = client.get(listed, params={"filter": "evaluationType eq 'Sometimes'"})
    assert bad.status_code == 400
    assert bad.json()["error"]["target"] == "filter"


def test_the_optimal_policy_is_one_that_can_be_applied(client: TestClient) -> None:
    """Baseline (always the first candidate) beats uniform logging in this world, but it is a
    reference, not learning settings: the optimal policy is the online one, which can serve."""
    start = _log_start()
    write_log(services(client).store, 3000, seed=7, start=start)
    window = {"startTime": start.isoformat(), "endTime": (start + HOUR).isoformat()}
    url = personalizer_url("/evaluations/references", "preview")
    assert client.put(url, json={"name": "references", **window}).status_code == 200
    evaluation = _settled(client, "references")
    assert evaluation["status"] == "Succeeded", evaluation.get("description")
    by_source = {p["policySource"]: p for p in evaluation["content"]["value"]}
    baseline, online = (by_source[s]["summary"] for s in ("Baseline", "Online"))
    assert baseline["confidenceInterval"][0] > online["confidenceInterval"][0]
    assert baseline["expectedReward"] > online["expectedReward"]  # it would pass the verdict
    served = client.get(personalizer_url("/configurations/policy")).json()
    assert evaluation["optimalPolicy"] == by_source["Online"]["name"] == served["name"]


# --- auto-optimization ----------------------------------------------------------------------


def test_latest_slot() -> None:
    assert latest_slot(START, HOUR, START - timedelta(seconds=1)) is None
    assert latest_slot(START, HOUR, START) == START
    assert latest_slot(START, HOUR, START + 5 * HOUR + timedelta(minutes=59)) == START + 5 * HOUR
    assert latest_slot(START, HOUR, START + timedelta(minutes=59), first=1) is None


def test_auto_optimization_runs_once_per_slot_and_applies_only_a_winner(
    make_client: Callable[..., TestClient],
) -> None:
    # The whole grid: which candidates a smaller budget tries is seeded by the evaluation's id,
    # which holds the slot's time, and the log's time is the clock's.
    a, b = make_client(personalizer_search_candidates=len(Grid().candidates(0))), make_client()
    start = _log_start()
    write_log(services(a).store, 3000, seed=7, start=start)  # uniform logging, 50 minutes
    changed = _put_config(
        a,
        isAutoOptimizationEnabled=True,
        autoOptimizationFrequency="PT1H",
        autoOptimizationStartDate=start.isoformat(),
    )
    assert changed.status_code == 200, changed.text
    before = a.get(personalizer_url("/configurations/policy")).json()
    replicas = [Schedules(services(c), services(c).runner) for c in (a, b)]

    assert replicas[0].tick(start - timedelta(seconds=1)).auto_evaluation is None  # not yet
    now = start + HOUR + timedelta(seconds=1)
    first = f"auto-{_stamp(start + HOUR)}"
    started = [r.tick(now).auto_evaluation for r in replicas]
    assert started == [first, None]  # once across replicas
    evaluation = _settled(b, first)
    assert evaluation["evaluationType"] == "Auto"
    assert evaluation["status"] == "OptimalPolicyApplied", evaluation.get("description")
    assert datetime.fromisoformat(evaluation["startTime"]) == start
    assert datetime.fromisoformat(evaluation["endTime"]) == start + HOUR
    by_name = {p["name"]: p for p in evaluation["content"]["value"]}
    chosen = by_name[evaluation["optimalPolicy"]]
    assert chosen["policySource"] == "OfflineExperimentation"
    online = next(p for p in by_name.values() if p["policySource"] == "Online")
    assert chosen["summary"]["confidenceInterval"][0] > online["summary"]["confidenceInterval"][0]
    served = a.get(personalizer_url("/configurations/policy")).json()  # a claimed the slot
    assert served == {"name": chosen["name"], "arguments": chosen["arguments"]} != before

    # The same slot never runs again, on any replica, even once its evaluation is deleted.
    assert b.delete(personalizer_url(f"/evaluations/{first}")).status_code == 204
    for replica in replicas:
        assert replica.tick(now + timedelta(minutes=58)).auto_evaluation is None

    # A later slot over an empty hour finds no winner: the online policy is kept.
    later = replicas[1].tick(start + 5 * HOUR).auto_evaluation
    assert later == f"auto-{_stamp(start + 5 * HOUR)}"
    retained = _settled(a, later)
    assert retained["status"] == "OnlinePolicyRetained", retained.get("description")
    assert a.get(personalizer_url("/configurations/policy")).json() == served


def test_auto_optimization_off_runs_nothing(client: TestClient) -> None:
    schedules = Schedules(services(client), services(client).runner)
    assert _put_config(client, autoOptimizationStartDate=START.isoformat()).status_code == 200
    assert schedules.tick(START + 30 * HOUR).auto_evaluation is None


# --- model export ---------------------------------------------------------------------------


def test_the_model_is_exported_on_its_schedule(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    a = make_client(data_dir=tmp_path, model_export_dir="exports", model_export_keep=2)
    b = make_client(data_dir=tmp_path, model_export_dir="exports")
    folder = tmp_path / "exports"
    assert _put_config(a, modelExportFrequency="PT1H").status_code == 200
    replicas = [Schedules(services(c), services(c).runner) for c in (a, b)]

    written = [r.tick(START + timedelta(minutes=30)).export for r in replicas]
    assert written == [folder / "personalizer-20261101T000000Z.vw", None]  # once per slot
    meta = json.loads((folder / "personalizer-20261101T000000Z.json").read_text())
    assert meta["surface"] == PERSONALIZER
    assert meta["slot"].startswith("2026-11-01T00:00:00")
    model = Model(
        meta["arguments"], data=(folder / "personalizer-20261101T000000Z.vw").read_bytes()
    )
    model.close()
    assert oct(folder.stat().st_mode & 0o777) == "0o700"

    for hours in (1, 2):
        assert replicas[0].tick(START + hours * HOUR).export is not None
    assert sorted(p.name for p in folder.iterdir()) == [
        "personalizer-20261101T010000Z.json",
        "personalizer-20261101T010000Z.vw",
        "personalizer-20261101T020000Z.json",
        "personalizer-20261101T020000Z.vw",
    ]


def test_no_export_folder_exports_nothing(client: TestClient) -> None:
    schedules = Schedules(services(client), services(client).runner)
    assert schedules.tick(START).export is None


def test_the_export_folder_must_be_under_the_data_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="`model_export_dir` must be a folder under `data_dir`"):
        Settings(data_dir=tmp_path / "data", model_export_dir=tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="under `data_dir`"):
        Settings(data_dir=tmp_path / "data", model_export_dir="../escape")


# --- refused settings -----------------------------------------------------------------------

REFUSED = [
    ({"logMirrorEnabled": True}, "logMirrorEnabled", "GET /v1/logs/export"),
    ({"logMirrorSasUri": "https://x.blob.core.windows.net/c?sig=s"}, "logMirrorSasUri", "DSJSON"),
    ({"modelRetrainDays": 3}, "modelRetrainDays", "learns online"),
]


def test_refused_settings_say_what_oo_does_instead(live_server: StartServer) -> None:
    live = live_server()
    admin = _admin(live)
    config = dict(admin.get_service_configuration())
    config.pop("latestApprenticeModeMetrics", None)
    for changes, field, instead in REFUSED:
        with pytest.raises(HttpResponseError) as refused:
            admin.update_service_configuration({**config, **changes})
        assert refused.value.status_code == 400
        assert f"`{field}`" in str(refused.value.message) and instead in str(refused.value.message)
        assert refused.value.error is not None and refused.value.error.code == (
            "InvalidServiceConfiguration"
        )
    off = admin.update_service_configuration(
        {**config, "logMirrorEnabled": False, "logMirrorSasUri": "", "modelRetrainDays": 0}
    )
    assert (off["logMirrorEnabled"], off["modelRetrainDays"]) == (False, 0)

    with pytest.raises(HttpResponseError) as unsigned:  # a stream: the SDK keeps no message
        b"".join(admin.export_model(signed=True))
    assert unsigned.value.status_code == 400
    with httpx.Client(base_url=live.url, headers={"Ocp-Apim-Subscription-Key": "k"}) as http:
        error = http.get("/personalizer/v1.0/model", params={"signed": "true"}).json()["error"]
    assert error["target"] == "signed" and "does not sign models" in error["message"]
    assert b"".join(admin.export_model(signed=False))


def test_refused_values_stored_earlier_are_reported_not_fatal(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    first = make_client()
    configs = services(first).surface_configs
    settings, _ = configs.read(PERSONALIZER)
    extra = {**configs.extra(PERSONALIZER), "log_mirror_enabled": True, "model_retrain_days": 7}
    configs.put(PERSONALIZER, settings, extra=extra)

    with caplog.at_level(logging.WARNING, logger="api.personalizer.schedule"):
        restarted = make_client()
    reported = " ".join(r.getMessage() for r in caplog.records)
    assert "`logMirrorEnabled` must be false" in reported
    assert "`modelRetrainDays` must be 0" in reported
    shown = restarted.get(personalizer_url("/configurations/service")).json()
    assert (shown["logMirrorEnabled"], shown["modelRetrainDays"]) == (False, 0)
    assert _put_config(restarted).status_code == 200  # what it shows can be written back
