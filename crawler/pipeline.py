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
import itertools
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from typing import Any, TypeVar

from crawler.errors import CrawlerError, FetchError, ParseError, SourceError, StorageError
from crawler.fetch import fetch, host_of, make_client
from crawler.local import read_folder
from crawler.logs import log_outcome
from crawler.netguard import AddressPolicy
from crawler.normalize import canonical_url
from crawler.schedule import next_check_after_error, next_check_after_success
from crawler.types import (
    FOLDER_FILES,
    Article,
    CachingInfo,
    Config,
    CrawlOutcome,
    FeedBody,
    Fetched,
    FetchState,
    NotModified,
    PublisherHints,
    Source,
    is_local,
)
from crawler.workers import (
    PRELOAD,
    article_from_page,
    article_from_ptt_post,
    feed_from_body,
    limit_worker_memory,
    ptt_index_urls,
)
from storage import Storage

log = logging.getLogger(__name__)
T = TypeVar("T")
PARSE_DEADLINE = 60.0
LEASE = timedelta(minutes=10)
UNCHANGED_BATCH = 100
MAX_PAGES = 50  #: article pages fetched per source per crawl (full_text)
PAGE_CONCURRENCY = 4  #: of those, at once: one site, so politely


def _alive(owner: str, host: str) -> bool:
    """Whether the process that took a lease as ``owner`` (host:pid:nonce) still runs. A
    PID now used by another process reads as alive: its leases then expire (LEASE)."""
    parts = owner[len(host) + 1:].split(":")
    if not parts[0].isdigit():
        return True  # not ours to judge
    pid = int(parts[0])
    if pid == os.getpid():
        return False  # our PID, another nonce: a predecessor that had it before us
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def source_url(source: Source, state: FetchState) -> str:
    """Where the feed is fetched from: where a 301/308 moved it, or feeds.yaml's url."""
    return state.moved_to or source.url


class SameFailure(ParseError):
    """The body is byte for byte the one whose parse failed last time."""

    def describe(self) -> str:
        return str(self)  # the stored message, kind included


def _headers_for(source: Source) -> dict[str, str]:
    # ptt.cc shows adult boards only after the over-18 question; the cookie answers it.
    return {"Cookie": "over18=1"} if source.format == "ptt" else {}


def utcnow() -> datetime:
    return datetime.now(UTC)


def address_policy(config: Config) -> AddressPolicy:
    """Hosts the user wrote in feeds.yaml may be on any address; nothing else may be on a
    private one unless the settings say so."""
    settings = config.settings
    hosts = [host_of(s.url) for s in config.sources if not is_local(s.format, s.url)]
    return AddressPolicy(settings.allowed_networks, hosts,
                         allow_private=settings.allow_private_networks)


def spread_by_host(names: Sequence[str], hosts: dict[str, str]) -> list[str]:
    """Round-robin over hosts: the fetch slots go to as many hosts as there are, instead of
    all waiting on one host's limit while the sources of the others wait for a slot."""
    queues: dict[str, list[str]] = {}
    for name in names:
        queues.setdefault(hosts.get(name, ""), []).append(name)
    order: list[str] = []
    for round_ in itertools.zip_longest(*queues.values()):
        order += [name for name in round_ if name is not None]
    return order


