"""Polite fetching, with real HTTP on loopback and a real database: the publisher's wishes
stretch the interval, errors back off, a manual crawl leaves backing-off sources alone unless
forced, one host gets a bounded number of requests at once and a configured gap between
them, moved feeds are followed from then on, gone feeds are stopped, and a feed cannot steer
the crawler into the local network."""

from __future__ import annotations

import asyncio
import http.server
import itertools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crawler import config as config_module
from crawler.parsers.feed import parse_feed
from crawler.pipeline import Crawler
from crawler.schedule import next_check_after_error, next_check_after_success, skip_forward
from crawler.types import Config, PublisherHints
from storage import Storage, open_storage

DATA = Path(__file__).parent / "data"
BASELINE = (DATA / "hostile/shape/ok_baseline.xml").read_bytes()
NOW = datetime(2026, 3, 4, 10, 30, tzinfo=UTC)  # a Wednesday


def with_channel(extra: str) -> bytes:
    """The baseline feed (3 items) with more elements in its channel."""
    return BASELINE.replace(b"<description>hostile corpus</description>",
                            b"<description>hostile corpus</description>" + extra.encode(), 1)


def config_for(tmp_path: Path, feeds: dict[str, str], database: str | None = None,
               **settings: object) -> Config:
    database = database or f"sqlite:///{tmp_path / 'c.db'}"
    lines = ["settings:", f"  database: {database}",
             "  interval: 1800", "  timeout: 10", "  parse_workers: 1"]
    lines += [f"  {key}: {json.dumps(value)}" for key, value in settings.items()]
    lines.append("feeds:")
    for name, url in feeds.items():
        lines += [f"  - name: {name}", f"    url: {url}"]
    path = tmp_path / "feeds.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config_module.load(str(path))


def crawl(config: Config, store: Storage, names: list[str] | None = None, *,
          force: bool = False) -> dict[str, Any]:
    crawler = Crawler(config, store)
    try:
        return {o.source: o for o in asyncio.run(crawler.crawl(names, force=force))}
    finally:
        crawler.close()


def status(store: Storage, name: str) -> Any:
    return next(s for s in store.statuses() if s.name == name)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Storage]:
    store = open_storage(f"sqlite:///{tmp_path / 'c.db'}")
    yield store
    store.close()


