"""Selected items → what the emitters write: HTML sanitized again on the way out (what is
stored was sanitized when it came in; a row written by an older version, or by hand, is
not trusted), text converted to the output's script, languages stated.

Script conversion touches text only, never markup or URLs: a link to a page whose path is
written in Traditional characters must keep working in a Simplified output.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from lxml import etree, html

from crawler.sanitize import sanitize_html
from crawler.script import CONVERSIONS
from crawler.types import AlsoReported, Output, StoredArticle

SCRIPT_LANGUAGE = {"hant": "zh-Hant", "hans": "zh-Hans"}


def present(articles: Sequence[StoredArticle], output: Output) -> tuple[StoredArticle, ...]:
    convert = CONVERSIONS.get(output.script)
    shown = []
    for article in articles:
        content = sanitize_html(article.content_html, article.link)
        if convert is None:
            shown.append(replace(article, content_html=content))
            continue
        language = article.language
        if not language or language.lower().startswith("zh"):
            language = SCRIPT_LANGUAGE[output.script]
        shown.append(replace(
            article, title=convert(article.title), summary=convert(article.summary),
            content_html=convert_html(content, convert),
            author=convert(article.author) if article.author else None,
            tags=tuple(convert(t) for t in article.tags),
            also=tuple(AlsoReported(url=a.url, title=convert(a.title), source=a.source)
                       for a in article.also),
            language=language))
    return tuple(shown)


def convert_html(markup: str, convert: Callable[[str], str]) -> str:
    """The fragment with its text nodes converted; tags and attributes as they were."""
    if not markup.strip():
        return markup
    root = html.fragment_fromstring(markup, create_parent="div")
    for element in root.iter():
        if element.text:
            element.text = convert(element.text)
        if element is not root and element.tail:
            element.tail = convert(element.tail)
    inner = (root.text or "") + "".join(
        etree.tostring(child, encoding="unicode", method="html") for child in root)
    return inner


def feed_language(articles: Sequence[StoredArticle], output: Output) -> str:
    """The output's declared language; else its script's; else what at least half its
    items share (a full tag, else the primary subtag: zh-TW + zh-CN → zh); else ""."""
    if output.language:
        return output.language
    if output.script in SCRIPT_LANGUAGE:
        return SCRIPT_LANGUAGE[output.script]
    tags = [a.language for a in articles if a.language]
    if not tags:
        return ""
    tag, count = Counter(tags).most_common(1)[0]
    if count * 2 >= len(articles):
        return tag
    primary, count = Counter(t.split("-")[0] for t in tags).most_common(1)[0]
    return primary if count * 2 >= len(articles) else ""


def last_changed(articles: Sequence[StoredArticle]) -> datetime:
    """The newest change among the items: the feed's date, from its content alone, so an
    article added to another output does not make this one look new."""
    moments = [a.changed or max(a.updated, a.published) for a in articles]
    return max(moments, default=datetime(2000, 1, 1, tzinfo=UTC))
