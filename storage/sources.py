"""Sources and their fetch state: sync from feeds.yaml, claim due ones, record outcomes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, insert, or_, select, update

from crawler.types import CachingInfo, FetchState, PublisherHints, Source, SourceStatus
from storage.articles import count_for_sources
from storage.tables import FetchStateRow, HostRow, SourceRow

sources_t = SourceRow.__table__  # type: ignore[attr-defined]
state_t = FetchStateRow.__table__  # type: ignore[attr-defined]
hosts_t = HostRow.__table__  # type: ignore[attr-defined]


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
                parse_key=parse_key(source),
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
        if row.parse_key != parse_key(source):
            changes["parse_key"] = parse_key(source)
        if changes:
            conn.execute(update(sources_t).where(sources_t.c.id == row.id).values(**changes))
        if "url" in changes:
            # A new URL is a new conversation: old validators would be wrong, check now.
            conn.execute(update(state_t).where(state_t.c.source_id == row.id).values(
                etag=None, last_modified=None, body_hash=None, next_check_at=now,
                error_count=0, moved_to=None, stopped=None, hints=None))
        elif row.parse_key is not None and "parse_key" in changes:
            # Same feed, read differently (an encoding: added to repair mojibake): a 304 or
            # the same bytes must not keep what the old settings made of it.
            conn.execute(update(state_t).where(state_t.c.source_id == row.id).values(
                etag=None, last_modified=None, body_hash=None, failed_body_hash=None,
                next_check_at=now))
    gone = [row.id for name, row in existing.items() if name not in wanted and row.enabled]
    if gone:
        conn.execute(update(sources_t).where(sources_t.c.id.in_(gone)).values(enabled=False))


def parse_key(source: Source) -> str:
    settings = [source.format, source.encoding or "", source.site or "",
                source.language or "", str(source.full_text)]
    return hashlib.sha256("\x1f".join(settings).encode()).hexdigest()[:32]


def source_id(conn: Connection, name: str) -> int | None:
    return conn.execute(select(sources_t.c.id).where(sources_t.c.name == name)).scalar()


def fetch_states(conn: Connection, names: Sequence[str]) -> dict[str, FetchState]:
    """What the crawler needs of many sources before fetching, in one query per 500."""
    found: dict[str, FetchState] = {}
    for start in range(0, len(names), 500):
        rows = conn.execute(
            select(sources_t.c.name, state_t)
            .join(sources_t, sources_t.c.id == state_t.c.source_id)
            .where(sources_t.c.name.in_(list(names[start:start + 500])))
        )
        found.update({r.name: FetchState(
            caching=CachingInfo(
                etag=r.etag, last_modified=r.last_modified, body_hash=r.body_hash,
                failed_body_hash=r.failed_body_hash,
                failed_error=r.last_error if r.failed_body_hash else None),
            moved_to=r.moved_to, hints=_hints(r.hints), error_count=r.error_count)
            for r in rows})
    return found


def _hints(raw: str | None) -> PublisherHints:
    if not raw:
        return PublisherHints()
    try:
        return PublisherHints.from_json(json.loads(raw))
    except (ValueError, TypeError, AttributeError):
        return PublisherHints()  # unreadable hints are no hints; the next parse rewrites them


def claim(
    conn: Connection, *, now: datetime, lease: timedelta, owner: str,
    names: Sequence[str] | None = None, due_only: bool = True, force: bool = False,
    limit: int = 100_000,
) -> list[str]:
    """Lease sources to this worker; a source leased by another live worker is skipped.

    ``due_only``: those whose next check has come (the daemon). Otherwise (a manual crawl)
    also those not due, except the ones backing off after errors or a Retry-After. Stopped
    sources (410 Gone) are never taken; ``force`` takes every enabled source.

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
    due = or_(state_t.c.next_check_at.is_(None), state_t.c.next_check_at <= now)
    if not force:
        query = query.where(state_t.c.stopped.is_(None))
        query = query.where(due if due_only else or_(due, state_t.c.error_count == 0))
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
    failed_body_hash: str | None = None, moved_to: str | None = None,
    hints: PublisherHints | None = None, stop: str | None = None,
) -> None:
    """Store one fetch's outcome and release the lease. Validators are stored only with the
    items they describe (same transaction), or a crash would turn the next poll into a 304
    and lose them (RELIABILITY.md §4). ``moved_to`` and ``hints`` None keep what is stored;
    ``stop`` stops the source with that reason; a success starts a stopped one again."""
    values: dict[str, object] = {
        "last_fetch_at": now, "last_status": status, "next_check_at": next_check,
        "lease_until": None, "lease_owner": None,
    }
    if error is None:
        values.update(last_error=None, error_count=0, last_success_at=now,
                      failed_body_hash=None, stopped=None)
        if moved_to is not None:
            values["moved_to"] = moved_to
        if hints is not None:
            values["hints"] = json.dumps(hints.to_json()) if hints.to_json() else None
        if caching is not None:
            values.update(etag=caching.etag, last_modified=caching.last_modified,
                          body_hash=caching.body_hash)
    else:
        values.update(last_error=error[:2000], error_count=state_t.c.error_count + 1)
        if failed_body_hash is not None:
            values["failed_body_hash"] = failed_body_hash
        if stop is not None:
            values["stopped"] = stop[:2000]
    conn.execute(update(state_t).where(state_t.c.source_id == source).values(**values))


