"""Feed parsing + normalizing on real and hostile documents: a ParsedFeed or a clear error."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from crawler.errors import NotAFeed, ParseError
from crawler.normalize import plain_text
from crawler.process import articles_from_body
from crawler.types import Article

DATA = Path(__file__).parent / "data"
HOSTILE = DATA / "hostile"
NOW = datetime(2025, 11, 3, tzinfo=UTC)
BASE = "https://news.example.test/feed.xml"


def parse(path: Path, content_type: str | None = None,
          base: str = BASE) -> tuple[tuple[Article, ...], tuple[str, ...]]:
    return articles_from_body("feed", path.read_bytes(), content_type, base, NOW)


@pytest.mark.parametrize(("name", "error", "message"), [
    pytest.param("shape/empty.xml", NotAFeed, "empty response", id="empty"),
    pytest.param("shape/whitespace_only.xml", NotAFeed, "empty response", id="whitespace"),
    pytest.param("shape/html_instead_of_xml.html", NotAFeed, "HTML page", id="html"),
    pytest.param("shape/xml_prolog_only.xml", NotAFeed, "not RSS or Atom", id="prolog-only"),
    pytest.param("shape/soap_fault.xml", NotAFeed, "not RSS or Atom", id="soap"),
    pytest.param("shape/not_xml_binary.xml", NotAFeed, None, id="binary"),
    pytest.param("shape/body_is_local_path.txt", NotAFeed, None, id="local-path"),
    pytest.param("shape/jsonfeed_invalid.json", ParseError, "invalid JSON", id="json-invalid"),
    pytest.param("shape/jsonfeed_deep.json", ParseError, None, id="json-deep"),
    pytest.param("xml/billion_laughs.xml", ParseError, "entity declarations", id="billion-laughs"),
    pytest.param("xml/safe_entities.xml", ParseError, "entity declarations", id="safe-entities"),
])
def test_not_a_feed_is_a_clear_error(name: str, error: type[Exception],
                                     message: str | None) -> None:
    """What is not a feed raises the project's error, with a message saying why."""
    with pytest.raises(error, match=message):
        parse(HOSTILE / name)


def test_local_path_body_opens_no_file() -> None:
    """A body naming a local file is text, never a path feedparser would open."""
    with pytest.raises(NotAFeed):
        articles_from_body("feed", b"/etc/hostname", None, BASE, NOW)


@pytest.mark.parametrize("name", [
    pytest.param(p.relative_to(HOSTILE).as_posix(), id=p.relative_to(HOSTILE).as_posix())
    for p in sorted(HOSTILE.rglob("*")) if p.suffix in (".xml", ".json", ".html", ".txt")
    and p.name not in ("payloads.json", "expected.json")
])
def test_no_hostile_document_escapes_as_another_exception(name: str) -> None:
    """Every hostile document gives articles or a ParseError: nothing else escapes."""
    try:
        articles, _ = parse(HOSTILE / name)
    except ParseError:
        return
    for article in articles:
        assert "\x00" not in article.title + article.content_html
        assert len(article.title) <= 1000
        assert article.link is None or article.link.startswith(("http://", "https://"))


def test_baseline_feed() -> None:
    """The control feed: 3 items, titles, links, and dates in UTC."""
    articles, warnings = parse(HOSTILE / "shape/ok_baseline.xml")
    assert warnings == ()
    assert [a.title for a in articles] == ["第1則 測試新聞", "第2則 測試新聞", "第3則 測試新聞"]
    assert articles[0].link == "https://news.example.test/a/1"
    assert articles[0].published == datetime(2025, 11, 1, 22, 0, tzinfo=UTC)


def test_real_atom_feed() -> None:
    """jekyll-feed's Atom (real): 100 entries with ids, links, -06:00 dates made UTC, tags."""
    articles, _ = parse(DATA / "feeds/solidot.atom", "application/atom+xml")
    assert len(articles) == 100
    first = articles[0]
    assert first.title == "为什么猫为猫薄荷而疯狂"
    assert first.published == datetime(2021, 1, 21, 14, 16, 25, tzinfo=UTC)
    assert first.item_key.startswith("guid:https://nodebe4.github.io/waimei/")
    assert "Solidot" in first.tags
    assert first.author == "Solidot"
    assert "<!--" not in first.content_html  # comments (the millis marker) are stripped
    text = plain_text(first.content_html)
    # The rendered [title](url) line and its "——" rule are gone (crawler/cleaners/waimei.py).
    assert text.startswith("互联网上有大量的视频显示猫对猫薄荷十分疯狂。")
    assert text.endswith("日本岩手大学的科学家花了五年时间用多个实验确定了环烯醚萜是猫兴奋的关键。")
    assert not [a.title for a in articles if plain_text(a.content_html).startswith(a.title)]


def test_duplicate_guids_first_wins() -> None:
    """Two entries with one guid: one article, the first occurrence's."""
    articles, _ = parse(HOSTILE / "dedup/duplicate_guids.xml")
    keys = [a.item_key for a in articles]
    assert len(keys) == len(set(keys))


def test_zero_items_is_success() -> None:
    """A valid feed with no items parses to nothing, not to an error."""
    articles, _ = parse(HOSTILE / "shape/zero_items.xml")
    assert articles == ()


