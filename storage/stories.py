"""Stories: new articles join the story of a copy or of related reports, or start one.

For a batch of new articles (one source's fetch, one transaction):
1. their LSH band keys and name keys are looked up in ``article_keys`` within the time
   windows: an index range scan per key, whatever the size of the archive;
2. a candidate whose body is a copy (estimated Jaccard ≥ copy_threshold) puts the article
   in its story;
3. otherwise the stories of the candidates that share a name are scored on title and lead
   against all their members (the mean, so a round-up that touches two developments does
   not chain them into one), and the best above related_threshold takes the article;
4. otherwise the article starts a story. Its keys are stored either way.

Concurrent ingests take turns here (an advisory lock on PostgreSQL, the write lock that the
transaction already holds on SQLite), so two copies arriving at once make one story.
"""

from __future__ import annotations

import heapq
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, text, update

from crawler.similarity import (
    BANDS,
    band_keys,
    copy_similarity,
    name_key,
    name_keys,
    rarity,
    relatedness,
    title_key,
)
from crawler.types import (
    AlsoReported,
    Fingerprint,
    StoredArticle,
    StoryExplanation,
    StoryMember,
    StoryRules,
)
from storage.batching import chunks
from storage.tables import ArticleKeyRow, ArticleRow, StoryRow

articles_t = ArticleRow.__table__  # type: ignore[attr-defined]
stories_t = StoryRow.__table__  # type: ignore[attr-defined]
keys_t = ArticleKeyRow.__table__  # type: ignore[attr-defined]
STORY_LOCK = 0x73746F72  #: advisory lock key on PostgreSQL
MAX_MEMBERS = 50  #: members of one story a new article is compared with (the latest)
#: stored articles that share only names with a new one, compared with it: those sharing
#: the most (a name in every other report of a busy day is no reason to compare them all)
MAX_NAME_CANDIDATES = 20
MAX_BAND_CANDIDATES = 20  #: likewise, the stored articles sharing the most LSH bands
MAX_HOLDERS = 50  #: keys held by more stored articles are "busy" (counted, not all read)
LATEST_HOLDERS = 20  #: of a busy name, the latest holders read


@dataclass(frozen=True)
class NewArticle:
    id: int
    uid: str
    published: datetime
    fingerprint: Fingerprint | None


@dataclass
class _Known:
    """An article already in a story, as the clustering sees it."""

    id: int
    uid: str
    story_id: int
    published: datetime
    fingerprint: Fingerprint | None
    keys: set[int] = field(default_factory=set)


def make_story_uid(founder_uid: str) -> str:
    """The founding article's uid: a story of one article keeps the item id that article
    had in outputs before stories existed, so readers see no item twice on upgrade."""
    return founder_uid


def fingerprint_values(fingerprint: Fingerprint | None) -> dict[str, Any]:
    if fingerprint is None:
        return {}
    return {"signature": fingerprint.signature, "shingles": fingerprint.shingles,
            "fp_title": fingerprint.title, "fp_lead": fingerprint.lead,
            "fp_names": json.dumps(list(fingerprint.names), ensure_ascii=False)}


def fingerprint_of(row: Any) -> Fingerprint | None:
    if row.signature is None:
        return None
    return Fingerprint(signature=bytes(row.signature), shingles=row.shingles,
                       title=row.fp_title, lead=row.fp_lead,
                       names=tuple(json.loads(row.fp_names)))


