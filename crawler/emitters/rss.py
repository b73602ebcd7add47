"""FeedView → RSS 2.0 (with content:encoded, dc:creator and atom:link rel=self)."""

from __future__ import annotations

import html
from email.utils import format_datetime

from lxml import etree

from crawler.emitters._also import content_with_also
from crawler.emitters._ids import entry_id, public_feed_url
from crawler.emitters._xml import serialize, sub
from crawler.types import FeedView

ATOM = "http://www.w3.org/2005/Atom"
DC = "http://purl.org/dc/elements/1.1/"
CONTENT = "http://purl.org/rss/1.0/modules/content/"


def emit_rss(view: FeedView) -> bytes:
    root = etree.Element("rss", {"version": "2.0"},
                         nsmap={"atom": ATOM, "dc": DC, "content": CONTENT})
    channel = sub(root, "channel")
    sub(channel, "title", view.title)
    sub(channel, "link", view.home_url)
    sub(channel, "description", view.description or view.title)
    if view.language:
        sub(channel, "language", view.language)
    sub(channel, f"{{{ATOM}}}link", href=view.self_url, rel="self", type="application/rss+xml")
    sub(channel, "lastBuildDate", format_datetime(view.updated, usegmt=True))
    sub(channel, "generator", "crawler")
    for article in view.articles:
        item = sub(channel, "item")
        sub(item, "title", article.title)
        if article.link:
            sub(item, "link", article.link)
        sub(item, "guid", entry_id(article), isPermaLink="false")
        sub(item, "pubDate", format_datetime(article.published, usegmt=True))
        if article.author:
            sub(item, f"{{{DC}}}creator", article.author)
        for tag in article.tags:
            sub(item, "category", tag)
        # Readers take RSS description as HTML, so the plain-text summary is escaped once more.
        sub(item, "description", html.escape(article.summary or article.title, quote=False))
        if article.content_html or article.also:
            sub(item, f"{{{CONTENT}}}encoded", content_with_also(article))
        if article.sources and (url := public_feed_url(article.sources[0])):
            sub(item, "source", article.sources[0].name, url=url)
    return serialize(root, view.stylesheet_url)
