"""Operating the daemon: /readyz, /metrics, the per-fetch log line, and --log-format json.

Real processes and real HTTP over loopback wherever the daemon is what is tested; the
database outage is a real one (a PostgreSQL URL on a port nothing listens on), served by
the real app through uvicorn on loopback. Every wait is bounded; processes stop by PID.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import opencc
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from crawler.cleaners import clean
from crawler.metrics import Metrics
from crawler.normalize import normalize
from crawler.parsers.jekyll import parse_post
from crawler.process import with_fingerprint
from crawler.server import Health, make_app
from crawler.types import Article, CachingInfo, Config, CrawlOutcome, Settings, Source
from storage import Storage, open_storage
from storage.engine import make_engine
from tests.support import free_port, serving, wait_until

FEEDS = Path(__file__).parent / "data" / "feeds"
JEKYLL = Path(__file__).parent / "data" / "jekyll"
GOOD = "ok_baseline.rss"  #: three items
GOOD_ITEMS = 3
NOW = datetime(2026, 1, 1, tzinfo=UTC)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(exposition: str) -> Samples:
    """Every sample of a Prometheus text exposition, by name and labels."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(exposition) for s in family.samples}


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def total(found: Samples, name: str) -> float:
    return sum(v for (n, _), v in found.items() if n == name)


def crawler(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crawler", *args], capture_output=True,
                          text=True, timeout=120)


@contextmanager
def on_loopback(app: Any) -> Iterator[str]:
    """The app under uvicorn in a thread on 127.0.0.1; yields the base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(),
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: server.started, 10), "uvicorn did not start"
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        assert not thread.is_alive(), "uvicorn did not stop"


def test_daemon_readyz_metrics_and_json_logs(tmp_path: Path, feed_server: Any,
                                             make_config: Any) -> None:
    """`crawler --log-format json run` with two sources serving one feed, one answering 404
    and one on a closed port: /readyz is 200; /metrics counts two ok fetches (200), one
    http_status (404) and one fetch error (no status), inserts as many articles as are
    stored, and merges the second source's three items into the first's; the two failing
    sources are in back-off; every log line is JSON, with one line per fetch carrying
    source, url, status and outcome."""
    feeds = {"src-good": feed_server.add_file(GOOD, "/good.rss"),
             "src-copy": feed_server.add_file(GOOD, "/copy.rss"),
             "src-missing": f"{feed_server.base_url}/missing.xml",
             "src-offline": f"http://127.0.0.1:{free_port()}/feed.xml"}
    database = tmp_path / "c.db"
    config = make_config(tmp_path / "feeds.yaml", f"sqlite:///{database}", feeds)
    log = tmp_path / "daemon.log"
    with serving(config, log, command="run", options=["--log-format", "json"]) as base:
        def crawled() -> bool:
            found = samples(httpx.get(f"{base}/metrics", timeout=5).text)
            return total(found, "crawler_fetches_total") >= len(feeds)

        assert wait_until(crawled, 60), log.read_text(encoding="utf-8")[-3000:]
        reply = httpx.get(f"{base}/metrics", timeout=5)
        ready = httpx.get(f"{base}/readyz", timeout=5)
    assert reply.headers["content-type"].startswith("text/plain")
    found = samples(reply.text)
    assert value(found, "crawler_fetches_total", outcome="ok", code="200") == 2
    assert value(found, "crawler_fetches_total", outcome="http_status", code="404") == 1
    assert value(found, "crawler_fetches_total", outcome="fetch", code="none") == 1
    assert total(found, "crawler_fetches_total") == len(feeds)
    assert value(found, "crawler_fetch_duration_seconds_count") == len(feeds)
    assert value(found, "crawler_fetch_response_bytes_count") == 2
    assert value(found, "crawler_fetch_response_bytes_sum") == 2 * (FEEDS / GOOD).stat().st_size
    store = open_storage(f"sqlite:///{database}")
    try:
        stored = store.articles_for_output(None, 1000)
    finally:
        store.close()
    assert len(stored) == GOOD_ITEMS
    assert value(found, "crawler_articles_inserted_total") == len(stored)
    assert value(found, "crawler_duplicates_merged_total", kind="article") == GOOD_ITEMS
    assert value(found, "crawler_sources_in_backoff") == 2
    assert value(found, "crawler_database_up") == 1
    assert value(found, "crawler_scheduler_lag_seconds") >= 0

    assert ready.status_code == 200 and ready.json() == {"status": "ready", "reasons": []}

    lines = log.read_text(encoding="utf-8").splitlines()
    entries = [json.loads(line) for line in lines]  # every line, not only ours
    assert all({"time", "level", "logger", "message"} <= e.keys() for e in entries)
    fetches = [e for e in entries if "source" in e]
    assert sorted(e["source"] for e in fetches) == sorted(feeds)
    by_source = {e["source"]: e for e in fetches}
    for name, url in feeds.items():
        assert by_source[name]["url"] == url
        assert name in by_source[name]["message"] and url in by_source[name]["message"]
    assert by_source["src-good"]["outcome"] == "ok" and by_source["src-good"]["status"] == 200
    assert by_source["src-good"]["level"] == "INFO"
    missing = by_source["src-missing"]
    assert (missing["outcome"], missing["status"], missing["level"]) == \
        ("http_status", 404, "WARNING")
    assert by_source["src-offline"]["status"] is None


def test_crawl_logs_one_text_line_per_source(tmp_path: Path, feed_server: Any,
                                            make_config: Any) -> None:
    """`crawler crawl` in text: each source's crawl ends in exactly one line naming it and
    its URL, the error one at WARNING with the stored message (not a second line); JSON
    also works after the subcommand, and a second crawl's 304 is logged as not_modified."""
    feeds = {"src-good": feed_server.add_file(GOOD, "/good.rss"),
             "src-missing": f"{feed_server.base_url}/missing.xml"}
    config = make_config(tmp_path / "feeds.yaml", f"sqlite:///{tmp_path / 'c.db'}", feeds)
    first = crawler("--config", str(config), "crawl")
    assert first.returncode == 1, first.stderr  # a source failed
    lines = first.stderr.splitlines()
    for name, url in feeds.items():
        mine = [line for line in lines if name in line]
        assert len(mine) == 1, "\n".join(lines)
        assert url in mine[0]
    [good] = [line for line in lines if "src-good" in line]
    [missing] = [line for line in lines if "src-missing" in line]
    assert " INFO " in good and f"HTTP 200, {GOOD_ITEMS} new" in good
    assert " WARNING " in missing and "http_status: HTTP 404" in missing

    second = crawler("--config", str(config), "crawl", "src-good", "--log-format", "json")
    assert second.returncode == 0, second.stderr
    entries = [json.loads(line) for line in second.stderr.splitlines()]
    [fetch] = [e for e in entries if "source" in e]
    assert (fetch["source"], fetch["url"], fetch["status"], fetch["outcome"]) == \
        ("src-good", feeds["src-good"], 304, "not_modified")


