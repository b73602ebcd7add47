"""End to end, as a user runs it: feeds.yaml → `crawler crawl` → `crawler serve` → a reader.

Real processes, real HTTP over loopback, a real SQLite file; the served feeds are read back
with feedparser and json, as a feed reader would.
"""

from __future__ import annotations

import html
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import feedparser
import httpx
import pytest
from bs4 import BeautifulSoup
from lxml import etree

from crawler.parsers.jekyll import parse_post
from tests.support import free_port, serving, wait_until

FEEDS = Path(__file__).parent / "data" / "feeds"
JEKYLL = Path(__file__).parent / "data" / "jekyll"
SCHEMA = Path(__file__).parent / "data" / "jsonfeed-1.1.schema.json"
FIXTURES = {
    "waimei-posts": "waimei_posts.rss",
    "solidot-atom": "solidot.atom",
    "xss-rss": "xss.rss",
    "xss-json": "xss.json",
    "broken-html": "not_a_feed.html",
}
FORBIDDEN_TAGS = {"script", "style", "iframe", "object", "embed", "form", "button", "input",
                  "meta", "base", "link", "svg", "math", "noscript"}
URL_ATTRS = {"href", "src", "srcset", "action", "formaction", "xlink:href", "poster"}


def crawler(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crawler", *args], capture_output=True,
                          text=True, timeout=120, **kwargs)


def expected_items() -> dict[str, tuple[str, datetime | None]]:
    """link → (title, date) read from the fixture files with lxml, independently of us."""
    found: dict[str, tuple[str, datetime | None]] = {}
    for name in ("waimei_posts.rss", "xss.rss"):
        for item in etree.parse(str(FEEDS / name)).iter("item"):
            link = item.findtext("link").strip()
            date = parsedate_to_datetime(item.findtext("pubDate"))
            found.setdefault(link, (" ".join(item.findtext("title").split()), date))
    atom = "{http://www.w3.org/2005/Atom}"
    for entry in etree.parse(str(FEEDS / "solidot.atom")).iter(f"{atom}entry"):
        link = entry.find(f"{atom}link[@rel='alternate']").get("href")
        date = datetime.fromisoformat(entry.findtext(f"{atom}published"))
        found.setdefault(link, (" ".join(entry.findtext(f"{atom}title").split()), date))
    return found


def assert_safe_html(fragment: str) -> None:
    """The XSS rule of RELIABILITY.md §3.2, checked on a parsed tree."""
    soup = BeautifulSoup(fragment, "html.parser")
    for tag in soup.find_all(True):
        assert tag.name not in FORBIDDEN_TAGS, tag
        for attr, value in tag.attrs.items():
            assert not attr.lower().startswith("on"), tag
            assert attr.lower() != "style", tag
            if attr.lower() in URL_ATTRS:
                url = "".join(ch for ch in str(value) if ord(ch) > 32).lower()
                assert url.startswith(("http://", "https://", "mailto:")), tag


@pytest.fixture
def crawled(tmp_path: Path, feed_server: Any, make_config: Any) -> Iterator[dict[str, Any]]:
    feeds = {name: feed_server.add_file(file) for name, file in FIXTURES.items()}
    config = make_config(tmp_path / "feeds.yaml", f"sqlite:///{tmp_path / 'crawler.db'}", feeds,
                         extra_outputs=STORIES_OUTPUT)
    result = crawler("--config", str(config), "crawl")
    yield {"config": config, "result": result, "server": feed_server}


@pytest.fixture
def served(crawled: dict[str, Any], tmp_path: Path) -> Iterator[str]:
    with serving(crawled["config"], tmp_path / "serve.log") as base:
        yield base