def assign_stories(conn: Connection, new: Sequence[NewArticle], rules: StoryRules,
                   now: datetime) -> int:
    """Put each new article in a story; returns how many joined one as a copy (a duplicate
    of a stored article, or of one earlier in the batch, which /metrics counts)."""
    if not new:
        return 0
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": STORY_LOCK})
    copy_window = timedelta(days=rules.window_days)
    related_window = timedelta(hours=rules.related_hours)
    bands_of = {a.id: band_keys(a.fingerprint) if a.fingerprint else () for a in new}
    keys_of = {a.id: bands_of[a.id] + _other_keys(a.fingerprint) for a in new}
    known, theirs, weight = _candidates(conn, new, keys_of, bands_of, copy_window,
                                        related_window)
    joins: list[dict[str, Any]] = []
    founded: list[NewArticle] = []
    copies = 0
    story_of: dict[int, int] = {}  # article id → story id (negative: founded in this batch)
    cache: dict[int, list[_Known]] = {}
    batch: list[int] = []  # this batch's articles, which later ones may match too
    for article in new:
        candidates = [known[i] for i in theirs.get(article.id, ()) if i in known]
        candidates += [known[i] for i in batch]
        story, join = _decide(article, keys_of[article.id], candidates, known, rules,
                              copy_window, related_window, conn, cache, weight)
        if story is None:
            founded.append(article)
            story = -len(founded)
            join = {"by": "founder"}
        copies += join.get("by") == "copy"
        story_of[article.id] = story
        joins.append({"article_id": article.id, "story_join": json.dumps(join)})
        # Later articles of this batch find this one like any stored article.
        known[article.id] = _Known(article.id, article.uid, story, article.published,
                                   article.fingerprint, set(keys_of[article.id]))
        batch.append(article.id)
    story_ids = _create_stories(conn, founded, now)
    final = {aid: (story_ids[-sid - 1] if sid < 0 else sid) for aid, sid in story_of.items()}
    conn.execute(update(articles_t).where(articles_t.c.id == bindparam("article"))
                 .values(story_id=bindparam("story"), story_join=bindparam("join")),
                 [{"article": row["article_id"], "story": final[row["article_id"]],
                   "join": row["story_join"]} for row in joins])
    earliest: dict[int, datetime] = {}
    for a in new:  # a story's date is its first report, whichever came last in the batch
        story_id = final[a.id]
        earliest[story_id] = min(a.published, earliest.get(story_id, a.published))
    _touch_stories(conn, earliest, now)
    rows = [{"key": key, "published_at": a.published, "article_id": a.id}
            for a in new for key in dict.fromkeys(keys_of[a.id])]
    for part in chunks(rows):
        conn.execute(insert(keys_t), part)
    return copies


def _other_keys(fingerprint: Fingerprint | None) -> tuple[int, ...]:
    """The headline and name keys (the band keys are made apart: they are read apart)."""
    if fingerprint is None:
        return ()
    return title_key(fingerprint) + name_keys(fingerprint)


def _candidates(conn: Connection, new: Sequence[NewArticle], keys_of: dict[int, tuple[int, ...]],
                band_keys_of: dict[int, tuple[int, ...]], copy_window: timedelta,
                related_window: timedelta,
                ) -> tuple[dict[int, _Known], dict[int, set[int]], Callable[[str], float]]:
    """Stored articles sharing a key with a new one (a band within the copy window, a
    name or the headline within the related window); for each new article, the ids of
    its own; and how rare each name is among the articles of that time (see
    crawler.similarity.rarity)."""
    first = min(a.published for a in new)
    last = max(a.published for a in new)
    bands_of = {aid: set(keys) for aid, keys in band_keys_of.items()}
    all_bands = set().union(*bands_of.values())
    names = {k for keys in keys_of.values() for k in keys} - all_bands
    around = conn.execute(select(func.count()).select_from(articles_t).where(
        articles_t.c.published_at.between(first - related_window, last + related_window))
    ).scalar_one()
    in_copy = (first - copy_window, last + copy_window)
    # A band that many bodies share is boilerplate (one site's footer and share links),
    # not a copy: only bands of a few bodies are read.
    band_counts = _counts(conn, all_bands, *in_copy)
    holders = _holders(conn, {k for k in all_bands if band_counts.get(k, 0) <= MAX_HOLDERS},
                       *in_copy)
    in_related = (first - related_window, last + related_window)
    counts = _counts(conn, names, *in_related)
    holders.update(_holders(conn, {k for k in names if counts.get(k, 0) <= MAX_HOLDERS},
                            *in_related))
    # A name many reports of the time give (the day's big story, or a busy minister) is
    # read only as far as its latest holders: reading all its rows would cost more than
    # the rest, and reports of one development come close together.
    for key in sorted(k for k in names if counts.get(k, 0) > MAX_HOLDERS):
        holders[key] = set(conn.execute(_LATEST_HOLDERS, {
            "key": key, "low": in_related[0], "high": in_related[1],
            "limit": LATEST_HOLDERS}).scalars())
    # The rarer the names an article shares with a new one, the more worth comparing.
    rare = {key: rarity(counts.get(key, 0) + 1, around) for key in names}
    hits: dict[int, set[int]] = defaultdict(set)
    mine: dict[int, set[int]] = defaultdict(set)
    for article in new:
        shared: dict[int, float] = defaultdict(float)
        banded: dict[int, int] = defaultdict(int)
        for key in keys_of[article.id]:
            for other in holders.get(key, ()):
                if key in bands_of[article.id]:
                    banded[other] += 1
                else:
                    shared[other] += rare[key]
        # Boilerplate shared by one site's pages puts many bodies in a band together; the
        # more bands two share, the likelier a copy (each band is J^4 likely to match).
        chosen = heapq.nlargest(MAX_BAND_CANDIDATES, banded, key=banded.__getitem__)
        chosen += heapq.nlargest(MAX_NAME_CANDIDATES, shared, key=shared.__getitem__)
        for other in chosen:
            hits[other].update(k for k in keys_of[article.id] if other in holders.get(k, ()))
            mine[article.id].add(other)

    def weight(name: str) -> float:
        return rarity(counts.get(name_key(name), 0) + 1, around)

    return _load(conn, hits), mine, weight


