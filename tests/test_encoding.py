"""crawler.encoding.decode on the hostile encoding corpus (copied into tests/data/encoding/).

Each case names the codec the bytes really are in, so the whole decoded document can be
compared with a reference decoding, plus the exact Chinese titles a reader would see.
"""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest

from crawler.encoding import decode

DATA = Path(__file__).parent / "data" / "encoding"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "hostile"

BIG5_NEWS = ("<title>中央社 即時新聞</title>", "<title>臺灣新聞 颱風來襲</title>",
             "<description>中央社台北11月2日電 立法院今天三讀通過颱風災後重建特別條例，"
             "行政院表示將儘速撥款。</description>")
GB_NEWS = ("<title>新闻 简体</title>", "<title>朱镕基 喆 𠮷野家 €</title>",
           "<description>新华社北京11月2日电 记者从有关部门获悉，今年秋粮收购工作进展顺利。"
           "</description>")
# gbk_undeclared.xml was written with a GBK encoder, which has no 𠮷 and wrote "?" for it
# and for €: the bytes really are "?" there.
GBK_NEWS = ("<title>新闻 简体</title>", "<title>朱镕基 喆 ?野家 ?</title>", GB_NEWS[2])
CHANNEL = "<title>測試頻道</title>"

# file, Content-Type (manifest serve_with), the codec the bytes are really in, whether the
# reading needed a recovery (undeclared or lying charset), and text that must appear.
CLEAN_CASES = [
    pytest.param("big5_declared.xml", "application/rss+xml", "big5hkscs", False, BIG5_NEWS,
                 id="big5-declared"),
    pytest.param("big5_undeclared.xml", "application/xml", "big5hkscs", True, BIG5_NEWS,
                 id="big5-undeclared"),
    pytest.param("big5_http_charset_only.xml", "application/rss+xml; charset=big5",
                 "big5hkscs", False, BIG5_NEWS, id="big5-http-charset-only"),
    pytest.param("big5_label_hkscs_chars.xml", None, "big5hkscs", False,
                 ("<title>香港 㗎 啲 嘅</title>", "<description>粵語用字 㗎 𨋢</description>"),
                 id="big5-label-hkscs-chars"),
    pytest.param("big5_mislabeled_utf8.xml", None, "big5hkscs", True, BIG5_NEWS,
                 id="big5-mislabeled-utf8"),
    pytest.param("gb18030_declared.xml", None, "gb18030", False, GB_NEWS,
                 id="gb18030-declared"),
    pytest.param("gb2312_declared_gbk_chars.xml", None, "gb18030", False, GB_NEWS,
                 id="gb2312-declared-gbk-chars"),
    pytest.param("gb18030_undeclared.xml", "application/xml", "gb18030", True, GB_NEWS,
                 id="gb18030-undeclared"),
    pytest.param("gbk_undeclared.xml", "text/xml", "gb18030", True, GBK_NEWS,
                 id="gbk-undeclared"),
    pytest.param("http_charset_conflicts_decl.xml", "application/rss+xml; charset=utf-8",
                 "gb18030", True, GB_NEWS, id="http-charset-conflicts-decl"),
    pytest.param("declared_utf8_actually_gb18030.xml", "application/rss+xml", "gb18030", True,
                 GB_NEWS, id="declared-utf8-actually-gb18030"),
    # Character references are the XML parser's business: decode must hand them on as text.
    pytest.param("html_entities_numeric_big5.xml", None, "big5hkscs", False,
                 (CHANNEL, "<title>&#33274;&#28771; &#x1F600; &#0; &#xD800; &#1114112;</title>"),
                 id="html-entities-numeric-big5"),
    pytest.param("numeric_ref_out_of_range.xml", None, "utf-8", False,
                 (CHANNEL, "<title>前&#1114112;後</title>"), id="numeric-ref-out-of-range"),
    pytest.param("numeric_ref_nul.xml", None, "utf-8", False,
                 (CHANNEL, "<title>前&#0;後</title>"), id="numeric-ref-nul"),
    # Stripping XML-illegal controls happens later (parse/emit); decoding keeps every character.
    pytest.param("xml_illegal_control_chars.xml", None, "utf-8", False,
                 (CHANNEL, "<title>控制字元\x0b\x1b\x08測試</title>",
                  "<description>NUL\x00在此 \x0c 換頁</description>"),
                 id="xml-illegal-control-chars"),
]

R = "\ufffd"
# Invalid UTF-8: each bad sequence becomes U+FFFD (one per maximal invalid subpart, as the
# WHATWG decoder does) and every valid character around it survives.
DAMAGED_CASES = [
    pytest.param("invalid_utf8.xml", None, 14,
                 (CHANNEL, "<description>hostile corpus</description>",
                  # ff fe | c3 ( | e4 b8 | f0 ( | 8c bc | ed a0 80 | c0 af
                  f"<title>UTF-8 壞位元組 {R}{R}{R}({R}{R}({R}{R}{R}{R}{R}{R}{R}</title>",
                  f"<description>前 {R}{R} 後</description>",
                  "<pubDate>Sun, 02 Nov 2025 06:00:00 +0800</pubDate>"),
                 id="invalid-utf8"),
    pytest.param("utf8_truncated_multibyte.xml", None, 1,
                 (CHANNEL, "<title>截斷</title>"), id="utf8-truncated-multibyte"),
]


