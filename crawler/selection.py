"""An output's items: candidates read newest first, page by page, until the output has its
`limit` (or the scan bound is reached), then one item per story with its representative.

The scan is bounded so that a request never reads the whole archive: an output whose rules
rarely match shows what the newest SCAN_LIMIT articles of its sources (within its max_age)
hold. The representative of a story is the member, among those the rules select, of the
highest-priority source, then the earliest; the story's other members in the output's
sources are listed as "also reported by".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol

from crawler.filters import Narrowing, Selector, sources_for_output
from crawler.types import Candidate, Config, Matched, Output, StoredArticle

SCAN_LIMIT = 5000  #: candidates one render may look at
PAGE = 200


class OutputStore(Protocol):
    def output_candidates(self, names: Sequence[str] | None, *, since: datetime | None,
                          min_length: int, after: tuple[datetime, int] | None,
                          limit: int) -> list[Candidate]: ...

    def story_members(self, story_ids: Sequence[int],
                      names: Sequence[str] | None) -> list[Candidate]: ...

    def output_items(self, chosen: Sequence[tuple[int, Sequence[int]]],
                     stories: bool) -> dict[int, StoredArticle]: ...


def select_items(store: OutputStore, config: Config, output: Output,
                 narrowing: Narrowing | None, now: datetime) -> tuple[StoredArticle, ...]:
    """Newest first; each item says which rules selected it (StoredArticle.matched)."""
    names = sources_for_output(config, output, narrowing)
    if names == ():
        return ()
    limit = min(narrowing.limit or output.limit, output.limit) if narrowing else output.limit
    selector = Selector(output, narrowing)
    since = now - timedelta(seconds=output.max_age) if output.max_age else None
    stories = output.collapse == "story"

    chosen: dict[int, list[tuple[Candidate, tuple[Matched, ...]]]] = {}
    after: tuple[datetime, int] | None = None
    scanned = 0
    while len(chosen) < limit and scanned < SCAN_LIMIT:
        page = store.output_candidates(names, since=since, min_length=output.min_length,
                                       after=after, limit=min(PAGE, SCAN_LIMIT - scanned))
        for candidate in page:
            scanned += 1
            matched = selector(candidate)
            if matched is None:
                continue
            key = _key(candidate, stories)
            if key not in chosen and len(chosen) >= limit:
                break
            chosen.setdefault(key, []).append((candidate, matched))
        if len(page) < PAGE:
            break
        after = (page[-1].published, page[-1].id)

    if stories:
        leads = _story_leads(store, chosen, names, selector, since)
    else:
        leads = [(hits[0][0], hits[0][1], ()) for hits in chosen.values()]
    items = store.output_items([(lead.id, others) for lead, _, others in leads], stories)
    found = [replace(items[lead.id],
                     matched=_source_rules(config, output, narrowing, items[lead.id]) + matched)
             for lead, matched, _ in leads if lead.id in items]
    # Newest first by the date each item shows (its representative's), as readers expect.
    found.sort(key=lambda item: (item.published, item.uid), reverse=True)
    return tuple(found)


def _key(candidate: Candidate, stories: bool) -> int:
    return candidate.story_id if stories and candidate.story_id is not None else -candidate.id


def _story_leads(
    store: OutputStore, chosen: dict[int, list[tuple[Candidate, tuple[Matched, ...]]]],
    names: Sequence[str] | None, selector: Selector, since: datetime | None,
) -> list[tuple[Candidate, tuple[Matched, ...], tuple[int, ...]]]:
    """Per story: the representative among the members the rules select, and the others."""
    members: dict[int, list[Candidate]] = {key: [] for key in chosen}
    for member in store.story_members([k for k in chosen if k > 0], names):
        if member.story_id in members:
            members[member.story_id].append(member)
    leads = []
    for key, hits in chosen.items():
        verdicts = {c.id: m for c, m in hits}
        group = members[key] or [c for c, _ in hits]
        for member in group:
            if member.id not in verdicts and (since is None or member.published >= since):
                verdict = selector(member)
                if verdict is not None:
                    verdicts[member.id] = verdict
        lead = min((m for m in group if m.id in verdicts),
                   key=lambda m: (-m.priority, m.published, m.id))
        others = tuple(m.id for m in sorted(group, key=lambda m: (m.published, m.id))
                       if m.id != lead.id)
        leads.append((lead, verdicts[lead.id], others))
    return leads


def _source_rules(config: Config, output: Output, narrowing: Narrowing | None,
                  item: StoredArticle) -> tuple[Matched, ...]:
    """The output's feeds/tags (and the request's) that brought the item in."""
    carried = [ref.name for ref in item.sources]
    found = [Matched("feeds", name) for name in carried if name in output.feeds]
    tags = {tag for s in config.sources if s.name in carried for tag in s.tags}
    found += [Matched("tags", tag) for tag in output.tags if tag in tags]
    if narrowing is not None and narrowing.source is not None and narrowing.source in carried:
        found.append(Matched("source", narrowing.source))
    if narrowing is not None and narrowing.tag is not None and narrowing.tag in tags:
        found.append(Matched("tag", narrowing.tag))
    return tuple(found)
