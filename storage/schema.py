"""Schema creation and its version; migrations are added here as ordered steps."""

from __future__ import annotations

import time

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    Table,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import OperationalError
from sqlmodel import SQLModel

import storage.tables

VERSION = 4
_meta = MetaData()
schema_version = Table("schema_version", _meta, Column("version", Integer, nullable=False))
#: any constant; daemons starting together on one PostgreSQL take turns creating the schema
_SCHEMA_LOCK = 0x63726177


def create_schema(engine: Engine) -> None:
    """Create what is missing; refuse a database written by a newer version of us."""
    for attempt in range(5):
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                 {"key": _SCHEMA_LOCK})
                _create(conn)
            return
        except OperationalError as exc:
            # SQLite has no such lock: a second process racing us sees "already exists".
            if "already exists" not in str(exc) or attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))


def _create(conn: Connection) -> None:
    _meta.create_all(conn)
    found = conn.execute(select(schema_version.c.version)).scalar()
    if found is not None and found > VERSION:
        raise RuntimeError(
            f"the database has schema version {found}; this program knows up to {VERSION}"
        )
    if found is not None:
        for step in range(found, VERSION):
            _MIGRATIONS[step](conn)
    SQLModel.metadata.create_all(conn)
    if found is None:
        conn.execute(insert(schema_version).values(version=VERSION))
    elif found < VERSION:
        if found < 2:
            _give_every_article_a_story(conn)
        conn.execute(update(schema_version).values(version=VERSION))


# Version 2 groups articles into stories: new columns on articles, and two new tables
# (create_all makes those).
_V2_COLUMNS = (
    ("story_id", "INTEGER REFERENCES stories (id)"),
    ("signature", "BYTEA"),
    ("shingles", "INTEGER NOT NULL DEFAULT 0"),
    ("fp_title", "TEXT NOT NULL DEFAULT ''"),
    ("fp_lead", "TEXT NOT NULL DEFAULT ''"),
    ("fp_names", "TEXT NOT NULL DEFAULT '[]'"),
    ("story_join", "TEXT NOT NULL DEFAULT '{}'"),
)


def _to_v2(conn: Connection) -> None:
    # The foreign key needs the table it names: stories comes first.
    storage.tables.StoryRow.__table__.create(conn, checkfirst=True)  # type: ignore[attr-defined]
    for name, kind in _V2_COLUMNS:
        if conn.dialect.name == "sqlite":
            kind = kind.replace("BYTEA", "BLOB")
        conn.execute(text(f"ALTER TABLE articles ADD COLUMN {name} {kind}"))
    conn.execute(text("CREATE INDEX ix_articles_story_id ON articles (story_id)"))
    conn.execute(text("ALTER TABLE sources ADD COLUMN priority INTEGER NOT NULL DEFAULT 0"))


def _give_every_article_a_story(conn: Connection) -> None:
    """Articles stored before stories existed have no fingerprint: each is its own story."""
    from storage.stories import make_story_uid, stories_t

    articles_t = storage.tables.ArticleRow.__table__  # type: ignore[attr-defined]
    rows = conn.execute(select(articles_t.c.id, articles_t.c.uid, articles_t.c.published_at,
                               articles_t.c.changed_at)
                        .where(articles_t.c.story_id.is_(None))).all()
    for row in rows:
        story_id = conn.execute(insert(stories_t).returning(stories_t.c.id).values(
            uid=make_story_uid(row.uid), published_at=row.published_at,
            changed_at=row.changed_at)).scalar_one()
        conn.execute(update(articles_t).where(articles_t.c.id == row.id)
                     .values(story_id=story_id, story_join='{"by": "founder"}'))


# Version 3 gives output rules what they compare without reading the body HTML: the
# language, the text's length and its folded form. Older rows keep NULL and are folded when
# read.
def _to_v3(conn: Connection) -> None:
    conn.execute(text("ALTER TABLE articles ADD COLUMN language VARCHAR(35) NOT NULL DEFAULT ''"))
    conn.execute(text("ALTER TABLE articles ADD COLUMN text_length INTEGER"))
    conn.execute(text("ALTER TABLE articles ADD COLUMN search_text TEXT"))
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_stories_changed_at ON stories (changed_at)"))


# Version 4 keeps what politeness needs across restarts: a permanent redirect's target,
# why a source was stopped, and the publisher's hints (the hosts table is created whole);
# and which parse settings the stored articles of a source were made with.
def _to_v4(conn: Connection) -> None:
    for column in ("moved_to", "stopped", "hints"):
        conn.execute(text(f"ALTER TABLE fetch_state ADD COLUMN {column} TEXT"))
    conn.execute(text("ALTER TABLE sources ADD COLUMN parse_key VARCHAR(64)"))


_MIGRATIONS = {1: _to_v2, 2: _to_v3, 3: _to_v4}