_LATEST_HOLDERS = (select(keys_t.c.article_id)
                   .where(keys_t.c.key == bindparam("key"),
                          keys_t.c.published_at.between(bindparam("low"), bindparam("high")))
                   .order_by(keys_t.c.published_at.desc()).limit(bindparam("limit")))


def _holders(conn: Connection, keys: set[int], low: datetime, high: datetime,
             ) -> dict[int, set[int]]:
    """key → the stored articles that have it, published between low and high."""
    found: dict[int, set[int]] = defaultdict(set)
    for part in chunks(sorted(keys)):
        for row in conn.execute(select(keys_t.c.key, keys_t.c.article_id).where(
                keys_t.c.key.in_(part),
                keys_t.c.published_at.between(low, high))):
            found[row.key].add(row.article_id)
    return found


def _counts(conn: Connection, keys: set[int], low: datetime, high: datetime,
            ) -> dict[int, int]:
    """key → how many stored articles published between low and high have it (counted in
    the index, no row read)."""
    found: dict[int, int] = {}
    for part in chunks(sorted(keys)):
        for row in conn.execute(select(keys_t.c.key, func.count()).where(
                keys_t.c.key.in_(part),
                keys_t.c.published_at.between(low, high)).group_by(keys_t.c.key)):
            found[row[0]] = row[1]
    return found


def _load(conn: Connection, hits: dict[int, set[int]]) -> dict[int, _Known]:
    found: dict[int, _Known] = {}
    for part in chunks(sorted(hits)):
        for row in conn.execute(_known_columns().where(
                articles_t.c.id.in_(part),
                articles_t.c.story_id.is_not(None))):
            found[row.id] = _Known(row.id, row.uid, row.story_id, row.published_at,
                                   fingerprint_of(row), hits.get(row.id, set()))
    return found


def _known_columns() -> Any:
    c = articles_t.c
    return select(c.id, c.uid, c.story_id, c.published_at, c.signature, c.shingles,
                  c.fp_title, c.fp_lead, c.fp_names)


