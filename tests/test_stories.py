"""Stories in storage, on SQLite and PostgreSQL: joining, stable ids, the representative,
collapsed outputs, explain, the v1 → v2 migration, and two ingests racing."""

from __future__ import annotations

import hashlib
import multiprocessing
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import opencc
import pytest

from crawler.cleaners import clean
from crawler.normalize import normalize
from crawler.parsers.jekyll import parse_post
from crawler.process import with_fingerprint
from crawler.types import Article, CachingInfo, Source
from storage import Storage, open_storage
from storage.schema import VERSION

JEKYLL = Path(__file__).parent / "data" / "jekyll"
SEEDS = Path(__file__).parent / "data" / "seeds"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
CNA_PALAU = JEKYLL / "jekyll_2020-08-28_cna_us-defense-secretary-palau.md"
RFI_PALAU = JEKYLL / "jekyll_2020-08-28_rfi_us-defense-secretary-palau-cna-republish.md"
CNA_HU = JEKYLL / "jekyll_2022-10-22_cna_hu-jintao-leaves-congress.md"
ZAOBAO_HU = JEKYLL / "jekyll_2022-10-22_zaobao_hu-jintao-leaves-video_paywall.md"
#: ten articles of ten different stories
DISTINCT = [JEKYLL / name for name in (
    "jekyll_2020-08-28_cna_us-defense-secretary-palau.md",
    "jekyll_2020-08-28_cna_hk-police-nsl-retroactive.md",
    "jekyll_2021-01-08_cna_hk-democrats-bailed_feedx-footer.md",
    "jekyll_2022-10-22_cna_hu-jintao-leaves-congress.md",
    "jekyll_2022-10-22_cna_white-house-musk-starlink-iran.md",
    "jekyll_2020-09-19_voa_rbg-dies-at-87.md",
    "jekyll_2020-07-26_zaobao_ag600-first-sea-flight_quotes-in-title.md",
    "jekyll_2020-08-26_rfa_us-lawmaker-deterrence.md",
    "jekyll_2020-09-13_bbc_france-covid-resurgence.md",
    "jekyll_2020-08-29_weiquanwang_xu-zhiyong-girlfriend.md")]


def article(path: Path) -> Article:
    item = clean(parse_post(path.read_text(encoding="utf-8"), NOW))
    return with_fingerprint(normalize(item, item.link or ""))


def in_simplified(original: Article, link: str) -> Article:
    """What a republisher does: the same text in the other script, under its own link."""
    convert = opencc.OpenCC("t2s").convert
    return with_fingerprint(replace(
        original, item_key=f"url:{link}", canonical_url=link, link=link,
        title=convert(original.title), content_html=convert(original.content_html),
        content_hash=hashlib.sha256(link.encode()).hexdigest(),  # not an exact copy
        published=(original.published or NOW) + timedelta(hours=2)))


def sync(store: Storage, *names: str, priority: dict[str, int] | None = None) -> None:
    store.sync_sources([Source(name=n, url=f"https://{n}.example/feed",
                               priority=(priority or {}).get(n, 0)) for n in names], NOW)


def put(store: Storage, name: str, *articles: Article) -> None:
    store.record_success(name, list(articles), now=NOW, next_check=NOW + timedelta(hours=1),
                         status=200, caching=CachingInfo())


def story(store: Storage, name: str, found: Article) -> str | None:
    return store.story_of_source_item(name, found.item_key)


def test_a_republication_in_the_other_script_joins_the_story(storage: Storage) -> None:
    """CNA's Traditional story and RFI's Simplified republication: one story, and its id
    (the item id in outputs) is the first article's and stays as others join."""
    sync(storage, "cna", "rfi", "mirror")
    cna, rfi = article(CNA_PALAU), article(RFI_PALAU)
    put(storage, "cna", cna)
    first = story(storage, "cna", cna)
    put(storage, "rfi", rfi)
    mirror = in_simplified(cna, "https://mirror.example/palau")
    put(storage, "mirror", mirror)
    assert first is not None
    assert story(storage, "rfi", rfi) == first
    assert story(storage, "mirror", mirror) == first
    items = storage.articles_for_output(None, 10, "story")
    assert [i.uid for i in items] == [first]
    # RFI's came out first (16:56 UTC; CNA's feed says 23:59): it represents the story.
    assert items[0].link == rfi.link
    assert {a.source for a in items[0].also} == {"cna", "mirror"}


def test_reports_of_one_development_join_and_other_news_stays_apart(storage: Storage) -> None:
    """CNA and Zaobao on Hu Jintao led out: one story; the seeds' defense-talk stories by
    the same outlet each stay their own."""
    sync(storage, "cna", "zaobao", "seeds")
    cna, zaobao = article(CNA_HU), article(ZAOBAO_HU)
    put(storage, "zaobao", zaobao)
    put(storage, "cna", cna)
    assert story(storage, "cna", cna) == story(storage, "zaobao", zaobao)
    seeds = [article(SEEDS / name) for name in ("000.md", "001.md", "003.md")]
    put(storage, "seeds", *seeds)
    found = {story(storage, "seeds", s) for s in seeds}
    assert len(found) == 3 and story(storage, "cna", cna) not in found


