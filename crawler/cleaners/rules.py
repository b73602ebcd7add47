"""The shape of one site's cleaning rules: data, reviewed like data."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class TextRule:
    """A pattern in the article text: its group goes to ``metadata[field]`` (when a field is
    named), and the match is cut from the text when ``remove`` is set."""

    pattern: re.Pattern[str]
    field: str | None = None
    group: int = 1
    remove: bool = False


@dataclass(frozen=True)
class SiteRules:
    name: str
    domains: tuple[str, ...] = ()
    #: cheap substrings, one of which must be in the HTML before it is parsed at all
    markers: tuple[str, ...] = ()
    drop_selectors: tuple[str, ...] = ()
    #: tags right before a dropped element that go with it (a footer's <hr>)
    drop_before: tuple[str, ...] = ()
    keyword_selectors: tuple[str, ...] = ()
    #: tags removed when empty, after the rest (repeatedly, so cleaning twice changes nothing)
    drop_empty: tuple[str, ...] = ()
    text_rules: tuple[TextRule, ...] = ()
    # An article page of this site (full_text: true): where its fields are.
    page_body: tuple[str, ...] = ()  #: the first selector that matches is the article
    page_title: tuple[str, ...] = ()
    page_byline: tuple[str, ...] = ()  #: text holding the date and the author or agency
    page_author: re.Pattern[str] | None = None  #: group 1 of it, on the byline text

    def applies_to(self, html: str) -> bool:
        return bool(html) and (not self.markers or any(m in html for m in self.markers))
