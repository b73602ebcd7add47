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
    #: cut from the HTML text before any parsing; a rule left with nothing else to do
    #: (its markers gone) costs no BeautifulSoup parse at all
    strip_patterns: tuple[re.Pattern[str], ...] = ()
    drop_selectors: tuple[str, ...] = ()
    #: tags right before a dropped element that go with it (a footer's <hr>)
    drop_before: tuple[str, ...] = ()
    keyword_selectors: tuple[str, ...] = ()
    #: tags removed when empty, after the rest (repeatedly, so cleaning twice changes nothing)
    drop_empty: tuple[str, ...] = ()
    #: section headings after which the page is no longer the article (延伸閱讀, 相關新聞):
    #: the heading and everything after it, at its level, go
    drop_from_headings: tuple[str, ...] = ()
    text_rules: tuple[TextRule, ...] = ()
    # An article page of this site (full_text: true): where its fields are.
    page_body: tuple[str, ...] = ()  #: the first selector that matches is the article
    page_title: tuple[str, ...] = ()
    page_byline: tuple[str, ...] = ()  #: text holding the date and the author or agency
    page_author: re.Pattern[str] | None = None  #: group 1 of it, on the byline text

    def applies_to(self, html: str) -> bool:
        return bool(html) and (not self.markers or any(m in html for m in self.markers))

    @property
    def needs_soup(self) -> bool:
        return bool(self.drop_selectors or self.keyword_selectors or self.text_rules
                    or self.drop_empty or self.drop_from_headings)


#: A body that opens with its own publication time (RFI "26/09/2023 - 10:44", DW's ISO UTC
#: stamp, VOA's RFC 822 date): kept as metadata, cut from the text.
STATED_TIME = TextRule(
    re.compile(r"^\s*(\d{2}/\d{2}/\d{4} - \d{2}:\d{2}"
               r"|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z"
               r"|[A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT)\s*$"),
    field="stated_time", remove=True)
