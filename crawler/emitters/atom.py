"""FeedView → Atom 1.0 (RFC 4287); each entry's first outlet as atom:source."""

from __future__ import annotations

from lxml import etree

from crawler.emitters._also import content_with_also
from crawler.emitters._ids import entry_id, public_feed_url
from crawler.emitters._xml import serialize, sub
from crawler.types import FeedView

ATOM = "http://www.w3.org/2005/Atom"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def emit_atom(view: FeedView) -> bytes:
    a = f"{{{ATOM}}}"
    root = etree.Element(f"{a}feed", nsmap={None: ATOM})
    if view.language:
        root.set(XML_LANG, view.language)
    # Not the self URL: that carries the host and port it was asked on.
    sub(root, f"{a}id", view.feed_id or view.self_url)
    sub(root, f"{a}title", view.title)
    if view.description:
        sub(root, f"{a}subtitle", view.description)
    sub(root, f"{a}updated", view.updated.isoformat())
    sub(root, f"{a}link", rel="self", href=view.self_url, type="application/atom+xml")
    sub(root, f"{a}link", rel="alternate", href=view.home_url, type="text/html")
    author = sub(root, f"{a}author")
    sub(author, f"{a}name", "crawler")
    sub(root, f"{a}generator", "crawler")
    for article in view.articles:
        entry = sub(root, f"{a}entry")
        if article.language and article.language != view.language:
            entry.set(XML_LANG, article.language)
        sub(entry, f"{a}id", entry_id(article))
        sub(entry, f"{a}title", article.title, type="text")
        if article.link:
            sub(entry, f"{a}link", rel="alternate", href=article.link, type="text/html")
        sub(entry, f"{a}published", article.published.isoformat())
        sub(entry, f"{a}updated", max(article.updated, article.published).isoformat())
        if article.author:
            sub(sub(entry, f"{a}author"), f"{a}name", article.author)
        for tag in article.tags:
            sub(entry, f"{a}category", term=tag)
        if article.summary:
            sub(entry, f"{a}summary", article.summary, type="text")
        for other in article.also:
            if other.url:
                sub(entry, f"{a}link", rel="related", href=other.url, type="text/html",
                    title=f"{other.title} ({other.source})")
        sub(entry, f"{a}content", content_with_also(article), type="html")
        if article.sources:
            first = article.sources[0]
            source = sub(entry, f"{a}source")
            url = public_feed_url(first)
            if url:
                sub(source, f"{a}id", url)
            sub(source, f"{a}title", first.name)
            if url:
                sub(source, f"{a}link", rel="self", href=url)
    return serialize(root, view.stylesheet_url)
