"""The only package that talks to the database.

``open_storage(url)`` → :class:`Storage`, whose methods are the questions the rest of the
program asks, each in its own short transaction. SQLAlchemy errors leave as StorageError.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from crawler.errors import StorageError
from crawler.types import (
    Article,
    CachingInfo,
    Candidate,
    FetchState,
    PublisherHints,
    Source,
    SourceStatus,
    StoredArticle,
    StoreResult,
    StoryExplanation,
    StoryRules,
)
from storage import articles, outputs, sources, stories
from storage.engine import WRITE, make_engine
from storage.schema import create_schema

SYNC_LOCK = 0x73796E63  #: advisory lock key for sync_sources on PostgreSQL


class Storage:
    def __init__(self, engine: Engine, story_rules: StoryRules | None = None) -> None:
        self.engine = engine
        #: how articles are grouped into stories; the daemon replaces it on a reload
        self.story_rules = story_rules or StoryRules()

    @contextmanager
    def _transaction(self, what: str, *, writes: bool = False) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                conn.execution_options(**{WRITE: writes})
                with conn.begin():
                    yield conn
        except SQLAlchemyError as exc:
            raise StorageError(f"{what}: {type(exc).__name__}: {exc}".splitlines()[0]) from exc

    def close(self) -> None:
        self.engine.dispose()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def sync_sources(self, configured: Sequence[Source], now: datetime) -> None:
        """Daemons starting together may sync at once: PostgreSQL takes turns under an
        advisory lock; on SQLite the loser of the race sees the rows on its retry."""
        for attempt in range(3):
            try:
                with self._transaction("syncing sources", writes=True) as conn:
                    if conn.dialect.name == "postgresql":
                        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                     {"key": SYNC_LOCK})
                    sources.sync_sources(conn, configured, now)
                return
            except StorageError as exc:
                if not isinstance(exc.__cause__, IntegrityError) or attempt == 2:
                    raise

    def caching_info(self, name: str) -> CachingInfo:
        return self.fetch_states([name]).get(name, FetchState()).caching

    def fetch_states(self, names: Sequence[str]) -> dict[str, FetchState]:
        with self._transaction("reading fetch state") as conn:
            return sources.fetch_states(conn, names)

    def claim(self, *, now: datetime, lease: timedelta, owner: str,
              names: Sequence[str] | None = None, due_only: bool = True,
              force: bool = False, limit: int = 100_000) -> list[str]:
        with self._transaction("claiming sources", writes=True) as conn:
            return sources.claim(conn, now=now, lease=lease, owner=owner, names=names,
                                 due_only=due_only, force=force, limit=limit)

    def reserve_host_slot(self, host: str, *, now: datetime, gap: timedelta) -> datetime:
        """When the next request to ``host`` may be sent (settings.host_delay)."""
        with self._transaction(f"reserving a request to {host}", writes=True) as conn:
            return sources.reserve_host_slot(conn, host, now=now, gap=gap)

    def lease_owners(self, prefix: str, now: datetime) -> list[str]:
        with self._transaction("reading leases") as conn:
            return sources.lease_owners(conn, prefix, now)

    def release_owners(self, owners: Sequence[str]) -> int:
        if not owners:
            return 0
        with self._transaction("releasing the leases of dead workers", writes=True) as conn:
            return sources.release_owners(conn, owners)

    def release(self, names: Sequence[str], owner: str) -> None:
        if names:
            with self._transaction("releasing leases", writes=True) as conn:
                sources.release(conn, names, owner)

    def record_success(
        self, name: str, found: Sequence[Article], *, now: datetime, next_check: datetime,
        status: int, caching: CachingInfo, moved_to: str | None = None,
        hints: PublisherHints | None = None,
    ) -> StoreResult:
        """Articles, validators and state of one fetch, in one transaction: all or nothing."""
        with self._transaction(f"storing {name}", writes=True) as conn:
            source_id = self._source_id(conn, name)
            result = articles.upsert_articles(conn, source_id, name, found, now,
                                              self.story_rules)
            sources.record_outcome(conn, source_id, now=now, next_check=next_check,
                                   status=status, error=None, caching=caching,
                                   moved_to=moved_to, hints=hints)
            return result

    def record_not_modified_many(
        self, unchanged: Sequence[tuple[str, CachingInfo, datetime, int]], *, now: datetime
    ) -> None:
        """304s carry no articles, so many share one transaction (a warm round is mostly
        304s, and a commit per source would be most of its cost)."""
        if not unchanged:
            return
        with self._transaction(f"recording {len(unchanged)} 304s", writes=True) as conn:
            for name, caching, next_check, status in unchanged:
                sources.record_outcome(conn, self._source_id(conn, name), now=now,
                                       next_check=next_check, status=status, error=None,
                                       caching=caching)

    def record_error(self, name: str, error: str, *, now: datetime, status: int | None,
                     next_check: datetime, failed_body_hash: str | None = None,
                     stop: str | None = None) -> None:
        with self._transaction(f"recording error for {name}", writes=True) as conn:
            sources.record_outcome(conn, self._source_id(conn, name), now=now,
                                   next_check=next_check, status=status, error=error,
                                   caching=None, failed_body_hash=failed_body_hash, stop=stop)

    def known_items(self, name: str, keys: Sequence[str]) -> dict[str, str]:
        """item_key → content_hash of the given keys this source has stored already."""
        with self._transaction(f"reading items of {name}") as conn:
            return articles.known_items(conn, self._source_id(conn, name), keys)

    def story_of_source_item(self, name: str, item_key: str) -> str | None:
        """The story uid of the article a source carries under this item key."""
        with self._transaction(f"reading the story of an item of {name}") as conn:
            return stories.story_of_item(conn, self._source_id(conn, name), item_key)

    def explain(self, canonical: str | None, link: str) -> StoryExplanation | None:
        """The story of the article with this canonical URL (or exact link)."""
        with self._transaction("reading a story") as conn:
            return stories.explain(conn, canonical, link, self.story_rules)

    def statuses(self) -> list[SourceStatus]:
        with self._transaction("reading status") as conn:
            return sources.statuses(conn)

    def next_due(self) -> datetime | None:
        with self._transaction("reading schedule") as conn:
            return sources.next_due(conn)

    def backlog(self) -> tuple[datetime | None, int]:
        """When the most overdue source was due, and how many sources are in back-off;
        one short read transaction, for /metrics."""
        with self._transaction("reading the backlog") as conn:
            return sources.next_due(conn), sources.in_backoff(conn)

    def articles_for_output(self, names: Sequence[str] | None, limit: int,
                            collapse: str = "article") -> tuple[StoredArticle, ...]:
        """Newest first: every article, or (collapse="story") one item per story."""
        with self._transaction("reading articles") as conn:
            return articles.articles_for_output(conn, names, limit, collapse)

    def content_version(self) -> tuple[Any, ...]:
        """Changes whenever any output could; cheap (index lookups)."""
        with self._transaction("reading the content version") as conn:
            return outputs.content_version(conn)

    def output_candidates(self, names: Sequence[str] | None, *, since: datetime | None,
                          min_length: int, after: tuple[datetime, int] | None,
                          limit: int) -> list[Candidate]:
        """A page of what output rules look at, newest first (storage.outputs)."""
        with self._transaction("reading output candidates") as conn:
            return outputs.candidates(conn, names, since=since, min_length=min_length,
                                      after=after, limit=limit)

    def candidate(self, uid: str) -> Candidate | None:
        """What output rules see of the article with this uid."""
        with self._transaction("reading an article") as conn:
            return outputs.candidate_by_uid(conn, uid)

    def story_members(self, story_ids: Sequence[int],
                      names: Sequence[str] | None) -> list[Candidate]:
        with self._transaction("reading story members") as conn:
            return outputs.story_members(conn, story_ids, names)

    def output_items(self, chosen: Sequence[tuple[int, Sequence[int]]],
                     stories: bool) -> dict[int, StoredArticle]:
        """The chosen articles in full, with their story's others as "also reported by"."""
        with self._transaction("reading output items") as conn:
            return outputs.items(conn, chosen, stories)

    @staticmethod
    def _source_id(conn: Connection, name: str) -> int:
        found = sources.source_id(conn, name)
        if found is None:
            raise StorageError(f"no source named {name!r} in the database")
        return found


def open_storage(url: str, story_rules: StoryRules | None = None) -> Storage:
    try:
        engine = make_engine(url)
        create_schema(engine)
    except SQLAlchemyError as exc:
        raise StorageError(f"cannot open the database {_redact(url)}: {exc}".splitlines()[0]) \
            from exc
    return Storage(engine, story_rules)


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparseable URL is shown as given, minus nothing secret to hide
        return url


__all__ = ["Storage", "open_storage"]