def test_crawl_reports_each_source_and_isolates_the_broken_one(crawled: dict[str, Any]) -> None:
    """The summary table lists every source; the HTML page is an error, the rest are new."""
    result = crawled["result"]
    assert result.returncode == 1, result.stderr  # one source in error
    for name in FIXTURES:
        assert name in result.stdout
    assert "not_a_feed" in result.stdout and "HTML page" in result.stdout
    assert "1 errors" in result.stdout
    status = crawler("--config", str(crawled["config"]), "status")
    assert status.returncode == 0
    assert "broken-html" in status.stdout and "not_a_feed" in status.stdout
    assert "solidot-atom" in status.stdout and "100" in status.stdout


def test_served_feeds_hold_every_item_once_sanitized(served: str) -> None:
    """RSS, Atom and JSON Feed each carry every fixture item once, right title/link/date,
    newest first, and no active content."""
    expected = expected_items()
    rss = httpx.get(f"{served}/feeds/all.xml")
    atom = httpx.get(f"{served}/feeds/all.atom")
    jsonfeed = httpx.get(f"{served}/feeds/all.json")
    assert rss.headers["content-type"].startswith("application/rss+xml")
    assert atom.headers["content-type"].startswith("application/atom+xml")
    assert jsonfeed.headers["content-type"].startswith("application/feed+json")

    for response in (rss, atom):
        parsed = feedparser.parse(response.content)
        assert not parsed.bozo, parsed.bozo_exception
        entries = parsed.entries
        linked = [e for e in entries if e.get("link")]
        links = [e.link for e in linked]
        assert len(links) == len(set(links)), "an item appears twice"
        assert set(expected) <= set(links)
        ids = [e.id for e in entries]
        assert len(ids) == len(set(ids))
        dates = [datetime(*e.published_parsed[:6], tzinfo=UTC) for e in entries]
        assert dates == sorted(dates, reverse=True)
        for entry in linked:
            if entry.link in expected:
                title, date = expected[entry.link]
                assert " ".join(entry.title.split()) == title
                assert datetime(*entry.published_parsed[:6], tzinfo=UTC) == date
        for entry in entries:
            for part in entry.get("content", []):
                assert_safe_html(part.value)
            if entry.get("summary_detail", {}).get("type") == "text/html":
                assert_safe_html(entry.summary)

    document = json.loads(jsonfeed.content)
    assert document["version"] == "https://jsonfeed.org/version/1.1"
    items = document["items"]
    assert {i["url"] for i in items if "url" in i} >= set(expected)
    assert len({i["id"] for i in items}) == len(items)
    for item in items:
        assert_safe_html(item["content_html"])
        assert item["_crawler"]["sources"], item
        assert datetime.fromisoformat(item["date_published"]).tzinfo is not None
    # The hostile JSON Feed: a javascript: URL is dropped, markup in a title stays text.
    titles = {i["title"] for i in items}
    assert "<b>x</b>" in titles
    assert not any(str(i.get("url", "")).startswith("javascript") for i in items)
    # Same ids in every format, so switching format shows no new items.
    rss_ids = {e.id for e in feedparser.parse(rss.content).entries}
    assert rss_ids == {i["id"] for i in items}
    assert len(items) == len(expected) + 3  # + the three items of the JSON Feed


STORIES_OUTPUT = "  - name: stories\n    title: One item per story\n    limit: 1000\n"
#: the waimei posts' two CNA stories that RFI republished in Simplified script
REPUBLISHED = [(JEKYLL / f"jekyll_2020-08-28_cna_{name}.md",
                JEKYLL / f"jekyll_2020-08-28_rfi_{name}-cna-republish.md")
               for name in ("us-defense-secretary-palau", "hk-police-nsl-retroactive")]


def fixture_link(path: Path) -> str:
    link = parse_post(path.read_text(encoding="utf-8"), datetime.now(UTC)).link
    assert link
    return link


