"""`crawler run` and `crawler serve`: the scheduler and the HTTP server in one event loop.

SIGTERM or Ctrl-C: stop ticking, stop accepting requests, give the running crawl a grace
period to finish its feeds (each is one transaction), then cancel the rest; leases of
sources not finished are released so the next start takes them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Generator
from datetime import UTC, datetime
from typing import Any

import uvicorn

from crawler import config as config_module
from crawler.errors import ConfigError, CrawlerError
from crawler.metrics import Metrics
from crawler.pipeline import Crawler
from crawler.scheduler import make_scheduler, run_tick_now
from crawler.server import Health, make_app
from crawler.types import Config, CrawlOutcome
from storage import Storage

log = logging.getLogger(__name__)
SHUTDOWN_GRACE = 20.0


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class Daemon:
    def __init__(self, config: Config, storage: Storage, *, crawl: bool = True) -> None:
        self.config = config
        self.storage = storage
        self.crawl_enabled = crawl
        self.health = Health(crawling=crawl, scheduler_running=crawl)
        self.metrics = Metrics()  #: this daemon's own registry, served at /metrics
        self.crawler = Crawler(config, storage)
        self._mtime = _mtime(config.path)
        self._crawl_task: asyncio.Task[list[CrawlOutcome]] | None = None
        self._scheduler: Any = None  #: the APScheduler scheduler while running

    def current_config(self) -> Config:
        return self.config

    async def tick(self) -> None:
        self.health.last_tick_at = datetime.now(UTC)
        batch = self.config.settings.concurrency * 5
        # Counted as each source ends, so a scrape during a long first crawl sees it.
        self._crawl_task = asyncio.ensure_future(self.crawler.crawl_due(
            batch, on_outcome=lambda outcome: self.metrics.observe((outcome,))))
        try:
            # Shielded: on SIGTERM APScheduler's shutdown cancels this job, and an unshielded
            # await would cancel the crawl with it before _finish_crawl's grace period.
            outcomes = await asyncio.shield(self._crawl_task)
        except asyncio.CancelledError:
            return
        except CrawlerError as exc:
            log.error("crawl tick failed: %s", exc)
            return
        if outcomes:
            errors = sum(1 for o in outcomes if o.error)
            new = sum(o.new for o in outcomes)
            log.info("crawled %d sources: %d new articles, %d errors", len(outcomes), new,
                     errors)

    async def reload(self, *, forced: bool = False) -> None:
        """A bad edit of feeds.yaml is reported and the running configuration stays.
        Polled every few seconds (``forced`` False: only when the file's mtime changed),
        and on SIGHUP."""
        mtime = _mtime(self.config.path)
        if mtime == self._mtime and not forced:
            return
        self._mtime = mtime
        try:
            new = config_module.load(self.config.path)
        except ConfigError as exc:
            log.error("%s changed but is invalid; keeping the running configuration:\n%s",
                      self.config.path, exc)
            return
        if new.settings.database != self.config.settings.database:
            log.warning("settings.database changed; restart the daemon to switch databases")
        await asyncio.to_thread(self.storage.sync_sources, new.sources, datetime.now(UTC))
        self.storage.story_rules = new.settings.stories
        sources_changed = new.sources != self.config.sources
        self.config = new
        self.crawler.config = new
        log.info("reloaded %s: %d feeds, %d outputs", new.path, len(new.sources),
                 len(new.outputs))
        if sources_changed and self._scheduler is not None:
            run_tick_now(self._scheduler)

    async def run(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        reloads: set[asyncio.Task[None]] = set()

        def on_sighup() -> None:
            task = asyncio.ensure_future(self.reload(forced=True))
            reloads.add(task)  # kept referenced until done, or it may be collected
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, on_sighup)
        server = _Server(uvicorn.Config(
            make_app(self.current_config, self.storage, self.health, self.metrics),
            host=host, port=port, log_level="warning", access_log=False, lifespan="off",
            # log_config=None: uvicorn's lines go through our handler and format (JSON too)
            # instead of a logging setup of its own.
            log_config=None))
        scheduler = make_scheduler(self.tick, self.reload) if self.crawl_enabled else None
        self._scheduler = scheduler
        if scheduler is not None:
            scheduler.start()
        serving = asyncio.ensure_future(server.serve())
        log.info("serving on http://%s:%d/ (%s)", host, port,
                 "crawling" if scheduler else "not crawling")
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
        log.info("stopping")
        if scheduler is not None:
            scheduler.shutdown(wait=False)
            self.health.scheduler_running = False
        await self._finish_crawl()
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        self.crawler.close()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        if serving.done() and not serving.cancelled() and serving.exception():
            raise CrawlerError(f"the HTTP server failed: {serving.exception()}")
        if not server.started and not stopped.done():
            raise CrawlerError(f"could not listen on {host}:{port}")

    async def _finish_crawl(self) -> None:
        task = self._crawl_task
        if task is None or task.done():
            return
        log.info("waiting up to %g s for the running crawl", SHUTDOWN_GRACE)
        done, _ = await asyncio.wait({task}, timeout=SHUTDOWN_GRACE)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def run_daemon(config: Config, storage: Storage, host: str, port: int, *, crawl: bool) -> None:
    asyncio.run(Daemon(config, storage, crawl=crawl).run(host, port))