def test_huge_title_is_truncated() -> None:
    """A 3 MB title is cut to 1,000 characters."""
    articles, _ = parse(HOSTILE / "shape/huge_title.xml")
    assert articles and all(len(a.title) <= 1000 for a in articles)


def test_hostile_item_links_are_dropped_not_the_items() -> None:
    """javascript: and data: item links are removed; the items stay."""
    articles, _ = parse(HOSTILE / "xss/item_link_javascript.xml")
    assert articles
    assert all(a.link is None or a.link.startswith(("http://", "https://")) for a in articles)


def test_markup_in_titles_is_plain_text() -> None:
    """Titles are plain text: tags removed, no bidi override characters."""
    articles, _ = parse(HOSTILE / "xss/title_with_markup.xml")
    for article in articles:
        assert "<script" not in article.title.lower()
        assert "\u202e" not in article.title


def test_relative_links_resolve_against_the_feed_url() -> None:
    """Relative item links and image URLs become absolute, against the final feed URL."""
    articles, _ = parse(HOSTILE / "base/rss_relative_links.xml",
                        base="https://news.example.test/zh/feed.xml")
    links = [a.link for a in articles if a.link]
    assert links and all(link.startswith("https://") for link in links)


def test_rdf_feed() -> None:
    """RSS 1.0 (RDF) parses through the same path."""
    body = """<?xml version="1.0" encoding="utf-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
 xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="https://rdf.example/"><title>RDF 頻道</title><link>https://rdf.example/</link>
<description>d</description></channel>
<item rdf:about="https://rdf.example/1"><title>第一篇</title><link>https://rdf.example/1</link>
<description>內文</description><dc:date>2025-11-02T10:00:00+08:00</dc:date></item>
</rdf:RDF>""".encode()
    articles, _ = articles_from_body("feed", body, None, "https://rdf.example/rss", NOW)
    assert [(a.title, a.link) for a in articles] == [("第一篇", "https://rdf.example/1")]
    assert articles[0].published == datetime(2025, 11, 2, 2, 0, tzinfo=UTC)


def test_json_feed() -> None:
    """JSON Feed 1.1: integer ids become strings, content_text is escaped, bad URLs dropped."""
    articles, _ = parse(HOSTILE / "xss/jsonfeed_xss.json", "application/feed+json")
    assert [a.item_key for a in articles] == ["guid:1", "guid:2", "guid:3"]
    assert articles[0].link is None  # was javascript:
    assert "<script" not in articles[1].content_html
    assert "&lt;script&gt;" in articles[1].content_html
    assert articles[2].published == datetime(2025, 11, 2, 2, 0, tzinfo=UTC)


def test_tracking_parameters_do_not_change_identity() -> None:
    """utm_* and friends are removed from the canonical URL; the real query stays."""
    from crawler.normalize import canonical_url

    assert canonical_url("https://WWW.Example.com/a?id=3&utm_source=rss&fbclid=x#top") == \
        "https://www.example.com/a?id=3"


def test_a_cut_off_feed_keeps_only_its_closed_items() -> None:
    """A document that ends inside an item keeps the items before it, without the half
    one; a feed that only forgets one end tag but is whole keeps all feedparser read."""
    cut, warnings = parse(HOSTILE / "shape/truncated.xml")
    assert [a.title for a in cut] == ["第1則 測試新聞", "第2則 測試新聞"]
    assert any("ends inside item 3" in w for w in warnings)
    sloppy = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
<item><title>one</title><link>https://e.example/1</link>
<item><title>two</title><link>https://e.example/2</link></item>
</channel></rss>"""
    articles, _ = articles_from_body("feed", sloppy, None, BASE, NOW)
    assert [a.title for a in articles] == ["one", "two"]
    with pytest.raises(ParseError, match="ends inside its first item"):
        articles_from_body("feed", sloppy[:120], None, BASE, NOW)


def test_content_urls_resolve_against_the_declared_xml_base() -> None:
    """An Atom entry's content under xml:base="/img/" resolves there, not against the
    entry's link; without a declared base the item link stays the base."""
    articles, _ = parse(HOSTILE / "base/atom_xml_base.xml")
    nested = articles[0]
    assert nested.link == "https://news.example.test/zh/2025/11/story.html"
    assert 'src="https://news.example.test/img/a.jpg"' in nested.content_html
    plain = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
<item><title>one</title><link>https://e.example/news/1.html</link>
<description>&lt;img src="a.jpg"&gt;</description></item></channel></rss>"""
    (article,), _ = articles_from_body("feed", plain, None, BASE, NOW)
    assert 'src="https://e.example/news/a.jpg"' in article.content_html


@pytest.mark.parametrize("raw", ["10000-01-01T00:00:00Z", "Sun, 02 Nov 2025 14:30:00 -2500"])
def test_feedparsers_invented_dates_are_not_kept(raw: str) -> None:
    """What feedparser makes of a non-date (another year, a 25-hour offset) is dropped."""
    body = f"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
<item><title>one</title><guid>g</guid><pubDate>{raw}</pubDate></item></channel></rss>"""
    (article,), _ = articles_from_body("feed", body.encode(), None, BASE, NOW)
    assert article.published is None
