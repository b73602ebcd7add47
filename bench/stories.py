#!/usr/bin/env python3
"""Story clustering: the insert-and-lookup cost of one new article vs the size of the archive.

Run by hand (not a test), from the repository root::

    .venv/bin/python bench/stories.py --sizes 10000 100000 1000000 --new 300

For each archive size N:

1. **Fill** a fresh SQLite file ``bench/out/stories-n<N>-r<rate>.db``: ``open_storage``
   creates the schema, ``Storage.sync_sources`` registers the sources, then N synthetic
   articles are bulk-inserted with SQLAlchemy core (``conn.execute(insert(table), rows)``,
   5,000 rows per executemany, one transaction per 100,000 articles) into ``articles``,
   ``stories``, ``article_sources`` and ``article_keys``. The key rows are computed with
   ``crawler.similarity.band_keys`` / ``name_keys`` from a synthetic ``Fingerprint``:
   a random MinHash signature, and names drawn from a vocabulary of 200,000 names with a
   Zipf-like (Zipf-Mandelbrot) distribution. The real names of the new articles (below)
   are in that vocabulary at log-uniform ranks 1-20,000, so the lookups find candidates.
   The fill connection runs with ``journal_mode=OFF``, ``synchronous=OFF``,
   ``foreign_keys=OFF`` and a 1 GiB page cache (fill only; the file is put back in WAL
   mode before measuring, and the measured connections are the Storage's own).
2. **Rate, not archive, fills the window.** Articles are published uniformly at a fixed
   rate (``--per-day``, default 1,000 a day) up to a fixed end date, so the archive spans
   N / rate days and the time windows hold the same number of articles whatever N is.
   The candidate lookup reads ``max(window_days, related_hours)`` = 7 days each side of
   the new article's date; at 1,000 a day even the 10k archive (10 days) fills it.
   The cost measured is meant to depend on the articles inside the window, not on N.
3. **Measure** through the real ``Storage.record_success``: ``--new`` (300) new articles,
   one call per article (one transaction each, as a real crawl stores a fetch), then
   ``--new`` more in batches of ``--batch`` (30). The new articles are real Chinese text:
   sentences of the fixtures under ``tests/data/jekyll/`` (parse_post → clean → normalize)
   recombined into new bodies, ~15 % near-copies of an earlier new article, and a third
   titled after a fixture (so some are related reports); fingerprints by
   ``crawler.process.with_fingerprint``. They are published right after the archive's end
   (at the same rate), so the windows overlap the stored data. 20 warm-up calls go first.
   Also timed: the key lookup of ``storage.stories._candidates`` alone (a plain SELECT on
   ``article_keys``), and ``EXPLAIN QUERY PLAN`` of every SELECT one ingest runs.

Each measurement runs on a copy of the filled file (written to disk first), after waiting
(``--quiet-wait``, 120 s at most) for a 5 s window in which the machine is idle; the CPU
the rest of the machine used meanwhile is reported, and a measurement during which it was
over ``--max-other`` (10 %) of the machine is taken again (``--attempts``, 3 at most; the
quietest counts). ``--rounds R`` measures every size R times, interleaved, and reports the
median over the rounds. The files are deleted at the end unless ``--keep``;
``--reuse`` measures kept archives again (same parameters and code) without filling.
A Markdown report is written to ``bench/out/stories-<timestamp>.md``.

The code measured is frozen: ``crawler/`` and ``storage/`` are copied at start to
``bench/out/code/stories-<sha>/`` (``--code REV``: exported from git with ``git archive``
to ``bench/out/code/stories-git-<sha>/``) and the run continues in a child process that
imports that copy (``PYTHONPATH``, ``python -P``), since the repository may be edited
meanwhile; ``--live`` measures the worktree as imported instead. Two versions can be
compared on the same archives: ``--code A --keep``, then ``--code B --reuse``.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import io
import json
import math
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import create_engine, event, insert, select, text

import storage.stories as stories_mod
from crawler.cleaners import clean
from crawler.normalize import fold, normalize, plain_text
from crawler.parsers.jekyll import parse_post
from crawler.process import with_fingerprint
from crawler.similarity import COMMON_NAMES, band_keys, name_keys
from crawler.types import Article, CachingInfo, Fingerprint, ParsedItem, Source, StoryRules
from storage import Storage, open_storage
from storage.articles import make_uid
from storage.tables import ArticleKeyRow, ArticleRow, ArticleSourceRow, StoryRow

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
FIXTURES = ROOT / "tests" / "data" / "jekyll"
articles_t = ArticleRow.__table__  # type: ignore[attr-defined]
stories_t = StoryRow.__table__  # type: ignore[attr-defined]
links_t = ArticleSourceRow.__table__  # type: ignore[attr-defined]
keys_t = ArticleKeyRow.__table__  # type: ignore[attr-defined]

END = datetime(2026, 1, 1, tzinfo=UTC)  #: the archive's last article; new ones come after
SOURCES = 100
CHUNK = 5_000  #: articles generated at once, and rows per executemany
COMMIT_EVERY = 100_000  #: articles per fill transaction
VOCABULARY = 200_000
ZIPF_S, ZIPF_Q = 1.0, 10.0  #: p(rank k) ∝ 1 / (k + q)^s
REAL_NAME_TOP_RANK = 20_000  #: the new articles' names sit at log-uniform ranks 1..this
NAMES_PER_ARTICLE = (3, 9)  #: uniform, inclusive: 6 on average
JOIN_SHARE = 0.3  #: synthetic articles that join a recent story instead of founding one
RECENT_STORIES = 300  #: a joining synthetic article picks one of the latest this many
WARMUP = 20
COPY_SHARE = 0.15
FIXTURE_TITLE_SHARE = 0.35
CLUSTER_FILES = ("storage/stories.py", "storage/articles.py", "storage/tables.py",
                 "storage/engine.py", "crawler/similarity.py", "crawler/fingerprint.py")
CODE_ENV = "STORIES_BENCH_CODE"  #: set in the child that runs on the frozen copy
LABEL_ENV = "STORIES_BENCH_CODE_LABEL"
#: what the synthetic archive's rows depend on (besides the vocabulary): --reuse checks them
FILL_FILES = ("storage/tables.py", "storage/schema.py", "crawler/similarity.py")
FILL_PRAGMAS = ("PRAGMA journal_mode=OFF", "PRAGMA synchronous=OFF", "PRAGMA foreign_keys=OFF",
                "PRAGMA cache_size=-1048576", "PRAGMA temp_store=MEMORY")


# --- the new articles: real text, recombined --------------------------------------------

@dataclass(frozen=True)
class Fixture:
    title: str
    sentences: tuple[str, ...]


@dataclass
class NewSet:
    articles: list[Article]
    kinds: list[str]  #: "copy" (of an earlier new one), "fixture-title" or "new"


_SENTENCE_END = re.compile(r"(?<=[。！？!?；])")
_TRAILING = re.compile(r"[，。！？；：、,.!?;:\s]+$")


def load_fixtures(now: datetime) -> list[Fixture]:
    fixtures: list[Fixture] = []
    for path in sorted(FIXTURES.rglob("*.md"))[:500]:
        item = parse_post(path.read_text(encoding="utf-8"), now)
        article = normalize(clean(item), item.link or "")
        sentences = tuple(s.strip() for s in _SENTENCE_END.split(plain_text(article.content_html))
                          if len(s.strip()) >= 8)
        if sentences:
            fixtures.append(Fixture(article.title, sentences))
    if not fixtures:
        raise SystemExit(f"no fixtures under {FIXTURES}")
    return fixtures


def make_new_articles(fixtures: Sequence[Fixture], count: int, start: datetime,
                      step: timedelta, seed: int) -> NewSet:
    """``count`` articles published ``step`` apart from ``start``; deterministic per seed."""
    rng = np.random.default_rng(seed)
    pool = [s for f in fixtures for s in f.sentences]
    bodies: list[tuple[str, list[str]]] = []
    out = NewSet([], [])
    for j in range(count):
        if j >= 5 and rng.random() < COPY_SHARE:
            title, sentences = bodies[int(rng.integers(max(0, j - 50), j))]
            title = (f"【转载】{title}" if rng.random() < 0.5
                     else f"{title} – 法国国际广播电台 - RFI")
            sentences = sentences[:-1] if len(sentences) > 4 else [*sentences, "（完）"]
            kind = "copy"
        else:
            body = [pool[int(i)] for i in rng.choice(len(pool), int(rng.integers(4, 13)),
                                                      replace=False)]
            if rng.random() < FIXTURE_TITLE_SHARE:
                fixture = fixtures[int(rng.integers(len(fixtures)))]
                title, lead = fixture.title, list(fixture.sentences[:2])
                kind = "fixture-title"
            else:
                lead = [pool[int(rng.integers(len(pool)))]]
                title = _TRAILING.sub("", lead[0][:int(rng.integers(12, 27))])
                kind = "new"
            sentences = lead + [s for s in body if s not in lead]
        bodies.append((title, sentences))
        published = start + step * j
        item = ParsedItem(guid=f"bench-story-{seed}-{j}",
                          link=f"https://bench{j % SOURCES}.example/{seed}/{j}", title=title,
                          content_html="".join(f"<p>{s}</p>" for s in sentences),
                          summary_html="", author=None, published=published, updated=None)
        out.articles.append(with_fingerprint(normalize(clean(item), item.link or "")))
        out.kinds.append(kind)
    return out


# --- the synthetic archive ---------------------------------------------------------------

@dataclass
class Vocabulary:
    names: list[str]
    cdf: np.ndarray
    real_ranks: dict[str, int]


def char_pool(fixtures: Sequence[Fixture]) -> tuple[list[str], np.ndarray]:
    counts = Counter(c for f in fixtures for s in f.sentences for c in fold(s)
                     if "\u4e00" <= c <= "\u9fff")
    chars = sorted(counts)
    weights = np.array([counts[c] for c in chars], dtype=float)
    return chars, weights / weights.sum()


def make_vocabulary(chars: list[str], p: np.ndarray, real: Sequence[str],
                    rng: np.random.Generator, top_rank: int) -> Vocabulary:
    names: dict[str, None] = {}
    reserved = set(real) | COMMON_NAMES
    for _ in range(100):  # bounded: each round adds most of what is missing
        need = VOCABULARY - len(names)
        if need <= 0:
            break
        lengths = rng.integers(2, 5, need)
        picks = rng.choice(len(chars), (need, 4), p=p)
        for length, row in zip(lengths, picks, strict=True):
            name = "".join(chars[int(i)] for i in row[:length])
            if name not in reserved:
                names[name] = None
    vocabulary = list(names)[:VOCABULARY]
    real_ranks: dict[str, int] = {}
    taken: set[int] = set()
    for name in real:
        rank = int(math.exp(rng.uniform(0, math.log(min(top_rank, VOCABULARY))))) - 1
        for _ in range(VOCABULARY):  # bounded: the next free rank
            if rank not in taken:
                break
            rank = (rank + 1) % VOCABULARY
        taken.add(rank)
        vocabulary[rank] = name
        real_ranks[name] = rank + 1
    weights = 1.0 / (np.arange(1, VOCABULARY + 1) + ZIPF_Q) ** ZIPF_S
    return Vocabulary(vocabulary, np.cumsum(weights) / weights.sum(), real_ranks)


@dataclass
class FillStats:
    seconds: float
    articles: int
    stories: int
    key_rows: int
    size_mb: float


@dataclass
class _StoryState:
    ids: list[int] = field(default_factory=list)  #: recent story ids, oldest first
    names: dict[int, list[str]] = field(default_factory=dict)
    founder: dict[int, str] = field(default_factory=dict)
    next_id: int = 1


def fill(path: Path, n: int, per_day: float, vocab: Vocabulary, chars: list[str],
         p: np.ndarray, seed: int, sources: Sequence[Source]) -> FillStats:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    start = END - timedelta(days=n / per_day)
    created = open_storage(url)
    created.sync_sources(sources, start - timedelta(days=1))
    created.close()

    began = time.perf_counter()
    rng = np.random.default_rng(seed)
    text_pool = "".join(chars[int(i)] for i in rng.choice(len(chars), 2_000_000, p=p))
    engine = create_engine(url)
    event.listen(engine, "connect", _fill_pragmas)
    state = _StoryState()
    key_rows = 0
    seconds_per_article = 86400 / per_day
    try:
        for t_start in range(0, n, COMMIT_EVERY):
            t_end = min(n, t_start + COMMIT_EVERY)
            with engine.begin() as conn:
                for c_start in range(t_start, t_end, CHUNK):
                    rows = _chunk(c_start, min(t_end, c_start + CHUNK), start,
                                  seconds_per_article, vocab, text_pool, rng, state)
                    for table, values in zip((stories_t, articles_t, links_t, keys_t), rows,
                                             strict=True):
                        for i in range(0, len(values), CHUNK):
                            conn.execute(insert(table), values[i:i + CHUNK])
                    key_rows += len(rows[3])
            elapsed = time.perf_counter() - began
            print(f"  fill n={n:,}: {t_end:,} articles, {key_rows:,} key rows, "
                  f"{elapsed:.0f} s ({t_end / elapsed:,.0f} articles/s)", flush=True)
        raw = engine.raw_connection()
        try:
            raw.driver_connection.execute("PRAGMA journal_mode=WAL")  # type: ignore[union-attr]
        finally:
            raw.close()
    finally:
        engine.dispose()
    seconds = time.perf_counter() - began
    return FillStats(seconds, n, state.next_id - 1, key_rows, _size_mb(path))


def _fill_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in FILL_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


def _chunk(first: int, last: int, start: datetime, seconds_per_article: float,
           vocab: Vocabulary, text_pool: str, rng: np.random.Generator,
           state: _StoryState) -> tuple[list[dict[str, Any]], ...]:
    """Rows of articles first..last-1 (ids first+1..last) for the four tables."""
    size = last - first
    offsets = (np.arange(first, last) + rng.random(size)) * seconds_per_article
    signatures = rng.integers(0, 2**32, (size, 128), dtype=np.uint32).astype("<u4").tobytes()
    name_counts = rng.integers(NAMES_PER_ARTICLE[0], NAMES_PER_ARTICLE[1] + 1, size)
    drawn = np.searchsorted(vocab.cdf, rng.random(int(name_counts.sum())))
    text_at = rng.integers(0, len(text_pool) - 400, (size, 3))
    joins = rng.random(size) < JOIN_SHARE
    shingles = rng.integers(100, 2500, size)
    stories: list[dict[str, Any]] = []
    articles: list[dict[str, Any]] = []
    links: list[dict[str, Any]] = []
    keys: list[dict[str, Any]] = []
    used = 0
    for k in range(size):
        article_id = first + k + 1
        source = article_id % SOURCES + 1
        item_key = f"guid:bench-archive-{article_id}"
        uid = make_uid(f"bench-src-{source:03d}", item_key)
        published = start + timedelta(seconds=float(offsets[k]))
        names = [vocab.names[int(i)] for i in drawn[used:used + int(name_counts[k])]]
        used += int(name_counts[k])
        if joins[k] and state.ids:
            story_id = state.ids[int(rng.integers(len(state.ids)))]
            names = state.names[story_id][:2] + names  # one story's reports share names
            join = {"by": "related", "with": state.founder[story_id], "score": 0.5}
        else:
            story_id = state.next_id
            state.next_id += 1
            stories.append({"id": story_id, "uid": stories_mod.make_story_uid(uid),
                            "published_at": published, "changed_at": published})
            state.ids.append(story_id)
            state.names[story_id] = names
            state.founder[story_id] = uid
            if len(state.ids) > RECENT_STORIES:
                gone = state.ids.pop(0)
                del state.names[gone], state.founder[gone]
            join = {"by": "founder"}
        names = list(dict.fromkeys(names))
        a, b, c = (int(x) for x in text_at[k])
        title, lead, body = text_pool[a:a + 20], text_pool[b:b + 160], text_pool[c:c + 190]
        fingerprint = Fingerprint(signature=signatures[k * 512:(k + 1) * 512],
                                  shingles=int(shingles[k]), title=title, lead=lead,
                                  names=tuple(names))
        digest = hashlib.sha256(f"{uid}\n{body}".encode()).hexdigest()
        link = f"https://bench{source}.example/a/{article_id}"
        articles.append({
            "id": article_id, "uid": uid, "canonical_url": link, "content_hash": digest,
            "title": title, "link": link, "content_html": f"<p>{body}</p>",
            "summary": body[:100], "author": None, "tags": "[]", "extra": "{}",
            "comments": "[]", "published_at": published, "updated_at": published,
            "first_seen_at": published, "changed_at": published, "story_id": story_id,
            **stories_mod.fingerprint_values(fingerprint),
            "story_join": json.dumps(join)})
        links.append({"source_id": source, "article_id": article_id, "item_key": item_key,
                      "link": link, "content_hash": digest, "seen_at": published})
        keys.extend({"key": key, "published_at": published, "article_id": article_id}
                    for key in dict.fromkeys(stored_keys(fingerprint)))
    keys.sort(key=lambda row: row["key"])  # B-tree inserts in order: fewer pages touched
    return stories, articles, links, keys


def stored_keys(fingerprint: Fingerprint) -> tuple[int, ...]:
    """The keys storage.stories stores for an article (its ``_keys``: bands, names, and
    whatever later versions add), or bands + names for a version without ``_keys``."""
    keys: Callable[[Fingerprint], tuple[int, ...]] | None = getattr(stories_mod, "_keys", None)
    return keys(fingerprint) if keys else band_keys(fingerprint) + name_keys(fingerprint)


def _size_mb(path: Path) -> float:
    return sum(os.path.getsize(f"{path}{s}") for s in ("", "-wal")
               if os.path.exists(f"{path}{s}")) / 1e6


# --- measuring ---------------------------------------------------------------------------

@dataclass
class Probe:
    """Counts from inside storage.stories, per assign_stories call (wrappers, ~µs each)."""

    candidates: int = 0  #: stored articles sharing a key (rows of _candidates' SELECT)
    key_rows: int = 0
    stories_scored: int = 0  #: _members calls: related stories scored on title and lead
    cluster_s: float = 0.0
    calls: list[tuple[int, int, int, float]] = field(default_factory=list)

    def reset(self) -> None:
        self.candidates = self.key_rows = self.stories_scored = 0
        self.cluster_s = 0.0


def install_probe(probe: Probe) -> Callable[[], None]:
    """Wrap three functions of storage.stories to count what one ingest did; → undo."""
    load, members, assign = stories_mod._load, stories_mod._members, stories_mod.assign_stories

    # Any signature: the wrappers pass everything on (the module changes over time).
    def counting_load(conn: Any, hits: dict[int, set[int]], *rest: Any, **named: Any) -> Any:
        probe.candidates += len(hits)
        probe.key_rows += sum(len(found) for found in hits.values())
        return load(conn, hits, *rest, **named)

    def counting_members(*args: Any, **named: Any) -> Any:
        probe.stories_scored += 1
        return members(*args, **named)

    def timed_assign(*args: Any, **named: Any) -> Any:
        began = time.perf_counter()
        try:
            return assign(*args, **named)
        finally:
            probe.cluster_s += time.perf_counter() - began

    stories_mod._load = counting_load  # type: ignore[assignment]
    stories_mod._members = counting_members  # type: ignore[assignment]
    stories_mod.assign_stories = timed_assign  # type: ignore[assignment]

    def undo() -> None:
        stories_mod._load, stories_mod._members = load, members  # type: ignore[assignment]
        stories_mod.assign_stories = assign  # type: ignore[assignment]

    return undo


@dataclass
class Timing:
    ms: list[float] = field(default_factory=list)  #: per article: record_success wall time
    cluster_ms: list[float] = field(default_factory=list)  #: of which assign_stories
    candidates: list[int] = field(default_factory=list)
    key_rows: list[int] = field(default_factory=list)
    scored: list[int] = field(default_factory=list)


def ingest(store: Storage, arts: Sequence[Article], batch: int, sources: Sequence[Source],
           probe: Probe) -> Timing:
    """record_success per batch of ``batch`` articles; figures per article."""
    timing = Timing()
    for number, first in enumerate(range(0, len(arts), batch)):
        part = list(arts[first:first + batch])
        now = max(a.published for a in part if a.published) + timedelta(minutes=10)
        probe.reset()
        began = time.perf_counter()
        store.record_success(sources[number % len(sources)].name, part, now=now,
                             next_check=now + timedelta(minutes=30), status=200,
                             caching=CachingInfo())
        elapsed = time.perf_counter() - began
        timing.ms.append(elapsed * 1000 / len(part))
        timing.cluster_ms.append(probe.cluster_s * 1000 / len(part))
        timing.candidates.append(probe.candidates)
        timing.key_rows.append(probe.key_rows)
        timing.scored.append(probe.stories_scored)
    return timing


def key_lookups(store: Storage, arts: Sequence[Article],
                rules: StoryRules) -> tuple[list[float], list[int]]:
    """The SELECT of storage.stories._candidates alone, one new article at a time."""
    window = max(timedelta(days=rules.window_days), timedelta(hours=rules.related_hours))
    times: list[float] = []
    rows: list[int] = []
    with store.engine.connect() as conn:
        for article in arts:
            assert article.fingerprint is not None and article.published is not None
            wanted = sorted(set(stored_keys(article.fingerprint)))
            query = select(keys_t.c.key, keys_t.c.article_id).where(
                keys_t.c.key.in_(wanted),
                keys_t.c.published_at.between(article.published - window,
                                              article.published + window))
            with conn.begin():
                began = time.perf_counter()
                found = conn.execute(query).all()
                times.append((time.perf_counter() - began) * 1000)
            rows.append(len(found))
    return times, rows


def query_plans(store: Storage, call: Callable[[], object]) -> list[tuple[str, list[str]]]:
    """EXPLAIN QUERY PLAN of each distinct SELECT / UPDATE that ``call`` sends."""
    captured: list[tuple[str, Any]] = []

    def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any,
               executemany: bool) -> None:
        if not executemany and statement.lstrip().upper().startswith(("SELECT", "UPDATE")):
            captured.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", before)
    try:
        call()
    finally:
        event.remove(store.engine, "before_cursor_execute", before)
    plans: list[tuple[str, list[str]]] = []
    seen: set[str] = set()
    with store.engine.connect() as conn:
        for statement, parameters in captured:
            if statement in seen:
                continue
            seen.add(statement)
            found = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
            plans.append((statement, [str(row[3]) for row in found]))
        conn.rollback()
    return plans


def _busy_cpu_s() -> float:
    """CPU-seconds the whole machine has been busy (/proc/stat), for the other-load check."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


