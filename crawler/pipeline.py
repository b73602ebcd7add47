"""One crawl: the orchestrator, and the only stage that calls all the others.

    storage.claim(due) | fetch (async, bounded) | articles_from_body (worker process)
        | storage.record_success / record_not_modified_many / record_error

Each source ends in exactly one recorded outcome, and one source's failure never stops the
others: every SourceError becomes that source's stored error, and anything else is logged
as a bug and stored the same way. Articles, validators and state of one fetch are written
in one transaction, so a crash or SIGTERM never leaves half a feed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from typing import Any, TypeVar

from crawler.errors import CrawlerError, FetchError, ParseError, SourceError, StorageError
from crawler.fetch import AddressPolicy, fetch, make_client
from crawler.local import read_folder
from crawler.normalize import canonical_url
from crawler.types import (
    FOLDER_FILES,
    Article,
    CachingInfo,
    Config,
    CrawlOutcome,
    Fetched,
    Source,
    is_local,
)
from crawler.workers import (
    PRELOAD,
    article_from_page,
    article_from_ptt_post,
    articles_from_body,
    limit_worker_memory,
    ptt_index_urls,
)
from storage import Storage

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_BACKOFF = timedelta(hours=24)
PARSE_DEADLINE = 60.0
LEASE = timedelta(minutes=10)
UNCHANGED_BATCH = 100
MAX_PAGES = 50  #: article pages fetched per source per crawl (full_text)
PAGE_CONCURRENCY = 4  #: of those, at once: one site, so politely


class SameFailure(ParseError):
    """The body is byte for byte the one whose parse failed last time."""

    def describe(self) -> str:
        return str(self)  # the stored message, kind included


def _headers_for(source: Source) -> dict[str, str]:
    # ptt.cc shows adult boards only after the over-18 question; the cookie answers it.
    return {"Cookie": "over18=1"} if source.format == "ptt" else {}


def utcnow() -> datetime:
    return datetime.now(UTC)


def next_check_after_success(now: datetime, interval: int) -> datetime:
    # ±10 % jitter spreads sources that were added together over the interval.
    return now + timedelta(seconds=interval * random.uniform(0.9, 1.1))


def next_check_after_error(now: datetime, interval: int, failures: int) -> datetime:
    """Exponential back-off: interval × 2^(failures-1), at most a day."""
    delay: timedelta = timedelta(seconds=interval) * (2 ** max(0, min(failures - 1, 16)))
    return now + min(delay, MAX_BACKOFF)


class Crawler:
    """Crawls sources of one Config into one Storage; reusable across scheduler ticks."""

    def __init__(self, config: Config, storage: Storage, *,
                 now: Callable[[], datetime] = utcnow) -> None:
        self.config = config
        self.storage = storage
        self.now = now
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        # One writer thread: SQLite has one writer anyway, and the event loop never blocks.
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crawler-db")
        self._pool: ProcessPoolExecutor | None = None
        self._address_policy = AddressPolicy(config.settings.allowed_networks)
        #: sources found unchanged (304, or the same body again), not yet written
        self._unchanged: list[tuple[str, CachingInfo, datetime, int]] = []

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._db.shutdown(wait=True)

    def _workers(self) -> ProcessPoolExecutor:
        if self._pool is None:
            count = self.config.settings.parse_workers or os.cpu_count() or 1
            # forkserver: forking a process that runs threads (httpx, the db thread) is unsafe.
            # The forkserver loads the parse stack once; each worker starts with it loaded.
            context = get_context("forkserver")
            context.set_forkserver_preload(PRELOAD)
            self._pool = ProcessPoolExecutor(max_workers=count, mp_context=context,
                                             initializer=limit_worker_memory)
        return self._pool

    def _kill_workers(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    async def _in(self, executor: Executor, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    async def crawl_due(self, batch: int, max_batches: int = 1000) -> list[CrawlOutcome]:
        """The daemon's tick: claim due sources a batch at a time until none is due, so that
        several daemons on one database share the work instead of one taking it all."""
        outcomes: list[CrawlOutcome] = []
        for _ in range(max_batches):
            done = await self.crawl(due_only=True, limit=batch)
            if not done:
                break
            outcomes += done
        return outcomes

    async def crawl(
        self, names: Sequence[str] | None = None, *, due_only: bool = False,
        limit: int = 100_000,
        on_outcome: Callable[[CrawlOutcome], None] | None = None,
        on_start: Callable[[int], None] | None = None,
    ) -> list[CrawlOutcome]:
        """Crawl the named sources (or all enabled ones); return one outcome per source."""
        claimed = await self._in(self._db, lambda: self.storage.claim(
            now=self.now(), lease=LEASE, owner=self.owner, names=names, due_only=due_only,
            limit=limit))
        if on_start is not None:
            on_start(len(claimed))
        if not claimed:
            return []
        settings = self.config.settings
        by_name = {s.name: s for s in self.config.sources}
        caching = await self._in(self._db, self.storage.caching_infos, claimed)
        # One per crawl: built from the running config (a reload takes effect on the next
        # crawl), and caching each host's lookup for the crawl's length.
        self._address_policy = AddressPolicy(settings.allowed_networks)
        semaphore = asyncio.Semaphore(settings.concurrency)
        outcomes: list[CrawlOutcome] = []
        self._unchanged = []

        async def one(name: str) -> None:
            async with semaphore:
                outcome = await self._crawl_source(client, by_name[name],
                                                   caching.get(name, CachingInfo()))
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
            if len(self._unchanged) >= UNCHANGED_BATCH:
                await self._flush_unchanged()

        async with make_client(user_agent=settings.user_agent, concurrency=settings.concurrency,
                               timeout=settings.timeout) as client:
            try:
                await asyncio.gather(*(one(n) for n in claimed if n in by_name))
            finally:
                await self._flush_unchanged()
                done = {o.source for o in outcomes}
                unfinished = [n for n in claimed if n not in done]
                if unfinished:  # cancelled mid-crawl: let another worker or tick take them
                    await asyncio.shield(self._in(self._db, self.storage.release, unfinished,
                                                  self.owner))
        order = {name: index for index, name in enumerate(claimed)}
        return sorted(outcomes, key=lambda o: order[o.source])

    async def _flush_unchanged(self) -> None:
        batch, self._unchanged = self._unchanged, []
        if batch:
            try:
                await asyncio.shield(self._in(self._db, lambda: self.storage
                                              .record_not_modified_many(batch, now=self.now())))
            except StorageError as exc:
                log.error("could not record %d unchanged sources: %s", len(batch), exc)

    async def _crawl_source(self, client: Any, source: Source,
                            caching: CachingInfo) -> CrawlOutcome:
        interval = source.interval or self.config.settings.interval
        try:
            return await self._fetch_and_store(client, source, interval, caching)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            retry_after = getattr(exc, "retry_after", None)
            if isinstance(exc, SourceError):
                message, status = exc.describe(), exc.status
            elif isinstance(exc, CrawlerError):
                message, status = f"{getattr(exc, 'kind', 'error')}: {exc}", None
            else:
                log.critical("bug while crawling %s (%s)", source.name, source.url, exc_info=exc)
                message, status = f"internal error: {type(exc).__name__}: {exc}", None
            log.warning("%s: %s", source.name, message)
            await self._record_error(source, message, status, interval, retry_after,
                                     getattr(exc, "body_hash", None))
            return CrawlOutcome(source=source.name, status=status, error=message)

    async def _record_error(self, source: Source, message: str, status: int | None,
                            interval: int, retry_after: float | None,
                            failed_body_hash: str | None) -> None:
        def write() -> None:
            now = self.now()
            failures = self.storage.error_count(source.name) + 1
            next_check = next_check_after_error(now, interval, failures)
            if retry_after is not None:  # the server said when; never sooner than that
                next_check = max(next_check, now + timedelta(seconds=retry_after))
            self.storage.record_error(source.name, message, now=now, status=status,
                                      next_check=next_check, failed_body_hash=failed_body_hash)

        try:
            await asyncio.shield(self._in(self._db, write))
        except StorageError as exc:
            log.error("%s: could not record the error: %s", source.name, exc)

    async def _fetch_and_store(self, client: Any, source: Source, interval: int,
                               caching: CachingInfo) -> CrawlOutcome:
        settings = self.config.settings
        local = is_local(source.format, source.url)
        if local:
            result = await asyncio.to_thread(read_folder, source.url, caching,
                                             max_bytes=settings.max_bytes,
                                             suffix=FOLDER_FILES[source.format])
        else:
            result = await fetch(client, source.url, caching, max_bytes=settings.max_bytes,
                                 deadline=settings.timeout, headers=_headers_for(source),
                                 address_policy=self._address_policy)
        now = self.now()
        if isinstance(result, Fetched):
            digest = hashlib.sha256(result.body).hexdigest()
            caching_now = replace(result.caching, body_hash=digest)
            if digest == caching.body_hash:  # the same bytes as last time: nothing to parse
                self._unchanged.append((source.name, caching_now,
                                        next_check_after_success(now, interval), result.status))
                return CrawlOutcome(source=source.name, not_modified=True, status=result.status)
            if digest == caching.failed_body_hash:  # the same broken bytes: the same error
                raise SameFailure(caching.failed_error or "parse: the body that failed before",
                                  body_hash=digest)
            result = replace(result, caching=caching_now)
        else:
            self._unchanged.append((source.name, replace(result.caching,
                                                         body_hash=caching.body_hash),
                                    next_check_after_success(now, interval), 304))
            return CrawlOutcome(source=source.name, not_modified=True, status=304)
        try:
            if source.format == "ptt" and not local:
                articles, warnings = await self._ptt_posts(client, source, result, now)
            else:
                articles, warnings = await self._parse(source, result, now)
        except ParseError as exc:
            exc.body_hash = digest  # so the same bytes next time are not parsed again
            raise
        if source.full_text:
            articles, more = await self._full_text(client, source, articles, now)
            warnings += more
        if source.language:  # the user's word beats the feed's and the detected one
            articles = tuple(replace(a, language=source.language) for a in articles)
        if result.permanent_redirect:
            # feeds.yaml stays the truth; the user is told where the feed went.
            warnings += (f"moved permanently to {result.permanent_redirect}; "
                         "update its url in feeds.yaml",)
        stored = await asyncio.shield(self._in(self._db, lambda: self.storage.record_success(
            source.name, articles, now=now, next_check=next_check_after_success(now, interval),
            status=result.status, caching=result.caching)))
        for warning in warnings:
            log.info("%s: %s", source.name, warning)
        return CrawlOutcome(source=source.name, new=stored.new, updated=stored.updated,
                            unchanged=stored.unchanged, status=result.status,
                            warnings=warnings)

    async def _full_text(
        self, client: Any, source: Source, articles: tuple[Article, ...], now: datetime
    ) -> tuple[tuple[Article, ...], tuple[str, ...]]:
        """Replace the content of new or changed items with the article from their page.

        Items already stored unchanged are not fetched again, and their content_hash stays
        the feed's, so the next crawl still sees them as unchanged."""
        known = await self._in(self._db, self.storage.known_items, source.name,
                               [a.item_key for a in articles])
        todo = [i for i, a in enumerate(articles)
                if a.link and known.get(a.item_key) != a.content_hash][:MAX_PAGES]
        found = list(articles)
        warnings: list[str] = []
        semaphore = asyncio.Semaphore(PAGE_CONCURRENCY)

        async def one(index: int) -> None:
            article = articles[index]
            assert article.link is not None
            try:
                async with semaphore:
                    page = await self._fetch_page(client, source, article.link)
                found[index] = await self._in_worker(
                    article_from_page, article, page.body, page.content_type, page.final_url,
                    now, source.site)
            except SourceError as exc:
                warnings.append(f"full text of {article.link}: {exc.describe()}; "
                                "kept the feed's text")

        await asyncio.gather(*(one(i) for i in todo))
        return tuple(found), tuple(warnings)

    async def _ptt_posts(
        self, client: Any, source: Source, index: Fetched, now: datetime
    ) -> tuple[tuple[Article, ...], tuple[str, ...]]:
        """A board index → its posts not stored yet, each fetched and parsed."""
        urls = await self._in_worker(ptt_index_urls, index.body, index.final_url)
        known = await self._in(self._db, self.storage.known_items, source.name,
                               [f"url:{canonical_url(u)}" for u in urls])
        todo = [u for u in urls if f"url:{canonical_url(u)}" not in known][-MAX_PAGES:]
        found: list[Article] = []
        warnings: list[str] = []
        semaphore = asyncio.Semaphore(PAGE_CONCURRENCY)

        async def one(url: str) -> None:
            try:
                async with semaphore:
                    page = await self._fetch_page(client, source, url)
                found.append(await self._in_worker(article_from_ptt_post, page.body,
                                                   page.final_url, now, source.site))
            except SourceError as exc:
                warnings.append(f"post {url}: {exc.describe()}")

        await asyncio.gather(*(one(u) for u in todo))
        if todo and not found:
            raise ParseError(f"none of the {len(todo)} new posts could be read: {warnings[0]}")
        return tuple(found), tuple(warnings)

    async def _parse(self, source: Source, fetched: Fetched, now: datetime) -> Any:
        return await self._in_worker(articles_from_body, source.format, fetched.body,
                                     fetched.content_type, fetched.final_url, now, source.site)

    async def _fetch_page(self, client: Any, source: Source, url: str) -> Fetched:
        """An item's own page (full_text, a PTT post): fetched like a feed, never cached."""
        settings = self.config.settings
        page = await fetch(client, url, CachingInfo(), max_bytes=settings.max_bytes,
                           deadline=settings.timeout, headers=_headers_for(source),
                           address_policy=self._address_policy)
        if not isinstance(page, Fetched):  # no validators were sent, so not expected
            raise FetchError(f"{url} answered 304 to an unconditional request")
        return page

    async def _in_worker(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a parse in a worker process under the parse deadline; every failure of the
        worker itself becomes a ParseError."""
        future = asyncio.get_running_loop().run_in_executor(self._workers(), fn, *args)
        try:
            return await asyncio.wait_for(future, PARSE_DEADLINE)
        except TimeoutError as exc:
            self._kill_workers()  # a parse that overran cannot be interrupted, only killed
            raise ParseError(f"parsing took longer than {PARSE_DEADLINE:g} s") from exc
        except BrokenProcessPool as exc:
            self._kill_workers()
            raise ParseError("the parser process died (out of memory?)") from exc
