"""FeedView → Jekyll posts in the seed 000/001 shape (NodeBE4/waimei), one file per article.

Front matter in the generator's key order and quoting, the ``<!--millis-->`` marker (the
article's published time), the ``[title](url)`` line, the ``------`` rule, and the sanitized
HTML on one line inside ``<div>``. Reading the folder back as a ``format: jekyll`` source
gives the same articles (tests/test_jekyll.py).
"""

from __future__ import annotations

import json
import re
from datetime import UTC

from crawler.types import FeedView, StoredArticle

NAME_CHARS = 50  #: the generator's file names keep the first 50 characters of the title
_UNSAFE = re.compile(r'[\x00-\x1f\x7f\\:*?"<>|]')
_INDICATORS = tuple("-?:,[]{}#&*!|>'\"%@`")


def jekyll_posts(view: FeedView) -> dict[str, bytes]:
    """File name → file content, names made unique and safe on any filesystem."""
    posts: dict[str, bytes] = {}
    for article in view.articles:
        base = file_stem(article)
        name = f"{base}.md"
        counter = 2
        while name in posts:
            name = f"{base}-{counter}.md"
            counter += 1
        posts[name] = post_text(article).encode("utf-8")
    return posts


def file_stem(article: StoredArticle) -> str:
    title = article.title[:NAME_CHARS].replace("/", "--")
    title = _UNSAFE.sub("_", title).strip().lstrip(".") or "untitled"
    return f"{article.published.astimezone(UTC):%Y-%m-%d}-{title}"


def post_text(article: StoredArticle) -> str:
    outlet = article.sources[0].name if article.sources else "crawler"
    published = article.published.astimezone(UTC)
    millis = int(published.timestamp() * 1000)
    iso = published.strftime("%Y-%m-%dT%H:%M:%S.") + f"{published.microsecond // 1000:03d}Z"
    link = article.link or ""
    html = "".join(line.strip() for line in article.content_html.split("\n"))
    lines = [
        "---",
        "layout: post",
        f"title: {json.dumps(article.title, ensure_ascii=False)}",
        f"date: {iso}",
        f"author: {_scalar(article.author or outlet)}",
    ]
    if link:
        lines.append(f"from: {_scalar(link)}")
    tags = [outlet, *(t for t in article.tags if t != outlet)]
    lines += [
        f"tags: [ {', '.join(_scalar(t, in_list=True) for t in tags)} ]",
        "comments: True",
        f"categories: [ {_scalar(outlet, in_list=True)} ]",
        "---",
        f"<!--{millis}-->",
        f"[{article.title}]({link})",
        "------",
        "",
        "<div>",
        html,
        "</div>",
        "",
    ]
    return "\n".join(lines)


def _scalar(value: str, *, in_list: bool = False) -> str:
    """A YAML scalar: plain where the generator wrote plain, double-quoted where plain would
    be misread (a comma inside [ ], a colon-space, a leading indicator, edge spaces)."""
    plain = (
        value == value.strip() and value != ""
        and not value.startswith(_INDICATORS)
        and ": " not in value and " #" not in value and not value.endswith(":")
        and not (in_list and any(c in value for c in ",[]{}"))
        and value.lower() not in ("true", "false", "yes", "no", "null", "~", "on", "off")
    )
    return value if plain else json.dumps(value, ensure_ascii=False)