class Recorder:
    """A loopback server whose answers the test scripts per path, recording each request's
    arrival, and how many requests were in flight at once."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.requests: list[tuple[float, str]] = []
        self.delay = 0.0
        self.in_flight = 0
        self.most_in_flight = 0
        self.lock = threading.Lock()
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with recorder.lock:
                    recorder.requests.append((time.monotonic(), self.path))
                    recorder.in_flight += 1
                    recorder.most_in_flight = max(recorder.most_in_flight, recorder.in_flight)
                try:
                    if recorder.delay:
                        time.sleep(recorder.delay)
                    code, headers, body = recorder.routes.get(self.path, (404, {}, b""))
                    self.send_response(code)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                finally:
                    with recorder.lock:
                        recorder.in_flight -= 1

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.base = f"http://{host}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def feed(self, path: str, body: bytes = BASELINE, **headers: str) -> str:
        self.routes[path] = (200, {"Content-Type": "application/rss+xml",
                                   **{k.replace("_", "-"): v for k, v in headers.items()}}, body)
        return self.base + path

    def hits(self, path: str) -> int:
        return sum(1 for _, p in self.requests if p == path)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server() -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    recorder.stop()


# The schedule itself.

def test_the_configured_interval_is_a_floor_the_publisher_can_only_raise() -> None:
    hour = 3600
    asks_less = next_check_after_success(NOW, 1800, cap=86400, fresh_for=60)
    assert NOW + timedelta(minutes=27) <= asks_less <= NOW + timedelta(minutes=33)
    ttl = next_check_after_success(NOW, 1800, cap=86400, hints=PublisherHints(ttl=2 * hour))
    assert NOW + timedelta(minutes=108) <= ttl <= NOW + timedelta(minutes=132)
    max_age = next_check_after_success(NOW, 1800, cap=86400, fresh_for=3 * hour)
    assert NOW + timedelta(hours=2.7) <= max_age <= NOW + timedelta(hours=3.3)
    # A ttl of a month is read as "no more often than the cap".
    careless = next_check_after_success(NOW, 1800, cap=86400,
                                        hints=PublisherHints(ttl=30 * 86400))
    assert careless <= NOW + timedelta(hours=26.5)


def test_skipped_hours_and_days_push_the_check_out() -> None:
    hints = PublisherHints(skip_hours=(10, 11, 12))
    assert skip_forward(NOW, hints) == datetime(2026, 3, 4, 13, 0, tzinfo=UTC)
    weekend = PublisherHints(skip_days=(2, 3))  # Wednesday, Thursday
    assert skip_forward(NOW, weekend) == datetime(2026, 3, 6, 0, 0, tzinfo=UTC)
    every_hour = PublisherHints(skip_hours=tuple(range(24)))
    assert skip_forward(NOW, every_hour) == NOW  # not a schedule: ignored


def test_errors_back_off_exponentially_with_jitter_up_to_the_cap() -> None:
    waits = [(next_check_after_error(NOW, 600, n, cap=86400) - NOW).total_seconds()
             for n in (1, 2, 3, 4)]
    for n, wait in enumerate(waits):
        assert 600 * 2 ** n * 0.9 <= wait <= 600 * 2 ** n * 1.1
    capped = next_check_after_error(NOW, 600, 30, cap=7200)
    assert capped <= NOW + timedelta(hours=2)
    spread = {next_check_after_error(NOW, 600, 3, cap=86400) for _ in range(20)}
    assert len(spread) > 1  # jitter: sources failing together retry apart
    retry_after = next_check_after_error(NOW, 600, 1, cap=7200, retry_after=3 * 86400)
    assert retry_after == NOW + timedelta(days=3)  # the server said when


def test_the_feeds_own_hints_are_read() -> None:
    body = with_channel("<ttl>90</ttl><skipHours><hour>0</hour><hour>1</hour><hour>24</hour>"
                        "</skipHours><skipDays><day>Saturday</day><day>Sunday</day></skipDays>")
    hints = parse_feed(body, "application/rss+xml", "https://x.test/", NOW).hints
    assert hints == PublisherHints(ttl=90 * 60, skip_hours=(0, 1), skip_days=(5, 6))
    sy = with_channel("<sy:updatePeriod>hourly</sy:updatePeriod>"
                      "<sy:updateFrequency>2</sy:updateFrequency>").replace(
        b"<rss ", b'<rss xmlns:sy="http://purl.org/rss/1.0/modules/syndication/" ', 1)
    assert parse_feed(sy, None, "https://x.test/", NOW).hints.update_every == 1800
    assert parse_feed(BASELINE, None, "https://x.test/", NOW).hints == PublisherHints()


# The crawl, against a real server.

def test_ttl_and_cache_control_set_the_next_check_and_survive_a_304(
        tmp_path: Path, server: Recorder, db: Storage) -> None:
    body = with_channel("<ttl>240</ttl>")
    url = server.feed("/ttl.xml", body, ETag='"v1"')
    config = config_for(tmp_path, {"slow": url, "cached": server.feed(
        "/cached.xml", Cache_Control="public, max-age=10800")})
    db.sync_sources(config.sources, datetime.now(UTC))
    before = datetime.now(UTC)
    assert crawl(config, db)["slow"].new == 3
    first = status(db, "slow")
    assert before + timedelta(hours=3.5) <= first.next_check_at <= before + timedelta(hours=4.5)
    assert first.hints.ttl == 240 * 60
    cached = status(db, "cached").next_check_at
    assert before + timedelta(hours=2.6) <= cached <= before + timedelta(hours=3.4)
    # The 304 has no body to read the ttl from; the stored one still holds.
    server.routes["/ttl.xml"] = (304, {"ETag": '"v1"'}, b"")
    again = crawl(config, db, ["slow"])["slow"]
    assert again.not_modified
    assert status(db, "slow").next_check_at >= datetime.now(UTC) + timedelta(hours=3.5)
    assert "publisher asks: ttl 240 min" in run_cli(config, "status")


def test_a_manual_crawl_leaves_backing_off_sources_alone_unless_forced(
        tmp_path: Path, server: Recorder, db: Storage) -> None:
    server.routes["/busy.xml"] = (429, {"Retry-After": "7200"}, b"")
    server.routes["/broken.xml"] = (500, {}, b"")
    config = config_for(tmp_path, {"busy": server.base + "/busy.xml",
                                   "broken": server.base + "/broken.xml",
                                   "fine": server.feed("/fine.xml")})
    db.sync_sources(config.sources, datetime.now(UTC))
    first = crawl(config, db)
    assert first["busy"].status == 429 and first["broken"].status == 500
    assert status(db, "busy").next_check_at >= datetime.now(UTC) + timedelta(minutes=119)
    output = run_cli(config, "crawl")
    assert server.hits("/busy.xml") == 1 and server.hits("/broken.xml") == 1
    assert server.hits("/fine.xml") == 2  # a healthy source is crawled when asked
    assert "left alone: busy: backing off after 1 error(s) until" in output
    assert "HTTP 429" in output and "--force" in output
    table = run_cli(config, "status")
    assert "backing off (1 error in a row): http_status: HTTP 500" in table
    assert "2 backing off, 0 stopped" in table
    run_cli(config, "crawl", "--force", "busy", check=False)
    assert server.hits("/busy.xml") == 2
    assert status(db, "busy").error_count == 2


def test_one_host_gets_at_most_host_concurrency_requests_at_once(
        tmp_path: Path, server: Recorder, db: Storage) -> None:
    other = Recorder("127.0.0.2")
    try:
        server.delay = other.delay = 0.3
        feeds = {f"a{i}": server.feed(f"/a{i}.xml") for i in range(8)}
        feeds |= {f"b{i}": other.feed(f"/b{i}.xml") for i in range(8)}
        config = config_for(tmp_path, feeds, concurrency=8, host_concurrency=2)
        db.sync_sources(config.sources, datetime.now(UTC))
        outcomes = crawl(config, db)
        assert all(o.new == 3 for o in outcomes.values()), outcomes
        assert server.most_in_flight == 2 and other.most_in_flight == 2
        # Both hosts were served side by side, not one after the other.
        first_b = min(t for t, _ in other.requests)
        last_a = max(t for t, _ in server.requests)
        assert first_b < last_a
    finally:
        other.stop()


def test_many_new_sources_are_fetched_concurrency_at_a_time(
        tmp_path: Path, server: Recorder, db: Storage) -> None:
    """A hundred sources added at once (an OPML import) are all due at once, and still
    only settings.concurrency requests are in flight."""
    server.delay = 0.05
    feeds = {f"s{i:03d}": server.feed(f"/s{i}.xml") for i in range(100)}
    config = config_for(tmp_path, feeds, concurrency=6, host_concurrency=100)
    db.sync_sources(config.sources, datetime.now(UTC))
    crawler = Crawler(config, db)
    try:
        outcomes = asyncio.run(crawler.crawl_due(30))
    finally:
        crawler.close()
    assert len(outcomes) == 100 and all(o.error is None for o in outcomes)
    assert 1 < server.most_in_flight <= 6


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_host_delay_spaces_requests_across_workers(
        tmp_path: Path, server: Recorder, backend: str, request: pytest.FixtureRequest) -> None:
    """Two crawlers on one database (two daemons) keep settings.host_delay between any two
    requests to the host."""
    database = (f"sqlite:///{tmp_path / 'c.db'}" if backend == "sqlite"
                else request.getfixturevalue("postgres_url"))
    feeds = {f"s{i}": server.feed(f"/s{i}.xml") for i in range(6)}
    config = config_for(tmp_path, feeds, database, host_delay=1.0, concurrency=4)
    stores = [open_storage(database), open_storage(database)]
    try:
        stores[0].sync_sources(config.sources, datetime.now(UTC))
        names = list(feeds)

        async def both() -> None:
            crawlers = [Crawler(config, store) for store in stores]
            try:
                await asyncio.gather(crawlers[0].crawl(names[:3]), crawlers[1].crawl(names[3:]))
            finally:
                for crawler in crawlers:
                    crawler.close()

        asyncio.run(both())
    finally:
        for store in stores:
            store.close()
    times = sorted(t for t, _ in server.requests)
    assert len(times) == 6
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Arrival at the server also holds the client's scheduling noise (a loaded machine
    # can delay a request that left its turn on time), hence 0.7 and not 1.0; without the
    # delay the gaps are milliseconds.
    assert min(gaps) >= 0.7, gaps
    assert times[-1] - times[0] >= 4.5, gaps


def test_a_permanent_redirect_is_followed_from_then_on_and_shown(
        tmp_path: Path, server: Recorder, db: Storage) -> None:
    server.routes["/old.xml"] = (308, {"Location": "/new.xml"}, b"")
    new = server.feed("/new.xml")
    config = config_for(tmp_path, {"moved": server.base + "/old.xml"})
    db.sync_sources(config.sources, datetime.now(UTC))
    assert crawl(config, db)["moved"].new == 3
    assert status(db, "moved").moved_to == new
    crawl(config, db, force=True)
    assert server.hits("/old.xml") == 1 and server.hits("/new.xml") == 2
    assert f"moved permanently to {new}" in run_cli(config, "status")
    # feeds.yaml was not rewritten; when the user changes the url, that url is the truth.
    assert "/old.xml" in Path(config.path).read_text(encoding="utf-8")
    elsewhere = config_for(tmp_path, {"moved": server.feed("/newest.xml")})
    db.sync_sources(elsewhere.sources, datetime.now(UTC))
    crawl(elsewhere, db, force=True)
    assert server.hits("/newest.xml") == 1 and status(db, "moved").moved_to is None


def test_410_gone_stops_the_source_with_the_reason_shown(
        tmp_path: Path, server: Recorder, db: Storage) -> None:
    server.routes["/gone.xml"] = (410, {}, b"")
    config = config_for(tmp_path, {"gone": server.base + "/gone.xml",
                                   "fine": server.feed("/fine.xml")})
    db.sync_sources(config.sources, datetime.now(UTC))
    assert crawl(config, db)["gone"].status == 410
    assert "HTTP 410 Gone" in (status(db, "gone").stopped or "")
    # Neither the daemon's due crawl (even long after) nor a manual one asks again.
    later = Crawler(config, db, now=lambda: datetime.now(UTC) + timedelta(days=30))
    try:
        assert "gone" not in {o.source for o in asyncio.run(later.crawl_due(10))}
    finally:
        later.close()
    crawl(config, db)
    assert server.hits("/gone.xml") == 1
    assert "stopped: HTTP 410 Gone" in run_cli(config, "status")
    server.feed("/gone.xml")  # the publisher brought it back
    assert crawl(config, db, ["gone"], force=True)["gone"].new == 3
    assert status(db, "gone").stopped is None


def test_a_restart_fetches_only_what_is_due(tmp_path: Path, server: Recorder,
                                            db: Storage) -> None:
    feeds = {f"s{i}": server.feed(f"/s{i}.xml") for i in range(5)}
    config = config_for(tmp_path, feeds)
    db.sync_sources(config.sources, datetime.now(UTC))
    crawler = Crawler(config, db)
    try:
        assert len(asyncio.run(crawler.crawl_due(10))) == 5
    finally:
        crawler.close()
    restarted = Crawler(config, db)  # a new process on the same database
    try:
        assert asyncio.run(restarted.crawl_due(10)) == []
    finally:
        restarted.close()
    assert len(server.requests) == 5


def test_a_feed_cannot_steer_the_crawler_into_the_local_network(
        tmp_path: Path, server: Recorder, db: Storage) -> None:
    """127.0.0.1 is written in feeds.yaml, so it is fetched; a redirect from it to a name
    that is not ("localhost", resolved at connect time to loopback) or to another loopback
    address is refused, unless the settings open private networks."""
    canary = Recorder("127.0.0.2")
    try:
        canary.feed("/secret.xml")
        port = server.httpd.server_address[1]
        server.routes["/to-name.xml"] = (302, {"Location": f"http://localhost:{port}/x.xml"},
                                         b"")
        server.routes["/to-other.xml"] = (301, {"Location": canary.base + "/secret.xml"}, b"")
        server.feed("/x.xml")
        feeds = {"direct": server.feed("/direct.xml"),
                 "to-name": server.base + "/to-name.xml",
                 "to-other": server.base + "/to-other.xml"}
        config = config_for(tmp_path, feeds)
        db.sync_sources(config.sources, datetime.now(UTC))
        outcomes = crawl(config, db)
        assert outcomes["direct"].new == 3
        assert outcomes["to-name"].error.startswith("blocked_url: localhost is "), outcomes
        assert "not a public address" in outcomes["to-name"].error
        assert outcomes["to-other"].error.startswith("blocked_url: 127.0.0.2 is not a public")
        assert canary.requests == [] and server.hits("/x.xml") == 0
        opened = config_for(tmp_path, feeds, allow_private_networks=True)
        allowed = crawl(opened, db, force=True)
        assert allowed["to-name"].new == 3 and allowed["to-other"].error is None
        assert len(canary.requests) == 1
    finally:
        canary.stop()


def test_links_taken_from_content_are_checked_too(tmp_path: Path, server: Recorder,
                                                   db: Storage) -> None:
    """A full_text source whose items link to another loopback address: the feed is read
    (its host is in feeds.yaml), the linked pages are refused and never requested, and
    the items keep the feed's text."""
    canary = Recorder("127.0.0.2")
    try:
        canary.feed("/a/1", b"<html><body><p>INTERNAL-SECRET</p></body></html>")
        body = BASELINE.replace(b"https://news.example.test/a/", canary.base.encode() + b"/a/")
        url = server.feed("/links.xml", body)
        path = tmp_path / "feeds.yaml"
        config_for(tmp_path, {"links": url})
        path.write_text(path.read_text(encoding="utf-8") + "    full_text: true\n",
                        encoding="utf-8")
        config = config_module.load(str(path))
        db.sync_sources(config.sources, datetime.now(UTC))
        outcome = crawl(config, db)["links"]
        assert outcome.error is None and outcome.new == 3
        assert any("blocked_url: 127.0.0.2 is not a public address" in w
                   for w in outcome.warnings), outcome.warnings
        assert canary.requests == []
        stored = db.articles_for_output(["links"], 10)
        assert stored and all("INTERNAL-SECRET" not in a.content_html for a in stored)
    finally:
        canary.stop()


def run_cli(config: Config, *args: str, check: bool = True) -> str:
    done = subprocess.run([sys.executable, "-m", "crawler", "--config", config.path, *args],
                          capture_output=True, text=True, timeout=120)
    if check:
        assert done.returncode in (0, 1), done.stderr
    return done.stdout + done.stderr
