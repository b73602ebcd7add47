"""The story evaluation set of tests/data/stories/eval.yaml, read through the real parsers.

Used by tests/test_story_eval.py and by bench/story_eval.py (which prints the figures the
README quotes). Each item becomes the Article the crawler would store for it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import opencc
import yaml

from crawler.cleaners import clean
from crawler.normalize import normalize
from crawler.parsers.feed import parse_feed
from crawler.parsers.jekyll import parse_post
from crawler.parsers.page import parse_page
from crawler.parsers.ptt import parse_ptt_post, parse_ptt_text
from crawler.process import with_fingerprint
from crawler.similarity import copy_similarity, relatedness
from crawler.types import Article, CachingInfo, ParsedItem, Source, StoryRules
from storage import open_storage

DATA = Path(__file__).parent / "data"
EVAL = DATA / "stories" / "eval.yaml"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
FOOTER = ('<hr><div>获取更多RSS：<br><a href="https://feedx.net">https://feedx.net</a><br>'
          '<a href="https://feedx.best">https://feedx.best</a></div>')
COPY, DEVELOPMENT, DIFFERENT = "copy", "same_development", "different"


@dataclass(frozen=True)
class Item:
    id: str
    article: Article
    copy: str | None
    stories: frozenset[str]
    occasion: str | None
    derived: bool


def _read(entry: dict[str, Any]) -> ParsedItem:
    path = DATA / entry["file"]
    reader = entry.get("reader", "jekyll")
    url = entry.get("url", f"file:///{entry['id']}")
    if reader in ("jekyll", "feedx"):
        return parse_post(path.read_text(encoding="utf-8"), NOW)
    if reader == "page":
        return parse_page(path.read_bytes(), "text/html", url, NOW, None)
    if reader == "ptt-html":
        return parse_ptt_post(path.read_bytes(), url, NOW)
    if reader == "ptt-text":
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("big5hkscs", errors="replace")
        return parse_ptt_text(text, url, NOW)
    raise ValueError(f"{entry['id']}: unknown reader {reader!r}")


def _transform(item: ParsedItem, steps: list[str], new_id: str) -> ParsedItem:
    title, html = item.title, item.content_html or item.summary_html
    for step in steps:
        if step in ("hans", "hant"):
            converter = opencc.OpenCC("t2s" if step == "hans" else "s2twp")
            title, html = converter.convert(title), converter.convert(html)
        elif step == "outlet-suffix":
            title = f"{title} – 法国国际广播电台 - RFI"
        elif step == "column-tag":
            title = f"【转载】{title}"
        elif step == "footer":
            html = html + FOOTER
        elif step == "trim-end":
            html = html[: int(len(html) * 0.8)]
        elif step == "quoted-news":
            # A PTT [新聞] post must quote the news whole: title (3.) and text (4.).
            title = html.split("3.完整新聞標題:")[1].split("4.完整新聞內文:")[0]
            html = html.split("4.完整新聞內文:")[1].split("5.完整新聞連結")[0]
            title = " ".join(title.replace("<br/>", " ").replace("<br>", " ").split())
        else:
            raise ValueError(f"{new_id}: unknown transform {step!r}")
    shift = timedelta(hours=-1 if "quoted-news" in steps else 3)
    published = item.published + shift if item.published else None
    return replace(item, guid=None, comments=(), link=f"https://republisher.example/{new_id}",
                   title=title, content_html=html, summary_html="", published=published,
                   updated=None)


def _stories(value: Any) -> frozenset[str]:
    if value is None:
        return frozenset()
    return frozenset([value] if isinstance(value, str) else value)


def load() -> list[Item]:
    """The set's items, each as the fingerprinted Article the crawler would store."""
    return [replace(i, article=with_fingerprint(i.article)) for i in _load()]


def _load() -> list[Item]:
    spec = yaml.safe_load(EVAL.read_text(encoding="utf-8"))
    parsed: dict[str, ParsedItem] = {}
    items: list[Item] = []
    by_id: dict[str, Item] = {}
    for entry in spec["items"]:
        if "derived" in entry:
            origin = by_id[entry["derived"]]
            raw = _transform(parsed[entry["derived"]], entry["transform"], entry["id"])
            copy_group = origin.copy or f"copy-of-{origin.id}"
            if origin.copy is None:  # the origin joins the group it now has
                origin = replace(origin, copy=copy_group)
                items[items.index(by_id[entry["derived"]])] = origin
                by_id[origin.id] = origin
            item = Item(entry["id"], normalize(clean(raw), raw.link or ""), copy_group,
                        origin.stories or frozenset([copy_group]), origin.occasion, True)
        else:
            raw = _read(entry)
            parsed[entry["id"]] = raw
            item = Item(entry["id"], normalize(clean(raw), raw.link or ""), entry.get("copy"),
                        _stories(entry.get("story")), entry.get("occasion"), False)
        items.append(item)
        by_id[item.id] = item
    for feed in spec.get("feeds", []):
        body = (DATA / feed["file"]).read_bytes()
        labels = feed.get("labels", [])
        found = dict.fromkeys(range(len(labels)), False)
        for number, raw in enumerate(parse_feed(body, None, feed["url"], NOW).items):
            article = normalize(clean(raw), feed["url"])
            marks = [(n, mark) for n, mark in enumerate(labels)
                     if article.title.startswith(mark["title"])]
            stories, occasion = frozenset(), None
            for n, mark in marks:
                found[n] = True
                stories, occasion = _stories(mark.get("story")), mark.get("occasion")
            items.append(Item(f"{feed['id']}-{number}", article, None, stories, occasion,
                              False))
        missing = [labels[n]["title"] for n, seen in found.items() if not seen]
        if missing:
            raise ValueError(f"{feed['id']}: no entry titled {missing}")
    return items


