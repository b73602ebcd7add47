"""Parsers: the body of one fetch → :class:`~crawler.types.ParsedFeed`, chosen by ``format:``.

Each parser is a function ``(body, content_type, url, now) -> ParsedFeed`` that raises
ParseError (or NotAFeed) for input it cannot read. Registered explicitly, by name.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from crawler.parsers.feed import parse_feed
from crawler.parsers.jekyll import parse_jekyll_folder
from crawler.parsers.ptt import parse_ptt_folder
from crawler.types import ParsedFeed

Parser = Callable[[bytes, str | None, str, datetime], ParsedFeed]

PARSERS: dict[str, Parser] = {
    "feed": parse_feed,
    "jekyll": parse_jekyll_folder,
    "ptt": parse_ptt_folder,  # a folder of saved posts; a board URL is crawled by the pipeline
}


def parser_for(format_name: str) -> Parser:
    return PARSERS[format_name]
