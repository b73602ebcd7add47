"""HTTP for feed readers and people.

GET/HEAD /feeds/{output}.{xml,atom,json,html} (?q=&tag=&source=&limit= narrow it), / (every
output and its latest items), /opml (the sources), /outputs.opml (our outputs), /feed.xsl,
/healthz, /readyz, /metrics.

A rendered output is kept (bytes, strong ETag from those bytes, Last-Modified from its
newest item) until the database's content version moves or feeds.yaml is reloaded; a poll
then costs three index lookups, and one with a matching validator gets a 304
(If-None-Match first, then If-Modified-Since; RFC 9110 §13.2.2). gzip is computed once per
rendering and has its own ETag, as a strong validator must.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from importlib.resources import files
from typing import Any, Generic, TypeVar

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from crawler import opml
from crawler.emitters import EMITTERS
from crawler.emitters.html import CONTENT_SECURITY_POLICY, emit_html, emit_index, feed_urls
from crawler.errors import ConfigError, StorageError
from crawler.filters import Narrowing
from crawler.metrics import CONTENT_TYPE as METRICS_TYPE
from crawler.metrics import Metrics
from crawler.present import feed_language, last_changed, present
from crawler.selection import select_items
from crawler.types import Config, FeedView, Output, StoredArticle
from storage import Storage

T = TypeVar("T")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
CACHE_CONTROL = "public, max-age=300"
HTML_TYPE = "text/html; charset=utf-8"
XSL_TYPE = "text/xsl; charset=utf-8"
INDEX_ITEMS = 5  #: latest items per output on the index page
CACHE_ENTRIES = 256  #: renderings kept (bytes of one format, host and query)
SELECTION_ENTRIES = 64  #: outputs' chosen items kept (one per output and narrowing)
MAX_QUERY_CHARS = 200
#: /readyz waits this long for the database: a probe must answer, even if the answer is no
READY_TIMEOUT = 5.0
STYLESHEET = files("crawler.emitters").joinpath("feed.xsl").read_bytes()
#: media types a feed reader might list in Accept for each format
FEED_TYPES = {
    "xml": ("application/rss+xml", "application/xml", "text/xml"),
    "atom": ("application/atom+xml", "application/xml", "text/xml"),
    "json": ("application/feed+json", "application/json"),
}


@dataclass
class Rendered:
    body: bytes
    media_type: str
    last_modified: datetime
    etag: str = ""
    _gzipped: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.etag = '"' + hashlib.sha256(self.body).hexdigest()[:32] + '"'

    def gzipped(self) -> bytes:
        if self._gzipped is None:  # mtime=0: the same bytes compress to the same bytes
            self._gzipped = gzip.compress(self.body, compresslevel=6, mtime=0)
        return self._gzipped

    @property
    def gzip_etag(self) -> str:
        return self.etag[:-1] + '-gz"'


@dataclass
class Health:
    """What /healthz reports; the daemon updates it."""

    crawling: bool = True  #: False for `crawler serve`, which has no scheduler to watch
    scheduler_running: bool = True
    last_tick_at: datetime | None = None


class _Cache(Generic[T]):
    """Values by (what was asked), valid while their version (config, content) holds;
    the least recently used go first, since ?q= values are unbounded and memory is not."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[Any, tuple[Any, T]] = OrderedDict()

    def get(self, key: Any, version: Any, make: Callable[[], T]) -> T:
        hit = self._entries.get(key)
        if hit is not None and hit[0] == version:
            self._entries.move_to_end(key)
            return hit[1]
        value = make()
        self._entries[key] = (version, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return value


def make_app(config: Callable[[], Config], storage: Storage, health: Health | None = None,
             metrics: Metrics | None = None) -> Starlette:
    # Two levels: choosing, sanitizing and converting an output's items is the costly part
    # and is the same for every format and every spelling of its URL; writing the bytes is
    # per format, host and query string (the self link is the URL as asked).
    selections: _Cache[tuple[StoredArticle, ...]] = _Cache(SELECTION_ENTRIES)
    renderings: _Cache[Rendered] = _Cache(CACHE_ENTRIES)
    health = health or Health()
    metrics = metrics or Metrics()

    def version(output: Output | None) -> Any:
        # An output with a max_age changes as time passes, even with nothing new stored.
        bucket = int(datetime.now(UTC).timestamp() // 60) if output and output.max_age else 0
        return (config(), storage.content_version(), bucket)

    def items_of(output: Output, narrowing: Narrowing, at: Any) -> tuple[StoredArticle, ...]:
        return selections.get((output, narrowing), at, lambda: present(
            select_items(storage, config(), output, narrowing, datetime.now(UTC)), output))

    def view_of(output: Output, items: tuple[StoredArticle, ...], narrowing: Narrowing,
                self_url: str, base: str, stylesheet: bool) -> FeedView:
        feed_id = uuid.uuid5(uuid.NAMESPACE_URL,
                             f"crawler:feeds/{output.name}?{narrowing.query_string()}")
        return FeedView(
            name=output.name, title=output.title, description=output.description,
            self_url=self_url, home_url=base, articles=items,
            updated=last_changed(items), language=feed_language(items, output),
            stylesheet_url=f"{base}feed.xsl" if stylesheet else None, feed_id=feed_id.urn)

    def render_feed(output: Output, fmt: str, narrowing: Narrowing, base: str,
                    raw_query: str) -> Rendered:
        self_url = f"{base}feeds/{output.name}.{fmt}" + (f"?{raw_query}" if raw_query else "")
        at = version(output)

        def make() -> Rendered:
            items = items_of(output, narrowing, at)
            view = view_of(output, items, narrowing, self_url, base,
                           stylesheet=fmt in ("xml", "atom"))
            if fmt == "html":
                body = emit_html(view, feed_urls(base, output.name, narrowing.query_string()))
                return Rendered(body, HTML_TYPE, view.updated)
            emit, media_type = EMITTERS[fmt]
            return Rendered(emit(view), media_type, view.updated)

        return renderings.get((output, fmt, raw_query, base), at, make)

    def render_index(base: str) -> Rendered:
        at = version(next((o for o in config().outputs if o.max_age), None))

        def make() -> Rendered:
            views = []
            for output in config().outputs:
                items = items_of(output, Narrowing(), version(output))[:INDEX_ITEMS]
                views.append((view_of(output, items, Narrowing(),
                                      f"{base}feeds/{output.name}.xml", base, stylesheet=False),
                              feed_urls(base, output.name)))
            body = emit_index(views, f"{base}healthz")
            updated = max((v.updated for v, _ in views), default=datetime.now(UTC))
            return Rendered(body, HTML_TYPE, updated)

        return renderings.get(("/", base), at, make)

    async def feed(request: Request) -> Response:
        name, fmt = request.path_params["name"], request.path_params["fmt"]
        output = config().output(name)
        if output is None or (fmt not in EMITTERS and fmt != "html"):
            return _text(f"no output {name!r} in {fmt!r}\n", 404)
        try:
            narrowing = _narrowing(request, output)
        except ValueError as exc:
            return _text(f"{exc}\n", 400)
        shown = "html" if fmt != "html" and _prefers_html(request, fmt) else fmt
        try:
            rendered = await run_in_threadpool(render_feed, output, shown, narrowing,
                                               str(request.base_url), request.url.query)
        except ConfigError as exc:  # a narrowing naming a tag or feed that is not there
            return _text(f"{'; '.join(exc.problems)}\n", 400)
        except StorageError as exc:
            return _text(f"database unavailable: {exc}\n", 503)
        vary = "Accept-Encoding" if fmt == "html" else "Accept, Accept-Encoding"
        headers = {"Vary": vary}
        if shown == "html":
            headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return _send(request, rendered, headers)

    async def index(request: Request) -> Response:
        try:
            rendered = await run_in_threadpool(render_index, str(request.base_url))
        except StorageError as exc:
            return _text(f"database unavailable: {exc}\n", 503)
        return _send(request, rendered, {"Vary": "Accept-Encoding",
                                         "Content-Security-Policy": CONTENT_SECURITY_POLICY})

    async def sources_opml(request: Request) -> Response:
        body = opml.sources_opml(config(), datetime.now(UTC))
        return Response(body, media_type="text/x-opml; charset=utf-8",
                        headers={**SECURITY_HEADERS, "Cache-Control": CACHE_CONTROL})

    async def outputs_opml(request: Request) -> Response:
        body = opml.outputs_opml(config(), str(request.base_url), datetime.now(UTC))
        return Response(body, media_type="text/x-opml; charset=utf-8",
                        headers={**SECURITY_HEADERS, "Cache-Control": CACHE_CONTROL})

    async def stylesheet(request: Request) -> Response:
        return Response(STYLESHEET, media_type=XSL_TYPE,
                        headers={**SECURITY_HEADERS, "Cache-Control": "public, max-age=86400"})

    async def healthz(request: Request) -> Response:
        """Liveness: the process answers. It asks nothing of the database, so a database
        outage makes the daemon unready (/readyz), not restarted in a loop by a supervisor."""
        scheduler = "running" if health.scheduler_running else "stopped"
        body: dict[str, Any] = {
            "status": "ok",
            "scheduler": scheduler if health.crawling else "off (serve only)",
            "last_tick_at": health.last_tick_at.isoformat() if health.last_tick_at else None,
        }
        return JSONResponse(body, headers=SECURITY_HEADERS)

    async def readyz(request: Request) -> Response:
        """Whether to send traffic here: the database answers a query (in a thread, under
        a deadline) and, for `crawler run`, the scheduler runs (it stops first on SIGTERM,
        so a stopping daemon is not ready)."""
        reasons: list[str] = []
        try:
            # asyncio.to_thread rather than run_in_threadpool: a timed-out wait must return
            # now, and anyio would wait for the thread before delivering the cancellation.
            await asyncio.wait_for(asyncio.to_thread(storage.next_due), READY_TIMEOUT)
        except StorageError as exc:
            reasons.append(f"database unavailable: {exc}")
        except TimeoutError:
            reasons.append(f"database did not answer within {READY_TIMEOUT:g} s")
        if health.crawling and not health.scheduler_running:
            reasons.append("scheduler not running")
        body = {"status": "not ready" if reasons else "ready", "reasons": reasons}
        return JSONResponse(body, status_code=503 if reasons else 200,
                            headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})

    def read_metrics() -> bytes:
        try:  # the gauges that live in the database are read when asked for, never stale
            oldest_due, in_backoff = storage.backlog()
            metrics.set_backlog(datetime.now(UTC), oldest_due, in_backoff)
        except StorageError:
            metrics.database_down()
        return metrics.exposition()

    async def metrics_page(request: Request) -> Response:
        body = await run_in_threadpool(read_metrics)
        return Response(body, media_type=METRICS_TYPE,
                        headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})

    return Starlette(routes=[
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
        Route("/metrics", metrics_page, methods=["GET"]),
        Route("/opml", sources_opml, methods=["GET", "HEAD"]),
        Route("/outputs.opml", outputs_opml, methods=["GET", "HEAD"]),
        Route("/feed.xsl", stylesheet, methods=["GET", "HEAD"]),
        Route("/feeds/{name}.{fmt}", feed, methods=["GET", "HEAD"]),
    ])


