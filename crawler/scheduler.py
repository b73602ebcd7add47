"""APScheduler wiring only: a tick crawls the sources that are due; another job reloads
feeds.yaml when it changes. When each source is due lives in the database, not here."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = logging.getLogger(__name__)
TICK_SECONDS = 15
RELOAD_SECONDS = 5


def make_scheduler(
    tick: Callable[[], Awaitable[None]], reload: Callable[[], Awaitable[None]]
) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone=UTC)
    # max_instances=1: a long crawl is never overlapped by the next tick; coalesce: ticks
    # missed meanwhile collapse into one.
    scheduler.add_job(tick, "interval", seconds=TICK_SECONDS, id="tick",
                      next_run_time=datetime.now(UTC), max_instances=1, coalesce=True,
                      misfire_grace_time=TICK_SECONDS * 4)
    scheduler.add_job(reload, "interval", seconds=RELOAD_SECONDS, id="reload-config",
                      max_instances=1, coalesce=True, misfire_grace_time=RELOAD_SECONDS * 4)
    return scheduler


def run_tick_now(scheduler: AsyncIOScheduler) -> None:
    """The next crawl tick at once (new sources after a reload need not wait for it)."""
    job = scheduler.get_job("tick")
    if job is not None:
        job.modify(next_run_time=datetime.now(UTC))
