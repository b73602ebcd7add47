"""Sources and their fetch state: sync from feeds.yaml, claim due ones, record outcomes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, insert, or_, select, update

from crawler.types import CachingInfo, Source, SourceStatus
from storage.articles import count_for_sources
from storage.tables import FetchStateRow, SourceRow

sources_t = SourceRow.__table__  # type: ignore[attr-defined]
state_t = FetchStateRow.__table__  # type: ignore[attr-defined]


def sync_sources(conn: Connection, sources: Sequence[Source], now: datetime) -> None:
    """Make the sources table say what feeds.yaml says; a removed source is disabled, not
    deleted, so its articles stay in the outputs that still name it."""
    existing = {r.name: r for r in conn.execute(select(sources_t))}
    wanted = {s.name for s in sources}
    for source in sources:
        row = existing.get(source.name)
        if row is None:
            source_id = conn.execute(insert(sources_t).values(
                name=source.name, url=source.url, format=source.format,
                enabled=source.enabled, priority=source.priority, created_at=now,
            )).inserted_primary_key[0]  # type: ignore[index]
            conn.execute(insert(state_t).values(source_id=source_id, next_check_at=now))
            continue
        changes: dict[str, object] = {}
        if row.url != source.url:
            changes["url"] = source.url
        if row.format != source.format:
            changes["format"] = source.format
        if row.enabled != source.enabled:
            changes["enabled"] = source.enabled
        if row.priority != source.priority:
            changes["priority"] = source.priority
        if changes:
            conn.execute(update(sources_t).where(sources_t.c.id == row.id).values(**changes))
        if "url" in changes:
            # A new URL is a new conversation: old validators would be wrong, check now.
            conn.execute(update(state_t).where(state_t.c.source_id == row.id).values(
                etag=None, last_modified=None, body_hash=None, next_check_at=now,
                error_count=0))
    gone = [row.id for name, row in existing.items() if name not in wanted and row.enabled]
    if gone:
        conn.execute(update(sources_t).where(sources_t.c.id.in_(gone)).values(enabled=False))


def source_id(conn: Connection, name: str) -> int | None:
    return conn.execute(select(sources_t.c.id).where(sources_t.c.name == name)).scalar()


def caching_infos(conn: Connection, names: Sequence[str]) -> dict[str, CachingInfo]:
    """The stored validators of many sources in one query (a crawl asks for all at once)."""
    found: dict[str, CachingInfo] = {}
    for start in range(0, len(names), 500):
        rows = conn.execute(
            select(sources_t.c.name, state_t.c.etag, state_t.c.last_modified,
                   state_t.c.body_hash, state_t.c.failed_body_hash, state_t.c.last_error)
            .join(sources_t, sources_t.c.id == state_t.c.source_id)
            .where(sources_t.c.name.in_(list(names[start:start + 500])))
        )
        found.update({r.name: CachingInfo(
            etag=r.etag, last_modified=r.last_modified, body_hash=r.body_hash,
            failed_body_hash=r.failed_body_hash,
            failed_error=r.last_error if r.failed_body_hash else None) for r in rows})
    return found


def claim(
    conn: Connection, *, now: datetime, lease: timedelta, owner: str,
    names: Sequence[str] | None = None, due_only: bool = True, limit: int = 100_000,
) -> list[str]:
    """Lease sources to this worker; a source leased by another live worker is skipped.

    On PostgreSQL the candidates are locked with FOR UPDATE SKIP LOCKED, so several daemons
    on one database never fetch the same source at once. On SQLite the choice and the lease
    are one UPDATE, whose subquery runs under the write lock: a worker never picks sources
    that another is taking at that moment (and so never comes back empty-handed while some
    are still due).
    """
    free = or_(state_t.c.lease_until.is_(None), state_t.c.lease_until < now)
    query = (select(state_t.c.source_id)
             .join(sources_t, sources_t.c.id == state_t.c.source_id)
             .where(sources_t.c.enabled.is_(True), free)
             .order_by(state_t.c.next_check_at).limit(limit))
    if due_only:
        query = query.where(or_(state_t.c.next_check_at.is_(None),
                                state_t.c.next_check_at <= now))
    if names is not None:
        query = query.where(sources_t.c.name.in_(list(names)))
    if conn.dialect.name == "postgresql":
        ids = [r.source_id for r in
               conn.execute(query.with_for_update(skip_locked=True, of=state_t))]
        if not ids:
            return []
        chosen = state_t.c.source_id.in_(ids)
    else:
        chosen = state_t.c.source_id.in_(query)
    claimed = conn.execute(
        update(state_t).where(chosen, free)
        .values(lease_until=now + lease, lease_owner=owner)
        .returning(state_t.c.source_id)
    ).scalars().all()
    return list(conn.execute(select(sources_t.c.name).where(sources_t.c.id.in_(claimed))
                             .order_by(sources_t.c.name)).scalars())


def record_outcome(
    conn: Connection, source: int, *, now: datetime, next_check: datetime,
    status: int | None, error: str | None, caching: CachingInfo | None,
    failed_body_hash: str | None = None,
) -> None:
    """Store one fetch's outcome and release the lease. Validators are stored only with the
    items they describe (same transaction), or a crash would turn the next poll into a 304
    and lose them (RELIABILITY.md §4)."""
    values: dict[str, object] = {
        "last_fetch_at": now, "last_status": status, "next_check_at": next_check,
        "lease_until": None, "lease_owner": None,
    }
    if error is None:
        values.update(last_error=None, error_count=0, last_success_at=now,
                      failed_body_hash=None)
        if caching is not None:
            values.update(etag=caching.etag, last_modified=caching.last_modified,
                          body_hash=caching.body_hash)
    else:
        values.update(last_error=error[:2000], error_count=state_t.c.error_count + 1)
        if failed_body_hash is not None:
            values["failed_body_hash"] = failed_body_hash
    conn.execute(update(state_t).where(state_t.c.source_id == source).values(**values))


def error_count(conn: Connection, source: int) -> int:
    return int(conn.execute(select(state_t.c.error_count)
                            .where(state_t.c.source_id == source)).scalar() or 0)


def release(conn: Connection, names: Sequence[str], owner: str) -> None:
    ids = select(sources_t.c.id).where(sources_t.c.name.in_(list(names)))
    conn.execute(update(state_t).where(and_(state_t.c.source_id.in_(ids),
                                            state_t.c.lease_owner == owner))
                 .values(lease_until=None, lease_owner=None))


def statuses(conn: Connection) -> list[SourceStatus]:
    counts = count_for_sources(conn)
    rows = conn.execute(
        select(sources_t, state_t).join(state_t, state_t.c.source_id == sources_t.c.id)
        .order_by(sources_t.c.name)
    )
    return [
        SourceStatus(
            name=r.name, url=r.url, enabled=r.enabled, last_fetch_at=r.last_fetch_at,
            last_status=r.last_status, last_error=r.last_error, error_count=r.error_count,
            next_check_at=r.next_check_at, articles=counts.get(r.id, 0),
        )
        for r in rows
    ]


def next_due(conn: Connection) -> datetime | None:
    return conn.execute(
        select(state_t.c.next_check_at).join(sources_t, sources_t.c.id == state_t.c.source_id)
        .where(sources_t.c.enabled.is_(True)).order_by(state_t.c.next_check_at).limit(1)
    ).scalar()