def _text(message: str, status: int) -> Response:
    return Response(message, status_code=status, media_type="text/plain; charset=utf-8",
                    headers=SECURITY_HEADERS)


def _narrowing(request: Request, output: Output) -> Narrowing:
    """?q= ?tag= ?source= ?limit=; other parameters (readers' cache busters) are ignored."""
    params = request.query_params
    q = params.get("q", "").strip()
    if len(q) > MAX_QUERY_CHARS:
        raise ValueError(f"q is longer than {MAX_QUERY_CHARS} characters")
    limit = None
    if params.get("limit"):
        try:
            limit = int(params["limit"])
        except ValueError:
            raise ValueError(f"limit must be a whole number, got {params['limit']!r}") from None
        if not 1 <= limit <= output.limit:
            raise ValueError(f"limit must be between 1 and {output.limit} (the output's limit)")
    return Narrowing(q=q, tag=params.get("tag") or None, source=params.get("source") or None,
                     limit=limit)


def _weights(header: str) -> dict[str, float]:
    """An Accept or Accept-Encoding header → {media type or coding: q} (RFC 9110 §12.4.2)."""
    weights: dict[str, float] = {}
    for part in header.split(","):
        token, _, params = part.partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if token.strip():
            weights[token.strip().lower()] = q
    return weights