def test_story_output_shows_a_republished_story_once(served: str) -> None:
    """collapse: story (the default): CNA's story and RFI's Simplified republication are
    one item, which lists the other in each format's way; the ids agree across formats."""
    document = httpx.get(f"{served}/feeds/stories.json").json()
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(document, json.loads(SCHEMA.read_text(encoding="utf-8")))
    items = document["items"]
    every = httpx.get(f"{served}/feeds/all.json").json()["items"]
    assert len(items) < len(every)
    atom = feedparser.parse(httpx.get(f"{served}/feeds/stories.atom").content)
    rss = feedparser.parse(httpx.get(f"{served}/feeds/stories.xml").content)
    assert not atom.bozo and not rss.bozo
    assert {e.id for e in atom.entries} == {e.id for e in rss.entries} == {i["id"] for i in items}
    dates = [datetime.fromisoformat(i["date_published"]) for i in items]
    assert dates == sorted(dates, reverse=True)
    for cna, rfi in REPUBLISHED:
        links = {fixture_link(cna), fixture_link(rfi)}
        [item] = [i for i in items if i.get("url") in links]
        [other] = links - {item["url"]}
        assert [a["url"] for a in item["_crawler"]["also"]] == [other]
        assert item["_crawler"]["story_id"]
        assert not any(i.get("url") == other for i in items)
        assert other in item["content_html"] and "Also reported by" in item["content_html"]
        [entry] = [e for e in atom.entries if e.id == item["id"]]
        assert other in [link.href for link in entry.links if link.rel == "related"]
        [rss_entry] = [e for e in rss.entries if e.id == item["id"]]
        assert other in rss_entry.content[0].value
        assert_safe_html(rss_entry.content[0].value)


def test_explain_shows_the_story_of_an_article(crawled: dict[str, Any]) -> None:
    cna, rfi = REPUBLISHED[0]
    result = crawler("--config", str(crawled["config"]), "explain", fixture_link(rfi))
    assert result.returncode == 0, result.stderr
    title = parse_post(cna.read_text(encoding="utf-8"), datetime.now(UTC)).title
    assert "2 articles" in result.stdout
    assert title in result.stdout and "copy" in result.stdout
    missing = crawler("--config", str(crawled["config"]), "explain", "https://nowhere.example/")
    assert missing.returncode == 1 and "no stored article" in missing.stderr


def test_served_feed_validates_against_the_json_feed_schema(served: str) -> None:
    """The JSON Feed output passes the JSON Feed 1.1 schema."""
    jsonschema = pytest.importorskip("jsonschema")
    document = httpx.get(f"{served}/feeds/all.json").json()
    jsonschema.validate(document, json.loads(SCHEMA.read_text(encoding="utf-8")))