@dataclass
class SizeResult:
    n: int
    fill: FillStats
    single: Timing
    batched: Timing
    lookup_ms: list[float]
    lookup_rows: list[int]
    outcomes: dict[str, int]
    joined_archive: int
    plans: list[tuple[str, list[str]]]
    size_after_mb: float
    measure_s: float  #: wall time of the measuring phase
    other_cpu_s: float  #: CPU the rest of the machine used meanwhile
    attempts: int = 1


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _fill_params(n: int, args: argparse.Namespace, vocab: Vocabulary,
                 base: Path) -> dict[str, Any]:
    """What a filled archive depends on: --reuse takes one only if all of it matches."""
    names = hashlib.sha256("\n".join(vocab.names).encode()).hexdigest()[:16]
    return {"n": n, "per_day": args.per_day, "seed": args.seed, "top_rank": args.name_top_rank,
            "vocabulary": names, "code": digests(base, FILL_FILES),
            "keys": hashlib.sha256(inspect.getsource(stories_mod._keys).encode()).hexdigest()[:12]
            if hasattr(stories_mod, "_keys") else "bands+names",
            "version": 2}


def _archive_path(n: int, args: argparse.Namespace) -> Path:
    return OUT / f"stories-n{n}-r{args.per_day:g}.db"


def archive(n: int, args: argparse.Namespace, vocab: Vocabulary, chars: list[str],
            p: np.ndarray, sources: Sequence[Source], base: Path) -> FillStats:
    """The filled archive of size n, bench/out/stories-n<N>.db: filled now, or reused."""
    path = _archive_path(n, args)
    meta = path.with_suffix(".json")
    params = _fill_params(n, args, vocab, base)
    if args.reuse and path.exists() and meta.exists():
        saved = json.loads(meta.read_text(encoding="utf-8"))
        if saved.get("params") == params:
            print(f"n={n:,}: reusing {path.relative_to(ROOT)} (filled in "
                  f"{saved['stats']['seconds']:.1f} s)", flush=True)
            return FillStats(**saved["stats"])
        print(f"n={n:,}: {path.relative_to(ROOT)} was filled with other parameters",
              flush=True)
    meta.unlink(missing_ok=True)
    print(f"n={n:,}: filling {path.relative_to(ROOT)}", flush=True)
    stats = fill(path, n, args.per_day, vocab, chars, p, args.seed + n, sources)
    print(f"  filled in {stats.seconds:.1f} s: {stats.stories:,} stories, "
          f"{stats.key_rows:,} key rows, {stats.size_mb:,.0f} MB", flush=True)
    meta.write_text(json.dumps({"params": params, "stats": stats.__dict__}), encoding="utf-8")
    return stats