class Crawler:
    """Crawls sources of one Config into one Storage; reusable across scheduler ticks."""

    def __init__(self, config: Config, storage: Storage, *,
                 now: Callable[[], datetime] = utcnow) -> None:
        self.config = config
        self.storage = storage
        self.now = now
        # host:pid says which leases a dead process on this host left behind; the nonce
        # tells a restarted process from its dead predecessor when the PID comes round
        # again (a container's daemon is PID 1 every time).
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # One writer thread: SQLite has one writer anyway, and the event loop never blocks.
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crawler-db")
        self._pool: ProcessPoolExecutor | None = None
        self._pool_lock = threading.Lock()  #: two parses may ask for the pool at once
        #: per host, the requests it may be sent at once (settings.host_concurrency)
        self._host_slots: dict[str, asyncio.Semaphore] = {}
        #: sources found unchanged (304, or the same body again), not yet written
        self._unchanged: list[tuple[str, CachingInfo, datetime, int]] = []

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._db.shutdown(wait=True)

    async def _workers(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # Starting the forkserver imports the parse stack, and the first submit waits for
            # the workers: a second or two that, on the event loop, would stall the HTTP
            # server and every fetch in flight (and bunch up requests spaced by host_delay).
            await asyncio.to_thread(self._start_workers)
        assert self._pool is not None
        return self._pool

    def _start_workers(self) -> None:
        with self._pool_lock:
            if self._pool is not None:
                return
            count = self.config.settings.parse_workers or os.cpu_count() or 1
            # forkserver: forking a process that runs threads (httpx, the db thread) is unsafe.
            # The forkserver loads the parse stack once; each worker starts with it loaded.
            context = get_context("forkserver")
            context.set_forkserver_preload(PRELOAD)
            pool = ProcessPoolExecutor(max_workers=count, mp_context=context,
                                       initializer=limit_worker_memory)
            pool.submit(os.getpid).result(timeout=PARSE_DEADLINE)
            self._pool = pool

    def _kill_workers(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    async def _in(self, executor: Executor, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    async def crawl_due(self, batch: int, max_batches: int = 1000,
                        on_outcome: Callable[[CrawlOutcome], None] | None = None,
                        ) -> list[CrawlOutcome]:
        """The daemon's tick: claim due sources a batch at a time until none is due, so that
        several daemons on one database share the work instead of one taking it all."""
        outcomes: list[CrawlOutcome] = []
        for _ in range(max_batches):
            done = await self.crawl(due_only=True, limit=batch, on_outcome=on_outcome)
            if not done:
                break
            outcomes += done
        return outcomes

    async def crawl(
        self, names: Sequence[str] | None = None, *, due_only: bool = False,
        force: bool = False, limit: int = 100_000,
        on_outcome: Callable[[CrawlOutcome], None] | None = None,
        on_start: Callable[[int], None] | None = None,
    ) -> list[CrawlOutcome]:
        """Crawl the named sources (or all enabled ones); return one outcome per source.

        Sources backing off after errors, waiting out a Retry-After, or stopped (410) are
        left alone unless ``force``."""
        await self._in(self._db, self._release_dead_leases)
        claimed = await self._in(self._db, lambda: self.storage.claim(
            now=self.now(), lease=LEASE, owner=self.owner, names=names, due_only=due_only,
            force=force, limit=limit))
        if on_start is not None:
            on_start(len(claimed))
        if not claimed:
            return []
        settings = self.config.settings
        by_name = {s.name: s for s in self.config.sources}
        states = await self._in(self._db, self.storage.fetch_states, claimed)
        semaphore = asyncio.Semaphore(settings.concurrency)
        self._host_slots = {}
        outcomes: list[CrawlOutcome] = []
        self._unchanged = []
        hosts = {n: host_of(states[n].moved_to or by_name[n].url)
                 for n in claimed if n in by_name and n in states}

        async def one(name: str) -> None:
            async with semaphore:
                outcome = await self._crawl_source(client, by_name[name],
                                                   states.get(name, FetchState()))
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
            if len(self._unchanged) >= UNCHANGED_BATCH:
                await self._flush_unchanged()

        # The address policy is built from the running config, so a reload that adds a host
        # takes effect on the next crawl.
        async with make_client(user_agent=settings.user_agent, concurrency=settings.concurrency,
                               timeout=settings.timeout,
                               policy=address_policy(self.config)) as client:
            try:
                await asyncio.gather(*(one(n) for n in spread_by_host(claimed, hosts)
                                       if n in by_name))
            finally:
                await self._flush_unchanged()
                done = {o.source for o in outcomes}
                unfinished = [n for n in claimed if n not in done]
                if unfinished:  # cancelled mid-crawl: let another worker or tick take them
                    await asyncio.shield(self._in(self._db, self.storage.release, unfinished,
                                                  self.owner))
        order = {name: index for index, name in enumerate(claimed)}
        return sorted(outcomes, key=lambda o: order[o.source])

    def _release_dead_leases(self) -> None:
        """Leases that processes on this host held when they died (kill -9, OOM, power):
        given back at once rather than after LEASE, so a restart fetches what was in flight.
        Processes on other hosts cannot be asked; their leases expire."""
        host = socket.gethostname()
        dead = [owner for owner in self.storage.lease_owners(f"{host}:", self.now())
                if owner != self.owner and not _alive(owner, host)]
        released = self.storage.release_owners(dead)
        if released:
            log.info("released %d leases of %s, which died before finishing",
                     released, ", ".join(dead))

    async def _flush_unchanged(self) -> None:
        batch, self._unchanged = self._unchanged, []
        if batch:
            try:
                await asyncio.shield(self._in(self._db, lambda: self.storage
                                              .record_not_modified_many(batch, now=self.now())))
            except StorageError as exc:
                log.error("could not record %d unchanged sources: %s", len(batch), exc)

    async def _crawl_source(self, client: Any, source: Source,
                            state: FetchState) -> CrawlOutcome:
        interval = source.interval or self.config.settings.interval
        started = asyncio.get_running_loop().time()
        try:
            outcome = await self._fetch_and_store(client, source, interval, state)
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
            # Every stored message starts with its kind; SameFailure repeats the one stored.
            kind = message.partition(":")[0] if isinstance(exc, CrawlerError) else "internal"
            # 410 Gone: the publisher says the feed will not come back; asking again every
            # day would be the hammering it asked us to stop.
            stop = (f"stopped: HTTP 410 Gone at {source_url(source, state)}; crawl it with "
                    "--force or change its url to start again") if status == 410 else None
            await self._record_error(source, message, status, interval, retry_after,
                                     getattr(exc, "body_hash", None), state.error_count + 1,
                                     stop)
            outcome = CrawlOutcome(source=source.name, status=status, error=message,
                                   error_kind=kind)
        # The one line this source's crawl ends in, errors included (crawler.logs).
        outcome = replace(outcome, url=source_url(source, state),
                          seconds=asyncio.get_running_loop().time() - started)
        log_outcome(log, outcome)
        return outcome

    async def _record_error(self, source: Source, message: str, status: int | None,
                            interval: int, retry_after: float | None,
                            failed_body_hash: str | None, failures: int,
                            stop: str | None) -> None:
        def write() -> None:
            now = self.now()
            next_check = next_check_after_error(now, interval, failures,
                                                cap=self.config.settings.max_backoff,
                                                retry_after=retry_after)
            self.storage.record_error(source.name, message, now=now, status=status,
                                      next_check=next_check, failed_body_hash=failed_body_hash,
                                      stop=stop)

        try:
            await asyncio.shield(self._in(self._db, write))
        except StorageError as exc:
            log.error("%s: could not record the error: %s", source.name, exc)

    async def _fetch_and_store(self, client: Any, source: Source, interval: int,
                               state: FetchState) -> CrawlOutcome:
        settings = self.config.settings
        caching = state.caching
        local = is_local(source.format, source.url)
        result: Fetched | NotModified
        if local:
            result = await asyncio.to_thread(read_folder, source.url, caching,
                                             max_bytes=settings.max_bytes,
                                             suffix=FOLDER_FILES[source.format])
        else:
            result = await self._get(client, source_url(source, state), caching,
                                     _headers_for(source))
        now = self.now()

        def next_check(hints: PublisherHints) -> datetime:
            return next_check_after_success(now, interval, cap=settings.max_backoff,
                                            hints=hints, fresh_for=result.fresh_for)

        if isinstance(result, Fetched):
            digest = hashlib.sha256(result.body).hexdigest()
            caching_now = replace(result.caching, body_hash=digest)
            if digest == caching.body_hash:  # the same bytes as last time: nothing to parse
                self._unchanged.append((source.name, caching_now, next_check(state.hints),
                                        result.status))
                return CrawlOutcome(source=source.name, not_modified=True, status=result.status,
                                    body_bytes=len(result.body))
            if digest == caching.failed_body_hash:  # the same broken bytes: the same error
                raise SameFailure(caching.failed_error or "parse: the body that failed before",
                                  body_hash=digest)
            result = replace(result, caching=caching_now)
        else:
            self._unchanged.append((source.name, replace(result.caching,
                                                         body_hash=caching.body_hash),
                                    next_check(state.hints), 304))
            return CrawlOutcome(source=source.name, not_modified=True, status=304)
        hints = PublisherHints()
        try:
            if source.format == "ptt" and not local:
                articles, warnings = await self._ptt_posts(client, source, result, now)
            else:
                parsed = await self._parse(source, result, now)
                articles, warnings, hints = parsed.articles, parsed.warnings, parsed.hints
        except ParseError as exc:
            exc.body_hash = digest  # so the same bytes next time are not parsed again
            raise
        if source.full_text:
            articles, more = await self._full_text(client, source, articles, now)
            warnings += more
        if source.language:  # the user's word beats the feed's and the detected one
            articles = tuple(replace(a, language=source.language) for a in articles)
        moved_to = result.permanent_redirect
        if moved_to:
            # Fetched from there from now on, and shown by `crawler status`; feeds.yaml is
            # the user's file and is not rewritten behind their back.
            warnings += (f"moved permanently to {moved_to}; fetched from there from now on "
                         "(update its url in feeds.yaml to make it stick)",)
        stored = await asyncio.shield(self._in(self._db, lambda: self.storage.record_success(
            source.name, articles, now=now, next_check=next_check(hints),
            status=result.status, caching=result.caching, moved_to=moved_to, hints=hints)))
        for warning in warnings:
            log.info("%s: %s", source.name, warning)
        return CrawlOutcome(source=source.name, new=stored.new, updated=stored.updated,
                            unchanged=stored.unchanged, status=result.status,
                            warnings=warnings, body_bytes=len(result.body),
                            merged=stored.merged, copies=stored.copies)

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

    async def _parse(self, source: Source, fetched: Fetched, now: datetime) -> FeedBody:
        return await self._in_worker(feed_from_body, source.format, fetched.body,
                                     fetched.content_type, fetched.final_url, now, source.site,
                                     source.encoding)

    async def _get(self, client: Any, url: str, caching: CachingInfo,
                   headers: dict[str, str]) -> Fetched | NotModified:
        """Every request of a crawl: at most settings.host_concurrency at once per host, and
        settings.host_delay apart per host across every worker on the database."""
        settings = self.config.settings
        host = host_of(url)
        slots = self._host_slots.setdefault(host, asyncio.Semaphore(settings.host_concurrency))
        async with slots:
            if settings.host_delay > 0 and host:
                await self._wait_for_host(host, settings.host_delay)
            return await fetch(client, url, caching, max_bytes=settings.max_bytes,
                               deadline=settings.timeout, headers=headers)

    async def _wait_for_host(self, host: str, delay: float) -> None:
        """Sleep until this request's turn at the host. A turn missed by more than a
        little (the process was busy) is given up for a new one, or it would go out
        closer than the gap to the next worker's."""
        gap = timedelta(seconds=delay)
        for _ in range(5):
            slot = await self._in(self._db, lambda: self.storage.reserve_host_slot(
                host, now=self.now(), gap=gap))
            wait = (slot - self.now()).total_seconds()
            if wait > 0:
                await asyncio.sleep(wait)
            if (self.now() - slot).total_seconds() <= min(0.05, delay / 10):
                return

    async def _fetch_page(self, client: Any, source: Source, url: str) -> Fetched:
        """An item's own page (full_text, a PTT post): fetched like a feed, never cached."""
        page = await self._get(client, url, CachingInfo(), _headers_for(source))
        if not isinstance(page, Fetched):  # no validators were sent, so not expected
            raise FetchError(f"{url} answered 304 to an unconditional request")
        return page

    async def _in_worker(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a parse in a worker process under the parse deadline; every failure of the
        worker itself becomes a ParseError."""
        future = asyncio.get_running_loop().run_in_executor(await self._workers(), fn, *args)
        try:
            return await asyncio.wait_for(future, PARSE_DEADLINE)
        except TimeoutError as exc:
            self._kill_workers()  # a parse that overran cannot be interrupted, only killed
            raise ParseError(f"parsing took longer than {PARSE_DEADLINE:g} s") from exc
        except BrokenProcessPool as exc:
            self._kill_workers()
            raise ParseError("the parser process died (out of memory?)") from exc
