"""HTTP for feed readers: GET /feeds/{output}.{xml,atom,json}, / and /healthz.

A rendered feed is kept (bytes, strong ETag, Last-Modified) until the output's version
(article count, latest change) moves, so most polls cost one indexed query, and a poll
with a matching validator gets a 304 (If-None-Match first, then If-Modified-Since).
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from crawler.emitters import EMITTERS
from crawler.errors import StorageError
from crawler.filters import sources_for_output
from crawler.types import Config, FeedView, Output
from storage import Storage

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
HTML_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


@dataclass(frozen=True)
class Rendered:
    version: tuple[int, datetime | None]
    body: bytes
    etag: str
    last_modified: str


@dataclass
class Health:
    """What /healthz reports; the daemon updates it."""

    crawling: bool = True  #: False for `crawler serve`, which has no scheduler to watch
    scheduler_running: bool = True
    last_tick_at: datetime | None = None


def make_app(config: Callable[[], Config], storage: Storage, health: Health | None = None
             ) -> Starlette:
    cache: dict[tuple[str, str], Rendered] = {}
    health = health or Health()

    def render(output: Output, fmt: str, base: str) -> Rendered:
        names = sources_for_output(config(), output)
        version = storage.output_version(names)
        key = (output.name, fmt)
        hit = cache.get(key)
        if hit is not None and hit.version == version:
            return hit
        articles = storage.articles_for_output(names, output.limit, output.collapse)
        # The latest change (a new article, an edit, a second outlet) dates the whole feed.
        newest = version[1]
        view = FeedView(
            name=output.name, title=output.title, description=output.description,
            self_url=f"{base}feeds/{output.name}.{fmt}", home_url=base, articles=articles,
            **({"updated": newest} if newest else {}),
        )
        emit, _ = EMITTERS[fmt]
        body = emit(view)
        rendered = Rendered(
            version=version, body=body,
            etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"',
            last_modified=format_datetime(view.updated, usegmt=True),
        )
        cache[key] = rendered
        return rendered

    async def feed(request: Request) -> Response:
        name, fmt = request.path_params["name"], request.path_params["fmt"]
        output = config().output(name)
        if output is None or fmt not in EMITTERS:
            return Response(f"no output {name!r} in {fmt!r}\n", status_code=404,
                            media_type="text/plain", headers=SECURITY_HEADERS)
        try:
            rendered = await run_in_threadpool(render, output, fmt, str(request.base_url))
        except StorageError as exc:
            return Response(f"database unavailable: {exc}\n", status_code=503,
                            media_type="text/plain", headers=SECURITY_HEADERS)
        headers = {
            "ETag": rendered.etag,
            "Last-Modified": rendered.last_modified,
            "Cache-Control": "public, max-age=300",
            **SECURITY_HEADERS,
        }
        if _not_modified(request, rendered):
            return Response(status_code=304, headers=headers)
        return Response(rendered.body, media_type=EMITTERS[fmt][1], headers=headers)

    async def index(request: Request) -> Response:
        rows = []
        for output in config().outputs:
            links = " · ".join(
                f'<a href="feeds/{html.escape(output.name)}.{fmt}">{label}</a>'
                for fmt, label in (("xml", "RSS"), ("atom", "Atom"), ("json", "JSON Feed")))
            rows.append(f"<li><strong>{html.escape(output.title)}</strong> "
                        f"({html.escape(output.name)}): {links}"
                        f"<br>{html.escape(output.description)}</li>")
        alternates = "".join(
            f'<link rel="alternate" type="application/rss+xml" '
            f'title="{html.escape(o.title)}" href="feeds/{html.escape(o.name)}.xml">'
            for o in config().outputs)
        page = ("<!doctype html><html lang=\"zh\"><head><meta charset=\"utf-8\">"
                f"<title>crawler</title>{alternates}</head><body><h1>Feeds</h1>"
                f"<ul>{''.join(rows)}</ul><p><a href=\"healthz\">health</a></p></body></html>")
        return HTMLResponse(page, headers={**SECURITY_HEADERS,
                                           "Content-Security-Policy": HTML_CSP})

    async def healthz(request: Request) -> Response:
        try:
            await run_in_threadpool(storage.next_due)
            database = "ok"
        except StorageError as exc:
            database = str(exc)
        healthy = database == "ok" and (health.scheduler_running or not health.crawling)
        scheduler = "running" if health.scheduler_running else "stopped"
        body: dict[str, Any] = {
            "status": "ok" if healthy else "unhealthy",
            "database": database,
            "scheduler": scheduler if health.crawling else "off (serve only)",
            "last_tick_at": health.last_tick_at.isoformat() if health.last_tick_at else None,
        }
        return JSONResponse(body, status_code=200 if healthy else 503,
                            headers=SECURITY_HEADERS)

    return Starlette(routes=[
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/feeds/{name}.{fmt}", feed, methods=["GET", "HEAD"]),
    ])


def _not_modified(request: Request, rendered: Rendered) -> bool:
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in tags or rendered.etag in tags
    if_modified_since = request.headers.get("if-modified-since")
    if if_modified_since:
        try:
            since = parsedate_to_datetime(if_modified_since)
            return parsedate_to_datetime(rendered.last_modified) <= since
        except (TypeError, ValueError):
            return False
    return False