def wait_for_quiet(seconds: float) -> float:
    """Up to ``seconds`` for a 5 s window in which the machine is nearly idle; → busy cores
    of the last window (the measurement goes ahead either way)."""
    load = float("nan")
    deadline = time.monotonic() + seconds
    for _ in range(max(1, int(seconds / 5) + 1)):
        busy = _busy_cpu_s()
        time.sleep(5)
        load = (_busy_cpu_s() - busy) / 5
        if load < 0.15 or time.monotonic() >= deadline:
            break
    return load


def measure_quietly(n: int, pristine: Path, stats: FillStats, args: argparse.Namespace,
                    new: NewSet, sources: Sequence[Source]) -> SizeResult:
    """Measure; again, up to --attempts times, while the rest of the machine used more than
    --max-other of it meanwhile (the quietest attempt counts)."""
    best: SizeResult | None = None
    cpus = os.cpu_count() or 1
    attempts = 0
    for _ in range(args.attempts):
        attempts += 1
        result = measure(n, pristine, stats, args, new, sources)
        if best is None or result.other_cpu_s / result.measure_s < \
                best.other_cpu_s / best.measure_s:
            best = result
        if result.other_cpu_s / result.measure_s / cpus <= args.max_other:
            break
        print(f"  other load over {args.max_other:.0%}: measuring again", flush=True)
    assert best is not None
    best.attempts = attempts
    return best


