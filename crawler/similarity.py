"""Comparing fingerprints, and the index keys that find candidates; stdlib only.

Two signals decide whether two articles tell one story:

- copy: the MinHash estimate of the Jaccard similarity of their bodies' 3-grams, after
  folding to one script. Candidates share an LSH band key (BANDS bands of ROWS rows).
- development: for independent reports, a looser score on title and lead: character
  bigram overlap of the folded title and lead, and the proper names and numbers they share.
  Candidates share at least two name keys, published within the development window.

Keys are signed 64-bit integers (a PostgreSQL BIGINT), kept in one indexed table.
"""

from __future__ import annotations

import hashlib
import math
import operator
import re
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from crawler.types import Fingerprint

NUM_PERM = 128
BANDS = 16  #: LSH bands over the first BANDS * ROWS permutations
ROWS = 4  #: rows per band: P(candidate) = 1 - (1 - J^4)^16: 0.87 at J=0.5, 0.98 at 0.6
BAND_PREFIX = b"b"
NAME_PREFIX = b"n"


def band_keys(fingerprint: Fingerprint) -> tuple[int, ...]:
    """LSH: bodies with Jaccard similarity J share at least one with 1 - (1 - J^ROWS)^BANDS."""
    width = ROWS * 4
    signature = fingerprint.signature
    return tuple(_key(BAND_PREFIX + bytes([band]) + signature[band * width:(band + 1) * width])
                 for band in range(BANDS))


def name_keys(fingerprint: Fingerprint) -> tuple[int, ...]:
    """One per uncommon name: reports sharing a name are compared; numbers are no key."""
    return tuple(name_key(name) for name in fingerprint.names
                 if not name.startswith("#") and name not in COMMON_NAMES)


TITLE_PREFIX = b"t"


def title_key(fingerprint: Fingerprint) -> tuple[int, ...]:
    """The folded headline itself: the same article as a summary in one feed and in full
    in another, or in the other script, shares it even when the bodies hardly overlap."""
    if len(fingerprint.title) < 6:
        return ()
    return (_key(TITLE_PREFIX + fingerprint.title.encode()),)


def name_key(name: str) -> int:
    return _key(NAME_PREFIX + name.encode())


def rarity(holders: int, articles: int) -> float:
    """How much sharing a name says, 0 to 1, when ``holders`` of the ``articles`` around
    have it: a name in two reports says all, one in every other report of the week nothing.
    (An inverse document frequency, scaled to 1 at two holders; at least 100 articles are
    assumed, so a new database does not take every name for a rare one.)"""
    articles = max(articles, 100)
    holders = min(max(holders, 2), articles)
    return max(0.0, min(1.0, math.log(articles / holders) / math.log(articles / 2)))


