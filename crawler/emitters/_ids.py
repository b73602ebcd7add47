"""The entry id every format shares."""

from __future__ import annotations

from crawler.types import StoredArticle


def entry_id(article: StoredArticle) -> str:
    """The same id in every format, so a reader switching format sees no new items."""
    uid = article.uid
    return f"urn:uuid:{uid[:8]}-{uid[8:12]}-{uid[12:16]}-{uid[16:20]}-{uid[20:32]}"