def lease_owners(conn: Connection, prefix: str, now: datetime) -> list[str]:
    """The owners, starting with ``prefix``, of leases not yet expired."""
    return list(conn.execute(
        select(state_t.c.lease_owner).distinct()
        .where(state_t.c.lease_owner.startswith(prefix, autoescape=True),
               state_t.c.lease_until >= now)).scalars())


def release_owners(conn: Connection, owners: Sequence[str]) -> int:
    """Give back every lease these (dead) owners hold; how many there were."""
    released = conn.execute(update(state_t).where(state_t.c.lease_owner.in_(list(owners)))
                            .values(lease_until=None, lease_owner=None)
                            .returning(state_t.c.source_id)).all()
    return len(released)


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
            moved_to=r.moved_to, stopped=r.stopped, hints=_hints(r.hints),
        )
        for r in rows
    ]


def next_due(conn: Connection) -> datetime | None:
    return conn.execute(
        select(state_t.c.next_check_at).join(sources_t, sources_t.c.id == state_t.c.source_id)
        .where(sources_t.c.enabled.is_(True), state_t.c.stopped.is_(None))
        .order_by(state_t.c.next_check_at).limit(1)
    ).scalar()


def in_backoff(conn: Connection) -> int:
    """Enabled sources, not stopped, whose last fetch failed: they wait longer than their
    interval (exponential back-off) until a fetch succeeds."""
    return int(conn.execute(
        select(func.count()).select_from(state_t)
        .join(sources_t, sources_t.c.id == state_t.c.source_id)
        .where(sources_t.c.enabled.is_(True), state_t.c.stopped.is_(None),
               state_t.c.error_count > 0)
    ).scalar() or 0)


def reserve_host_slot(conn: Connection, host: str, *, now: datetime,
                      gap: timedelta) -> datetime:
    """The moment this request to ``host`` may go, ``gap`` after the last one reserved by
    any worker on this database. The row is locked (FOR UPDATE on PostgreSQL; SQLite's
    write transaction serialises writers anyway), so two workers never get one slot."""
    query = select(hosts_t.c.next_request_at).where(hosts_t.c.name == host)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    taken = conn.execute(query).scalar()
    if taken is None:
        # RETURNING, not rowcount: psycopg reports -1 for this statement, taken or not.
        inserted = conn.execute(
            _insert_ignore(conn, {"name": host, "next_request_at": now + gap})
            .returning(hosts_t.c.name)).first()
        if inserted is not None:
            return now
        taken = conn.execute(query).scalar()  # another worker inserted it meanwhile
        if taken is None:
            raise RuntimeError(f"the hosts row of {host} vanished while being reserved")
    slot: datetime = max(now, taken)
    conn.execute(update(hosts_t).where(hosts_t.c.name == host)
                 .values(next_request_at=slot + gap))
    return slot


def _insert_ignore(conn: Connection, values: dict[str, object]) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(hosts_t).values(**values).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(hosts_t).values(**values).on_conflict_do_nothing()
