"""A local folder's bundle (crawler.local: file name → text) → one item per file.

A file that is not a post is skipped with a warning naming it, so one bad file never hides
the others; a folder where no file is a post is a ParseError.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from crawler.errors import ParseError
from crawler.types import ParsedFeed, ParsedItem


def parse_bundle(body: bytes, url: str, what: str,
                 parse_one: Callable[[str, str], ParsedItem]) -> ParsedFeed:
    """``parse_one(name, text)`` reads one file; ``what`` names the files in errors."""
    try:
        files: dict[str, str] = json.loads(body)
    except ValueError as exc:
        raise ParseError(f"not a folder bundle: {exc}") from exc
    items: list[ParsedItem] = []
    warnings: list[str] = []
    for name in sorted(files):
        try:
            items.append(parse_one(name, files[name]))
        except ParseError as exc:
            warnings.append(f"{name}: {exc}")
    if files and not items:
        raise ParseError(f"none of the {len(files)} {what} could be read: {warnings[0]}")
    return ParsedFeed(title=url, link=None, items=tuple(items), warnings=tuple(warnings))