def test_conditional_requests_get_304(served: str) -> None:
    """ETag and Last-Modified come back; a reader that sends them gets 304 and no body."""
    for fmt in ("xml", "atom", "json"):
        first = httpx.get(f"{served}/feeds/all.{fmt}")
        etag, modified = first.headers["etag"], first.headers["last-modified"]
        again = httpx.get(f"{served}/feeds/all.{fmt}", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        since = httpx.get(f"{served}/feeds/all.{fmt}", headers={"If-Modified-Since": modified})
        assert since.status_code == 304
        stale = httpx.get(f"{served}/feeds/all.{fmt}", headers={"If-None-Match": '"old"'})
        assert stale.status_code == 200 and stale.content == first.content


def test_index_lists_outputs_and_unknown_output_is_404(served: str) -> None:
    """GET / links every output in all three formats and its page, with its latest items;
    an unknown name or format is a 404."""
    page = httpx.get(f"{served}/")
    assert page.status_code == 200
    for fmt in ("xml", "atom", "json", "html"):
        assert f'href="{served}/feeds/all.{fmt}"' in page.text
    newest = httpx.get(f"{served}/feeds/all.json").json()["items"][0]["title"]
    assert html.escape(newest, quote=False) in page.text
    assert httpx.get(f"{served}/feeds/nope.xml").status_code == 404
    assert httpx.get(f"{served}/feeds/nope.html").status_code == 404
    assert httpx.get(f"{served}/feeds/all.rdf").status_code == 404


def test_second_crawl_is_all_304(crawled: dict[str, Any]) -> None:
    """Crawling again sends the stored validators: the server answers 304, nothing is new;
    the broken source is backing off, so it is left alone and said to be."""
    server = crawled["server"]
    again = crawler("--config", str(crawled["config"]), "crawl", "--json")
    totals = json.loads(again.stdout.strip().splitlines()[-1])
    assert totals["new"] == 0 and totals["errors"] == 0
    assert totals["not_modified"] == len(FIXTURES) - 1
    assert list(totals["skipped"]) == ["broken-html"]
    assert totals["skipped"]["broken-html"].startswith("backing off after 1 error(s) until ")
    assert server.conditional_hits.get("/solidot.atom") == 1


def test_daemon_crawls_serves_and_stops_on_sigterm(tmp_path: Path, feed_server: Any,
                                                   make_config: Any) -> None:
    """`crawler run` crawls on its own, serves the result, survives an unreachable source,
    and exits 0 on SIGTERM."""
    feeds = {"ok-baseline": feed_server.add_file("ok_baseline.rss"),
             "offline": f"http://127.0.0.1:{free_port()}/feed.xml"}  # nothing listens there
    config = make_config(tmp_path / "feeds.yaml", f"sqlite:///{tmp_path / 'c.db'}", feeds)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "crawler", "--config", str(config), "run", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "CRAWLER_CONFIG": "/nonexistent.yaml"})
    try:
        def has_items() -> bool:
            response = httpx.get(f"{base}/feeds/all.json")
            return response.status_code == 200 and len(response.json()["items"]) == 3

        assert wait_until(has_items, 60), "the daemon served no items"
        assert httpx.get(f"{base}/healthz").json()["status"] == "ok"
        status = crawler("--config", str(config), "status")
        assert "offline" in status.stdout and "cannot connect" in status.stdout
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=40) == 0, process.stdout.read() if process.stdout else ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def test_daemon_reloads_feeds_yaml_and_keeps_running_config_on_bad_edit(
        tmp_path: Path, feed_server: Any, make_config: Any) -> None:
    """An invalid edit of feeds.yaml is logged and ignored; a valid one takes effect live."""
    feeds = {"ok-baseline": feed_server.add_file("ok_baseline.rss")}
    config = make_config(tmp_path / "feeds.yaml", f"sqlite:///{tmp_path / 'c.db'}", feeds)
    good = config.read_text(encoding="utf-8")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "daemon.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "crawler", "--config", str(config), "run", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_until(lambda: httpx.get(f"{base}/healthz").status_code == 200, 30)
        config.write_text(good + "  - name: Bad Name\n", encoding="utf-8")
        assert wait_until(lambda: "keeping the running configuration" in
                          (tmp_path / "daemon.log").read_text(encoding="utf-8"), 20)
        assert httpx.get(f"{base}/feeds/all.xml").status_code == 200
        config.write_text(good + "  - name: second\n    title: Second output\n",
                          encoding="utf-8")
        assert wait_until(lambda: httpx.get(f"{base}/feeds/second.json").status_code == 200, 20)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=40) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        log.close()


