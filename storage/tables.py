"""SQLModel table classes only. Mapped to and from crawler.types in storage/convert.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Index,
    LargeBinary,
    PrimaryKeyConstraint,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in, aware UTC out, on SQLite too (which keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r} refused; use UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = value
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)


def _utc_column(*, nullable: bool = True, index: bool = False) -> Any:
    return Column(UTCDateTime(), nullable=nullable, index=index)


class SourceRow(SQLModel, table=True):
    __tablename__ = "sources"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=200)
    url: str = Field(sa_type=Text)
    format: str = Field(default="feed", max_length=40)
    enabled: bool = True
    priority: int = 0  #: feeds.yaml's: which source's article represents a story
    #: digest of the settings that change what a body parses into (format, encoding, site,
    #: language, full_text): when it changes, the stored validators no longer describe what
    #: was stored, so the next fetch is unconditional and the body is parsed again
    parse_key: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))


class FetchStateRow(SQLModel, table=True):
    """Scheduling state kept in the database, so a restart does not refetch everything."""

    __tablename__ = "fetch_state"

    source_id: int = Field(primary_key=True, foreign_key="sources.id", ondelete="CASCADE")
    etag: str | None = Field(default=None, sa_type=Text)
    last_modified: str | None = Field(default=None, max_length=100)
    body_hash: str | None = Field(default=None, max_length=64)
    failed_body_hash: str | None = Field(default=None, max_length=64)
    last_fetch_at: datetime | None = Field(default=None, sa_column=_utc_column())
    last_success_at: datetime | None = Field(default=None, sa_column=_utc_column())
    last_status: int | None = None
    last_error: str | None = Field(default=None, sa_type=Text)
    error_count: int = 0
    next_check_at: datetime | None = Field(default=None, sa_column=_utc_column(index=True))
    lease_until: datetime | None = Field(default=None, sa_column=_utc_column())
    lease_owner: str | None = Field(default=None, max_length=100)
    #: where a 301/308 sent us; fetched instead of feeds.yaml's url until that url changes
    moved_to: str | None = Field(default=None, sa_type=Text)
    #: why the source is not fetched any more (410 Gone); a forced crawl or a new url clears it
    stopped: str | None = Field(default=None, sa_type=Text)
    #: JSON of crawler.types.PublisherHints from the last body parsed, applied on 304s too
    hints: str | None = Field(default=None, sa_type=Text)


class HostRow(SQLModel, table=True):
    """When each host may be sent its next request (settings.host_delay), shared by every
    worker on the database."""

    __tablename__ = "hosts"

    name: str = Field(primary_key=True, max_length=255)
    next_request_at: datetime = Field(sa_column=_utc_column(nullable=False))


class ArticleRow(SQLModel, table=True):
    __tablename__ = "articles"
    __table_args__ = (Index("ix_articles_published", "published_at"),)

    id: int | None = Field(default=None, primary_key=True)
    uid: str = Field(unique=True, max_length=64)
    canonical_url: str | None = Field(default=None, sa_type=Text, index=True)
    content_hash: str = Field(max_length=64, index=True)
    title: str = Field(sa_type=Text)
    link: str | None = Field(default=None, sa_type=Text)
    content_html: str = Field(sa_type=Text)
    summary: str = Field(sa_type=Text)
    author: str | None = Field(default=None, sa_type=Text)
    tags: str = Field(default="[]", sa_type=Text)  #: JSON list
    extra: str = Field(default="{}", sa_type=Text)  #: JSON object: dateline, credit, ...
    comments: str = Field(default="[]", sa_type=Text)  #: JSON list of Comment
    published_at: datetime = Field(sa_column=_utc_column(nullable=False))
    updated_at: datetime = Field(sa_column=_utc_column(nullable=False))
    first_seen_at: datetime = Field(sa_column=_utc_column(nullable=False))
    changed_at: datetime = Field(sa_column=_utc_column(nullable=False, index=True))
    story_id: int | None = Field(default=None, foreign_key="stories.id", index=True)
    #: the fingerprint (crawler.types.Fingerprint) the story was decided on
    signature: bytes | None = Field(default=None, sa_type=LargeBinary)
    shingles: int = 0
    fp_title: str = Field(default="", sa_type=Text)
    fp_lead: str = Field(default="", sa_type=Text)
    fp_names: str = Field(default="[]", sa_type=Text)  #: JSON list
    #: how the article came into its story: JSON {"by", "with" (article uid), "score"}
    story_join: str = Field(default="{}", sa_type=Text)
    #: BCP 47 tag: the source's language:, the feed's, or the script detected
    language: str = Field(default="", max_length=35)
    #: characters of plain text; NULL for articles stored before schema 3
    text_length: int | None = None
    #: plain text folded as output rules compare it; NULL before schema 3 (folded on read)
    search_text: str | None = Field(default=None, sa_type=Text)


class StoryRow(SQLModel, table=True):
    """Articles telling one story; its uid is the item id of the story in every output."""

    __tablename__ = "stories"

    id: int | None = Field(default=None, primary_key=True)
    uid: str = Field(unique=True, max_length=64)
    #: the earliest member's date: the story's place in an output
    published_at: datetime = Field(sa_column=_utc_column(nullable=False, index=True))
    #: moves when a member joins: what a served output's version watches
    changed_at: datetime = Field(sa_column=_utc_column(nullable=False, index=True))


class ArticleKeyRow(SQLModel, table=True):
    """LSH band keys and name keys: finding candidate stories is an index range scan."""

    __tablename__ = "article_keys"
    __table_args__ = (PrimaryKeyConstraint("key", "published_at", "article_id"),
                      {"sqlite_with_rowid": False})

    key: int = Field(sa_column=Column(BigInteger, nullable=False))
    published_at: datetime = Field(sa_column=_utc_column(nullable=False))
    article_id: int = Field(foreign_key="articles.id", ondelete="CASCADE")


class ArticleSourceRow(SQLModel, table=True):
    """One article as one source carries it: the per-source identity lives here."""

    __tablename__ = "article_sources"
    __table_args__ = (UniqueConstraint("source_id", "item_key", name="uq_source_item"),)

    id: int | None = Field(default=None, primary_key=True)
    source_id: int = Field(foreign_key="sources.id", index=True, ondelete="CASCADE")
    article_id: int = Field(foreign_key="articles.id", index=True, ondelete="CASCADE")
    item_key: str = Field(sa_type=Text)
    link: str | None = Field(default=None, sa_type=Text)
    content_hash: str = Field(max_length=64)
    seen_at: datetime = Field(sa_column=_utc_column(nullable=False))