def label(a: Item, b: Item) -> str:
    if a.copy and a.copy == b.copy:
        return COPY
    if a.stories & b.stories:
        return DEVELOPMENT
    return DIFFERENT


def pairs(items: list[Item]) -> list[tuple[Item, Item, str]]:
    return [(a, b, label(a, b)) for a, b in itertools.combinations(items, 2)]


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float
    true_positives: int
    predicted: int
    actual: int


def scores(predicted: set[tuple[str, str]], actual: set[tuple[str, str]]) -> Scores:
    hits = len(predicted & actual)
    return Scores(precision=hits / len(predicted) if predicted else 1.0,
                  recall=hits / len(actual) if actual else 1.0,
                  true_positives=hits, predicted=len(predicted), actual=len(actual))


def _hours(a: Article, b: Article) -> float:
    assert a.published and b.published
    return abs((a.published - b.published).total_seconds()) / 3600


def predict(a: Article, b: Article, rules: StoryRules) -> str:
    """What the two signals call a pair, with the thresholds and windows of ``rules``."""
    assert a.fingerprint and b.fingerprint
    hours = _hours(a, b)
    if hours <= rules.window_days * 24 and \
            copy_similarity(a.fingerprint, b.fingerprint) >= rules.copy_threshold:
        return COPY
    if hours <= rules.related_hours and relatedness(
            a.fingerprint, b.fingerprint, hours, rules.related_hours).score \
            >= rules.related_threshold:
        return DEVELOPMENT
    return DIFFERENT


def pair_scores(items: list[Item], rules: StoryRules) -> tuple[Scores, Scores]:
    """(copies, related reports) of the pair classifier. Related reports are judged apart
    from copies: a copy caught by the looser signal is neither a hit nor a false alarm."""
    labelled = pairs(items)
    predicted = {(a.id, b.id): predict(a.article, b.article, rules) for a, b, _ in labelled}
    gold = {(a.id, b.id): value for a, b, value in labelled}
    copy = scores({p for p, v in predicted.items() if v == COPY},
                  {p for p, v in gold.items() if v == COPY})
    not_copies = {p for p, v in gold.items() if v != COPY}
    related = scores({p for p in not_copies if predicted[p] == DEVELOPMENT},
                     {p for p in not_copies if gold[p] == DEVELOPMENT})
    return copy, related


def stored_stories(items: list[Item], database: Path, rules: StoryRules) -> dict[str, str]:
    """Every item stored through Storage (one source each, in the set's order) → item id
    → the uid of the story it ended in."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    store = open_storage(f"sqlite:///{database}", rules)
    try:
        store.sync_sources([Source(name=i.id, url=f"https://{i.id}.example/feed")
                            for i in items], now)
        for item in items:
            store.record_success(item.id, [item.article], now=now,
                                 next_check=now + timedelta(hours=1), status=200,
                                 caching=CachingInfo())
        found = {i.id: store.story_of_source_item(i.id, i.article.item_key) for i in items}
    finally:
        store.close()
    missing = [k for k, v in found.items() if v is None]
    if missing:
        raise AssertionError(f"stored without a story: {missing}")
    return {k: v for k, v in found.items() if v is not None}


@dataclass(frozen=True)
class StoryScores:
    precision: float  #: pairs put in one story that are copies or related reports
    copy_recall: float
    related_recall: float
    wrong: tuple[tuple[str, str], ...]
    missed: tuple[tuple[str, str], ...]


def story_scores(items: list[Item], story: dict[str, str]) -> StoryScores:
    labels = {(a.id, b.id): value for a, b, value in pairs(items)}
    together = {p for p in labels if story[p[0]] == story[p[1]]}
    same_story = {p for p, v in labels.items() if v != DIFFERENT}
    copies = {p for p, v in labels.items() if v == COPY}
    # A report of two developments (DW's round-up of the congress close) can sit in one
    # story only: it must join one of its own, and its pairs with the other are not asked.
    by_id = {i.id: i for i in items}
    joined: dict[str, set[str]] = {}
    for item in items:
        if len(item.stories) > 1:
            joined[item.id] = {s for s in item.stories if any(
                story[o.id] == story[item.id] for o in items
                if o.id != item.id and s in o.stories and label(o, item) != COPY)}
            if not joined[item.id]:  # then all its pairs are asked, and missed
                joined[item.id] = set(item.stories)

    def asked(a: str, b: str) -> bool:
        shared = by_id[a].stories & by_id[b].stories
        return all(shared & joined[x] for x in (a, b) if x in joined)

    related = {p for p, v in labels.items() if v == DEVELOPMENT and asked(*p)}
    return StoryScores(
        precision=len(together & same_story) / len(together) if together else 1.0,
        copy_recall=len(together & copies) / len(copies),
        related_recall=len(together & related) / len(related),
        wrong=tuple(sorted(together - same_story)),
        missed=tuple(sorted((copies | related) - together)))
