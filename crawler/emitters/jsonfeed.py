"""FeedView → JSON Feed 1.1; every outlet of an item under the ``_crawler`` extension."""

from __future__ import annotations

import json
from typing import Any

from crawler.emitters._also import content_with_also
from crawler.emitters._ids import entry_id, public_feed_url
from crawler.types import FeedView


def emit_json(view: FeedView) -> bytes:
    items: list[dict[str, Any]] = []
    for article in view.articles:
        item: dict[str, Any] = {
            "id": entry_id(article),
            "title": article.title,
            "content_html": content_with_also(article),
            "date_published": article.published.isoformat(),
            "date_modified": max(article.updated, article.published).isoformat(),
        }
        if article.link:
            item["url"] = article.link
        if article.summary:
            item["summary"] = article.summary
        if article.author:
            item["authors"] = [{"name": article.author}]
        if article.tags:
            item["tags"] = list(article.tags)
        if article.language:
            item["language"] = article.language
        item["_crawler"] = {
            "sources": [{"name": s.name,
                         **({"feed_url": url} if (url := public_feed_url(s)) else {}),
                         "url": s.link}
                        for s in article.sources],
        }
        if article.story_id:
            item["_crawler"]["story_id"] = article.story_id
            item["_crawler"]["also"] = [{"url": o.url, "title": o.title, "source": o.source}
                                        for o in article.also]
        if article.matched:
            item["_crawler"]["matched"] = [
                {"rule": m.rule, "value": m.value, **({"field": m.field} if m.field else {})}
                for m in article.matched]
        if article.metadata:
            item["_crawler"]["metadata"] = dict(article.metadata)
        if article.comments:
            item["_crawler"]["comments"] = [
                {"floor": c.floor, "user": c.user, "kind": c.kind, "text": c.text,
                 **({"time": c.time.isoformat()} if c.time else {})}
                for c in article.comments]
        items.append(item)
    document = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": view.title,
        "home_page_url": view.home_url,
        "feed_url": view.self_url,
        "items": items,
    }
    if view.description:
        document["description"] = view.description
    if view.language:
        document["language"] = view.language
    return json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8")
