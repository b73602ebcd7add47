"""Output rules: which sources an output draws from, and whether an item passes its
keywords, languages and length (pure; storage hands the candidates in).

Keywords are compared in one folded form (crawler.script.search_form: Simplified script,
width folded) and ignoring case, so "防長" finds "防长" and "nato" finds "NATO". A keyword
that starts or ends with a Latin letter or digit must stand as a word there: "AI" is not
found in "said". A keyword written /…/ is a regular expression, folded the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from crawler.config import is_pattern
from crawler.errors import ConfigError
from crawler.languages import language_matches
from crawler.normalize import plain_text
from crawler.script import search_form
from crawler.types import Candidate, Config, Matched, Output, Rule

_WORDISH = re.compile(r"[A-Za-z0-9]")
MAX_QUERY_KEYWORDS = 10


@dataclass(frozen=True)
class Narrowing:
    """Query parameters that narrow an output for one request (?q=&tag=&source=&limit=)."""

    q: str = ""  #: keywords, all of which must be in the title or text
    tag: str | None = None  #: only sources with this tag
    source: str | None = None  #: only this source
    limit: int | None = None  #: fewer items than the output's limit

    def query_string(self) -> str:
        """Canonical order, so one narrowing is one cache entry and one self link."""
        from urllib.parse import urlencode

        pairs = [(k, v) for k, v in (("q", self.q), ("tag", self.tag), ("source", self.source),
                                     ("limit", str(self.limit) if self.limit else None)) if v]
        return urlencode(pairs)


def sources_for_output(config: Config, output: Output,
                       narrowing: Narrowing | None = None) -> tuple[str, ...] | None:
    """Source names the output (narrowed) includes; None means every source, past and
    present. Raises ConfigError when the narrowing names a tag or source that is not there."""
    names: tuple[str, ...] | None = None
    if output.feeds or output.tags:
        wanted = set(output.tags)
        found = dict.fromkeys(output.feeds)
        for source in config.sources:
            if wanted.intersection(source.tags):
                found.setdefault(source.name)
        names = tuple(found)
    if narrowing is None:
        return names
    if narrowing.source is not None:
        if narrowing.source not in {s.name for s in config.sources}:
            raise ConfigError(config.path, [f"no feed is named {narrowing.source!r}"])
        if names is not None and narrowing.source not in names:
            raise ConfigError(config.path, [
                f"feed {narrowing.source!r} is not in output {output.name!r}"])
        names = (narrowing.source,)
    if narrowing.tag is not None:
        tagged = {s.name for s in config.sources if narrowing.tag in s.tags}
        if not tagged:
            raise ConfigError(config.path, [f"no feed has the tag {narrowing.tag!r}"])
        names = tuple(n for n in (names if names is not None else
                                  tuple(s.name for s in config.sources)) if n in tagged)
    return names


@lru_cache(maxsize=4096)
def keyword_pattern(keyword: str) -> re.Pattern[str]:
    """The compiled form of one keyword as written in feeds.yaml or ?q=."""
    if is_pattern(keyword):
        return re.compile(search_form(keyword[1:-1]), re.IGNORECASE)
    folded = search_form(keyword)
    pattern = re.escape(folded)
    if _WORDISH.match(folded[:1]):
        pattern = r"(?<![A-Za-z0-9])" + pattern
    if _WORDISH.match(folded[-1:]):
        pattern += r"(?![A-Za-z0-9])"
    return re.compile(pattern, re.IGNORECASE)


def query_rule(q: str) -> Rule | None:
    """?q=: space-separated keywords, every one in the title or text."""
    words = tuple(q.split()[:MAX_QUERY_KEYWORDS])
    return Rule(keywords=words, match="all") if words else None


class Selector:
    """Decides, for one candidate, whether an output shows it and which rules said so."""

    def __init__(self, output: Output, narrowing: Narrowing | None = None) -> None:
        self.output = output
        self.include = output.include
        self.query = query_rule(narrowing.q) if narrowing else None
        for rule in (*output.include, *output.exclude, *((self.query,) if self.query else ())):
            for keyword in rule.keywords:
                keyword_pattern(keyword)  # compile errors surface here, not per item

    def __call__(self, candidate: Candidate) -> tuple[Matched, ...] | None:
        fields = _Fields(candidate)
        output = self.output
        if output.min_length and fields.text_length() < output.min_length:
            return None
        matched: list[Matched] = []
        if output.languages:
            language = next((w for w in output.languages
                             if language_matches(candidate.language, w)), None)
            if language is None:
                return None
            matched.append(Matched("languages", language))
        for rule in output.exclude:
            if _passes(rule, fields, "exclude") is not None:
                return None
        for name, rules in (("include", self.include),
                            ("q", (self.query,) if self.query else ())):
            for rule in rules:
                found = _passes(rule, fields, name)
                if found is None:
                    return None
                matched.extend(found)
        return tuple(matched)


class _Fields:
    """A candidate's fields in folded form, each folded only if a rule asks for it."""

    def __init__(self, candidate: Candidate) -> None:
        self.candidate = candidate
        self._folded: dict[str, str] = {}
        self._plain: str | None = None

    def _raw_plain(self) -> str:
        if self._plain is None:
            self._plain = plain_text(self.candidate.raw_html or "")
        return self._plain

    def text_length(self) -> int:
        if self.candidate.text_length >= 0:
            return self.candidate.text_length
        return len(self._raw_plain().strip())

    def get(self, name: str) -> str:
        if name not in self._folded:
            c = self.candidate
            if name == "text":
                value = c.search_text if c.raw_html is None else search_form(self._raw_plain())
            elif name == "title":
                value = search_form(c.title)
            elif name == "author":
                value = search_form(c.author or "")
            else:
                value = search_form("\n".join(c.tags))
            self._folded[name] = value
        return self._folded[name]


def _passes(rule: Rule, fields: _Fields, name: str) -> list[Matched] | None:
    """The keywords that make the rule hold (any: the first found; all: each), or None."""
    found: list[Matched] = []
    for keyword in rule.keywords:
        pattern = keyword_pattern(keyword)
        where = next((f for f in rule.fields if pattern.search(fields.get(f))), None)
        if where is not None:
            found.append(Matched(name, keyword, where))
            if rule.match == "any":
                return found
        elif rule.match == "all":
            return None
    return found if found and rule.match == "all" else None