def _files_with_cases() -> set[str]:
    return {p.values[0] for p in CLEAN_CASES + DAMAGED_CASES}


@pytest.mark.parametrize(("name", "content_type", "codec", "recovered", "expected"), CLEAN_CASES)
def test_decode_gives_the_exact_text(
    name: str, content_type: str | None, codec: str, recovered: bool, expected: tuple[str, ...]
) -> None:
    """Chinese feeds decode to exactly their text, whatever their labels claim."""
    body = (DATA / name).read_bytes()
    text, encoding, warnings = decode(body, content_type)
    assert encoding == codec
    assert text == body.decode(codec)
    assert "\ufffd" not in text
    for fragment in expected:
        assert fragment in text
    # An undeclared or lying charset is reported to the feed's status; a truthful one is not.
    assert bool(warnings) is recovered


@pytest.mark.parametrize(("name", "content_type", "replaced", "expected"), DAMAGED_CASES)
def test_invalid_utf8_replaces_only_the_bad_bytes(
    name: str, content_type: str | None, replaced: int, expected: tuple[str, ...]
) -> None:
    """Bad UTF-8 bytes become U+FFFD one by one instead of turning the document to mojibake."""
    body = (DATA / name).read_bytes()
    text, encoding, warnings = decode(body, content_type)
    assert encoding == "utf-8"
    assert text.count("\ufffd") == replaced
    for fragment in expected:
        assert fragment in text
    assert any("U+FFFD" in warning for warning in warnings)


def test_truncated_utf8_keeps_everything_before_the_cut() -> None:
    """A document cut inside a character keeps all text up to the cut, then one U+FFFD."""
    body = (DATA / "utf8_truncated_multibyte.xml").read_bytes()
    text, _, _ = decode(body)
    assert text.endswith("<pubDate>Sun, 02 Nov 2025 06:00:00 +0新\ufffd")


@pytest.mark.parametrize(("body", "content_type", "expected"), [
    pytest.param(codecs.BOM_UTF8 + '<?xml version="1.0" encoding="gbk"?><t>新聞</t>'.encode(),
                 None, '<?xml version="1.0" encoding="gbk"?><t>新聞</t>', id="utf8-bom-gbk-decl"),
    pytest.param(codecs.BOM_UTF16_LE + '<?xml version="1.0"?><t>新聞</t>'.encode("utf-16-le"),
                 "application/xml; charset=utf-8", '<?xml version="1.0"?><t>新聞</t>',
                 id="utf16le-bom-beats-http-charset"),
])
def test_byte_order_mark_wins(body: bytes, content_type: str | None, expected: str) -> None:
    """A BOM says how the bytes are encoded, over any declaration or HTTP charset."""
    text, _, _ = decode(body, content_type)
    assert text == expected


def test_every_manifest_encoding_file_is_covered_and_copied_verbatim() -> None:
    """The copies in tests/data/encoding match the shared corpus and its serve_with headers."""
    manifest_path = SHARED / "manifest.json"
    if not manifest_path.is_file():
        pytest.skip(f"shared corpus not found at {SHARED}; the copies are used as they are")
    entries = [e for e in json.loads(manifest_path.read_text(encoding="utf-8"))
               if e["file"].startswith("encoding/")]
    assert entries
    content_types = {p.values[0]: p.values[1] for p in CLEAN_CASES + DAMAGED_CASES}
    for entry in entries:
        name = entry["file"].removeprefix("encoding/")
        assert name in _files_with_cases(), f"no test case for {entry['file']}"
        assert (DATA / name).read_bytes() == (SHARED / entry["file"]).read_bytes(), name
        assert content_types[name] == entry.get("serve_with", {}).get("Content-Type"), name


def test_raw_ptt_bbs_file_in_big5_uao() -> None:
    """A raw PTT BBS file (Big5 with UAO/HKSCS code points, no declaration) decodes to the
    text an independent Big5-UAO converter gives (go-pttbbsweb's own UTF-8 copy, a prefix)."""
    raw = (DATA / "ptt-bbs-raw_big5-uao.txt").read_bytes()
    independent = (DATA / "ptt-bbs-raw_utf8.txt").read_text(encoding="utf-8")
    text, encoding, _warnings = decode(raw, None)
    assert encoding == "big5hkscs"
    assert text.replace("\r\n", "\n").startswith(independent)
    assert "\ufffd" not in text


def test_override_beats_the_http_charset_and_the_declaration() -> None:
    """A source's `encoding:` decodes Big5 bytes labeled GBK (which decode as GB18030
    without error, into other characters); a BOM still wins over it."""
    body = (DATA / "big5_declared.xml").read_bytes().replace(b'encoding="Big5"',
                                                             b'encoding="GBK"', 1)
    garbled, name, _ = decode(body, "application/rss+xml; charset=gbk")
    assert name == "gb18030" and BIG5_NEWS[1] not in garbled
    text, name, warnings = decode(body, "application/rss+xml; charset=gbk", override="big5")
    assert name == "big5hkscs" and warnings == ()
    for fragment in BIG5_NEWS:
        assert fragment in text
    bom, name, _ = decode(codecs.BOM_UTF8 + "<rss>中</rss>".encode(), None, override="big5")
    assert (bom, name) == ("<rss>中</rss>", "utf-8")
    _, _, warnings = decode("中文".encode(), None, override="big5")
    assert warnings and "U+FFFD" in warnings[0]
