"""How the api serves web/: hashed immutable assets, rewritten references, a strict page."""

from __future__ import annotations

import importlib.util
import re
import struct
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import errors
from api.web import build, mount_web

WEB = Path(__file__).resolve().parents[2] / "web"
HASHED = re.compile(r"/assets/[\w/-]+\.[0-9a-f]{10}\.\w+")


@pytest.fixture(scope="module")
def client() -> TestClient:
    # The static routes need none of the services: a bare app keeps this fast.
    app = FastAPI()
    errors.install(app)
    mount_web(app, WEB)
    return TestClient(app)


def test_page_links_only_hashed_assets_and_is_strict(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in response.text  # no inline scripts: the CSP would block them
    links = re.findall(r'(?:href|src)="([^"]+)"', response.text)
    local = [link for link in links if link != "/manifest.webmanifest"]
    assert local
    assert all(HASHED.fullmatch(link) for link in local), local


def test_assets_are_immutable_and_modules_import_hashed_names(client: TestClient) -> None:
    page = client.get("/").text
    app_js = re.search(r'src="(/assets/app\.[0-9a-f]{10}\.js)"', page)
    assert app_js is not None
    response = client.get(app_js[1])
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["content-type"].startswith("text/javascript")
    imports = re.findall(r'from "([^"]+)"', response.text)
    assert imports
    assert all(HASHED.fullmatch(name) for name in imports), imports
    for name in imports:
        assert client.get(name).status_code == 200


def test_worker_and_manifest_name_hashed_files(client: TestClient) -> None:
    worker = client.get("/sw.js")
    assert worker.status_code == 200
    assert worker.headers["cache-control"] == "no-cache"
    precache = re.search(r"const SHELL = \[(.*?)\];", worker.text, re.S)
    assert precache is not None
    shell = re.findall(r'"([^"]+)"', precache[1])
    assert "/" in shell
    assets = [url for url in shell if url.startswith("/assets/")]
    # Every file the page may need works offline: a new module must join the list.
    assert sorted(assets) == sorted(f"/assets/{name}" for name in build(WEB).assets)
    assert all(client.get(url).status_code == 200 for url in assets)

    manifest = client.get("/manifest.webmanifest")
    assert manifest.headers["content-type"].startswith("application/manifest+json")
    icons = manifest.json()["icons"]
    for icon in icons:
        body = client.get(icon["src"]).content
        width, height = struct.unpack(">II", body[16:24])
        assert icon["sizes"] == f"{width}x{height}"
    assert {icon["purpose"] for icon in icons} == {"any", "maskable"}


def test_unknown_asset_is_a_404_with_advice(client: TestClient) -> None:
    response = client.get("/assets/app.0000000000.js")
    assert response.status_code == 404
    assert "reload" in response.json()["error"]["message"]


def test_revalidation_answers_304(client: TestClient) -> None:
    first = client.get("/")
    again = client.get("/", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    # Browsers refresh the cached page's headers from the 304: it must keep the page's CSP.
    csp = "content-security-policy"
    assert again.headers[csp] == first.headers[csp] and "default-src 'self'" in again.headers[csp]


def test_a_change_renames_every_file_that_depends_on_it(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text('<script type="module" src="app.js"></script>')
    (tmp_path / "app.js").write_text('import { x } from "./lib.js";\n')
    (tmp_path / "lib.js").write_text("export const x = 1;\n")
    before = build(tmp_path)
    (tmp_path / "lib.js").write_text("export const x = 2;\n")
    after = build(tmp_path)
    assert set(before.assets).isdisjoint(after.assets)  # app.js changed name too
    page = after.fixed["index.html"].body.decode()
    (app_name,) = [name for name in after.assets if name.startswith("app.")]
    assert f'src="/assets/{app_name}"' in page


def test_import_cycles_are_refused(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text('<script type="module" src="a.js"></script>')
    (tmp_path / "a.js").write_text('import "./b.js";\n')
    (tmp_path / "b.js").write_text('import "./a.js";\n')
    with pytest.raises(ValueError, match=r"cycle: a\.js -> b\.js"):
        build(tmp_path)


def test_a_folder_without_a_page_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no index\.html"):
        mount_web(FastAPI(), tmp_path)


def test_icons_are_what_the_script_draws() -> None:
    spec = importlib.util.spec_from_file_location("draw_icons", WEB / "icons" / "draw.py")
    assert spec is not None and spec.loader is not None
    draw = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(draw)
    for name, data in draw.draw().items():
        assert (WEB / "icons" / name).read_bytes() == data, f"redraw: web/icons/draw.py ({name})"
