"""Every route and setting that hands text to VW goes through the one allow-list.

File, socket and daemon options in every spelling (separate, attached, `=`, quoted, bare paths,
inside a model header) get a 400 naming the option; no file appears, nothing connects to a
listener the test holds open, and the server keeps serving. Specs stored before the gate
existed are reported at start-up and not served. `--port`/`--daemon`, which would fork VW
servers, run against a server in its own process group (`test_vw_gate_daemon.py`).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.cli import app as cli
from bandit.model import Model
from bandit.store import Snapshot, Store
from experiments.lifecycle import ArmSpec, Experiments
from policies.registry import DEFAULT_POLICY, Registry
from policies.store import policies as policies_table
from tests.api.decision_helpers import actions, personalizer_url
from tests.bandit.vw_forge import Header
from tests.conftest import Backend

MakeClient = Callable[..., TestClient]


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback listener nothing may connect to."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        yield sock


def _no_connection(sock: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        sock.accept()


def attacks(arena: Path, port: int) -> list[tuple[str, str | None]]:
    """(VW arguments after --cb_explore_adf, the option the refusal must name)."""
    out, data = arena / "written", arena / "secret.txt"
    return [
        (f"-f {out}", "-f"),
        (f"-f{out}", "-f"),
        (f"--final_regressor={out}", "--final_regressor"),
        (f"--final_regressor {out}", "--final_regressor"),
        (f"--readable_model {out}", "--readable_model"),
        (f"-p {out}", "-p"),
        (f"--cache_file {out}", "--cache_file"),
        (f"--invert_hash {out}", "--invert_hash"),
        (f'"-f" {out}', "-f"),
        (f"'--readable_model' '{out}'", "--readable_model"),
        (f"-d {data} -p {out}", "-d"),
        (f"-d{data}", "-d"),
        (f"-i{data}", "-i"),
        (f"{data} -p {out}", None),  # a bare path VW reads as data
        (f"--sendto 127.0.0.1:{port}", "--sendto"),
        (f"--sendto=127.0.0.1:{port}", "--sendto"),
    ]


@pytest.fixture
def arena(tmp_path: Path) -> Path:
    """Where attacks point: a readable data file, and room for files that must not appear."""
    folder = tmp_path / "arena"
    folder.mkdir()
    (folder / "secret.txt").write_text("shared |u a\n0:1:0.5 |x p\n|x q\n\n")
    return folder


def _untouched(arena: Path) -> None:
    assert [p.name for p in arena.iterdir()] == ["secret.txt"]


def _serving(client: TestClient) -> None:
    assert client.get("/health").status_code == 200
    ranked = client.post(personalizer_url("/rank"), json={"actions": actions("a", "b")})
    assert ranked.status_code == 201, ranked.text


def test_policy_registration_refuses_io_options(
    client: TestClient, arena: Path, listener: socket.socket
) -> None:
    for extra, option in attacks(arena, listener.getsockname()[1]):
        args = f"--cb_explore_adf {extra}"
        response = client.post("/v1/policies", json={"name": "attack", "kind": "vw", "args": args})
        assert response.status_code == 400, (args, response.text)
        error = response.json()["error"]
        assert error["target"] == (option or "args"), args
        assert (option or str(arena / "secret.txt")) in error["message"], error["message"]
    assert [p["name"] for p in client.get("/v1/policies").json()].count("attack") == 0
    _untouched(arena)
    _no_connection(listener)
    _serving(client)


def test_registration_answers_the_same_for_existing_and_missing_paths(
    client: TestClient, arena: Path
) -> None:
    """No VW error text comes back, so nothing can be learned about the file system."""
    messages = []
    for path in (arena / "secret.txt", arena / "missing.txt"):
        response = client.post(
            "/v1/policies",
            json={"name": "probe", "kind": "vw", "args": f"--cb_explore_adf -d {path}"},
        )
        assert response.status_code == 400
        messages.append(response.json()["error"]["message"].replace(str(path), "PATH"))
    assert messages[0] == messages[1]


def test_registered_arguments_are_stored_canonical(client: TestClient) -> None:
    created = client.post(
        "/v1/policies",
        json={"name": "tuned", "kind": "vw", "args": "--cb_explore_adf --epsilon=0.10 -qab"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["args"] == "--cb_explore_adf --epsilon 0.1 -q ab"
    again = client.post(
        "/v1/policies",
        json={"name": "tuned", "kind": "vw", "args": "--cb_explore_adf --epsilon 0.1 -q ab"},
    )
    assert (again.status_code, again.json()["version"]) == (200, 1)


def test_personalizer_policy_refuses_io_options(
    client: TestClient, arena: Path, listener: socket.socket
) -> None:
    url = personalizer_url("/configurations/policy", "preview")
    before = client.get(url).json()
    for extra, option in attacks(arena, listener.getsockname()[1]):
        arguments = f"--cb_explore_adf {extra}"
        response = client.put(url, json={"name": "attack", "arguments": arguments})
        assert response.status_code == 400, (arguments, response.text)
        error = response.json()["error"]
        assert error["code"] == "InvalidPolicyConfiguration"
        assert error["target"] == (option or "arguments"), arguments
    assert client.get(url).json() == before
    _untouched(arena)
    _no_connection(listener)
    _serving(client)


def _window() -> dict[str, str]:
    now = datetime.now(UTC)
    return {"startTime": (now - timedelta(1)).isoformat(), "endTime": now.isoformat()}


def test_personalizer_evaluations_refuse_io_options(
    client: TestClient, arena: Path, listener: socket.socket
) -> None:
    for i, (extra, option) in enumerate(attacks(arena, listener.getsockname()[1])):
        policies = [
            {"name": "fine", "arguments": "--cb_explore_adf --epsilon 0.1"},
            {"name": "attack", "arguments": f"--cb_explore_adf {extra}"},
        ]
        body = {"name": "e", **_window(), "policies": policies}
        for response in (
            client.put(personalizer_url(f"/evaluations/attack-{i}", "preview"), json=body),
            client.post(personalizer_url("/evaluations"), json=body),
        ):
            assert response.status_code == 400, (extra, response.text)
            error = response.json()["error"]
            assert (error["code"], error["target"]) == (
                "InvalidEvaluationContract",
                "policies[1].arguments",
            )
            assert "`policies[1].arguments`" in error["message"]
            assert (option or str(arena / "secret.txt")) in error["message"], error["message"]
    _untouched(arena)
    _no_connection(listener)
    _serving(client)


def test_policy_searches_refuse_smuggled_options(client: TestClient, tmp_path: Path) -> None:
    out = tmp_path / "written"
    for change in (
        {"explorations": [f"epsilon=0.1 -f {out}"]},
        {"explorations": [f"bag=4 --readable_model {out}"]},
        {"interactions": [[f"-f {out}"]]},
        {"interactions": [["ab", f"/{out}"]]},
        {"cb_types": ["mtr -f"]},
    ):
        response = client.post("/v1/policy-searches", json={"surface": "tips", **change})
        assert response.status_code == 400, (change, response.text)
        assert response.json()["error"]["target"].split("[")[0] in change
    assert not out.exists()
    _serving(client)


def test_model_import_refuses_a_header_with_io_options(
    client: TestClient, tmp_path: Path, listener: socket.socket
) -> None:
    url = personalizer_url("/model")
    exported = client.get(url).content
    out = tmp_path / "written"
    header = Header.read(exported)
    for extra, option in [
        (f" --readable_model {out}", "--readable_model"),
        (f" -f{out}", "-f"),
        (f" --invert_hash={out}", "--invert_hash"),
        (f" --sendto 127.0.0.1:{listener.getsockname()[1]}", "--sendto"),
    ]:
        forged = Header.read(exported)
        forged.options = header.options.removesuffix(b"\x00") + extra.encode() + b"\x00"
        response = client.put(
            url, content=forged.write(), headers={"Content-Type": "application/octet-stream"}
        )
        assert response.status_code == 400, (extra, response.text)
        error = response.json()["error"]
        assert error["target"] == "body"
        assert f"{option} " in error["message"], error["message"]
    assert not out.exists()
    _no_connection(listener)
    # The genuine model still imports.
    done = client.put(url, content=exported, headers={"Content-Type": "application/octet-stream"})
    assert done.status_code == 204
    _serving(client)


# --- specs stored before the gate -------------------------------------------------------------


def _store_raw(backend: Backend, name: str, args: str, version: int = 1) -> None:
    """A row as an older oO stored it, bypassing today's spec checks."""
    store = Store.connect(backend.database_url)
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(policies_table).values(
                name=name,
                version=version,
                kind="vw",
                args=args,
                description="stored before the allow-list",
                created_at=datetime.now(UTC),
            )
        )
    store.engine.dispose()


