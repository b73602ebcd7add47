"""FeedView → an HTML page for people who open an output's URL in a browser, and the
index page listing every output with its latest items.

Browsers are dropping XSLT (Chromium disables it by default from M158), so people get a
real page; it carries the same sanitized HTML as the feed and is served with a strict
Content-Security-Policy: no script at all, styles only from the one <style> below (by
hash), images only over https.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from email.utils import format_datetime

from lxml import etree, html
from lxml.html import builder as E

from crawler.emitters._also import content_with_also
from crawler.types import FeedView, StoredArticle

STYLE = """
body{max-width:46rem;margin:2rem auto;padding:0 1rem;font:16px/1.7 system-ui,sans-serif;
color:#222;background:#fff}
header{border-bottom:1px solid #ddd;margin-bottom:1.5rem}
nav a{margin-right:1rem}
article{border-bottom:1px solid #eee;padding-bottom:1rem;margin-bottom:1.5rem}
article h2{font-size:1.25rem;margin-bottom:.2rem}
.meta{color:#666;font-size:.875rem}
img{max-width:100%;height:auto}
blockquote{border-left:3px solid #ccc;margin-left:0;padding-left:1rem;color:#444}
"""
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; img-src https: data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
FORMATS = (("xml", "RSS", "application/rss+xml"), ("atom", "Atom", "application/atom+xml"),
           ("json", "JSON Feed", "application/feed+json"))


def feed_urls(base: str, name: str, query: str = "") -> list[tuple[str, str, str]]:
    suffix = f"?{query}" if query else ""
    return [(f"{base}feeds/{name}.{fmt}{suffix}", label, media)
            for fmt, label, media in FORMATS]


def emit_html(view: FeedView, feeds: Sequence[tuple[str, str, str]]) -> bytes:
    """One output as a page: its feeds to subscribe to, then every item in full."""
    head = _head(view.title, view.language, feeds)
    nav = E.NAV(*[E.A(label, href=url) for url, label, _ in feeds])
    header = E.HEADER(E.H1(view.title), E.P(view.description) if view.description else "",
                      nav)
    body = E.BODY(header, *[_article(a, full=True) for a in view.articles])
    if not view.articles:
        body.append(E.P("No items yet."))
    return _page(head, body)


def emit_index(outputs: Sequence[tuple[FeedView, Sequence[tuple[str, str, str]]]],
               health_url: str) -> bytes:
    """Every output, its feeds, and the titles of its latest items."""
    feeds = [f for _, urls in outputs for f in urls[:1]]
    head = _head("crawler", "", feeds)
    sections = []
    for view, urls in outputs:
        page_url = urls[0][0].rsplit(".", 1)[0] + ".html"
        section = E.SECTION(E.H2(E.A(view.title, href=page_url)),
                            E.P(view.description) if view.description else "",
                            E.NAV(*[E.A(label, href=url) for url, label, _ in urls]))
        if view.articles:
            section.append(E.UL(*[E.LI(_link(a), " ", E.SPAN(_meta(a), E.CLASS("meta")))
                                  for a in view.articles]))
        sections.append(section)
    body = E.BODY(E.HEADER(E.H1("Feeds")), *sections,
                  E.P(E.A("health", href=health_url), E.CLASS("meta")))
    return _page(head, body)


def _head(title: str, language: str, feeds: Sequence[tuple[str, str, str]]) -> etree._Element:
    head = E.HEAD(E.META(charset="utf-8"),
                  E.META(name="viewport", content="width=device-width, initial-scale=1"),
                  E.META(name="referrer", content="no-referrer"),
                  E.TITLE(title), E.STYLE(STYLE))
    for url, label, media in feeds:
        head.append(E.LINK(rel="alternate", type=media, title=f"{title} ({label})", href=url))
    head.set("data-lang", language)  # moved onto <html> in _page
    return head


def _page(head: etree._Element, body: etree._Element) -> bytes:
    language = head.attrib.pop("data-lang", "") or "zh"
    document = E.HTML(head, body, lang=language)
    return b"<!doctype html>\n" + bytes(html.tostring(document, encoding="utf-8"))


def _link(article: StoredArticle) -> etree._Element | str:
    return E.A(article.title, href=article.link) if article.link else article.title


def _meta(article: StoredArticle) -> str:
    outlets = ", ".join(dict.fromkeys(ref.name for ref in article.sources))
    return f"{format_datetime(article.published, usegmt=True)} · {outlets}"


def _article(article: StoredArticle, *, full: bool) -> etree._Element:
    block = E.ARTICLE(E.H2(_link(article)), E.P(_meta(article), E.CLASS("meta")))
    if article.language:
        block.set("lang", article.language)
    content = content_with_also(article) if full else article.summary
    if content.strip():
        # Already sanitized (crawler.present): parsed back only to be placed in the page.
        for fragment in html.fragments_fromstring(content):
            if isinstance(fragment, str):
                block.append(E.P(fragment))
            else:
                block.append(fragment)
    return block
