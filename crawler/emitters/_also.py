"""A collapsed story's other articles, as every format shows them."""

from __future__ import annotations

import html

from crawler.types import StoredArticle


def content_with_also(article: StoredArticle) -> str:
    """The item's HTML with an "also reported by" list under it, so any reader shows it."""
    content = article.content_html or article.summary
    if not article.also:
        return content
    rows = "".join(
        f"<li><a href=\"{html.escape(other.url)}\">{html.escape(other.title)}</a>"
        f" ({html.escape(other.source)})</li>" if other.url else
        f"<li>{html.escape(other.title)} ({html.escape(other.source)})</li>"
        for other in article.also)
    return f"{content}<h3>也報導了 Also reported by</h3><ul>{rows}</ul>"
