"""Articles: upsert one source's batch, and read them back for an output.

Identity: (source, item_key) says whether a source has carried an item before; a new item
that matches a stored article by canonical URL or content hash is linked to it, so the
story is stored once with every source that carried it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from crawler.types import Article, Comment, SourceRef, StoredArticle, StoreResult, StoryRules
from storage import stories
from storage.batching import chunks
from storage.tables import ArticleRow, ArticleSourceRow, SourceRow

articles_t = ArticleRow.__table__  # type: ignore[attr-defined]
links_t = ArticleSourceRow.__table__  # type: ignore[attr-defined]
sources_t = SourceRow.__table__  # type: ignore[attr-defined]


def make_uid(source_name: str, item_key: str) -> str:
    """Stable across re-crawls and rebuilt databases: the first source and its item key."""
    return hashlib.sha256(f"{source_name}\n{item_key}".encode()).hexdigest()[:32]



def upsert_articles(
    conn: Connection, source_id: int, source_name: str, articles: Sequence[Article],
    now: datetime, rules: StoryRules,
) -> StoreResult:
    batch: dict[str, Article] = {}
    for article in articles:
        batch.setdefault(article.item_key, article)  # the first of a key wins
    if not batch:
        return StoreResult()
    keys = list(batch)
    known = _known(conn, source_id, keys)

    new_items = [batch[k] for k in keys if k not in known]
    by_url, by_hash = _match_existing(conn, new_items)
    new = updated = unchanged = copies = 0
    links: list[dict[str, Any]] = []
    fresh: list[tuple[Article, dict[str, Any]]] = []
    for article in new_items:
        match = by_url.get(article.canonical_url) if article.canonical_url else None
        if match is None and article.distinctive_text:
            match = by_hash.get(article.content_hash)
        if match is None:
            row = _article_values(article, now)
            row["uid"] = make_uid(source_name, article.item_key)
            fresh.append((article, row))
            # Later items of this batch with the same URL or text join this one.
            placeholder = -len(fresh)
            if article.canonical_url:
                by_url[article.canonical_url] = placeholder
            if article.distinctive_text:
                by_hash.setdefault(article.content_hash, placeholder)
            match = placeholder
        links.append({"source_id": source_id, "article_id": match, "item_key": article.item_key,
                      "link": article.link, "content_hash": article.content_hash,
                      "seen_at": now})
        new += 1

    if fresh:
        # Rows come back matched by uid rather than by position: asking SQLAlchemy to keep
        # parameter order makes it insert one row per statement on SQLite.
        result = conn.execute(insert(articles_t).returning(articles_t.c.id, articles_t.c.uid),
                              [row for _, row in fresh])
        by_uid = {r.uid: r.id for r in result}
        ids = [by_uid[row["uid"]] for _, row in fresh]
        for link in links:
            if link["article_id"] < 0:
                link["article_id"] = ids[-link["article_id"] - 1]
        # Linking an article to a second source makes it newer to the outputs.
        touched = {link["article_id"] for link in links} - set(ids)
        copies = stories.assign_stories(conn, [
            stories.NewArticle(id=article_id, uid=row["uid"], published=row["published_at"],
                               fingerprint=article.fingerprint)
            for article_id, (article, row) in zip(ids, fresh, strict=True)], rules, now)
    else:
        touched = {link["article_id"] for link in links}
    if links:
        conn.execute(insert(links_t), links)
    if touched:
        conn.execute(update(articles_t).where(articles_t.c.id.in_(touched))
                     .values(changed_at=now))
        stories.story_for_linked(conn, sorted(touched), now)

    for key, (article_id, old_hash) in known.items():
        article = batch[key]
        if article.content_hash == old_hash:
            unchanged += 1
            continue
        values = _article_values(article, now)
        del values["first_seen_at"]
        # The story was decided on the first version; its keys and fingerprint stay.
        for column in stories.fingerprint_values(article.fingerprint):
            values.pop(column)
        values.pop("published_at")  # the first date we saw stays the article's date
        conn.execute(update(articles_t).where(articles_t.c.id == article_id).values(**values))
        conn.execute(update(links_t).where(links_t.c.source_id == source_id,
                                           links_t.c.item_key == key)
                     .values(content_hash=article.content_hash, link=article.link))
        updated += 1
    # Every new item is a link; those that got no row of their own were recognised as an
    # article already stored (or met earlier in this batch) by canonical URL or text.
    return StoreResult(new=new, updated=updated, unchanged=unchanged,
                       merged=new - len(fresh), copies=copies)


def known_items(conn: Connection, source_id: int, keys: Sequence[str]) -> dict[str, str]:
    return {key: digest for key, (_, digest) in _known(conn, source_id, keys).items()}


def _known(conn: Connection, source_id: int, keys: Sequence[str]) -> dict[str, tuple[int, str]]:
    """item_key → (article id, content hash) for the keys this source already carries."""
    found: dict[str, tuple[int, str]] = {}
    for part in chunks(list(keys)):
        rows = conn.execute(
            select(links_t.c.item_key, links_t.c.article_id, links_t.c.content_hash)
            .where(links_t.c.source_id == source_id, links_t.c.item_key.in_(part)))
        found.update({r.item_key: (r.article_id, r.content_hash) for r in rows})
    return found


def _match_existing(
    conn: Connection, articles: Sequence[Article]
) -> tuple[dict[str, int], dict[str, int]]:
    urls = sorted({a.canonical_url for a in articles if a.canonical_url})
    hashes = sorted({a.content_hash for a in articles if a.distinctive_text})
    by_url: dict[str, int] = {}
    by_hash: dict[str, int] = {}
    for part in chunks(urls):
        for r in conn.execute(select(articles_t.c.id, articles_t.c.canonical_url)
                              .where(articles_t.c.canonical_url.in_(part))):
            by_url.setdefault(r.canonical_url, r.id)
    for part in chunks(hashes):
        for r in conn.execute(select(articles_t.c.id, articles_t.c.content_hash)
                              .where(articles_t.c.content_hash.in_(part))):
            by_hash.setdefault(r.content_hash, r.id)
    return by_url, by_hash


def _comment_json(comment: Comment) -> dict[str, Any]:
    return {"floor": comment.floor, "user": comment.user, "kind": comment.kind,
            "text": comment.text, "time": comment.time.isoformat() if comment.time else None}


def _comment_from_json(value: dict[str, Any]) -> Comment:
    time = value.get("time")
    return Comment(floor=int(value["floor"]), user=str(value["user"]), kind=str(value["kind"]),
                   text=str(value["text"]),
                   time=datetime.fromisoformat(time) if time else None)


def _article_values(article: Article, now: datetime) -> dict[str, Any]:
    published = article.published or now
    return {
        "canonical_url": article.canonical_url,
        "content_hash": article.content_hash,
        "title": article.title,
        "link": article.link,
        "content_html": article.content_html,
        "summary": article.summary,
        "author": article.author,
        "tags": json.dumps(list(article.tags), ensure_ascii=False),
        "extra": json.dumps(dict(article.metadata), ensure_ascii=False),
        "comments": json.dumps([_comment_json(c) for c in article.comments], ensure_ascii=False),
        "published_at": published,
        "updated_at": article.updated or published,
        "first_seen_at": now,
        "changed_at": now,
        **stories.fingerprint_values(article.fingerprint),
        "language": article.language,
        # An article that went through no parse worker (tests, old callers) has no folded
        # text: NULL makes readers fold it, as for rows stored before schema 3.
        "text_length": article.text_length if article.search_text else None,
        "search_text": article.search_text or None,
    }


def _source_filter(names: Sequence[str] | None) -> Any:
    subquery = select(links_t.c.article_id).join(sources_t, sources_t.c.id == links_t.c.source_id)
    if names is not None:
        subquery = subquery.where(sources_t.c.name.in_(list(names)))
    return articles_t.c.id.in_(subquery)


def articles_for_output(
    conn: Connection, names: Sequence[str] | None, limit: int, collapse: str = "article"
) -> tuple[StoredArticle, ...]:
    if collapse == "story":
        return stories.stories_for_output(conn, _source_filter(names), limit)
    rows = conn.execute(
        select(articles_t).where(_source_filter(names))
        .order_by(articles_t.c.published_at.desc(), articles_t.c.id.desc()).limit(limit)
    ).all()
    refs = source_refs(conn, [r.id for r in rows])
    return tuple(stored_article(r, refs[r.id]) for r in rows)


def source_refs(conn: Connection, article_ids: Sequence[int]) -> dict[int, list[SourceRef]]:
    """article id → the sources that carry it, in the order they first did."""
    refs: dict[int, list[SourceRef]] = {i: [] for i in article_ids}
    for part in chunks(list(refs)):
        for r in conn.execute(
            select(links_t.c.article_id, links_t.c.link, sources_t.c.name, sources_t.c.url,
                   sources_t.c.priority)
            .join(sources_t, sources_t.c.id == links_t.c.source_id)
            .where(links_t.c.article_id.in_(part))
            .order_by(links_t.c.id)
        ):
            refs[r.article_id].append(SourceRef(name=r.name, url=r.url, link=r.link,
                                                priority=r.priority))
    return refs


def stored_article(r: Any, refs: Sequence[SourceRef]) -> StoredArticle:
    return StoredArticle(
        uid=r.uid, title=r.title, link=r.link, content_html=r.content_html,
        summary=r.summary, author=r.author, published=r.published_at,
        updated=r.updated_at, tags=tuple(json.loads(r.tags)), sources=tuple(refs),
        metadata=tuple(json.loads(r.extra).items()),
        comments=tuple(_comment_from_json(c) for c in json.loads(r.comments)),
        language=r.language,
    )


def count_for_sources(conn: Connection) -> dict[int, int]:
    return {r.source_id: r.n for r in conn.execute(
        select(links_t.c.source_id, func.count().label("n")).group_by(links_t.c.source_id))}

