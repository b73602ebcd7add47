"""Storage on SQLite and PostgreSQL: idempotent upserts, cross-source identity, leases."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crawler.errors import StorageError
from crawler.process import articles_from_body
from crawler.types import Article, CachingInfo, Source
from storage import Storage, open_storage

FEEDS = Path(__file__).parent / "data" / "feeds"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)


def solidot() -> tuple[Article, ...]:
    body = (FEEDS / "solidot.atom").read_bytes()
    articles, _ = articles_from_body("feed", body, "application/atom+xml",
                                     "https://nodebe4.github.io/waimei/feed.xml", NOW)
    return articles


def store(storage: Storage, name: str, articles: tuple[Article, ...], now: datetime = NOW,
          etag: str = '"v1"') -> tuple[int, int, int]:
    result = storage.record_success(name, articles, now=now, next_check=now + timedelta(hours=1),
                                    status=200, caching=CachingInfo(etag=etag))
    return result.new, result.updated, result.unchanged


@pytest.fixture
def two_sources(storage: Storage) -> Storage:
    storage.sync_sources([Source("a", "https://a.example/feed"),
                          Source("b", "https://b.example/feed")], NOW)
    return storage


def test_crawling_the_same_feed_twice_updates_never_duplicates(two_sources: Storage) -> None:
    """The second store of the same 100 items changes nothing and adds no rows."""
    articles = solidot()
    assert store(two_sources, "a", articles) == (100, 0, 0)
    assert store(two_sources, "a", articles, LATER) == (0, 0, 100)
    assert len(two_sources.articles_for_output(None, 1000)) == 100


def test_edited_item_is_updated_in_place(two_sources: Storage) -> None:
    """An item whose text changed under the same guid is updated, and keeps its uid."""
    articles = solidot()
    store(two_sources, "a", articles)
    before = {a.title: a.uid for a in two_sources.articles_for_output(None, 1000)}
    edited = (replace(articles[0], title="改過的標題", content_hash="0" * 64), *articles[1:])
    assert store(two_sources, "a", edited, LATER) == (0, 1, 99)
    after = {a.title: a.uid for a in two_sources.articles_for_output(None, 1000)}
    assert after["改過的標題"] == before[articles[0].title]
    assert articles[0].title not in after


def test_same_article_in_two_feeds_is_stored_once_with_both_sources(two_sources: Storage) -> None:
    """Matching canonical URLs (tracking parameters aside) link one article to both feeds."""
    articles = solidot()[:5]
    store(two_sources, "a", articles)
    other = tuple(replace(a, item_key=f"guid:other-{i}", link=f"{a.link}?utm_source=x")
                  for i, a in enumerate(articles))
    assert store(two_sources, "b", other) == (5, 0, 0)  # new for b ...
    stored = two_sources.articles_for_output(None, 1000)
    assert len(stored) == 5  # ... but one article each
    assert all([s.name for s in a.sources] == ["a", "b"] for a in stored)
    assert len(two_sources.articles_for_output(["b"], 1000)) == 5


def test_same_text_without_links_is_stored_once(two_sources: Storage) -> None:
    """Two feeds carrying identical normalized text (no usable link) share one article."""
    article = replace(solidot()[0], link=None, canonical_url=None)
    store(two_sources, "a", (replace(article, item_key="guid:1"),))
    store(two_sources, "b", (replace(article, item_key="guid:zz"),))
    stored = two_sources.articles_for_output(None, 10)
    assert len(stored) == 1 and len(stored[0].sources) == 2


def test_output_filter_and_order(two_sources: Storage) -> None:
    """An output of one source holds only its articles, newest first, within the limit."""
    articles = solidot()
    store(two_sources, "a", articles[:50])
    store(two_sources, "b", articles[50:])
    only_b = two_sources.articles_for_output(["b"], 20)
    assert len(only_b) == 20
    assert all(a.sources[0].name == "b" for a in only_b)
    dates = [a.published for a in only_b]
    assert dates == sorted(dates, reverse=True)
    assert all(d.tzinfo is not None for d in dates)


def test_validators_and_errors_are_kept_per_source(two_sources: Storage) -> None:
    """ETag is stored with the items; an error is recorded, counted, and cleared by success."""
    store(two_sources, "a", solidot()[:3], etag='"abc"')
    assert two_sources.caching_info("a") == CachingInfo(etag='"abc"')
    two_sources.record_error("a", "http_status: HTTP 500", now=LATER, status=500,
                             next_check=LATER + timedelta(hours=2))
    two_sources.record_error("a", "http_status: HTTP 500", now=LATER, status=500,
                             next_check=LATER + timedelta(hours=4))
    status = {s.name: s for s in two_sources.statuses()}
    assert status["a"].error_count == 2
    assert status["a"].last_error == "http_status: HTTP 500"
    assert status["a"].articles == 3  # a failed fetch deletes nothing
    assert two_sources.caching_info("a").etag == '"abc"'
    store(two_sources, "a", solidot()[:3], now=LATER + timedelta(hours=5))
    status = {s.name: s for s in two_sources.statuses()}
    assert status["a"].error_count == 0 and status["a"].last_error is None


def test_lease_keeps_two_workers_off_one_source(two_sources: Storage) -> None:
    """A source claimed by one worker is not handed to another until it is released."""
    first = two_sources.claim(now=NOW, lease=timedelta(minutes=10), owner="w1")
    assert first == ["a", "b"]
    assert two_sources.claim(now=NOW, lease=timedelta(minutes=10), owner="w2") == []
    two_sources.release(["a"], "w1")
    assert two_sources.claim(now=NOW, lease=timedelta(minutes=10), owner="w2") == ["a"]
    # An expired lease (a worker that died) is taken over.
    assert two_sources.claim(now=NOW + timedelta(minutes=11), lease=timedelta(minutes=10),
                             owner="w3") == ["a", "b"]


def test_only_due_sources_are_claimed(two_sources: Storage) -> None:
    """After a fetch, a source waits for its next check time."""
    assert two_sources.claim(now=NOW, lease=timedelta(minutes=1), owner="w") == ["a", "b"]
    store(two_sources, "a", solidot()[:1])  # next check: NOW + 1 h; lease released
    two_sources.release(["b"], "w")
    assert two_sources.claim(now=NOW, lease=timedelta(minutes=1), owner="w") == ["b"]


def test_removed_source_is_disabled_and_keeps_its_articles(two_sources: Storage) -> None:
    """A source deleted from feeds.yaml stops being crawled; what it brought stays."""
    store(two_sources, "a", solidot()[:4])
    two_sources.sync_sources([Source("b", "https://b.example/feed")], LATER)
    status = {s.name: s for s in two_sources.statuses()}
    assert status["a"].enabled is False and status["a"].articles == 4
    claimed = two_sources.claim(now=LATER, lease=timedelta(minutes=1), owner="w")
    assert claimed == ["b"]


def test_nul_and_long_text_survive_storage(two_sources: Storage) -> None:
    """Text normalized by the pipeline (no U+0000) stores on both databases."""
    body = (FEEDS / "ok_baseline.rss").read_bytes()
    body = body.replace("第1則".encode(), "第1則&#0;".encode())
    articles, _ = articles_from_body("feed", body, None, "https://news.example.test/", NOW)
    assert store(two_sources, "a", articles) == (3, 0, 0)
    assert "\x00" not in two_sources.articles_for_output(None, 5)[0].title


def test_unknown_source_is_a_storage_error(two_sources: Storage) -> None:
    """Recording for a source the database does not know is a clear StorageError."""
    with pytest.raises(StorageError, match="no source named 'zzz'"):
        store(two_sources, "zzz", solidot()[:1])


def test_concurrent_claims_never_share_a_source(storage: Storage) -> None:
    """Eight workers claiming at the same moment get disjoint sets that cover every source."""
    from concurrent.futures import ThreadPoolExecutor

    storage.sync_sources([Source(f"s{i:03d}", f"https://e.example/{i}") for i in range(200)], NOW)

    def claim(owner: str) -> list[str]:
        got: list[str] = []
        for _ in range(5):  # bounded: a worker asks a few times, as ticks would
            got += storage.claim(now=NOW, lease=timedelta(minutes=10), owner=owner, limit=10)
        return got

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(claim, [f"w{i}" for i in range(8)]))
    claimed = [name for result in results for name in result]
    assert len(claimed) == len(set(claimed)) == 200
    assert sum(1 for result in results if result) > 1  # the work was shared


@pytest.mark.parametrize("driving_set", [1, 5000])
def test_output_pages_cover_a_sources_articles_once_newest_first(
        two_sources: Storage, monkeypatch: pytest.MonkeyPatch, driving_set: int) -> None:
    """Paged candidates are every article of the asked sources exactly once, in date order,
    whichever way the query reads them (sources with few articles are read as a set, with
    many by walking the date index: DRIVING_SET is the switch)."""
    import storage.outputs

    monkeypatch.setattr(storage.outputs, "DRIVING_SET", driving_set)
    articles = solidot()
    store(two_sources, "a", articles[:60])
    store(two_sources, "b", articles[40:])
    wanted = {"a": articles[:60], "b": articles[40:], None: articles}
    for names in (["a"], ["b"], None):
        seen: list[Any] = []
        after = None
        for _ in range(100):
            page = two_sources.output_candidates(names, since=None, min_length=0, after=after,
                                                 limit=7)
            seen += page
            if len(page) < 7:
                break
            after = (page[-1].published, page[-1].id)
        assert len({c.id for c in seen}) == len(seen) == len(wanted[names[0] if names else None])
        keys = [(c.published, c.id) for c in seen]
        assert keys == sorted(keys, reverse=True)
        assert {c.title for c in seen} == {a.title for a in wanted[names[0] if names else None]}


def test_host_slots_are_never_shared_by_racing_workers(storage: Storage) -> None:
    """Two workers on one database reserving turns at one host at the same moment (the
    first reservation creates the host's row) get turns one gap apart, never the same."""
    import threading

    other = open_storage(storage.engine.url.render_as_string(hide_password=False))
    gap = timedelta(seconds=1)
    slots: list[datetime] = []
    start = threading.Barrier(2)

    def reserve(store: Storage) -> None:
        start.wait()
        for _ in range(5):
            slots.append(store.reserve_host_slot("news.example.test", now=NOW, gap=gap))

    try:
        workers = [threading.Thread(target=reserve, args=(s,)) for s in (storage, other)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
    finally:
        other.close()
    assert sorted(slots) == [NOW + gap * i for i in range(10)]