def measure(n: int, pristine: Path, stats: FillStats, args: argparse.Namespace, new: NewSet,
            sources: Sequence[Source]) -> SizeResult:
    # On a copy, so the filled archive can be measured again (attempts, --keep, --reuse).
    path = pristine.with_name(pristine.stem + "-measured.db")
    _remove(path)
    shutil.copyfile(pristine, path)
    # On disk before measuring: else the first checkpoint's fsync would write the whole
    # copy out, a stall that is the benchmark's, not the clustering's.
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    load = wait_for_quiet(args.quiet_wait)
    print(f"  measuring on a copy; machine busy before: {load:.2f} cores", flush=True)
    rules = StoryRules()
    store = open_storage(f"sqlite:///{path}", rules)
    if args.cache_mib:
        kib = args.cache_mib * 1024

        def bigger_cache(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA cache_size=-{kib}")
            cursor.close()

        event.listen(store.engine, "connect", bigger_cache)
        store.engine.dispose()  # the schema's connection had the default cache
    probe = Probe()
    undo = install_probe(probe)
    began, busy, own = time.perf_counter(), _busy_cpu_s(), _own_cpu_s()
    try:
        warm, single = new.articles[:WARMUP], new.articles[WARMUP:WARMUP + args.new]
        batched = new.articles[WARMUP + args.new:]
        plans = query_plans(store, lambda: ingest(store, warm[:1], 1, sources, probe))
        ingest(store, warm[1:], 1, sources, probe)
        lookup_ms, lookup_rows = key_lookups(store, single, rules)
        print(f"  key lookup alone: median {np.median(lookup_ms):.2f} ms, "
              f"{np.median(lookup_rows):.0f} rows", flush=True)
        one = ingest(store, single, 1, sources, probe)
        print(f"  one article per call: median {np.median(one.ms):.2f} ms, "
              f"p90 {np.percentile(one.ms, 90):.2f}, p99 {np.percentile(one.ms, 99):.2f}",
              flush=True)
        many = ingest(store, batched, args.batch, sources, probe)
        print(f"  batches of {args.batch}: median {np.median(many.ms):.2f} ms per article",
              flush=True)
        with store.engine.connect() as conn:
            joins = conn.execute(select(articles_t.c.story_join)
                                 .where(articles_t.c.id > n)).scalars().all()
            joined_archive = conn.execute(
                select(text("count(*)")).select_from(articles_t)
                .where(articles_t.c.id > n, articles_t.c.story_id <= stats.stories)).scalar()
        outcomes = dict(Counter(json.loads(j).get("by", "?") for j in joins))
        measure_s = time.perf_counter() - began
        other = max(0.0, (_busy_cpu_s() - busy) - (_own_cpu_s() - own))
        print(f"  measured in {measure_s:.1f} s; other load meanwhile {other:.1f} CPU-s "
              f"({other / measure_s / (os.cpu_count() or 1):.0%} of the machine)", flush=True)
    finally:
        undo()
        store.close()
    size_after = _size_mb(path)
    _remove(path)
    return SizeResult(n, stats, one, many, lookup_ms, lookup_rows, outcomes,
                      int(joined_archive or 0), plans, size_after, measure_s, other)


# --- report ------------------------------------------------------------------------------

def _run(command: Sequence[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=30,
                              check=False).stdout.rstrip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def machine() -> dict[str, str]:
    model = next((line.split(":", 1)[1].strip() for line in _run(["lscpu"]).splitlines()
                  if line.startswith("Model name")), "?")
    mem = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), "0")
    dirty = _run(["git", "status", "--porcelain", "--", *CLUSTER_FILES])
    return {"nproc": _run(["nproc"]), "cpu": model,
            "ram": f"{int(mem) / 2**20:.1f} GiB (MemTotal {int(mem):,} kB)",
            "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
            "commit": _run(["git", "rev-parse", "--short", "HEAD"]),
            "dirty": ", ".join(line[3:] for line in dirty.splitlines()) or "none"}