def test_daemon_applies_edits_within_seconds_and_reloads_on_sighup(
        tmp_path: Path, feed_server: Any, make_config: Any) -> None:
    """A source added to feeds.yaml is fetched within seconds (not at the next tick); a bad
    edit is reported with file, line and field; SIGHUP reloads a file whose mtime did not
    change (an edit the poll cannot see)."""
    feeds = {"first": feed_server.add_file("ok_baseline.rss", "/first.rss")}
    config = make_config(tmp_path / "feeds.yaml", f"sqlite:///{tmp_path / 'c.db'}", feeds)
    good = config.read_text(encoding="utf-8")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "daemon.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "crawler", "--config", str(config), "run", "--port",
             str(port)], stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            def first_stored() -> bool:
                reply = httpx.get(f"{base}/feeds/all.json")
                return reply.status_code == 200 and len(reply.json()["items"]) == 3

            assert wait_until(first_stored, 60)  # the first tick is over
            added = good.replace("feeds:\n", "feeds:\n  - name: second\n    url: "
                                 + feed_server.add_file("ok_baseline.rss", "/second.rss")
                                 + "\n", 1)
            edited_at = time.monotonic()
            config.write_text(added, encoding="utf-8")
            assert wait_until(lambda: feed_server.hits.get("/second.rss") == 1, 20)
            # Ticks are TICK_SECONDS (15) apart: a reload that waited for the next one could
            # take that long; the file is polled every 5 s and the tick runs at once.
            assert time.monotonic() - edited_at < 12
            config.write_text(added + "  - name: Bad Name\n", encoding="utf-8")
            line = len(added.splitlines()) + 1
            assert wait_until(lambda: f"{config}:{line}: outputs[1].name" in
                              log_path.read_text(encoding="utf-8"), 20)
            stat = config.stat()
            config.write_text(added + "  - name: third\n    title: Third output\n",
                              encoding="utf-8")
            os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns))
            time.sleep(6)  # past a poll: the unchanged mtime kept the edit unseen
            assert httpx.get(f"{base}/feeds/third.json").status_code == 404
            process.send_signal(signal.SIGHUP)
            assert wait_until(lambda: httpx.get(f"{base}/feeds/third.json").status_code == 200,
                              10)
            assert process.poll() is None  # SIGHUP reloads; it does not stop the daemon
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=40) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


def test_check_names_the_problem_and_honours_crawler_config(tmp_path: Path) -> None:
    """`crawler check` finds feeds.yaml through CRAWLER_CONFIG, and a bad one exits 2 with
    file:line: field: problem."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("feeds:\n  - name: a\n    url: ftp://example.com/feed\n", encoding="utf-8")
    result = crawler("check", env={**os.environ, "CRAWLER_CONFIG": str(bad)})
    assert result.returncode == 2
    assert f"{bad}:3: feeds[0].url: URL must start with http:// or https://" in result.stderr
    good = tmp_path / "good.yaml"
    good.write_text("feeds:\n  - name: a\n    url: https://example.com/feed\n", encoding="utf-8")
    result = crawler("check", env={**os.environ, "CRAWLER_CONFIG": str(good)})
    assert result.returncode == 0 and "OK: 1 feeds" in result.stdout


def test_two_daemons_on_one_postgresql_fetch_each_source_once(
        tmp_path: Path, feed_server: Any, make_config: Any, postgres_url: str) -> None:
    """Two `crawler run` processes sharing one PostgreSQL split the sources between them:
    every source is fetched exactly once, and both serve every article."""
    body = (FEEDS / "ok_baseline.rss").read_bytes()
    feeds = {f"s{i:02d}": feed_server.add(f"/s{i:02d}.xml",
                                          body.replace(b"news.example.test/a/",
                                                       f"news.example.test/{i}/".encode())
                                          .replace("測試新聞".encode(), f"新聞{i}".encode()),
                                          "application/rss+xml")
             for i in range(40)}
    config = make_config(tmp_path / "feeds.yaml", "sqlite:///unused.db", feeds)
    env = {**os.environ, "CRAWLER_DATABASE": postgres_url}
    ports = [free_port(), free_port()]
    logs = [(tmp_path / f"d{i}.log").open("w") for i in range(2)]
    daemons = [subprocess.Popen(
        [sys.executable, "-m", "crawler", "--config", str(config), "run", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env=env) for port, log in zip(ports, logs,
                                                                            strict=True)]
    try:
        def all_served() -> bool:
            return all(len(httpx.get(f"http://127.0.0.1:{port}/feeds/all.json").json()["items"])
                       == 120 for port in ports)

        assert wait_until(all_served, 90), "the daemons did not serve all 120 articles"
        time.sleep(1)
        assert {path: feed_server.hits.get(path) for path in feed_server.files} == \
            {path: 1 for path in feed_server.files}
        for daemon in daemons:
            daemon.send_signal(signal.SIGTERM)
        assert [daemon.wait(timeout=40) for daemon in daemons] == [0, 0]
    finally:
        for daemon in daemons:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait(timeout=10)
        for log in logs:
            log.close()
