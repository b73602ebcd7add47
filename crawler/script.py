"""Chinese script with OpenCC: one folded form for matching, an output's conversion, and
an item's script detected when its feed declares no language.

Rules and stories compare text in Simplified (Traditional → Simplified is many-to-one, so
folding is reliable where the reverse would have to guess 后/後, 发/髮). An output asked for
in Traditional uses OpenCC's Taiwan standard characters (s2tw), character by character: a
quoted mainland phrase keeps its words, only its script changes.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

import opencc

_CJK_START, _CJK_END = "\u3400", "\u9fff"
_WORD = re.compile(r"[A-Za-z]+")
#: words that make up a tenth of any English prose and little of any other language's
_ENGLISH = frozenset({"the", "and", "of", "to", "in", "is", "that", "for", "with", "on", "as",
                      "was", "are", "by", "it", "be", "this"})


@cache
def converter(config: str) -> opencc.OpenCC:
    return opencc.OpenCC(config)


def to_simplified(text: str) -> str:
    """Character by character: a republication converted the same way folds alike."""
    return str(converter("t2s").convert(text))


def to_mainland(text: str) -> str:
    """Taiwan's words too (沙烏地阿拉伯 → 沙特阿拉伯, 人工智慧 → 人工智能): two outlets' own
    reports of one event name it alike. Already Simplified text is left as it is."""
    return str(converter("tw2sp").convert(text))


def to_traditional(text: str) -> str:
    return str(converter("s2tw").convert(text))


CONVERSIONS = {"hant": to_traditional, "hans": to_simplified}


def search_form(text: str) -> str:
    """What rules compare: width folded (NFKC: ＡＩ → AI, full-width digits) and Simplified.
    Case is left alone; rules match ignoring it."""
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    return to_simplified(text)


def detect_language(text: str) -> str:
    """zh-Hant or zh-Hans for Chinese text, by which way OpenCC would change it; en for
    English prose; "" for anything else (a guess would be worse than no tag)."""
    sample = text[:600]
    han = sum(1 for ch in sample if _CJK_START <= ch <= _CJK_END)
    letters = sum(1 for ch in sample if ch.isalpha())
    if han < 10 or han < letters * 0.3:
        words = [w.lower() for w in _WORD.findall(text[:2000])]
        common = sum(1 for w in words if w in _ENGLISH)
        return "en" if len(words) >= 20 and common * 10 >= len(words) else ""
    traditional = sum(a != b for a, b in zip(sample, to_simplified(sample), strict=False))
    simplified = sum(a != b for a, b in zip(sample, to_traditional(sample), strict=False))
    if traditional == simplified:
        return "zh"
    return "zh-Hant" if traditional > simplified else "zh-Hans"