def _decide(article: NewArticle, keys: tuple[int, ...], candidates: list[_Known],
            known: dict[int, _Known], rules: StoryRules, copy_window: timedelta,
            related_window: timedelta, conn: Connection, cache: dict[int, list[_Known]],
            weight: Callable[[str], float]) -> tuple[int | None, dict[str, Any]]:
    fingerprint = article.fingerprint
    if fingerprint is None:
        return None, {}
    mine = set(keys)
    best: tuple[float, _Known] | None = None
    related: set[int] = set()
    for other in candidates:
        if not other.keys & mine or other.fingerprint is None or other.id == article.id:
            continue
        apart = abs(other.published - article.published)
        if apart <= copy_window:
            similarity = copy_similarity(fingerprint, other.fingerprint)
            if similarity >= rules.copy_threshold and (best is None or similarity > best[0]):
                best = (similarity, other)
        # A story's mean score is at most its best member's: a story none of whose
        # candidates reaches the threshold is not worth reading the members of.
        if best is None and apart <= related_window and relatedness(
                fingerprint, other.fingerprint, apart.total_seconds() / 3600,
                rules.related_hours, weight).score >= rules.related_threshold:
            related.add(other.story_id)
    if best is not None:
        via = ("an LSH band of the body" if best[1].keys & set(keys[:BANDS])
               else "a shared name: " + ", ".join(_names_shared(fingerprint, best[1])))
        return best[1].story_id, {"by": "copy", "with": best[1].uid,
                                  "score": round(best[0], 3), "via": via}
    scored: list[tuple[float, int, _Known]] = []
    for story_id in sorted(related):
        members = _members(conn, story_id, known, cache)
        scores = [(relatedness(fingerprint, m.fingerprint,
                               abs(m.published - article.published).total_seconds() / 3600,
                               rules.related_hours, weight).score, m)
                  for m in members if m.fingerprint is not None]
        if scores:
            mean = sum(s for s, _ in scores) / len(scores)
            closest = max(scores, key=lambda pair: pair[0])[1]
            scored.append((mean, story_id, closest))
    if scored:
        mean, story_id, closest = max(scored, key=lambda entry: entry[0])
        if mean >= rules.related_threshold:
            return story_id, {"by": "related", "with": closest.uid, "score": round(mean, 3),
                              "via": "shared names: " + ", ".join(
                                  _names_shared(fingerprint, closest))}
    return None, {}


def _names_shared(fingerprint: Fingerprint, other: _Known) -> list[str]:
    if other.fingerprint is None:
        return []
    found = relatedness(fingerprint, other.fingerprint)
    return [*found.shared, *found.numbers][:8]


def _members(conn: Connection, story_id: int, known: dict[int, _Known],
             cache: dict[int, list[_Known]]) -> list[_Known]:
    """A story's latest members: stored ones from the database (read once per batch),
    this batch's from memory."""
    members = {k.id: k for k in known.values() if k.story_id == story_id}
    if story_id > 0:
        if story_id not in cache:
            cache[story_id] = [
                _Known(row.id, row.uid, row.story_id, row.published_at, fingerprint_of(row))
                for row in conn.execute(_known_columns()
                                        .where(articles_t.c.story_id == story_id)
                                        .order_by(articles_t.c.id.desc()).limit(MAX_MEMBERS))]
        for stored in cache[story_id]:
            members.setdefault(stored.id, stored)
    return sorted(members.values(), key=lambda m: -m.id)[:MAX_MEMBERS]


def _create_stories(conn: Connection, founded: Sequence[NewArticle], now: datetime) -> list[int]:
    if not founded:
        return []
    rows = [{"uid": make_story_uid(a.uid), "published_at": a.published, "changed_at": now}
            for a in founded]
    result = conn.execute(insert(stories_t).returning(stories_t.c.id, stories_t.c.uid), rows)
    by_uid = {r.uid: r.id for r in result}
    return [by_uid[row["uid"]] for row in rows]


def _touch_stories(conn: Connection, earliest: dict[int, datetime], now: datetime) -> None:
    """A member joining makes the story newer to the outputs; its date is its first report."""
    rows = [{"story": story_id, "published": published}
            for story_id, published in earliest.items()]
    conn.execute(update(stories_t).where(stories_t.c.id == bindparam("story"))
                 .values(changed_at=now), rows)
    conn.execute(update(stories_t).where(stories_t.c.id == bindparam("story"),
                                         stories_t.c.published_at > bindparam("published"))
                 .values(published_at=bindparam("published")), rows)


def story_for_linked(conn: Connection, article_ids: Sequence[int], now: datetime) -> None:
    """Articles that gained a source keep their story; the story changes for the outputs."""
    for part in chunks(sorted(set(article_ids))):
        stories = select(articles_t.c.story_id).where(articles_t.c.id.in_(part))
        conn.execute(update(stories_t).where(stories_t.c.id.in_(stories)).values(changed_at=now))


