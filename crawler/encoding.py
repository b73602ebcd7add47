"""Bytes → text for Chinese feeds, done by us rather than by feedparser.

feedparser falls back to windows-1252 or iso-8859-2 for the whole document when a charset
lies or a few bytes are bad, which turns Chinese into mojibake (RELIABILITY.md §2.1). Here:
BOM first, then the HTTP charset, then the XML/HTML declaration, then UTF-8, GB18030 and
Big5-HKSCS in turn; the labels are widened (big5 → big5hkscs, gb2312/gbk → gb18030)
because real feeds use characters their label's table lacks.
"""

from __future__ import annotations

import codecs
import re

WIDER = {
    "big5": "big5hkscs",
    "big5-tw": "big5hkscs",
    "cp950": "big5hkscs",
    "x-x-big5": "big5hkscs",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "cp936": "gb18030",
    "x-gbk": "gb18030",
    "euc-cn": "gb18030",
    "hz-gb-2312": "gb18030",
    "ascii": "utf-8",
    "us-ascii": "utf-8",
    "iso-8859-1": "windows-1252",
    "latin-1": "windows-1252",
}
BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_XML_DECL = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9._:-]+)""", re.I)
_HTTP_CHARSET = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9._:-]+)""", re.I)


def normalize_label(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().lower()
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    return WIDER.get(label, WIDER.get(name, name))


def declared_charset(body: bytes) -> str | None:
    head = body[:1024]
    match = _XML_DECL.match(head) or _META_CHARSET.search(head)
    return normalize_label(match.group(1).decode("ascii")) if match else None


def http_charset(content_type: str | None) -> str | None:
    match = _HTTP_CHARSET.search(content_type or "")
    return normalize_label(match.group(1)) if match else None


def decode(body: bytes, content_type: str | None = None, *,
           override: str | None = None) -> tuple[str, str, tuple[str, ...]]:
    """Return (text, encoding used, warnings). Never raises; bad bytes become U+FFFD.

    ``override`` (a source's ``encoding:`` in feeds.yaml) beats the HTTP charset, the
    declaration and detection: a GBK label on Big5 bytes decodes without error, so no
    detection can see through it, and only the user knows. A BOM still wins: it cannot
    be there by accident in a Big5 or GB document, which starts with ASCII ``<``.
    """
    for bom, name in BOMS:
        if body.startswith(bom):
            return body[len(bom):].decode(name, errors="replace"), name, ()
    if override:
        name = normalize_label(override) or override
        text = body.decode(name, errors="replace")
        if "\ufffd" in text:  # the status should say when the override itself looks wrong
            return text, name, (f"encoding {name} from feeds.yaml; invalid bytes replaced "
                                "by U+FFFD",)
        return text, name, ()
    found = (http_charset(content_type), declared_charset(body))
    labels = list(dict.fromkeys(label for label in found if label))
    for name in labels or ["utf-8"]:
        try:
            text = body.decode(name)
        except (UnicodeDecodeError, LookupError):
            continue
        if name != (labels or ["utf-8"])[0]:
            return text, name, (f"charset {labels[0]} did not decode; read as {name}",)
        return text, name, ()
    # The label (if any) lied. GB18030 accepts almost any byte pair, Big5 bytes included,
    # so "decodes without error" proves little: score each reading by how Chinese it looks.
    as_utf8 = body.decode("utf-8", errors="replace")
    bad = as_utf8.count("\ufffd")
    # Valid multi-byte UTF-8 is rare in GB or Big5 bytes: mostly valid means UTF-8 with damage.
    if sum(1 for ch in as_utf8 if ch > "\x7f") - bad > 4 * bad:
        text, name = as_utf8, "utf-8"
    else:
        readings = [(as_utf8, "utf-8")] + [
            (body.decode(n, errors="replace"), n) for n in ("gb18030", "big5hkscs")
        ]
        text, name = max(readings, key=lambda reading: _score(reading[0]))
    said = f"declared {labels[0]}" if labels else "no charset declared"
    damage = " with invalid bytes replaced by U+FFFD" if "\ufffd" in text else ""
    return text, name, (f"{said}; read as {name}{damage}",)


# The commonest characters of news text, in both scripts.
COMMON = frozenset(
    "的一是不了在人有我他这個个們们中来來上大为為和国國地到以说說时時要就出会會可也你对對生能而子"
    "那得于於着著下自之年过過发發后後作里裡用道行所然家种種事成方多经經么麼去法学學如都同现現当當"
    "没沒动動面起看定天分还還进進好小部其些主样樣理心她本前开開但因只从從想实實日军軍者意无無力它"
    "与與长長把机機十民第公此已工使情明性知全三又关關点點正业業外将將两兩高间間由问問很最重并並物"
    "手应應战戰向头頭文体體政美相见見被利什二等产產或新己制身果加西斯月话話合回特代内內信表化老给給"
    "世位次度门門任常先海通教儿兒原东東声聲提立及比员員解水名真论論处處走义義各入几幾口认認条條平系"
    "气氣题題活尔爾更别別打女变變四神总總何电電数數安少报報才结結反受目太量再感建务務做接必场場件"
    "计計管期市直德资資命山金指克许許统統区區保至队隊形社便空决決治展马馬科司五基眼书書非则則听聽白"
    "却界达達光放强強即像难難且权權思王象完设設式色路记記南品住告类類求据據程北边邊死张張该該交规規"
    "万萬取拉格望觉覺术術领領共确確传傳师師观觀清今切院让讓识識候带帶导導争爭运運笑飞飛风風步改收根"
    "干幹造言联聯持组組每济濟车車亲親极極林服快办辦议議往元英士证證近失转轉夫令准準布始怎呢存未远遠"
    "叫台臺单單影具罗羅字爱愛击擊流备備兵连連调調深商算质質团團集百需价價花党黨华華城石级級整府离離"
    "况況亚亞请請技际際约約示复復病息究线線似官火断斷精满滿支视視消越器容照须須九增研写寫称稱企八功"
    "吗嗎包片史委乎查轻輕易早曾除农農找装裝广廣显顯吧阿李标標谈談吃图圖念六引历歷首医醫局突专專费費"
    "號号港灣湾警察總統統民眾众報導导記者记者稱称表示中央社日電电"
)


def _score(text: str) -> int:
    """Higher for text that reads like Chinese: mojibake is rich in rare characters."""
    score = 0
    for ch in text:
        if ch in COMMON:
            score += 4
        elif ch == "\ufffd" or "\ue000" <= ch <= "\uf8ff":
            score -= 6
        elif ch > "\u2e7f":
            score -= 2
    return score