def _prefers_html(request: Request, fmt: str) -> bool:
    """A browser: text/html named and ranked above every type of the feed (a type/* or
    */* counting for them); readers that send */* or nothing get the feed."""
    weights = _weights(request.headers.get("accept", ""))
    feed_q = max((q for media, q in weights.items()
                  if media == "*/*" or any(media in (t, t.split("/")[0] + "/*")
                                           for t in FEED_TYPES[fmt])), default=0.0)
    return weights.get("text/html", 0.0) > feed_q


def _accepts_gzip(request: Request) -> bool:
    weights = _weights(request.headers.get("accept-encoding", ""))
    named = [weights[c] for c in ("gzip", "x-gzip") if c in weights]
    return (max(named) if named else weights.get("*", 0.0)) > 0


def _send(request: Request, rendered: Rendered, extra: dict[str, str]) -> Response:
    compressed = _accepts_gzip(request)
    headers = {
        "ETag": rendered.gzip_etag if compressed else rendered.etag,
        "Last-Modified": format_datetime(rendered.last_modified, usegmt=True),
        "Cache-Control": CACHE_CONTROL,
        **SECURITY_HEADERS,
        **extra,
    }
    if _not_modified(request, rendered):
        return Response(status_code=304, headers=headers)
    if compressed:
        headers["Content-Encoding"] = "gzip"
        return Response(rendered.gzipped(), media_type=rendered.media_type, headers=headers)
    return Response(rendered.body, media_type=rendered.media_type, headers=headers)


def _not_modified(request: Request, rendered: Rendered) -> bool:
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        # Either representation's tag names these bytes: a reader that stored the gzip
        # tag and now asks without gzip has still seen this content.
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in tags or bool(tags & {rendered.etag, rendered.gzip_etag})
    if_modified_since = request.headers.get("if-modified-since")
    if if_modified_since:
        try:
            since = parsedate_to_datetime(if_modified_since)
            return rendered.last_modified.replace(microsecond=0) <= since
        except (TypeError, ValueError):
            return False
    return False
