"""The dashboard's ASGI app (Starlette): the page and its static modules, the JSON API and the NDJSON streams, with
every error answered as `{"error": "..."}` and never a traceback."""

from __future__ import annotations

import json
import logging
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any, AsyncIterator

from tl_traits.app.serve.catalog import ServeError, finite, json_line
from tl_traits.app.serve.dashboard import Dashboard, Work
from tl_traits.app.serve.worker import JobFailed, readable
from tl_traits.core.errors import TlTraitsError
from tl_traits.core.extras import require

log = logging.getLogger("tl_traits.serve")

STATIC = {  # the only files the server sends: package data, by name
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "chart.js": "text/javascript; charset=utf-8",
    "tokens.js": "text/javascript; charset=utf-8",
    "panels.js": "text/javascript; charset=utf-8",
    "browse.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


def static_text(name: str) -> str:
    return (resources.files("tl_traits.app.serve") / "static" / name).read_text(encoding="utf-8")


def create_app(dashboard: Dashboard, *, allowed_hosts: list[str] | None = None) -> Any:
    """The Starlette app over `dashboard`. allowed_hosts: Host headers it answers (None: any), which keeps a web
    page elsewhere from reaching a dashboard on 127.0.0.1 through DNS rebinding."""
    applications = require("starlette.applications")
    middleware = require("starlette.middleware")
    trusted = require("starlette.middleware.trustedhost")
    responses = require("starlette.responses")
    routing = require("starlette.routing")
    exceptions = require("starlette.exceptions")
    JSONResponse, Response, StreamingResponse = responses.JSONResponse, responses.Response, responses.StreamingResponse

    def error(message: str, status: int) -> Any:
        return JSONResponse({"error": message}, status_code=status)

    async def body_of(request: Any) -> dict[str, Any]:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise ServeError("send the request as JSON (Content-Type: application/json)", 415)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > dashboard.limits.max_body_bytes:
            raise ServeError(
                f"the request is {declared} bytes; the dashboard takes at most {dashboard.limits.max_body_bytes}", 413
            )
        raw = await request.body()
        if len(raw) > dashboard.limits.max_body_bytes:
            raise ServeError(
                f"the request is {len(raw)} bytes; the dashboard takes at most {dashboard.limits.max_body_bytes}", 413
            )
        try:
            body = json.loads(raw or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ServeError("the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ServeError("the request body must be a JSON object")
        return body

    def stream(work: Work) -> Any:
        job = dashboard.worker.submit(work)

        async def lines() -> AsyncIterator[str]:
            yield json_line({"type": "queued", "ahead": job.ahead})
            async for chunk in job.stream():
                yield "".join(json_line(event) for event in chunk)

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    async def index(request: Any) -> Any:
        return Response(static_text("index.html"), media_type=STATIC["index.html"])

    async def static(request: Any) -> Any:
        name = request.path_params["name"]
        if name not in STATIC:
            return error(f"no file {name[:80]!r} here", 404)
        return Response(static_text(name), media_type=STATIC[name])

    async def info(request: Any) -> Any:
        return JSONResponse(finite(dashboard.info()))

    async def status(request: Any) -> Any:
        return JSONResponse(dashboard.status())

    async def chat(request: Any) -> Any:
        return stream(dashboard.chat(await body_of(request)))

    async def steer(request: Any) -> Any:
        return stream(dashboard.steer(await body_of(request)))

    async def rows(request: Any) -> Any:
        q = request.query_params
        labels = {k[len("label.") :]: v for k, v in q.items() if k.startswith("label.")}
        chosen = dashboard.catalog.prompt_set(request.path_params["set_id"])
        return JSONResponse(
            chosen.query(
                page=_int(q.get("page", "1"), "page"),
                size=_int(q.get("size", "20"), "size"),
                text=q.get("q", ""),
                labels=labels,
            )
        )

    async def projections(request: Any) -> Any:
        work = dashboard.example(request.path_params["set_id"], await body_of(request))
        result = await dashboard.worker.submit(work).result()
        return JSONResponse(finite(result))

    async def on_error(request: Any, exc: Exception) -> Any:
        if isinstance(exc, exceptions.HTTPException):
            return error(
                str(exc.detail) if exc.status_code != 404 else f"no page {request.url.path[:80]!r}", exc.status_code
            )
        if isinstance(exc, JobFailed):
            return error(str(exc), exc.status)
        message, code = readable(exc)
        if code == 500:
            log.error("a dashboard request failed", exc_info=exc)
        return error(message, code)

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        dashboard.worker.start()
        try:
            yield
        finally:
            dashboard.worker.stop()

    routes = [
        routing.Route("/", index),
        routing.Route("/static/{name}", static),
        routing.Route("/api/info", info),
        routing.Route("/api/status", status),
        routing.Route("/api/chat", chat, methods=["POST"]),
        routing.Route("/api/steer", steer, methods=["POST"]),
        routing.Route("/api/prompt-sets/{set_id}", rows),
        routing.Route("/api/prompt-sets/{set_id}/projections", projections, methods=["POST"]),
    ]
    stack = [middleware.Middleware(SecurityHeaders)]
    if allowed_hosts is not None:
        stack.insert(0, middleware.Middleware(trusted.TrustedHostMiddleware, allowed_hosts=allowed_hosts))
    # ours and HTTP errors are answered where they happen; anything else is a bug, answered and then logged
    handlers = {exceptions.HTTPException: on_error, TlTraitsError: on_error, JobFailed: on_error, Exception: on_error}
    return applications.Starlette(routes=routes, middleware=stack, exception_handlers=handlers, lifespan=lifespan)


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ServeError(f"{name} must be a whole number, not {value[:20]!r}") from None


class SecurityHeaders:
    """Adds a strict Content-Security-Policy (no inline script, nothing from elsewhere) and friends to every answer."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, send=with_headers)