def test_sigterm_lets_the_running_crawl_finish(tmp_path: Path, serve_handler: Any,
                                              make_config: Any) -> None:
    """SIGTERM while a feed is still answering: the daemon waits for it (the grace period
    the systemd unit's TimeoutStopSec allows for), stores it, logs its line, exits 0."""
    asked = threading.Event()
    body = (FEEDS / GOOD).read_bytes()

    class Slow(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.set()
            time.sleep(3)
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    url = serve_handler(Slow) + "/slow.rss"
    database = tmp_path / "c.db"
    config = make_config(tmp_path / "feeds.yaml", f"sqlite:///{database}", {"src-slow": url})
    log = tmp_path / "daemon.log"
    with serving(config, log, command="run"):
        assert asked.wait(60), log.read_text(encoding="utf-8")[-3000:]
    # serving() sent SIGTERM and saw exit code 0.
    text = log.read_text(encoding="utf-8")
    assert text.index("stopping") < text.index(f"src-slow <{url}>: HTTP 200, {GOOD_ITEMS} new")
    store = open_storage(f"sqlite:///{database}")
    try:
        assert len(store.articles_for_output(None, 1000)) == GOOD_ITEMS
    finally:
        store.close()


def test_readyz_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    """The real app over loopback on a PostgreSQL URL where nothing listens: /readyz is 503
    and says the database is why; /metrics still answers, with crawler_database_up 0."""
    store = Storage(make_engine(f"postgresql://crawler@127.0.0.1:{free_port()}/crawler"))
    config = Config(path=str(tmp_path / "feeds.yaml"), settings=Settings(), sources=(),
                    outputs=())
    try:
        with on_loopback(make_app(lambda: config, store, Health(crawling=False))) as base:
            ready = httpx.get(f"{base}/readyz", timeout=10)
            metrics = httpx.get(f"{base}/metrics", timeout=10)
    finally:
        store.close()
    assert ready.status_code == 503
    assert ready.json()["status"] == "not ready"
    assert any(r.startswith("database unavailable: ") for r in ready.json()["reasons"])
    assert metrics.status_code == 200
    assert value(samples(metrics.text), "crawler_database_up") == 0


def test_readyz_503_when_the_scheduler_stopped(tmp_path: Path) -> None:
    """A daemon whose scheduler stopped (as on SIGTERM, before the server closes) is not
    ready although the database answers; a serve-only process has no scheduler to need."""
    store = open_storage(f"sqlite:///{tmp_path / 'c.db'}")
    config = Config(path=str(tmp_path / "feeds.yaml"), settings=Settings(), sources=(),
                    outputs=())
    stopped = Health(crawling=True, scheduler_running=False)
    try:
        with on_loopback(make_app(lambda: config, store, stopped)) as base:
            not_ready = httpx.get(f"{base}/readyz", timeout=10)
            stopped.crawling = False
            serve_only = httpx.get(f"{base}/readyz", timeout=10)
    finally:
        store.close()
    assert not_ready.status_code == 503
    assert not_ready.json()["reasons"] == ["scheduler not running"]
    assert serve_only.status_code == 200


def test_readyz_ready_for_crawler_serve(tmp_path: Path, feed_server: Any,
                                       make_config: Any) -> None:
    """`crawler serve` (no scheduler) is ready once its database answers."""
    config = make_config(tmp_path / "feeds.yaml", f"sqlite:///{tmp_path / 'c.db'}",
                         {"src-good": feed_server.add_file(GOOD)})
    with serving(config, tmp_path / "serve.log") as base:
        ready = httpx.get(f"{base}/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_each_metrics_has_its_own_registry() -> None:
    """Two daemons (or apps) in one process never add to each other's counts."""
    one, two = Metrics(), Metrics()
    one.observe([CrawlOutcome(source="a", new=2, status=200)])
    assert value(samples(one.exposition().decode()), "crawler_articles_inserted_total") == 2
    assert value(samples(two.exposition().decode()), "crawler_articles_inserted_total") == 0
    assert total(samples(two.exposition().decode()), "crawler_fetches_total") == 0


def _article(path: Path) -> Article:
    item = clean(parse_post(path.read_text(encoding="utf-8"), NOW))
    return with_fingerprint(normalize(item, item.link or ""))


def test_store_result_counts_merged_articles_and_copies(storage: Storage) -> None:
    """StoreResult says which new items were duplicates: the same article (canonical URL)
    from another source is merged, not inserted; a copy in the other script is a new
    article that joins the first one's story as a copy."""
    storage.sync_sources([Source(name=n, url=f"https://{n}.example/feed")
                          for n in ("cna", "mirror", "rfi")], NOW)
    cna = _article(JEKYLL / "jekyll_2020-08-28_cna_us-defense-secretary-palau.md")
    link = "https://rfi.example/palau"
    simplified = with_fingerprint(replace(
        cna, item_key=f"url:{link}", canonical_url=link, link=link,
        title=opencc.OpenCC("t2s").convert(cna.title),
        content_html=opencc.OpenCC("t2s").convert(cna.content_html),
        content_hash="0" * 64, published=(cna.published or NOW) + timedelta(hours=2)))

    def put(name: str, article: Article) -> tuple[int, int, int]:
        result = storage.record_success(name, [article], now=NOW, status=200,
                                        next_check=NOW + timedelta(hours=1),
                                        caching=CachingInfo())
        return result.new, result.merged, result.copies

    assert put("cna", cna) == (1, 0, 0)
    assert put("mirror", replace(cna, item_key="guid:mirror-1")) == (1, 1, 0)
    assert put("rfi", simplified) == (1, 0, 1)
