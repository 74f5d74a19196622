"""Headers every answer carries, CORS for listed origins, and request counts by route.

Every response, errors included, gets `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`,
`Referrer-Policy: no-referrer` and a `Content-Security-Policy` that forbids framing (and, on
JSON, everything else; pages set their own policy, which is kept). JSON answers are
`Cache-Control: no-store` unless the route chose otherwise: they hold a person's tips, profile
and decisions, which no shared cache may keep. `Strict-Transport-Security` is sent when
`OO_PUBLIC_URL` is https.

CORS is off unless `OO_CORS_ORIGINS` lists origins: the black page is served by the api itself,
so it is same-origin and needs none. A listed origin may call with credentials (the session
cookie); every other origin's preflight is refused and its responses carry no CORS headers.
"""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import Counter
from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth.principal import KEY_HEADER
from api.auth.signin import CSRF_HEADER
from api.ratelimit import STATE_KEY, Verdict
from api.settings import Settings

HTTP_REQUESTS = Counter(
    "oo_http_requests_total",
    "HTTP requests answered, by method, route template and status",
    ["method", "route", "status"],
)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
API_CSP = "default-src 'none'; frame-ancestors 'none'"
# Anything else without its own policy (e.g. /docs, which loads its own scripts, or the service
# worker, whose fetches a `default-src 'none'` would block) is only kept out of frames.
FRAME_CSP = "frame-ancestors 'none'"
HSTS = "max-age=31536000"

CORS_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
CORS_HEADERS = ["Authorization", "Content-Type", KEY_HEADER, CSRF_HEADER]
CORS_EXPOSED = [
    "Retry-After",
    "X-Next-Tip-At",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "x-ms-error-code",
]


def _is_json(media_type: str) -> bool:
    media_type = media_type.split(";", 1)[0].strip().lower()
    return media_type in ("application/json", "application/x-ndjson") or media_type.endswith(
        "+json"
    )


class SecurityHeaders:
    """Pure ASGI middleware: adds the headers above and counts every answer by route."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # an exception that escapes becomes ServerErrorMiddleware's 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(raw=list(message.get("headers", [])))
                self._secure(headers, scope)
                message["headers"] = headers.raw
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in METHODS else "other"
            HTTP_REQUESTS.labels(method, route, str(status)).inc()

    def _secure(self, headers: MutableHeaders, scope: Scope) -> None:
        for name, value in ALWAYS.items():
            headers.setdefault(name, value)
        json = _is_json(headers.get("content-type", ""))
        headers.setdefault("Content-Security-Policy", API_CSP if json else FRAME_CSP)
        if json:
            headers.setdefault("Cache-Control", "no-store")
        if self.hsts:
            headers.setdefault("Strict-Transport-Security", HSTS)
        verdict = scope.get("state", {}).get(STATE_KEY)
        if isinstance(verdict, Verdict) and "x-ratelimit-limit" not in headers:
            headers["X-RateLimit-Limit"] = str(verdict.limit)
            headers["X-RateLimit-Remaining"] = str(verdict.remaining)


def install(app: FastAPI, settings: Settings) -> None:
    """Add CORS (only for listed origins) and the security headers, outside every other layer."""
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=CORS_METHODS,
            allow_headers=CORS_HEADERS,
            expose_headers=CORS_EXPOSED,
            max_age=600,
        )
    hsts = (settings.public_url or "").lower().startswith("https://")
    app.add_middleware(SecurityHeaders, hsts=hsts)
