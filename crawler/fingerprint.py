"""Article → Fingerprint: what story clustering compares, computed once in a parse worker.

Text is folded to one script first (OpenCC, Traditional → Simplified), so a CNA story and
its Simplified republication at RFI fold to nearly the same characters. Then:

- the body's character 3-grams go into a MinHash (datasketch): near-copies of one text;
- the title and lead, folded the same way, are kept as they are, with the proper names and
  numbers rjieba tags in them: independent reports of one development share those.

Storage turns a fingerprint into indexed key rows (crawler.similarity) and compares two
fingerprints without this module's libraries, so the main process never loads them.
"""

from __future__ import annotations

import re
import zlib
from functools import cache

import rjieba
from datasketch import MinHash

from crawler.normalize import COMMENTS_HEADING, fold, plain_text
from crawler.script import to_mainland, to_simplified
from crawler.similarity import NUM_PERM, chinese_numerals_to_digits
from crawler.types import Article, Fingerprint

SHINGLE = 3
#: folded characters of body that are shingled: copies share their beginnings, and a
#: bound here bounds the cost of one article
BODY_CHARS = 2000
LEAD_CHARS = 160  #: folded characters of the body's start kept as the lead
NAME_CHARS = 300  #: characters of the body's start whose names are kept
MAX_NAMES = 24
_SEED = 20221022
#: datasketch's 32-bit affine permutations, named so that a new default in a later release
#: cannot silently change the signatures already stored
_SCHEME = "affine32"

# Title decorations that differ between copies of one story: a column tag in 【】 or [],
# an outlet prefix "德国之声｜", an outlet suffix " – 法国国际广播电台 - RFI".
_TITLE_TAG = re.compile(r"^\s*(?:【[^】]{1,12}】|\[[^\]]{1,12}\])\s*")
_TITLE_PREFIX = re.compile(r"^[^｜|]{2,10}[｜|]\s*")
_TITLE_SUFFIX = re.compile(r"\s+[–—-]\s+[^–—-]{2,30}(?:\s+[–—-]\s+[^–—-]{1,20})?$")
# A dateline or credit at the start of a report says who wrote it, not what happened:
# （中央社記者張謙香港8日電） (法新社帛琉科罗28日电) 【大纪元2022年10月22日讯】
_DATELINE = re.compile(r"[（(【][^（()）【】]{2,40}?(?:電|电|報導|报导|讯|訊|報道|报道)[）)】]")
#: rjieba's tags for person, place, organisation and other proper names, Latin words
_NAME_TAGS = frozenset({"nr", "nrt", "nrfg", "ns", "nt", "nz", "eng", "x_eng"})
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
# A Latin gloss after a Chinese name, 奧斯汀（Lloyd Austin）, is the same name again: counted
# apart, one person would weigh as three shared names.
_GLOSS = re.compile(r"(?<=[\u3400-\u9fff])\s*[（(][A-Za-z][A-Za-z0-9 .·'’&\-]{0,60}[)）]")
# Dates and clock times are shared by all the news of a day: they are not evidence.
_DATE = re.compile(r"\d{4}[-/年.]\d{1,2}(?:[-/月.]\d{1,2}[日号]?)?|\d{1,2}/\d{1,2}/\d{2,4}"
                   r"|\d{1,4}\s*[年月日号时點点分]|\d{1,2}:\d{2}|\d{8}T\d+|\d+Z\b")
_LATIN = re.compile(r"[A-Za-z][A-Za-z0-9]+")


def bare_title(title: str) -> str:
    """The title without the decorations copies of one story do not share."""
    stripped = _TITLE_TAG.sub("", title)
    stripped = _TITLE_PREFIX.sub("", stripped)
    without_suffix = _TITLE_SUFFIX.sub("", stripped)
    return without_suffix if len(without_suffix) >= 6 else stripped


def body_html(article: Article) -> str:
    """The article's HTML without readers' pushes: they are not the story."""
    html = article.content_html
    if article.comments and COMMENTS_HEADING in html:
        html = html[:html.rfind(COMMENTS_HEADING)]
    return html


def fingerprint(article: Article) -> Fingerprint:
    plain = plain_text(body_html(article))
    text = to_simplified(plain)
    body = fold(text)[:BODY_CHARS]
    if len(body) < 40:  # a stub: its title says as much as its text
        body = fold(to_simplified(bare_title(article.title))) + body
    title = to_mainland(bare_title(article.title))
    lead_text = _DATELINE.sub(" ", to_mainland(plain[:NAME_CHARS + 60]))
    lead = fold(chinese_numerals_to_digits(lead_text))[:LEAD_CHARS]
    folded_title = fold(chinese_numerals_to_digits(title))
    return Fingerprint(
        signature=_minhash(body),
        shingles=max(len(body) - SHINGLE + 1, 1),
        title=folded_title,
        lead=lead,
        names=_names(chinese_numerals_to_digits(f"{title}\n{lead_text[:NAME_CHARS]}")),
    )


@cache
def _permutations() -> tuple[object, object]:
    # Drawing the permutations costs more than hashing an article: draw them once.
    return MinHash(num_perm=NUM_PERM, seed=_SEED,  # type: ignore[no-any-return]
                   scheme=_SCHEME).permutations


def _minhash(text: str) -> bytes:
    grams = {text[i:i + SHINGLE] for i in range(max(len(text) - SHINGLE + 1, 1))}
    # crc32 is stable across processes and runs (str hash() is salted) and twice as fast
    # as datasketch's sha1 default; MinHash's own permutations do the mixing.
    digest = MinHash(num_perm=NUM_PERM, seed=_SEED, hashfunc=zlib.crc32,
                     permutations=_permutations(), scheme=_SCHEME)
    digest.update_batch([g.encode() for g in grams])
    signature: bytes = digest.hashvalues.astype("<u4").tobytes()
    return signature


def _names(text: str) -> tuple[str, ...]:
    found: dict[str, None] = {}
    text = _GLOSS.sub(" ", _DATE.sub(" ", text))
    for word, tag in rjieba.tag(text):
        word = word.strip()
        if len(word) < 2:
            continue
        if (tag in _NAME_TAGS or _LATIN.fullmatch(word)) and not word[0].isdigit():
            found[word.lower() if word.isalnum() else fold(word)] = None
    for number in _NUMBER.findall(text):
        if len(number) > 1:  # one digit is too common to say anything
            found["#" + number] = None  # numbers are kept apart from names
    return tuple(name for name in found if name)[:MAX_NAMES]