def story_of_item(conn: Connection, source_id: int, item_key: str) -> str | None:
    from storage.tables import ArticleSourceRow

    links_t = ArticleSourceRow.__table__  # type: ignore[attr-defined]
    return conn.execute(
        select(stories_t.c.uid)
        .join(articles_t, articles_t.c.story_id == stories_t.c.id)
        .join(links_t, links_t.c.article_id == articles_t.c.id)
        .where(links_t.c.source_id == source_id, links_t.c.item_key == item_key)
    ).scalar()


def stories_for_output(conn: Connection, in_output: Any, limit: int) -> tuple[StoredArticle, ...]:
    """The newest stories with an article in the output: one item each, the article of the
    highest-priority source (then the earliest) with the others as "also reported by"."""
    from storage.articles import source_refs, stored_article

    story_rows = conn.execute(
        select(stories_t.c.id, stories_t.c.uid)
        .where(stories_t.c.id.in_(select(articles_t.c.story_id).where(in_output)))
        .order_by(stories_t.c.published_at.desc(), stories_t.c.id.desc()).limit(limit)).all()
    if not story_rows:
        return ()
    members: dict[int, list[Any]] = {r.id: [] for r in story_rows}
    for row in conn.execute(select(articles_t).where(
            articles_t.c.story_id.in_(list(members)), in_output)):
        members[row.story_id].append(row)
    refs = source_refs(conn, [m.id for group in members.values() for m in group])
    found: list[StoredArticle] = []
    for story in story_rows:
        group = members[story.id]
        if not group:
            continue
        group.sort(key=lambda m: (-max((ref.priority for ref in refs[m.id]), default=0),
                                  m.published_at, m.id))
        lead, others = group[0], group[1:]
        also = tuple(AlsoReported(url=m.link, title=m.title,
                                  source=refs[m.id][0].name if refs[m.id] else "")
                     for m in others)
        article = stored_article(lead, refs[lead.id])
        found.append(replace(article, uid=story.uid, story_id=story.uid, also=also))
    # Newest first by the date each item shows (its representative's), as readers expect.
    found.sort(key=lambda item: (item.published, item.uid), reverse=True)
    return tuple(found)


def explain(conn: Connection, canonical: str | None, link: str,
            rules: StoryRules) -> StoryExplanation | None:
    """The story of the article at this URL, its other members, how each compares."""
    from storage.articles import source_refs

    c = articles_t.c
    match = c.link == link if canonical is None else (c.canonical_url == canonical) | (
        c.link == link)
    row = conn.execute(_known_columns().add_columns(c.title, c.link, c.story_join)
                       .where(match).order_by(c.id).limit(1)).first()
    if row is None or row.story_id is None:
        return None
    story_uid = conn.execute(select(stories_t.c.uid).where(stories_t.c.id == row.story_id)
                             ).scalar_one()
    rows = conn.execute(_known_columns().add_columns(c.title, c.link, c.story_join)
                        .where(c.story_id == row.story_id).order_by(c.published_at, c.id)
                        .limit(200)).all()
    refs = source_refs(conn, [r.id for r in rows])
    mine = fingerprint_of(row)

    def member(r: Any) -> StoryMember:
        join = json.loads(r.story_join or "{}")
        theirs = fingerprint_of(r)
        copy = related = None
        if mine is not None and theirs is not None and r.id != row.id:
            copy = copy_similarity(mine, theirs)
            hours = abs((r.published_at - row.published_at).total_seconds()) / 3600
            related = relatedness(mine, theirs, hours, rules.related_hours).score
        return StoryMember(uid=r.uid, title=r.title, link=r.link,
                           sources=tuple(ref.name for ref in refs[r.id]),
                           published=r.published_at, joined_by=join.get("by", "founder"),
                           joined_with=join.get("with"), join_score=join.get("score"),
                           joined_via=join.get("via"),
                           copy_similarity=copy, related_score=related)

    return StoryExplanation(story_id=story_uid, article=member(row),
                            others=tuple(member(r) for r in rows if r.id != row.id))