def test_refused_stored_specs_are_reported_and_not_served(
    backend: Backend,
    make_client: MakeClient,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    out = tmp_path / "written"
    _store_raw(backend, "old-attack", f"--cb_explore_adf -f {out}")
    _store_raw(backend, "old-tuned", "--cb_explore_adf --epsilon 0.3")
    _store_raw(backend, "old-tuned", f"--cb_explore_adf --sendto=127.0.0.1:9 -q {out}", 2)
    with caplog.at_level(logging.WARNING, logger="api.services"):
        client = make_client()
    reported = [r.getMessage() for r in caplog.records if "is not served" in r.getMessage()]
    assert len(reported) == 2
    assert "'old-attack'" in reported[0] and "-f reads or writes files" in reported[0]
    assert "'old-tuned@v2'" in reported[1] and "--sendto" in reported[1]

    listed = {p["name"]: p for p in client.get("/v1/policies").json()}
    assert "old-attack" not in listed
    assert listed["old-tuned"]["version"] == 1  # the refused version 2 is not served

    for names in (["old-attack"], ["old-tuned@v2"]):
        refused = client.post("/v1/evaluations", json={"surface": "tips", "policies": names})
        assert refused.status_code == 400
        assert "is not served" in refused.json()["error"]["message"]
    fine = client.post("/v1/evaluations", json={"surface": "tips", "policies": ["old-tuned"]})
    assert fine.status_code == 201, fine.text

    # A new registration of the name comes after the refused version.
    again = client.post(
        "/v1/policies",
        json={"name": "old-tuned", "kind": "vw", "args": "--cb_explore_adf --epsilon 0.05"},
    )
    assert (again.status_code, again.json()["version"]) == (201, 3)
    arm = client.post(
        "/v1/experiments",
        json={
            "name": "uses-refused",
            "surface": "tips",
            "arms": [
                {"name": "control", "policy": "vw-epsilon"},
                {"name": "treatment", "policy": "old-attack"},
            ],
        },
    )
    assert arm.status_code == 400
    assert not out.exists()
    _serving(client)


def test_a_setting_naming_a_refused_spec_stops_start_up(
    backend: Backend, make_client: MakeClient
) -> None:
    _store_raw(backend, "old-attack", "--cb_explore_adf --daemon")
    with pytest.raises(ValueError, match=r"`OO_TIPS_POLICY` names 'old-attack'.*--daemon"):
        make_client(tips_policy="old-attack")


def test_a_refused_shipped_default_falls_back_to_the_setting(
    backend: Backend, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A Personalizer policy set through the old blocklist-only route is not served."""
    _store_raw(backend, "personalizer", "--cb_explore_adf -f/tmp/oo-never-written")
    first = make_client()
    first.__exit__(None, None, None)
    services: Any = first.app.state.services  # type: ignore[attr-defined]
    services.experiments.set_default("personalizer", "personalizer")
    with caplog.at_level(logging.WARNING, logger="api.services"):
        client = make_client()
    assert any(f"serving '{DEFAULT_POLICY}' instead" in r.getMessage() for r in caplog.records)
    policy = client.get(personalizer_url("/configurations/policy")).json()
    assert policy["arguments"] == Registry().get(DEFAULT_POLICY).args
    assert not Path("/tmp/oo-never-written").exists()
    _serving(client)


def test_snapshots_with_refused_headers_are_not_loaded(client: TestClient, tmp_path: Path) -> None:
    """A model imported before the gate existed starts over instead of loading."""
    services: Any = client.app.state.services  # type: ignore[attr-defined]
    key = services.personalizer_policy.model_key
    model = Model("--cb_explore_adf --epsilon 0.2 --cb_type mtr -q ::")
    data, _ = model.serialize()
    model.close()
    forged = Header.read(data)
    out = tmp_path / "written"
    forged.options = forged.options.removesuffix(b"\x00") + f" -f {out}".encode() + b"\x00"
    seq = services.store.max_learn_seq()
    snapshot = Snapshot(key, "--cb_explore_adf", 5, seq, datetime.now(UTC), forged.write())
    services.store.save_snapshot(snapshot)
    services.hub.forget(key)
    assert services.hub.get(key).version == 0
    assert not out.exists()
    _serving(client)


def test_a_running_arm_on_a_refused_spec_gets_a_clear_error(
    backend: Backend, make_client: MakeClient
) -> None:
    """An experiment started before the gate, on a spec the gate now refuses."""
    _store_raw(backend, "old-attack", "--cb_explore_adf --sendto 127.0.0.1:9")
    client = make_client()
    services: Any = client.app.state.services  # type: ignore[attr-defined]
    before_the_gate = Experiments(services.store.engine, ("tips", "personalizer"), lambda _: True)
    arms = [ArmSpec("control", "old-attack", 1), ArmSpec("treatment", "old-attack", 1)]
    before_the_gate.create("old", "personalizer", arms)
    before_the_gate.start("old")
    services.refresh_experiments()
    ranked = client.post(personalizer_url("/rank"), json={"actions": actions("a", "b")})
    assert ranked.status_code == 409
    error = ranked.json()["error"]
    assert (error["code"], error["target"]) == ("PolicyNotServed", "policy")
    assert "'old-attack' is not served" in error["message"] and "--sendto" in error["message"]
    assert client.get("/health").status_code == 200


def test_the_cli_refuses_a_stored_spec_the_gate_refuses(backend: Backend, arena: Path) -> None:
    if backend.name != "embedded":
        pytest.skip("the CLI reads whichever database it is given; one backend is enough")
    out = arena / "written"
    _store_raw(backend, "old-attack", f"--cb_explore_adf --readable_model={out}")
    refused = CliRunner().invoke(
        cli,
        ["evaluate", "--policy", "old-attack", "--database-url", backend.database_url],
    )
    assert refused.exit_code == 2, refused.output
    assert "'old-attack' is not served" in refused.output
    assert "--readable_model" in refused.output
    _untouched(arena)