def digests(base: Path, names: Sequence[str] = CLUSTER_FILES) -> dict[str, str]:
    return {name: hashlib.sha256((base / name).read_bytes()).hexdigest()[:12]
            for name in names}


def freeze(code: str) -> tuple[Path, str]:
    """The code to measure, under bench/out/code/: ``worktree`` (crawler/ and storage/ as
    they are now) or a git revision (``git archive``); → (its folder, how to call it)."""
    if code != "worktree":
        commit = _run(["git", "rev-parse", "--short", f"{code}^{{commit}}"])
        if not re.fullmatch(r"[0-9a-f]{4,40}", commit):
            raise SystemExit(f"--code {code}: not a git revision")
        dest = OUT / "code" / f"stories-git-{commit}"
        label = f"git export of `{commit}`"
    else:
        digest = hashlib.sha256()
        for package in ("crawler", "storage"):
            for path in sorted((ROOT / package).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0")
                    digest.update(path.read_bytes())
        dest = OUT / "code" / f"stories-{digest.hexdigest()[:12]}"
        label = "frozen copy of the worktree at start"
    if not dest.exists():
        partial = dest.with_name(dest.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        if code != "worktree":
            partial.mkdir(parents=True)
            exported = subprocess.run(["git", "archive", "--format=tar", commit, "crawler",
                                       "storage"], cwd=ROOT, capture_output=True, timeout=120,
                                      check=True).stdout
            with tarfile.open(fileobj=io.BytesIO(exported)) as archive_file:
                archive_file.extractall(partial, filter="data")
        else:
            for package in ("crawler", "storage"):
                shutil.copytree(ROOT / package, partial / package,
                                ignore=shutil.ignore_patterns("__pycache__"))
        partial.rename(dest)
    return dest, f"{label} (`{dest.relative_to(ROOT)}`)"


def _pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def report(rounds: Sequence[Sequence[SizeResult]], args: argparse.Namespace,
           info: dict[str, str],
           sums: dict[str, str], started: datetime, new: NewSet, vocab: Vocabulary) -> str:
    command = ".venv/bin/python bench/stories.py " + " ".join(sys.argv[1:])
    lines = [
        f"Run: {started:%a %b %d %H:%M} UTC {started:%Y}, commit `{info['commit']}`; code: "
        f"{info['code']} (uncommitted or untracked clustering files: {info['dirty']}; "
        "SHA-256 prefixes: "
        + ", ".join(f"`{k}` {v}" for k, v in sums.items()) + ").",
        "",
        f"Machine: `nproc` {info['nproc']}, `{info['cpu']}`, RAM {info['ram']}; "
        f"Python {info['python']}, SQLite {info['sqlite']}. SQLite page cache of the "
        "measured connections: " + (f"{args.cache_mib} MiB (`--cache-mib`, an experiment: "
                                    "storage/engine.py does not set it)" if args.cache_mib
                                    else "SQLite's default 2 MiB (storage/engine.py sets "
                                    "none)") + ".",
        "", "```bash", command, "```", "",
        f"Archive: published at {args.per_day:,.0f} articles a day up to {END:%Y-%m-%d}, so "
        f"the 7-day candidate window holds {7 * args.per_day:,.0f} stored articles and the "
        f"48-hour window {2 * args.per_day:,.0f}, whatever N is. New articles: {args.new} "
        f"one per `record_success` call, then {args.new} in batches of {args.batch}, after "
        f"{WARMUP} warm-up calls; kinds of the timed ones: "
        + ", ".join(f"{k} {v}" for k, v in sorted(Counter(new.kinds[WARMUP:]).items()))
        + f". Their {len(vocab.real_ranks)} distinct uncommon names sit at log-uniform "
        f"Zipf ranks 1-{args.name_top_rank:,} of {VOCABULARY:,} archive names "
        f"(p(rank k) ∝ 1/(k + {ZIPF_Q:g})^{ZIPF_S:g}, {NAMES_PER_ARTICLE[0]}-"
        f"{NAMES_PER_ARTICLE[1]} names per archive article, and a story's members share 2).",
        "", f"{len(rounds)} round(s), the sizes interleaved in each; a figure is the median "
        "over the rounds of that round's figure (percentiles over the calls of a round).",
        "",
        "| N | fill s | DB MB | median ms | p90 ms | p99 ms | of which clustering (median ms) "
        "| candidates (median) | stories scored (median) | key SELECT alone (median ms) "
        f"| batches of {args.batch}: median ms / article | p90 "
        "| median of each round (one per call) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for column, n in enumerate(args.sizes):
        runs = [round_[column] for round_ in rounds]
        r = runs[-1]

        def mid(figure: Callable[[SizeResult], float], runs: list[SizeResult] = runs) -> float:
            return float(np.median([figure(run) for run in runs]))

        per_round = ", ".join(f"{_pct(run.single.ms, 50):.2f}" for run in runs)
        lines.append(
            f"| {n:,} | {r.fill.seconds:,.0f} | {r.fill.size_mb:,.0f} "
            f"| **{mid(lambda x: _pct(x.single.ms, 50)):.2f}** "
            f"| {mid(lambda x: _pct(x.single.ms, 90)):.2f} "
            f"| {mid(lambda x: _pct(x.single.ms, 99)):.2f} "
            f"| {mid(lambda x: _pct(x.single.cluster_ms, 50)):.2f} "
            f"| {mid(lambda x: _pct(x.single.candidates, 50)):.0f} "
            f"| {mid(lambda x: _pct(x.single.scored, 50)):.0f} "
            f"| {mid(lambda x: _pct(x.lookup_ms, 50)):.2f} "
            f"| {mid(lambda x: _pct(x.batched.ms, 50)):.2f} "
            f"| {mid(lambda x: _pct(x.batched.ms, 90)):.2f} | {per_round} |")
    results = rounds[-1]
    lines += ["", "Outcome of all new articles incl. warm-up (`story_join.by`), last round: "
              + "; ".join(
        f"{r.n:,}: " + ", ".join(f"{k} {v}" for k, v in sorted(r.outcomes.items()))
        + f" (joined a synthetic archive story: {r.joined_archive})" for r in results) + ".",
        "", "Other load on the machine while measuring (CPU-s not ours / wall s of the "
        "measuring phase), per round: " + "; ".join(
            f"{r.n:,}: {r.other_cpu_s:.1f} / {r.measure_s:.1f}"
            + (f" (quietest of {r.attempts} attempts)" if r.attempts > 1 else "")
            for round_ in rounds for r in round_) + ".",
        "", "Query plans (`EXPLAIN QUERY PLAN`) of the SELECTs and UPDATEs of one ingest, "
        f"at N = {results[-1].n:,}:", "", "```"]
    for statement, plan in results[-1].plans:
        lines.append(re.sub(r"\s+", " ", statement)[:160])
        lines += [f"    {step}" for step in plan]
    lines.append("```")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--new", type=int, default=300, help="new articles per variant")
    parser.add_argument("--batch", type=int, default=30, help="batch size, second variant")
    parser.add_argument("--per-day", type=float, default=1000.0,
                        help="archive articles published per day")
    parser.add_argument("--name-top-rank", type=int, default=REAL_NAME_TOP_RANK,
                        help="the new articles' names sit at log-uniform Zipf ranks 1..this")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", action="store_true", help="keep the database files")
    parser.add_argument("--reuse", action="store_true",
                        help="measure archives kept by an earlier --keep run with the same "
                             "parameters and code, instead of filling them again")
    parser.add_argument("--quiet-wait", type=float, default=120.0,
                        help="seconds to wait for an idle machine before each measurement")
    parser.add_argument("--code", default="worktree",
                        help="code measured: 'worktree' (a copy made at start) or a git "
                             "revision (exported with git archive)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure every size this many times, interleaved")
    parser.add_argument("--attempts", type=int, default=3,
                        help="measurements per size at most, while the machine is busy")
    parser.add_argument("--max-other", type=float, default=0.10,
                        help="share of the machine others may use during a measurement")
    parser.add_argument("--cache-mib", type=int, default=0,
                        help="experiment: SQLite page cache per measured connection, MiB "
                             "(default: what storage/engine.py leaves, SQLite's 2 MiB)")
    parser.add_argument("--live", action="store_true",
                        help="measure the worktree as imported, not a frozen copy")
    args = parser.parse_args(argv)
    code = os.environ.get(CODE_ENV)
    if code is None and not args.live:
        # The repository may be edited during the run: the child imports a frozen copy
        # (PYTHONPATH comes before the editable install's finder; -P keeps bench/ off).
        OUT.mkdir(parents=True, exist_ok=True)
        frozen, label = freeze(args.code)
        env = {**os.environ, CODE_ENV: str(frozen), LABEL_ENV: label, "PYTHONPATH": os.pathsep.join(
            [str(frozen), *filter(None, [os.environ.get("PYTHONPATH")])])}
        argv = sys.argv[1:] if argv is None else list(argv)
        return subprocess.run([sys.executable, "-P", str(Path(__file__).resolve()), *argv],
                              env=env, cwd=ROOT, check=False).returncode
    base = Path(code) if code else ROOT
    if not Path(stories_mod.__file__).resolve().is_relative_to(base.resolve()):
        raise SystemExit(f"storage.stories comes from {stories_mod.__file__}, not {base}")
    if min(args.new, args.batch, args.attempts, args.rounds, *args.sizes) < 1:
        parser.error("--new, --batch, --attempts, --rounds and --sizes must be positive")
    started = datetime.now(UTC)
    info, sums = machine(), digests(base)
    info["code"] = (os.environ.get(LABEL_ENV, str(base)) if code
                    else "the worktree as imported at start (`--live`)")
    OUT.mkdir(parents=True, exist_ok=True)
    free = os.statvfs(OUT).f_bavail * os.statvfs(OUT).f_frsize
    if free < 6000 * max(args.sizes) * 2 + (sum(args.sizes) * 6000 if args.keep else 0):
        raise SystemExit(f"not enough disk under {OUT}: {free / 1e9:.1f} GB free")

    fixtures = load_fixtures(END)
    step = timedelta(days=1 / args.per_day)
    new = make_new_articles(fixtures, WARMUP + 2 * args.new, END + step, step, args.seed)
    real = sorted({name for a in new.articles if a.fingerprint
                   for name in a.fingerprint.names
                   if not name.startswith("#") and name not in COMMON_NAMES})
    print(f"{len(new.articles)} new articles from {len(fixtures)} fixtures "
          f"({dict(Counter(new.kinds))}); {len(real)} distinct uncommon names", flush=True)
    chars, p = char_pool(fixtures)
    vocab = make_vocabulary(chars, p, real, np.random.default_rng(args.seed),
                            args.name_top_rank)
    sources = [Source(name=f"bench-src-{i:03d}", url=f"https://bench{i}.example/feed")
               for i in range(1, SOURCES + 1)]
    print(f"assumption: {args.per_day:,.0f} articles a day, so the windows hold the same "
          f"number of articles whatever N is ({7 * args.per_day:,.0f} in 7 days)", flush=True)

    stats = {n: archive(n, args, vocab, chars, p, sources, base) for n in args.sizes}
    rounds: list[list[SizeResult]] = []
    try:
        for number in range(1, args.rounds + 1):
            print(f"round {number} of {args.rounds}", flush=True)
            rounds.append([measure_quietly(n, _archive_path(n, args), stats[n], args, new,
                                           sources) for n in args.sizes])
    finally:
        if not args.keep:
            for n in args.sizes:
                _remove(_archive_path(n, args))
                _archive_path(n, args).with_suffix(".json").unlink(missing_ok=True)
    text_out = report(rounds, args, info, sums, started, new, vocab)
    if args.code == "worktree" and digests(ROOT) != sums:
        text_out += ("\nNote: the worktree's clustering files differ from the code measured "
                     "(edited during the run, or since the frozen copy was made).\n")
    path = OUT / f"stories-{started:%Y%m%dT%H%M%S}.md"
    path.write_text(text_out, encoding="utf-8")
    raw = {"args": vars(args), "code": info["code"], "digests": sums, "sizes": [
        {"n": r.n, "fill": r.fill.__dict__, "single": r.single.__dict__,
         "batched": r.batched.__dict__, "lookup_ms": r.lookup_ms, "lookup_rows": r.lookup_rows,
         "other_cpu_s": r.other_cpu_s, "measure_s": r.measure_s, "attempts": r.attempts,
         "round": number} for number, round_ in enumerate(rounds, 1) for r in round_]}
    path.with_suffix(".json").write_text(json.dumps(raw), encoding="utf-8")
    print("\n" + text_out + f"\n(written to {path.relative_to(ROOT)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
