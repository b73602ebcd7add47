"""Cleaners: a ParsedItem → the same item with its site's boilerplate removed.

Which rules apply follows from the article link's domain (so a CNA story is cleaned the same
from CNA's feed, from feedx or from a Jekyll archive); feedx's footer is removed from any
item that carries it. Rules are data, one module per site (:class:`SiteRules`); this module
only applies them. Sanitizing happens later, once, in crawler.normalize.
"""

from __future__ import annotations

import re
from dataclasses import replace
from urllib.parse import urlsplit

from bs4 import BeautifulSoup, Tag

from crawler.cleaners import cdt, cna, dw, epochtimes, feedx, rfi, udn, voa, waimei, zaobao
from crawler.cleaners.rules import SiteRules, TextRule
from crawler.types import ParsedItem

_BETWEEN_TAGS = re.compile(r">\s{2,}<")
SITES: tuple[SiteRules, ...] = (cdt.RULES, cna.RULES, dw.RULES, epochtimes.RULES, rfi.RULES,
                                udn.RULES, voa.RULES, waimei.RULES, zaobao.RULES)
ALWAYS: tuple[SiteRules, ...] = (feedx.RULES,)


def rules_for(link: str | None, site: str | None = None) -> tuple[SiteRules, ...]:
    """The rules of ``site`` if named (feeds.yaml ``site:``), else of the link's domain."""
    if site:
        return tuple(r for r in SITES if r.name == site) + ALWAYS
    host = (urlsplit(link).hostname or "") if link else ""
    found = tuple(r for r in SITES if any(host == d or host.endswith("." + d) for d in r.domains))
    return found + ALWAYS


def clean(item: ParsedItem, site: str | None = None) -> ParsedItem:
    original = item.content_html or item.summary_html
    applicable = [r for r in rules_for(item.link, site) if r.applies_to(original)]
    if not original or not applicable:
        return item
    html = original
    for rules in applicable:
        for pattern in rules.strip_patterns:
            html = pattern.sub("", html)
    # A rule whose markers the patterns removed has nothing left to find.
    applicable = [r for r in applicable if r.needs_soup and r.applies_to(html)]
    if not applicable:
        return _with_html(item, html.strip()) if html != original else item
    soup = BeautifulSoup(html, "lxml")
    tags, metadata = clean_soup(soup, applicable, list(item.tags), dict(item.metadata))
    body = soup.body or soup
    # Space left where blocks were cut collapses, so a second pass finds nothing to change.
    cleaned = _BETWEEN_TAGS.sub("> <", "".join(str(c) for c in body.contents)).strip()
    item = replace(item, tags=tuple(dict.fromkeys(t for t in tags if t)),
                   metadata=tuple(sorted(metadata.items())))
    return _with_html(item, cleaned)


def _with_html(item: ParsedItem, html: str) -> ParsedItem:
    if item.content_html:
        return replace(item, content_html=html)
    return replace(item, summary_html=html)


def clean_soup(soup: BeautifulSoup | Tag, applicable: list[SiteRules] | tuple[SiteRules, ...],
               tags: list[str], metadata: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """Apply the rules to a parsed tree in place; return the tags and metadata found."""
    for rules in applicable:
        for selector in rules.keyword_selectors:
            tags += [t.get_text(" ", strip=True) for t in soup.select(selector)]
        for selector in rules.drop_selectors:
            for element in soup.select(selector):
                _drop(element, rules.drop_before)
        for text_rule in rules.text_rules:
            _apply_text_rule(soup, text_rule, metadata)
        _drop_from_headings(soup, rules.drop_from_headings)
        _drop_empty(soup, rules.drop_empty)
    _promote_lazy_images(soup)
    return tags, metadata


def _drop(element: Tag, before: tuple[str, ...]) -> None:
    """Remove an element, and the separators (<hr>, <br>) that only introduced it."""
    previous = element.find_previous_sibling()
    while previous is not None and previous.name in before:
        following = previous.find_previous_sibling()
        previous.decompose()
        previous = following
    element.decompose()


def _drop_from_headings(soup: BeautifulSoup | Tag, headings: tuple[str, ...]) -> None:
    if not headings:
        return
    for element in list(soup.find_all(True)):
        if element.decomposed or element.get_text(strip=True) not in headings:
            continue
        for sibling in list(element.find_next_siblings()):
            sibling.decompose()
        element.decompose()


def _promote_lazy_images(soup: BeautifulSoup | Tag) -> None:
    """<img data-src> (lazy loading) shows nothing in a reader: make it a real src."""
    for img in soup.find_all("img"):
        lazy = img.get("data-src") or img.get("data-original")
        if lazy and not img.get("src"):
            img["src"] = lazy


def _drop_empty(soup: BeautifulSoup | Tag, names: tuple[str, ...]) -> None:
    while names:
        # Empty, or holding nothing but line breaks.
        empty = [t for t in soup.find_all(names) if not t.get_text(strip=True)
                 and all(child.name == "br" for child in t.find_all(True))]
        if not empty:
            return
        for tag in empty:
            tag.decompose()


def _apply_text_rule(soup: BeautifulSoup | Tag, rule: TextRule,
                     metadata: dict[str, str]) -> None:
    for node in list(soup.find_all(string=re.compile(rule.pattern.pattern))):
        text = str(node)
        match = rule.pattern.search(text)
        if match is None:
            continue
        if rule.field and rule.field not in metadata:
            metadata[rule.field] = match.group(rule.group).strip()
        if rule.remove:
            node.replace_with(text[:match.start()] + text[match.end():])
