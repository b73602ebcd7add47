"""The entry id every format shares."""

from __future__ import annotations

from crawler.types import SourceRef, StoredArticle


def entry_id(article: StoredArticle) -> str:
    """The same id in every format, so a reader switching format sees no new items."""
    uid = article.uid
    return f"urn:uuid:{uid[:8]}-{uid[8:12]}-{uid[12:16]}-{uid[16:20]}-{uid[20:32]}"


def public_feed_url(ref: SourceRef) -> str | None:
    """The source's feed URL, or None for a folder on this machine: a path is no link, and
    says more about the server than a reader should learn."""
    return ref.url if ref.url.startswith(("http://", "https://")) else None
