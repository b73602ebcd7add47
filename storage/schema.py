"""Schema creation and its version; migrations are added here as ordered steps."""

from __future__ import annotations

from sqlalchemy import Column, Engine, Integer, MetaData, Table, insert, select
from sqlmodel import SQLModel

import storage.tables  # noqa: F401 - registers the tables on SQLModel.metadata

VERSION = 1
_meta = MetaData()
schema_version = Table("schema_version", _meta, Column("version", Integer, nullable=False))


def create_schema(engine: Engine) -> None:
    """Create what is missing; refuse a database written by a newer version of us."""
    SQLModel.metadata.create_all(engine)
    _meta.create_all(engine)
    with engine.begin() as conn:
        found = conn.execute(select(schema_version.c.version)).scalar()
        if found is None:
            conn.execute(insert(schema_version).values(version=VERSION))
        elif found > VERSION:
            raise RuntimeError(
                f"the database has schema version {found}; this program knows up to {VERSION}"
            )
