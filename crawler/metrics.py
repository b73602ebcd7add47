"""What /metrics says, in the Prometheus text format (the only module that imports
prometheus_client).

    CrawlOutcome (one per source crawled) → Metrics.observe → counters and histograms
    storage.backlog() at scrape time      → Metrics.set_backlog → gauges
    Metrics.exposition()                  → the bytes GET /metrics answers

Each daemon (and each app a test builds) has its own registry, never the process-wide
default, so two instances in one process never add to each other's counts. Labels are
bounded: an outcome is one of a fixed set of kinds and a status is an HTTP code; no source
name, URL or error message is ever a label (ECOSYSTEM.md, Prometheus).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from crawler.types import CrawlOutcome

CONTENT_TYPE = CONTENT_TYPE_LATEST
PREFIX = "crawler"
#: one fetch: from a fast 304 to the 30 s default deadline and a slow parse after it
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
#: a feed document: a small RSS to the 15 MiB default cap
SIZE_BUCKETS = tuple(float(2**n) for n in range(10, 25, 2))


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # prometheus_client appends _total to counter names itself.
        self.fetches = Counter(
            f"{PREFIX}_fetches", "Sources fetched, by outcome (ok, not_modified, or the "
            "error kind: timeout, too_large, http_status, blocked_url, fetch, parse, "
            "not_a_feed, storage, internal) and HTTP status code (none when there was no "
            "answer, and for parse errors, which do not carry one)", ["outcome", "code"],
            registry=r)
        self.duration = Histogram(
            f"{PREFIX}_fetch_duration_seconds", "Wall time of one source's crawl, from the "
            "request to its stored outcome (parse and store included)",
            buckets=DURATION_BUCKETS, registry=r)
        self.size = Histogram(
            f"{PREFIX}_fetch_response_bytes", "Size of each feed document received, after "
            "decompression (304s and errors are not counted)", buckets=SIZE_BUCKETS,
            registry=r)
        self.inserted = Counter(
            f"{PREFIX}_articles_inserted", "Articles stored for the first time", registry=r)
        self.updated = Counter(
            f"{PREFIX}_articles_updated", "Stored articles whose content changed",
            registry=r)
        self.merged = Counter(
            f"{PREFIX}_duplicates_merged", "New items recognised as already stored: "
            "kind=article, the same article (canonical URL or text) from another source or "
            "twice in one feed, linked instead of stored again; kind=copy, a copy of another "
            "article's text, put in its story", ["kind"], registry=r)
        self.lag = Gauge(
            f"{PREFIX}_scheduler_lag_seconds", "How long the most overdue enabled source has "
            "been due (now minus its next_check_at; 0 when none is due), read from the "
            "database at scrape time", registry=r)
        self.backoff = Gauge(
            f"{PREFIX}_sources_in_backoff", "Enabled sources whose last fetch failed, "
            "waiting out an exponential back-off; read from the database at scrape time",
            registry=r)
        self.database_up = Gauge(
            f"{PREFIX}_database_up", "1 if the database answered the scrape's query, else 0 "
            "(the backlog gauges then keep their last values)", registry=r)
        # Present from the first scrape, so a rate() over a fresh daemon starts at zero.
        for kind in ("article", "copy"):
            self.merged.labels(kind)

    def observe(self, outcomes: Iterable[CrawlOutcome]) -> None:
        for o in outcomes:
            code = str(o.status) if o.status is not None else "none"
            self.fetches.labels(o.outcome, code).inc()
            self.duration.observe(o.seconds)
            if o.error is None and o.body_bytes:
                self.size.observe(o.body_bytes)
            self.inserted.inc(o.new - o.merged)
            self.updated.inc(o.updated)
            self.merged.labels("article").inc(o.merged)
            self.merged.labels("copy").inc(o.copies)

    def set_backlog(self, now: datetime, oldest_due: datetime | None, in_backoff: int) -> None:
        lag = (now - oldest_due).total_seconds() if oldest_due is not None else 0.0
        self.lag.set(max(0.0, lag))
        self.backoff.set(in_backoff)
        self.database_up.set(1)

    def database_down(self) -> None:
        self.database_up.set(0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
