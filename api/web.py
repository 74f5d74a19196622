"""The black page: the static PWA in `web/`, served with content-hashed asset URLs.

At start-up every file is read once. Quoted references between them (`src="app.js"` in the page,
`import … from "./api.js"` between modules, the service worker's precache list, the manifest's
icons) are rewritten to `/assets/<name>.<sha256[:10]>.<ext>`, hashing each file after its own
references are rewritten, so a change anywhere renames every file that depends on it. Hashed
assets are immutable for a year; the page, the service worker and the manifest keep fixed URLs and
are revalidated on every load.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, Request, Response

from api.errors import NotFound

log = logging.getLogger(__name__)

PAGE, WORKER, MANIFEST = "index.html", "sw.js", "manifest.webmanifest"
FIXED = {PAGE: "/", WORKER: f"/{WORKER}", MANIFEST: f"/{MANIFEST}"}
ASSETS = "/assets/"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".webmanifest": "application/manifest+json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".woff2": "font/woff2",
}
TEXT = {".html", ".css", ".js", ".webmanifest", ".svg"}
# A quoted path: "./api.js", 'icons/icon-192.png', "/styles.css". Only paths naming a file
# in web/ are rewritten; every other string is left alone.
REFERENCE = re.compile(r"""(?P<quote>["'])(?P<path>[\w./-]+)(?P=quote)""")

IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
REVALIDATE = {"Cache-Control": "no-cache"}
NOSNIFF = {"X-Content-Type-Options": "nosniff"}
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


@dataclass(frozen=True)
class File:
    body: bytes
    media_type: str
    etag: str


@dataclass
class Site:
    """The web folder as served: hashed assets by URL path, and the three fixed-URL files."""

    assets: dict[str, File] = field(default_factory=dict)
    fixed: dict[str, File] = field(default_factory=dict)


def build(web_dir: Path) -> Site:
    """Read `web_dir` and hash every asset, each after rewriting the references inside it."""
    sources = {
        path.relative_to(web_dir).as_posix(): path.read_bytes()
        for path in sorted(web_dir.rglob("*"))
        if path.is_file() and path.suffix in MEDIA_TYPES
    }
    if PAGE not in sources:
        raise FileNotFoundError(f"`web_dir` has no {PAGE}: {web_dir}")
    urls = {name: url for name, url in FIXED.items() if name in sources}
    site = Site()

    def url_of(name: str, chain: tuple[str, ...]) -> str:
        if name in urls:
            return urls[name]
        if name in chain:
            raise ValueError(f"web assets reference each other in a cycle: {' -> '.join(chain)}")
        body = rewrite(name, (*chain, name))
        digest = hashlib.sha256(body).hexdigest()[:10]
        stem, suffix = posixpath.splitext(name)
        urls[name] = f"{ASSETS}{stem}.{digest}{suffix}"
        site.assets[urls[name].removeprefix(ASSETS)] = served(name, body)
        return urls[name]

    def rewrite(name: str, chain: tuple[str, ...]) -> bytes:
        if posixpath.splitext(name)[1] not in TEXT:
            return sources[name]

        def replace(match: re.Match[str]) -> str:
            target = resolve(name, match["path"])
            if target not in sources or target == name:
                return match[0]
            return f"{match['quote']}{url_of(target, chain)}{match['quote']}"

        return REFERENCE.sub(replace, sources[name].decode()).encode()

    for name in sources:
        if name in FIXED:
            site.fixed[name] = served(name, rewrite(name, (name,)))
        else:
            url_of(name, ())
    return site


def resolve(referrer: str, path: str) -> str:
    """The web/-relative name a reference points at, as a browser would resolve it."""
    if path.startswith("/"):
        return path[1:]
    return posixpath.normpath(posixpath.join(posixpath.dirname(referrer), path))


def served(name: str, body: bytes) -> File:
    digest = hashlib.sha256(body).hexdigest()[:16]
    return File(body, MEDIA_TYPES[posixpath.splitext(name)[1]], f'"{digest}"')


def default_web_dir() -> Path | None:
    # A source checkout keeps web/ beside api/; an installed package (the Docker image) runs
    # from a directory holding web/.
    for candidate in (Path(__file__).resolve().parent.parent / "web", Path.cwd() / "web"):
        if (candidate / PAGE).is_file():
            return candidate
    return None


def mount_web(app: FastAPI, web_dir: Path | None = None) -> None:
    """Serve the PWA at `/`, `/sw.js`, `/manifest.webmanifest` and `/assets/…`."""
    if web_dir is None:
        web_dir = default_web_dir()
        if web_dir is None:
            log.warning("no web/ folder found: the black page is not served")
            return
    site = build(web_dir)

    def serve_fixed(name: str, headers: dict[str, str]) -> None:
        file = site.fixed.get(name)
        if file is None:
            return

        async def endpoint(request: Request) -> Response:
            if request.headers.get("if-none-match") == file.etag:
                # The 304 repeats the page's headers: a browser updates its cached copy's
                # headers from it, and must not swap the page's CSP for the API's.
                return Response(
                    status_code=304, headers={"ETag": file.etag, **REVALIDATE, **headers}
                )
            return Response(
                file.body,
                media_type=file.media_type,
                headers={"ETag": file.etag, **REVALIDATE, **NOSNIFF, **headers},
            )

        app.add_api_route(FIXED[name], endpoint, methods=["GET", "HEAD"], include_in_schema=False)

    serve_fixed(PAGE, PAGE_HEADERS)
    serve_fixed(WORKER, {})
    serve_fixed(MANIFEST, {})

    async def asset(path: str) -> Response:
        file = site.assets.get(path)
        if file is None:
            raise NotFound(
                f"no asset {path!r}: the page is older than the server, reload it", target="path"
            )
        return Response(file.body, media_type=file.media_type, headers={**IMMUTABLE, **NOSNIFF})

    app.add_api_route(
        f"{ASSETS}{{path:path}}", asset, methods=["GET", "HEAD"], include_in_schema=False
    )
