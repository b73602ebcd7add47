"""Schema creation and its version; migrations are added here as ordered steps."""

from __future__ import annotations

import time

from sqlalchemy import Column, Connection, Engine, Integer, MetaData, Table, insert, select, text
from sqlalchemy.exc import OperationalError
from sqlmodel import SQLModel

import storage.tables  # noqa: F401 - registers the tables on SQLModel.metadata

VERSION = 1
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
    SQLModel.metadata.create_all(conn)
    _meta.create_all(conn)
    found = conn.execute(select(schema_version.c.version)).scalar()
    if found is None:
        conn.execute(insert(schema_version).values(version=VERSION))
    elif found > VERSION:
        raise RuntimeError(
            f"the database has schema version {found}; this program knows up to {VERSION}"
        )
