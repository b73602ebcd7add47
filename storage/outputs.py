"""What a served output reads: light candidate rows newest first, then the chosen items.

The rules of an output (keywords in two scripts, languages) are decided in crawler, not in
SQL; storage hands it candidates in pages off the published-date index, so a request reads
as far back as its rules need and never the whole archive. Body HTML is read only for the
items chosen.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, exists, func, or_, select, tuple_

from crawler.types import AlsoReported, Candidate, StoredArticle
from storage.articles import articles_t, links_t, source_refs, sources_t, stored_article
from storage.batching import chunks
from storage.stories import stories_t

#: sources with fewer articles than this are read as a set; more, by walking the date index
DRIVING_SET = 5000
Cursor = tuple[datetime, int]  #: (published_at, id) of the last candidate of a page


def content_version(conn: Connection) -> tuple[Any, ...]:
    """Moves whenever any output could change: an article added or changed, a story
    joined. Three index lookups, so a poll that hits the render cache stays cheap."""
    return tuple(conn.execute(select(
        select(func.max(articles_t.c.id)).scalar_subquery(),
        select(func.max(articles_t.c.changed_at)).scalar_subquery(),
        select(func.max(stories_t.c.changed_at)).scalar_subquery(),
    )).one())


def _columns() -> Any:
    c = articles_t.c
    priority = (select(func.max(sources_t.c.priority))
                .join(links_t, links_t.c.source_id == sources_t.c.id)
                .where(links_t.c.article_id == c.id).scalar_subquery())
    return select(c.id, c.story_id, c.title, c.author, c.tags, c.language, c.text_length,
                  c.search_text, c.published_at, priority.label("priority"),
                  # rows from before schema 3 are folded by the reader, from their HTML
                  func.coalesce(c.search_text, c.content_html).label("raw_text"))


def _source_ids(conn: Connection, names: Sequence[str]) -> list[int]:
    return [r.id for r in conn.execute(select(sources_t.c.id)
                                       .where(sources_t.c.name.in_(list(names))))]


def _carried_by(source_ids: list[int]) -> Any:
    """Per article: is it carried by one of these sources (a probe of the links index)."""
    return exists().where(links_t.c.article_id == articles_t.c.id,
                          links_t.c.source_id.in_(source_ids))


def _in_sources(conn: Connection, names: Sequence[str] | None) -> Any:
    """The filter a page of candidates needs, in the form that keeps the page cheap.

    Sources holding few articles: their article ids are the driving set (then sorted by
    date; at most DRIVING_SET of them). Sources holding many: the date index is walked
    newest first and each row probed, which stops once the page is full. The other form
    costs a whole archive's walk for one small source, or a sort of every article of
    hundreds of sources for each page.
    """
    if names is None:
        return None
    ids = _source_ids(conn, names)
    held = conn.execute(select(func.count()).select_from(
        select(links_t.c.id).where(links_t.c.source_id.in_(ids))
        .limit(DRIVING_SET).subquery())).scalar_one()
    if held >= DRIVING_SET:
        return _carried_by(ids)
    return articles_t.c.id.in_(select(links_t.c.article_id)
                               .where(links_t.c.source_id.in_(ids)))


def candidates(conn: Connection, names: Sequence[str] | None, *, since: datetime | None,
               min_length: int, after: Cursor | None, limit: int) -> list[Candidate]:
    """The next `limit` articles of these sources (None: all), newest first, after the
    cursor; only what SQL can decide cheaply (sources, age, length) is filtered here."""
    c = articles_t.c
    where: list[Any] = []
    if (in_sources := _in_sources(conn, names)) is not None:
        where.append(in_sources)
    if since is not None:
        where.append(c.published_at >= since)
    if min_length:
        where.append(or_(c.text_length >= min_length, c.text_length.is_(None)))
    if after is not None:  # a row value, so the page starts as a range of the date index
        where.append(tuple_(c.published_at, c.id) < (after[0], after[1]))
    rows = conn.execute(_columns().where(*where)
                        .order_by(c.published_at.desc(), c.id.desc()).limit(limit)).all()
    return [_candidate(r) for r in rows]


def story_members(conn: Connection, story_ids: Sequence[int],
                  names: Sequence[str] | None) -> list[Candidate]:
    """Every article of these stories that the output's sources carry."""
    found: list[Candidate] = []
    # A story has a few members: found by story_id, each probed for its sources.
    carried = _carried_by(_source_ids(conn, names)) if names is not None else None
    for part in chunks(list(story_ids)):
        query = _columns().where(articles_t.c.story_id.in_(part))
        if carried is not None:
            query = query.where(carried)
        found.extend(_candidate(r) for r in conn.execute(query))
    return found


def candidate_by_uid(conn: Connection, uid: str) -> Candidate | None:
    row = conn.execute(_columns().where(articles_t.c.uid == uid)).first()
    return _candidate(row) if row is not None else None


def _candidate(r: Any) -> Candidate:
    return Candidate(
        id=r.id, story_id=r.story_id, title=r.title, author=r.author,
        tags=tuple(json.loads(r.tags)), language=r.language,
        text_length=r.text_length if r.text_length is not None else -1,
        search_text=r.search_text if r.search_text is not None else "",
        raw_html=None if r.search_text is not None else r.raw_text,
        published=r.published_at, priority=r.priority or 0)


def items(conn: Connection, chosen: Sequence[tuple[int, Sequence[int]]],
          stories: bool) -> dict[int, StoredArticle]:
    """The chosen articles in full, by article id: (article id, the ids of the other
    articles of its story to list as "also reported by"). With `stories`, each item takes
    its story's uid as id, so the item keeps its id whichever article represents it."""
    lead_ids = [lead for lead, _ in chosen]
    other_ids = [other for _, others in chosen for other in others]
    rows = {r.id: r for part in chunks(lead_ids)
            for r in conn.execute(select(articles_t).where(articles_t.c.id.in_(part)))}
    brief = {r.id: r for part in chunks(other_ids)
             for r in conn.execute(select(articles_t.c.id, articles_t.c.title,
                                          articles_t.c.link, articles_t.c.changed_at)
                                   .where(articles_t.c.id.in_(part)))}
    refs = source_refs(conn, [*rows, *brief])
    story_rows = {}
    if stories:
        story_ids = {r.story_id for r in rows.values() if r.story_id is not None}
        story_rows = {s.id: s for part in chunks(list(story_ids))
                      for s in conn.execute(select(stories_t.c.id, stories_t.c.uid,
                                                   stories_t.c.changed_at)
                                            .where(stories_t.c.id.in_(part)))}
    found: dict[int, StoredArticle] = {}
    for lead, others in chosen:
        row = rows.get(lead)
        if row is None:  # deleted between the two reads
            continue
        article = stored_article(row, refs[row.id])
        changed = [row.changed_at, *(brief[o].changed_at for o in others if o in brief)]
        story = story_rows.get(row.story_id) if stories else None
        if story is not None:
            changed.append(story.changed_at)
            also = tuple(AlsoReported(url=brief[o].link, title=brief[o].title,
                                      source=refs[o][0].name if refs[o] else "")
                         for o in others if o in brief)
            article = replace(article, uid=story.uid, story_id=story.uid, also=also)
        found[lead] = replace(article, changed=max(changed))
    return found