def _key(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little", signed=True)


def copy_similarity(a: Fingerprint, b: Fingerprint) -> float:
    """Estimated Jaccard similarity of the two bodies' 3-gram sets."""
    first, second = array("I"), array("I")
    first.frombytes(a.signature)
    second.frombytes(b.signature)
    if not first or len(first) != len(second):
        return 0.0
    same: int = sum(map(operator.eq, first, second))
    return same / len(first)


_WORD = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?|[^a-z0-9]+")


@lru_cache(maxsize=8192)
def _bigrams(text: str) -> frozenset[str]:
    """Character bigrams of the Chinese, whole words of the Latin and the numbers: a
    shared "parler" is one piece of evidence, not five. (Cached: clustering compares one
    new article's title with many.)"""
    grams: set[str] = set()
    for run in _WORD.findall(text):
        if run[0].isascii() and run[0].isalnum():
            grams.add(run)
        else:
            grams.update(run[i:i + 2] for i in range(len(run) - 1))
            if len(run) == 1:
                grams.add(run)
    return frozenset(grams)


#: names in so much of the news that sharing them says nothing (folded, Simplified):
#: countries, capitals, the outlets and agencies reports are attributed to, ministries
#: without a country. Beyond these, a name weighs by how rare it is at the time (rarity).
COMMON_NAMES = frozenset("""
中国 美国 台湾 香港 澳门 北京 上海 日本 韩国 朝鲜 俄罗斯 乌克兰 英国 法国
德国 欧洲 亚洲 印度 华盛顿 莫斯科 东京 台北 首尔 伦敦 巴黎 柏林 中共 中方
美方 两岸 大陆 国际 全球 联合国 欧盟 中央社 新华社 法新社 路透 路透社 美联社
彭博社 德国之声 中文网 法广 美国之音 自由亚洲电台 大纪元 联合早报 联合报
联合新闻网 纽约时报 bbc rfi cna dw voa rfa udn ptt 英国广播公司 金融时报 华尔街日报
华盛顿邮报 共同社 半岛电视台 卫报 日经 日经亚洲 韩联社 塔斯社 经济学人 朝日新闻
读卖新闻 联合国大会 外交部 国防部 内政部 商务部 财政部 卫生部 教育部 交通部 政府
""".split())  # noqa: SIM905 - a word list reads best as words


#: weighed shared names below this leave two reports unrelated whatever their headlines:
#: look-alike headlines ("巴黎汇市收黑…", "安卡拉加权指数收黑…") are not one development
MIN_ANCHOR = 0.5
UNANCHORED = 0.3  #: the score of reports that share no such name, at most


@dataclass(frozen=True)
class Relatedness:
    """How two reports compare on title and lead; ``score`` is what the threshold sees."""

    title: float  #: share of one title's bigrams found in the other title (the larger)
    lead: float  #: share of one title's bigrams found in the other's lead (the larger)
    shared: tuple[str, ...]  #: the names both give, common ones left out
    numbers: tuple[str, ...]  #: the numbers both give, dates left out
    score: float


def relatedness(a: Fingerprint, b: Fingerprint, hours_apart: float = 0.0,
                window_hours: float = 48.0,
                weight: Callable[[str], float] | None = None) -> Relatedness:
    """Symmetric. ``weight`` says how rare a name is now (see ``rarity``); without it every
    uncommon name counts fully."""
    first, second = _bigrams(a.title), _bigrams(b.title)
    title = max(_containment(first, second), _containment(second, first))
    lead = max(_containment(first, _bigrams(b.lead)), _containment(second, _bigrams(a.lead)))
    numbers = tuple(n[1:] for n in a.names if n.startswith("#") and n in b.names)
    shared = _shared_names([n for n in a.names if not n.startswith("#")],
                           [n for n in b.names if not n.startswith("#")])
    # Two reports of one development name the same people, places and figures, and
    # their headlines say the same thing in other words; either alone is weak evidence.
    names = sum(weight(n) for n in shared) if weight else float(len(shared))
    evidence = min((names + 0.5 * len(numbers)) / 3, 1.0)
    # Reports of one development come close together; two a day apart are more often
    # two developments of one affair: the score falls to half over the window.
    recency = 1.0 - 0.5 * min(max(hours_apart, 0.0) / window_hours, 1.0)
    score = (0.4 * evidence + 0.4 * title + 0.2 * lead) * recency
    if names < MIN_ANCHOR:
        score = min(score, UNANCHORED)
    return Relatedness(title=title, lead=lead, shared=shared, numbers=numbers, score=score)


def _shared_names(first: list[str], second: list[str]) -> tuple[str, ...]:
    """Names both give, each once, whichever side lists it; a Chinese name of three or
    more characters also matches inside a longer one, because the segmenter sometimes
    glues on the next character (戴耀廷料), and then counts once (土耳其, 土耳其政府)."""
    found: list[str] = []
    for mine, theirs in ((first, second), (second, first)):
        for name in mine:
            if name in COMMON_NAMES or name in found:
                continue
            if name in theirs or (len(name) >= 3 and not name.isascii()
                                  and any(name in other for other in theirs)):
                found.append(name)
    # A name inside another found one is the same name.
    return tuple(n for n in found if not any(n != o and n in o for o in found))


def _containment(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a) if a and b else 0.0


_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "兩": 2, "三": 3, "四": 4, "五": 5,
           "六": 6, "七": 7, "八": 8, "九": 9}
_TENS = re.compile("([一二三四五六七八九]?)十([一二三四五六七八九]?)")


def chinese_numerals_to_digits(text: str) -> str:
    """二十大 → 20大, 十九届 → 19届: numbers compare alike however they are written.

    Only numerals with 十 (10 to 99) are read: a lone 一 is too often part of a word.
    """
    def tens(match: re.Match[str]) -> str:
        high = _DIGITS[match.group(1)] if match.group(1) else 1
        low = _DIGITS[match.group(2)] if match.group(2) else 0
        return str(high * 10 + low)

    return _TENS.sub(tens, text)