def test_a_storys_date_is_its_first_report_in_any_order(storage: Storage) -> None:
    """Copies stored in one batch after the founder but dated before it: the story takes
    the earliest date, and so sorts below a story first reported in between."""
    sync(storage, "mirror", "other")
    cna = article(CNA_PALAU)
    assert cna.published
    later = replace(in_simplified(cna, "https://mirror.example/a"), published=cna.published)
    early = replace(in_simplified(cna, "https://mirror.example/b"),
                    published=cna.published - timedelta(hours=2))
    earlier = replace(in_simplified(cna, "https://mirror.example/c"),
                      published=cna.published - timedelta(hours=3))
    put(storage, "mirror", later, earlier, early)
    between = replace(article(SEEDS / "000.md"),
                      published=cna.published - timedelta(hours=2, minutes=30))
    put(storage, "other", between)
    [newest] = storage.articles_for_output(None, 1, "story")
    assert newest.link == between.link
    items = storage.articles_for_output(None, 10, "story")
    assert [i.link for i in items] == [between.link, earlier.link]


def test_representative_is_the_priority_source_else_the_earliest(storage: Storage) -> None:
    sync(storage, "cna", "rfi", priority={"rfi": 5})
    cna, rfi = article(CNA_PALAU), article(RFI_PALAU)
    put(storage, "cna", cna)
    put(storage, "rfi", rfi)
    [item] = storage.articles_for_output(None, 10, "story")
    assert item.link == rfi.link  # priority wins over being first
    assert [(a.url, a.source) for a in item.also] == [(cna.link, "cna")]
    sync(storage, "cna", "rfi")  # priorities back to 0: the earliest report leads
    [item] = storage.articles_for_output(None, 10, "story")
    earliest = min((cna, rfi), key=lambda a: a.published or NOW)
    assert item.link == earliest.link
    assert len(storage.articles_for_output(None, 10, "article")) == 2


def test_explain_names_the_members_their_similarity_and_what_joined_them(
        storage: Storage) -> None:
    sync(storage, "cna", "rfi")
    cna, rfi = article(CNA_PALAU), article(RFI_PALAU)
    put(storage, "cna", cna)
    put(storage, "rfi", rfi)
    assert rfi.link
    found = storage.explain(rfi.canonical_url, rfi.link)
    assert found is not None
    assert found.story_id == story(storage, "cna", cna)
    assert found.article.joined_by == "copy"
    assert found.article.joined_via == "an LSH band of the body"
    [other] = found.others
    assert other.link == cna.link and other.joined_by == "founder"
    assert other.copy_similarity is not None and other.copy_similarity >= 0.5
    assert found.article.joined_with == other.uid
    assert storage.explain("https://nowhere.example/x", "https://nowhere.example/x") is None


def test_a_version_1_database_is_migrated_with_a_story_per_article(tmp_path: Path) -> None:
    """A database of the first release opens: every article gets its own story, whose id
    is the article's, so feed readers see no item again."""
    path = tmp_path / "v1.db"
    db = sqlite3.connect(path)
    db.executescript((Path(__file__).parent / "data" / "schema_v1_sqlite.sql")
                     .read_text(encoding="utf-8"))
    db.execute("INSERT INTO sources (id, name, url, format, enabled, created_at) "
               "VALUES (1, 'cna', 'https://cna.example/feed', 'feed', 1, '2025-01-01')")
    db.execute("INSERT INTO fetch_state (source_id, error_count) VALUES (1, 0)")
    db.execute("INSERT INTO articles (id, uid, content_hash, title, content_html, summary, "
               "tags, extra, comments, published_at, updated_at, first_seen_at, changed_at) "
               "VALUES (1, 'u1', 'h', 'old', '<p>old</p>', 'old', '[]', '{}', '[]', "
               "'2025-01-01', '2025-01-01', '2025-01-01', '2025-01-01')")
    db.execute("INSERT INTO article_sources (source_id, article_id, item_key, content_hash, "
               "seen_at) VALUES (1, 1, 'guid:old', 'h', '2025-01-01')")
    db.commit()
    db.close()
    store = open_storage(f"sqlite:///{path}")
    try:
        assert store.story_of_source_item("cna", "guid:old") == "u1"
        [item] = store.articles_for_output(None, 10, "story")
        assert item.uid == "u1" and item.title == "old"
        sync(store, "cna")
        put(store, "cna", article(CNA_PALAU))
        assert len(store.articles_for_output(None, 10, "story")) == 2
    finally:
        store.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT version FROM schema_version").fetchall() == [(VERSION,)]
    # Migrated rows have no folded text yet (NULL: folded when an output reads them).
    assert db.execute("SELECT language, text_length, search_text FROM articles"
                      " WHERE uid = 'u1'").fetchall() == [("", None, None)]


def _store_when_released(url: str, side: str, start: object) -> None:
    """One ingest process: each round, wait for the other, then store its copy at once."""
    store = open_storage(url)
    try:
        for round_, path in enumerate(DISTINCT):
            found = article(path)
            if side == "b":
                found = in_simplified(found, f"https://mirror.example/story-{round_}")
            start.wait(60)  # type: ignore[attr-defined]
            put(store, f"{side}-{round_}", found)
    finally:
        store.close()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_two_ingests_of_one_story_at_once_make_one_story(
        database: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Two processes store copies of one story at the same moment, for ten stories: each
    time one story, never two founded side by side."""
    url = f"sqlite:///{tmp_path / 'race.db'}" if database == "sqlite" else \
        request.getfixturevalue("postgres_url")
    setup = open_storage(url)
    sync(setup, *[f"{side}-{n}" for n in range(len(DISTINCT)) for side in ("a", "b")])
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    workers = [context.Process(target=_store_when_released, args=(url, side, start))
               for side in ("a", "b")]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(180)
            assert worker.exitcode == 0
        for round_, path in enumerate(DISTINCT):
            first = setup.story_of_source_item(f"a-{round_}", article(path).item_key)
            second = setup.story_of_source_item(f"b-{round_}",
                                                f"url:https://mirror.example/story-{round_}")
            assert first is not None and first == second, path.name
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
        setup.close()
