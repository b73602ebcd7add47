"""An article page (HTML) → :class:`ParsedItem`: for ``full_text: true`` sources.

A site with page rules (crawler.cleaners: CNA, UDN, …) is read with them: its title, its
byline (date and author or agency), its body, cleaned of the site's boilerplate. Any other
site goes to trafilatura, which finds the main text of most news pages.
"""

from __future__ import annotations

import re
from datetime import datetime

from bs4 import BeautifulSoup

from crawler.cleaners import clean_soup, rules_for
from crawler.cleaners.rules import SiteRules
from crawler.dates import parse_date
from crawler.encoding import decode
from crawler.errors import NotAFeed
from crawler.types import ParsedItem

MIN_ARTICLE_CHARS = 40
_BYLINE_DATE = re.compile(r"\d{4}[-/年.]\d{1,2}[-/月.]\d{1,2}日?(?:\s+\d{1,2}:\d{2}(?::\d{2})?)?")


def parse_page(body: bytes, content_type: str | None, url: str, now: datetime,
               site: str | None = None) -> ParsedItem:
    text, _encoding, _warnings = decode(body, content_type)
    rules = rules_for(url, site)
    with_page = next((r for r in rules if r.page_body), None)
    if with_page is not None:
        item = _with_rules(text, url, with_page, rules, now)
        if item is not None:
            return item
    return _with_trafilatura(text, url, now)


def _with_rules(text: str, url: str, page: SiteRules, rules: tuple[SiteRules, ...],
                now: datetime) -> ParsedItem | None:
    soup = BeautifulSoup(text, "lxml")
    body = next((found for selector in page.page_body if (found := soup.select_one(selector))),
                None)
    if body is None:
        return None  # a page of another template: let trafilatura try
    title = next((t.get_text(" ", strip=True) for s in page.page_title
                  if (t := soup.select_one(s))), "")
    byline = next((t.get_text(" ", strip=True) for s in page.page_byline
                   if (t := soup.select_one(s))), "")
    published = parse_date(_date_part(byline), now=now) if byline else None
    author = None
    if byline and page.page_author is not None:
        match = page.page_author.search(byline)
        author = " ".join(match.group(1).split()) if match else None
    tags, metadata = clean_soup(body, [r for r in rules if r.applies_to(str(body))], [], {})
    if len(body.get_text(strip=True)) < MIN_ARTICLE_CHARS:
        raise NotAFeed("the page's article block is empty")
    return ParsedItem(
        guid=None, link=url, title=title, content_html=body.decode_contents().strip(),
        summary_html="", author=author, published=published, updated=None,
        tags=tuple(dict.fromkeys(tags)), metadata=tuple(sorted(metadata.items())),
    )


def _date_part(byline: str) -> str:
    """"最新更新： 2016/03/19 10:48" or "2019-03-18 23:59 聯合報 …" → the date and time."""
    match = _BYLINE_DATE.search(byline)
    return match.group(0) if match else ""


def _with_trafilatura(text: str, url: str, now: datetime) -> ParsedItem:
    import trafilatura  # heavy, and needed only for sites without page rules

    html = trafilatura.extract(text, url=url, output_format="html", include_images=True,
                               include_links=True, include_comments=False, favor_precision=True)
    # A menu or a cookie notice is not an article: ask for some text before calling it one.
    if not html or len(BeautifulSoup(html, "lxml").get_text(strip=True)) < MIN_ARTICLE_CHARS:
        raise NotAFeed("no article text found on the page")
    meta = trafilatura.extract_metadata(text, default_url=url)
    soup = BeautifulSoup(html, "lxml")
    body = soup.body or soup
    first = body.find("h1")
    if first is not None:
        first.decompose()  # the title is a field of its own
    return ParsedItem(
        guid=None, link=url, title=(meta.title if meta and meta.title else ""),
        content_html=body.decode_contents().strip(), summary_html="",
        author=meta.author if meta and meta.author else None,
        published=parse_date(meta.date, now=now) if meta and meta.date else None,
        updated=None,
    )
