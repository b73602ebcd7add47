"""Every served output is valid by the rules a feed validator applies, and real readers read it.

One crawl (module scope) of the real fixtures (feedx-style RSS with full text fetched from
CNA/UDN/RFI/Zaobao pages, the waimei posts, the jekyll-feed Atom, the Jekyll archive, a PTT
board) and of the hostile corpus (../shared/fixtures/hostile: XSS, bad dates, control
characters, duplicate guids, broken encodings, ...), into one SQLite file. A real
`crawler serve` process on 127.0.0.1 then serves the output `all`, once with
`collapse: article` and once with `collapse: story`, and every test runs against both.

1. The W3C Feed Validation Service's rules (its code cannot be installed here), encoded from
   ../shared/ECOSYSTEM.md §1 and §3 (RSS 2.0, Atom 1.0, JSON Feed 1.1, HTTP caching, XSLT)
   and the output rules of ../shared/RELIABILITY.md §6: one named test per rule, and each
   failure names the item that broke it. xmllint and xsltproc check the XML bytes.
2. newsboat, a real feed reader, subscribes to the RSS and Atom outputs (`-x reload`).
3. feedparser reads RSS and Atom, the PyPI library jsonfeed-util reads the JSON Feed; all
   must yield the same titles, links and ids as the JSON Feed.
"""

from __future__ import annotations

import gzip
import html
import http.client
import io
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import feedparser
import jsonschema
import pytest
from lxml import etree
from lxml import html as lxml_html

from tests.support import serving

DATA = Path(__file__).parent / "data"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
HOSTILE = SHARED / "fixtures" / "hostile"
SCHEMA = SHARED / "schemas" / "jsonfeed-1.1.schema.json"
OUTPUT = "all"
FORMATS = ("xml", "atom", "json")
XML_FORMATS = ("xml", "atom")
MEDIA_TYPES = {"xml": "application/rss+xml; charset=utf-8",
               "atom": "application/atom+xml; charset=utf-8",
               "json": "application/feed+json; charset=utf-8"}
ATOM_NS = "http://www.w3.org/2005/Atom"
A = f"{{{ATOM_NS}}}"
CONTENT_ENCODED = "{http://purl.org/rss/1.0/modules/content/}encoded"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
NEWSBOAT_MISSING = "newsboat not installed; .ci/run installs Debian's newsboat"

#: hostile files that parse into items (see the corpus manifest's `expect`). Left out: the
#: bombs, entity attacks (safe_entities.xml included: the crawler refuses every entity
#: declaration), the two files whose illegal character references fail the whole parse
#: (numeric_ref_out_of_range.xml, html_entities_numeric_big5.xml), empty/binary/HTML
#: bodies, and the 20,000-item feed: they yield no item, or only cost time.
HOSTILE_FEEDS = (
    "xss/rss_content_xss.xml",
    "xss/item_link_javascript.xml",
    "xss/title_with_markup.xml",
    "xss/jsonfeed_xss.json",
    "dates/rss_dates.xml",
    "dates/atom_dates.xml",
    "dedup/duplicate_guids.xml",
    "dedup/cross_feed_same_guid.xml",
    "base/rss_relative_links.xml",
    "base/atom_xml_base.xml",
    "encoding/xml_illegal_control_chars.xml",
    "encoding/numeric_ref_nul.xml",
    "encoding/invalid_utf8.xml",
    "encoding/big5_declared.xml",
    "encoding/big5_http_charset_only.xml",
    "encoding/big5_label_hkscs_chars.xml",
    "encoding/big5_mislabeled_utf8.xml",
    "encoding/big5_undeclared.xml",
    "encoding/gb18030_declared.xml",
    "encoding/gb18030_undeclared.xml",
    "encoding/gb2312_declared_gbk_chars.xml",
    "encoding/gbk_undeclared.xml",
    "encoding/declared_utf8_actually_gb18030.xml",
    "encoding/http_charset_conflicts_decl.xml",
    "xml/external_dtd.xml",
    "xml/undeclared_html_entities.xml",
    "shape/ok_baseline.xml",
    "shape/crlf_and_tabs_in_urls.xml",
    "shape/huge_title.xml",
    "shape/deep_html_in_description.xml",
    "shape/rss_without_channel.xml",
    "shape/truncated.xml",
)

# --- rules, as the validators write them -----------------------------------------------------

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
RFC822 = re.compile(rf"^({'|'.join(DAYS)}), (\d{{1,2}}) ({'|'.join(MONTHS)}) (\d{{4}}) "
                    r"(\d{2}):(\d{2}):(\d{2}) (GMT|[+-]\d{4})$")
RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?"
                     r"(Z|[+-]\d{2}:\d{2})$")
LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$")
#: the characters XML 1.0 (§2.2 Char) forbids, also when written as a character reference
XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
CHAR_REF = re.compile(r"&#(?:[xX]([0-9A-Fa-f]+)|([0-9]+));")
#: no active content (the validator's list) and nothing else RELIABILITY.md §6 forbids
ACTIVE_TAGS = {"script", "iframe", "object", "embed", "applet", "frame", "frameset", "style",
               "link", "meta", "base", "form", "input", "button", "textarea", "select", "svg",
               "math", "noscript", "template"}
SCRIPT_SCHEMES = ("javascript:", "vbscript:", "data:", "file:", "livescript:")
URL_ATTRS = {"href", "src", "srcset", "action", "formaction", "xlink:href", "poster", "cite",
             "background", "data", "longdesc", "usemap", "lowsrc", "dynsrc", "ping"}
ENTRY_ID = re.compile(r"^(?:urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                      r"[0-9a-f]{12}|tag:[^\s,]+,\d{4}(?:-\d{2}(?:-\d{2})?)?:\S+)$")


def rfc822_problem(value: str | None) -> str | None:
    """Why `value` is not an RFC 822 date as RSS 2.0 wants it, or None."""
    if value is None:
        return "missing"
    match = RFC822.match(value)
    if not match:
        return (f"{value!r} is not RFC 822 'Ddd, DD Mon YYYY HH:MM:SS GMT|+hhmm' "
                "(4-digit year, GMT or a numeric zone)")
    day, mday, month, year, hour, minute, second, _zone = match.groups()
    try:
        written = datetime(int(year), MONTHS.index(month) + 1, int(mday), int(hour),
                           int(minute), int(second))
    except ValueError as exc:
        return f"{value!r} is not a real date: {exc}"
    if DAYS[written.weekday()] != day:
        return f"{value!r}: {written:%Y-%m-%d} is a {DAYS[written.weekday()]}, not a {day}"
    return None


def rfc3339(value: str) -> datetime | None:
    """The instant of a strict RFC 3339 timestamp (RFC 4287 §3.3: upper-case T and Z)."""
    match = RFC3339.match(value)
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        if zone == "Z":
            tz = UTC
        else:
            hours, minutes = int(zone[1:3]), int(zone[4:6])
            if hours > 23 or minutes > 59:
                return None
            sign = 1 if zone[0] == "+" else -1
            tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
        micro = int((fraction or ".0")[1:7].ljust(6, "0"))
        return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                        micro, tzinfo=tz)
    except ValueError:
        return None


def rfc3339_problem(value: str | None) -> str | None:
    if value is None:
        return "missing"
    if rfc3339(value) is None:
        return f"{value!r} is not an RFC 3339 date-time"
    return None


def format_checker() -> jsonschema.FormatChecker:
    """jsonschema's checker, with date-time always checked: jsonschema skips that format
    silently unless the optional rfc3339-validator package is installed."""
    checker = jsonschema.FormatChecker()
    checker.checks("date-time")(lambda value: not isinstance(value, str)
                                or rfc3339(value) is not None)
    return checker


def http_url(value: str | None) -> bool:
    if not value:
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and value == value.strip()


def _compact(value: str) -> str:
    """A URL as a browser reads its scheme: no whitespace or control characters."""
    return "".join(ch for ch in value if ord(ch) > 32).lower()


def _fragments(fragment: str) -> list[Any]:
    if not fragment.strip():
        return []
    return [part for part in lxml_html.fragments_fromstring(fragment)
            if not isinstance(part, str)]


def html_problems(fragment: str) -> list[str]:
    """Parse as an HTML fragment; no active elements, event handlers or script URLs."""
    try:
        parts = _fragments(fragment)
    except (etree.ParserError, ValueError) as exc:
        return [f"does not parse as an HTML fragment: {exc}"]
    problems: list[str] = []
    for part in parts:
        for element in part.iter():
            if not isinstance(element.tag, str):
                continue
            tag = element.tag.lower()
            if tag in ACTIVE_TAGS:
                problems.append(f"<{tag}> element")
            for name, value in element.attrib.items():
                lowered = name.lower()
                if lowered.startswith("on"):
                    problems.append(f"event handler {name}= on <{tag}>")
                elif lowered in ("style", "srcdoc", "formaction"):
                    problems.append(f"{name}= attribute on <{tag}>")
                for url in value.split(",") if lowered == "srcset" else [value]:
                    if _compact(url).startswith(SCRIPT_SCHEMES):
                        problems.append(f"script URL {name}={value[:80]!r} on <{tag}>")
    return problems


def html_url_problems(fragment: str) -> list[str]:
    """Every URL attribute is absolute http(s) (or mailto:), as RELIABILITY.md §6 wants."""
    try:
        parts = _fragments(fragment)
    except (etree.ParserError, ValueError):
        return []  # html_problems reports it
    problems: list[str] = []
    for part in parts:
        for element in part.iter():
            if not isinstance(element.tag, str):
                continue
            for name, value in element.attrib.items():
                if name.lower() not in URL_ATTRS:
                    continue
                urls = ([c.strip().split()[0] for c in value.split(",") if c.strip()]
                        if name.lower() == "srcset" else [value])
                for url in urls:
                    if not (http_url(url) or _compact(url).startswith("mailto:")):
                        problems.append(f"{name}={url!r} on <{element.tag}> is not an "
                                        "absolute http(s) or mailto: URL")
    return problems


def illegal_characters(text: str) -> list[str]:
    """XML 1.0-illegal code points, raw or as character references, with where they are."""
    found: list[str] = []
    for match in XML_ILLEGAL.finditer(text):
        found.append(f"U+{ord(match.group()):04X} {_where(text, match.start())}")
    for match in CHAR_REF.finditer(text):
        code = int(match.group(1), 16) if match.group(1) else int(match.group(2))
        if code > 0x10FFFF or XML_ILLEGAL.match(chr(code)):
            found.append(f"character reference {match.group()} {_where(text, match.start())}")
    return found


def _where(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    titles = re.findall(r"<title[^>]*>([^<]*)</title>", text[:offset])
    near = f" in the item titled {html.unescape(titles[-1])!r}" if titles else ""
    return f"at line {line}{near}: {text[max(0, offset - 30):offset + 30]!r}"


def report(rule: str, problems: list[str], limit: int = 40) -> str:
    shown = problems[:limit]
    more = f"\n  ... and {len(problems) - limit} more" if len(problems) > limit else ""
    return f"{rule}: {len(problems)} problem(s)\n  " + "\n  ".join(shown) + more


# --- HTTP without magic: no automatic Accept-Encoding or decompression ------------------------

@dataclass
class Reply:
    url: str
    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def fetch(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> Reply:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                            timeout=30)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request(method, target,
                           headers={"Accept-Encoding": "identity", **(headers or {})})
        response = connection.getresponse()
        body = response.read()
        collected: dict[str, str] = {}
        for name, value in response.getheaders():
            key = name.lower()
            collected[key] = f"{collected[key]}, {value}" if key in collected else value
        return Reply(url, response.status, collected, body)
    finally:
        connection.close()


class StaticServer:
    """The fixture files on 127.0.0.1, each with the headers the corpus says to serve it with."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[bytes, dict[str, str]]] = {}
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                found = routes.get(self.path.split("?", 1)[0])
                if found is None:
                    self.send_error(404)
                    return
                body, headers = found
                self.send_response(200)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add(self, path: str, body: bytes, content_type: str, **headers: str) -> str:
        self.routes[path] = (body, {"Content-Type": content_type, **headers})
        return self.base_url + path

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def _wrapper_rss(items: list[tuple[str, str]]) -> bytes:
    """A feedx-style list feed whose items point at article pages (full_text: true)."""
    entries = "".join(f"<item><title>{t}</title><link>{u}</link><guid>{u}</guid>"
                      "<pubDate>Sat, 19 Mar 2016 08:00:00 +0800</pubDate>"
                      f"<description>摘要 {t}</description></item>" for t, u in items)
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t'
            f"</title><link>http://x.example/</link>{entries}</channel></rss>").encode()


# --- the corpus, crawled once ------------------------------------------------------------------

@dataclass
class Corpus:
    folder: Path
    database: str
    sources: list[str]  #: YAML lines of the feeds: list
    names: list[str]
    crawl: subprocess.CompletedProcess[str]

    def config(self, collapse: str) -> Path:
        path = self.folder / f"feeds-{collapse}.yaml"
        path.write_text(
            "settings:\n"
            f"  database: {self.database}\n"
            "  interval: 3600\n  timeout: 10\n  concurrency: 4\n  parse_workers: 2\n"
            "  allowed_networks: [127.0.0.0/8]\n"
            "feeds:\n" + "".join(self.sources) +
            "outputs:\n"
            f"  - name: {OUTPUT}\n    title: 全部 Everything\n    limit: 1000\n"
            f"    collapse: {collapse}\n", encoding="utf-8")
        return path


@pytest.fixture(scope="module")
def static() -> Iterator[StaticServer]:
    server = StaticServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, static: StaticServer) -> Corpus:
    folder = tmp_path_factory.mktemp("validity")
    page = "text/html; charset=utf-8"
    sources: list[str] = []
    names: list[str] = []

    def source(name: str, url: str, **extra: object) -> None:
        lines = [f"  - name: {name}\n", f"    url: {url}\n", f"    tags: [{name.split('-')[0]}]\n"]
        lines += [f"    {key}: {str(value).lower() if isinstance(value, bool) else value}\n"
                  for key, value in extra.items()]
        sources.append("".join(lines))
        names.append(name)

    # The real fixtures, as test_e2e and test_formats_e2e crawl them.
    source("waimei", static.add("/waimei.rss", (DATA / "feeds/waimei_posts.rss").read_bytes(),
                                "application/rss+xml"))
    source("solidot-atom", static.add("/solidot.atom",
                                      (DATA / "feeds/solidot.atom").read_bytes(),
                                      "application/atom+xml"))
    pages = {}
    for site, file, path in (("cna", "cna_201603190029.html", "/cna/201603190029.aspx"),
                             ("udn", "udn_3705102.html", "/udn/story/7315/3705102"),
                             ("rfi", "rfi_t-dome.html", "/rfi/cn/t-dome"),
                             ("zaobao", "zaobao_realtime.html", "/zaobao/realtime/1")):
        pages[site] = static.add(path, (DATA / "pages" / file).read_bytes(), page)
    for site, title in (("cna", "平鎮輪胎行惡火"), ("udn", "血濺桃機"), ("rfi", "台灣國防預算"),
                        ("zaobao", "联合早报即时")):
        source(f"{site}-pages", static.add(f"/{site}.xml", _wrapper_rss([(title, pages[site])]),
                                           "application/rss+xml"),
               full_text=True, site=site)
    source("ptt", static.add("/bbs/Gossiping/index.html",
                             (DATA / "ptt/index.html").read_bytes(), page), format="ptt")
    static.add("/bbs/Gossiping/M.1459688662.A.CFE.html",
               (DATA / "ptt/M.1459688662.A.CFE.html").read_bytes(), page)
    source("archive", str(DATA / "jekyll"), format="jekyll")

    # The hostile corpus, served with the headers its manifest gives.
    manifest = {e["file"]: e for e in json.loads((HOSTILE / "manifest.json").read_text("utf-8"))}
    for file in HOSTILE_FEEDS:
        headers = dict(manifest[file].get("serve_with") or {})
        content_type = headers.pop("Content-Type", "application/feed+json"
                                   if file.endswith(".json") else "application/xml")
        name = "hostile-" + file.rsplit(".", 1)[0].replace("/", "-").replace("_", "-")
        source(name, static.add(f"/hostile/{file}", (HOSTILE / file).read_bytes(),
                                content_type, **headers))

    database = f"sqlite:///{folder / 'crawler.db'}"
    corpus = Corpus(folder, database, sources, names, subprocess.CompletedProcess([], 0))
    corpus.crawl = subprocess.run(
        [sys.executable, "-m", "crawler", "--config", str(corpus.config("article")), "crawl",
         "--json"], capture_output=True, text=True, timeout=300)
    assert corpus.crawl.returncode in (0, 1), corpus.crawl.stdout + corpus.crawl.stderr
    return corpus


@dataclass
class Served:
    collapse: str
    base: str
    log: Path
    replies: dict[str, Reply] = field(default_factory=dict)
    trees: dict[str, etree._Element] = field(default_factory=dict)

    def url(self, fmt: str, query: str = "") -> str:
        return f"{self.base}/feeds/{OUTPUT}.{fmt}" + (f"?{query}" if query else "")

    def get(self, fmt: str) -> Reply:
        """The identity representation, fetched once per format."""
        if fmt not in self.replies:
            reply = fetch(self.url(fmt))
            assert reply.status == 200, f"GET {reply.url}: {reply.status} {reply.body[:300]!r}"
            self.replies[fmt] = reply
        return self.replies[fmt]

    def xml(self, fmt: str) -> etree._Element:
        if fmt not in self.trees:
            try:
                self.trees[fmt] = etree.fromstring(
                    self.get(fmt).body, etree.XMLParser(resolve_entities=False, no_network=True))
            except etree.XMLSyntaxError as exc:
                pytest.fail(f"{self.url(fmt)} is not well-formed XML: {exc}")
        return self.trees[fmt]

    def json(self) -> dict[str, Any]:
        try:
            document = json.loads(self.get("json").body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            pytest.fail(f"{self.url('json')} is not UTF-8 JSON: {exc}")
        assert isinstance(document, dict), document
        return document

    def items(self) -> list[dict[str, Any]]:
        return list(self.json().get("items", []))


@pytest.fixture(scope="module", params=["article", "story"], ids=lambda p: f"collapse-{p}")
def served(request: pytest.FixtureRequest, corpus: Corpus) -> Iterator[Served]:
    collapse = request.param
    with serving(corpus.config(collapse), corpus.folder / f"serve-{collapse}.log") as base:
        yield Served(collapse, base, corpus.folder / f"serve-{collapse}.log")


def rss_items(served: Served) -> list[tuple[str, etree._Element]]:
    """(label naming the item, <item>) for the served RSS."""
    channel = served.xml("xml").find("channel")
    assert channel is not None, "RSS without <channel>"
    found = []
    for i, item in enumerate(channel.findall("item")):
        found.append((f"RSS item {i} {item.findtext('title')!r} "
                      f"(guid {item.findtext('guid')})", item))
    return found


def atom_entries(served: Served) -> list[tuple[str, etree._Element]]:
    found = []
    for i, entry in enumerate(served.xml("atom").findall(f"{A}entry")):
        found.append((f"Atom entry {i} {entry.findtext(f'{A}title')!r} "
                      f"(id {entry.findtext(f'{A}id')})", entry))
    return found


def json_label(i: int, item: dict[str, Any]) -> str:
    return f"JSON item {i} {item.get('title')!r} (id {item.get('id')})"


# --- the rules catch what they must (no server needed) ---------------------------------------

def test_the_rules_reject_what_a_validator_rejects() -> None:
    assert rfc822_problem("Sun, 02 Nov 2025 06:30:00 +0000") is None
    assert rfc822_problem("Mon, 2 Nov 2025 06:30:00 GMT") is not None  # it was a Sunday
    assert rfc822_problem("Sun, 02 Nov 25 06:30:00 GMT") is not None  # 2-digit year
    assert rfc822_problem("Sun, 02 Nov 2025 06:30:00 EST") is not None  # named zone
    assert rfc822_problem("Sun, 31 Nov 2025 06:30:00 GMT") is not None  # no such day
    assert rfc3339_problem("2025-11-02T06:30:00.5+08:00") is None
    for bad in ("2025-11-02 06:30:00Z", "2025-11-02t06:30:00z", "2025-11-02T06:30Z",
                "2025-11-02T25:30:00Z", "2025-11-02T06:30:00+0800"):
        assert rfc3339_problem(bad) is not None, bad
    assert ENTRY_ID.match("urn:uuid:0f3b8c1e-2d4a-4b6c-8e9f-0a1b2c3d4e5f")
    assert ENTRY_ID.match("tag:feedagg.example,2025:item/0f3b8c1e")
    assert not ENTRY_ID.match("http://127.0.0.1:8080/feeds/all.atom")
    assert not http_url("/tmp/jekyll") and not http_url(" https://x.example/")
    assert html_problems("<p>ok <a href='https://x.example/'>x</a></p>") == []
    payloads = json.loads((HOSTILE / "xss/payloads.json").read_text(encoding="utf-8"))
    # Not active content as parsed: a broken attribute, a 1x1 pixel, a bidi override.
    harmless = {"XSS-28", "XSS-29", "XSS-33"}
    assert [p["id"] for p in payloads if not html_problems(p["html"])] == sorted(harmless)
    assert html_url_problems("<img src='/relative.png'>")
    controls = (HOSTILE / "encoding/xml_illegal_control_chars.xml").read_text("utf-8")
    assert len(illegal_characters(controls)) >= 3
    assert illegal_characters("<title>a&#0;b&#x1F;</title>") and not illegal_characters("&#9;")


# --- the corpus itself --------------------------------------------------------------------------

def test_corpus_holds_every_kind_of_source(served: Served, corpus: Corpus) -> None:
    """The crawl yielded items from the real fixtures and from each hostile file, so the
    rules below are checked against all of them."""
    if served.collapse != "article":
        pytest.skip("every article is only listed once, with collapse: article")
    seen = Counter(s["name"] for item in served.items()
                   for s in item.get("_crawler", {}).get("sources", []))
    missing = [name for name in corpus.names if not seen[name]]
    assert not missing, (f"sources with no item in /feeds/{OUTPUT}.json: {missing}\n"
                         f"crawl output:\n{corpus.crawl.stdout[-4000:]}\n"
                         f"{corpus.crawl.stderr[-4000:]}")


# --- RSS 2.0 ------------------------------------------------------------------------------------

def test_rss_content_type(served: Served) -> None:
    got = served.get("xml").header("content-type")
    assert got == MEDIA_TYPES["xml"], f"RSS Content-Type is {got!r}, not {MEDIA_TYPES['xml']!r}"


def test_rss_channel_has_title_link_description(served: Served) -> None:
    channel = served.xml("xml").find("channel")
    assert channel is not None
    problems = [f"channel <{tag}> missing or empty" for tag in ("title", "link", "description")
                if not (channel.findtext(tag) or "").strip()]
    if not http_url(channel.findtext("link")):
        problems.append(f"channel <link> {channel.findtext('link')!r} is not absolute http(s)")
    assert not problems, report("RSS channel elements", problems)


def _self_links(parent: etree._Element, tag: str) -> list[etree._Element]:
    return [link for link in parent.findall(tag) if link.get("rel") == "self"]


def test_rss_atom_self_link_is_the_requested_url(served: Served) -> None:
    channel = served.xml("xml").find("channel")
    assert channel is not None
    links = _self_links(channel, f"{A}link")
    assert len(links) == 1, f"RSS has {len(links)} atom:link rel=self, wants 1"
    assert links[0].get("href") == served.url("xml"), \
        f"RSS atom:link rel=self href={links[0].get('href')!r}, requested {served.url('xml')!r}"
    assert links[0].get("type") == "application/rss+xml", \
        f"RSS atom:link rel=self type={links[0].get('type')!r}, not application/rss+xml"


def test_rss_declares_a_language(served: Served) -> None:
    channel = served.xml("xml").find("channel")
    assert channel is not None
    language = channel.findtext("language")
    assert language and LANGUAGE_TAG.match(language), \
        f"RSS channel <language> is {language!r}: missing or not a language tag"


def test_rss_dates_are_rfc822_with_the_right_weekday(served: Served) -> None:
    channel = served.xml("xml").find("channel")
    assert channel is not None
    problems = []
    if problem := rfc822_problem(channel.findtext("lastBuildDate")):
        problems.append(f"channel lastBuildDate: {problem}")
    for label, item in rss_items(served):
        if problem := rfc822_problem(item.findtext("pubDate")):
            problems.append(f"{label}: pubDate {problem}")
    assert not problems, report("RSS dates", problems)


def test_rss_items_have_title_or_description(served: Served) -> None:
    problems = [label for label, item in rss_items(served)
                if not (item.findtext("title") or "").strip()
                and not (item.findtext("description") or "").strip()]
    assert not problems, report("RSS items without title and description", problems)


def test_rss_item_links_are_absolute_http(served: Served) -> None:
    problems = [f"{label}: <link> {item.findtext('link')!r}" for label, item in rss_items(served)
                if item.find("link") is not None and not http_url(item.findtext("link"))]
    assert not problems, report("RSS item links not absolute http(s)", problems)


def test_rss_guids_are_unique_and_not_false_permalinks(served: Served) -> None:
    problems = []
    counts = Counter(item.findtext("guid") for _, item in rss_items(served))
    for label, item in rss_items(served):
        guid = item.find("guid")
        if guid is None or not (guid.text or "").strip():
            problems.append(f"{label}: no guid")
            continue
        if counts[guid.text] > 1:
            problems.append(f"{label}: guid appears {counts[guid.text]} times")
        if guid.text != item.findtext("link") and guid.get("isPermaLink") != "false":
            problems.append(f"{label}: guid is not the link but isPermaLink="
                            f"{guid.get('isPermaLink')!r} (defaults to true)")
    assert not problems, report("RSS guids", problems)


def test_rss_html_parses_and_is_sanitized(served: Served) -> None:
    problems = []
    for label, item in rss_items(served):
        for tag, name in (("description", "description"), (CONTENT_ENCODED, "content:encoded")):
            for problem in html_problems(item.findtext(tag) or ""):
                problems.append(f"{label} {name}: {problem}")
    assert not problems, report("RSS HTML", problems)


def test_rss_html_urls_are_absolute_http(served: Served) -> None:
    problems = []
    for label, item in rss_items(served):
        for tag, name in (("description", "description"), (CONTENT_ENCODED, "content:encoded")):
            for problem in html_url_problems(item.findtext(tag) or ""):
                problems.append(f"{label} {name}: {problem}")
    assert not problems, report("RSS HTML URLs", problems)


def test_rss_categories_are_not_empty(served: Served) -> None:
    problems = [f"{label}: empty <category>" for label, item in rss_items(served)
                for category in item.findall("category") if not (category.text or "").strip()]
    assert not problems, report("RSS categories", problems)


def test_rss_source_has_a_url(served: Served) -> None:
    problems = [f"{label}: <source> url={source.get('url')!r}"
                for label, item in rss_items(served) for source in item.findall("source")
                if not http_url(source.get("url"))]
    assert not problems, report("RSS <source url>", problems)


# --- Atom 1.0 -----------------------------------------------------------------------------------

def test_atom_content_type(served: Served) -> None:
    got = served.get("atom").header("content-type")
    assert got == MEDIA_TYPES["atom"], \
        f"Atom Content-Type is {got!r}, not {MEDIA_TYPES['atom']!r}"


def test_atom_feed_has_one_id_title_updated(served: Served) -> None:
    feed = served.xml("atom")
    assert feed.tag == f"{A}feed", feed.tag
    problems = [f"feed has {len(feed.findall(A + tag))} <{tag}>, wants exactly 1"
                for tag in ("id", "title", "updated") if len(feed.findall(A + tag)) != 1]
    if problem := rfc3339_problem(feed.findtext(f"{A}updated")):
        problems.append(f"feed <updated>: {problem}")
    assert not problems, report("Atom feed elements", problems)


def test_atom_feed_id_does_not_depend_on_the_request_url(served: Served) -> None:
    """RFC 4287 §4.2.6: the feed's id is permanent, so it is the same whatever host name,
    port or query string the feed was requested with (ECOSYSTEM.md §3)."""
    port = urlsplit(served.base).port
    ids = {}
    for label, url, headers in (
            ("as requested", served.url("atom"), {}),
            ("with a query string", served.url("atom", "utm_source=validator"), {}),
            ("through Host: localhost", served.url("atom"), {"Host": f"localhost:{port}"})):
        reply = fetch(url, headers=headers)
        assert reply.status == 200, f"{label}: {reply.status}"
        ids[label] = etree.fromstring(reply.body).findtext(f"{A}id")
    assert len(set(ids.values())) == 1, f"the Atom feed id changes with the request: {ids}"


def test_atom_self_link_is_the_requested_url(served: Served) -> None:
    links = _self_links(served.xml("atom"), f"{A}link")
    assert len(links) == 1, f"Atom feed has {len(links)} link rel=self, wants 1"
    assert links[0].get("href") == served.url("atom"), \
        f"Atom link rel=self href={links[0].get('href')!r}, requested {served.url('atom')!r}"


def test_atom_has_an_author_for_every_entry(served: Served) -> None:
    feed = served.xml("atom")
    if feed.find(f"{A}author/{A}name") is not None:
        return
    problems = [label for label, entry in atom_entries(served)
                if entry.find(f"{A}author/{A}name") is None]
    assert not problems, report("Atom entries without author (and no feed author)", problems)


def test_atom_declares_xml_lang(served: Served) -> None:
    language = served.xml("atom").get(XML_LANG)
    assert language and LANGUAGE_TAG.match(language), \
        f"Atom <feed xml:lang> is {language!r}: missing or not a language tag"


def test_atom_entries_have_one_permanent_unique_id(served: Served) -> None:
    problems = []
    entries = atom_entries(served)
    counts = Counter(entry.findtext(f"{A}id") for _, entry in entries)
    for label, entry in entries:
        ids = entry.findall(f"{A}id")
        if len(ids) != 1:
            problems.append(f"{label}: {len(ids)} <id>, wants exactly 1")
            continue
        value = ids[0].text or ""
        if not ENTRY_ID.match(value):
            problems.append(f"{label}: id {value!r} is not a urn:uuid: or tag: IRI")
        if counts[value] > 1:
            problems.append(f"{label}: id appears {counts[value]} times")
    assert not problems, report("Atom entry ids", problems)


def test_atom_entries_have_title_updated_and_content_or_alternate(served: Served) -> None:
    problems = []
    for label, entry in atom_entries(served):
        for tag in ("title", "updated"):
            if len(entry.findall(A + tag)) != 1:
                problems.append(f"{label}: {len(entry.findall(A + tag))} <{tag}>, wants 1")
        for tag in ("updated", "published"):
            if entry.find(A + tag) is not None and (
                    problem := rfc3339_problem(entry.findtext(A + tag))):
                problems.append(f"{label}: <{tag}> {problem}")
        alternates = [link for link in entry.findall(f"{A}link")
                      if link.get("rel", "alternate") == "alternate"]
        if entry.find(f"{A}content") is None and not alternates:
            problems.append(f"{label}: neither <content> nor link rel=alternate")
    assert not problems, report("Atom entry elements", problems)


def test_atom_alternate_links_are_unique_per_type_and_hreflang(served: Served) -> None:
    problems = []
    feed = served.xml("atom")
    for label, parent in [("feed", feed), *atom_entries(served)]:
        keys = Counter((link.get("type"), link.get("hreflang"))
                       for link in parent.findall(f"{A}link")
                       if link.get("rel", "alternate") == "alternate")
        problems += [f"{label}: {n} rel=alternate links with type={t!r} hreflang={h!r}"
                     for (t, h), n in keys.items() if n > 1]
        problems += [f"{label}: link href={link.get('href')!r} is not absolute http(s)"
                     for link in parent.findall(f"{A}link") if not http_url(link.get("href"))]
    assert not problems, report("Atom links", problems)


def test_atom_text_constructs_have_a_known_type(served: Served) -> None:
    problems = []
    feed = served.xml("atom")
    constructs = ("title", "subtitle", "summary", "rights")
    for label, parent in [("feed", feed), *atom_entries(served)]:
        for tag in constructs:
            for element in parent.findall(A + tag):
                if element.get("type", "text") not in ("text", "html", "xhtml"):
                    problems.append(f"{label}: <{tag} type={element.get('type')!r}>")
        for content in parent.findall(f"{A}content"):
            kind = content.get("type", "text")
            if kind not in ("text", "html", "xhtml") and "/" not in kind:
                problems.append(f"{label}: <content type={kind!r}>")
            if kind == "xhtml" and content.find("{http://www.w3.org/1999/xhtml}div") is None:
                problems.append(f"{label}: xhtml <content> without an xhtml:div")
    assert not problems, report("Atom text constructs", problems)


def test_atom_source_has_an_iri_id_and_http_links(served: Served) -> None:
    """atom:source (RFC 4287 §4.2.11) copies the original feed's metadata: its id is an IRI
    and its links are absolute http(s)."""
    problems = []
    for label, entry in atom_entries(served):
        for source in entry.findall(f"{A}source"):
            for value in [source.findtext(f"{A}id")] if source.find(f"{A}id") is not None \
                    else []:
                if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$", value or ""):
                    problems.append(f"{label}: atom:source id {value!r} is not an IRI")
            problems += [f"{label}: atom:source link href={link.get('href')!r}"
                         for link in source.findall(f"{A}link") if not http_url(link.get("href"))]
    assert not problems, report("Atom sources", problems)


def _atom_html(entry: etree._Element) -> Iterator[tuple[str, str]]:
    for tag in ("content", "summary"):
        for element in entry.findall(A + tag):
            kind = element.get("type", "text")
            if kind == "html":
                yield tag, element.text or ""
            elif kind == "xhtml":
                yield tag, "".join(etree.tostring(child, encoding="unicode")
                                   for child in element)


def test_atom_html_parses_and_is_sanitized(served: Served) -> None:
    problems = [f"{label} {tag}: {problem}" for label, entry in atom_entries(served)
                for tag, markup in _atom_html(entry) for problem in html_problems(markup)]
    assert not problems, report("Atom HTML", problems)


def test_atom_html_urls_are_absolute_http(served: Served) -> None:
    problems = [f"{label} {tag}: {problem}" for label, entry in atom_entries(served)
                for tag, markup in _atom_html(entry) for problem in html_url_problems(markup)]
    assert not problems, report("Atom HTML URLs", problems)


# --- JSON Feed 1.1 ------------------------------------------------------------------------------

def test_json_content_type(served: Served) -> None:
    got = served.get("json").header("content-type")
    assert got == MEDIA_TYPES["json"], \
        f"JSON Feed Content-Type is {got!r}, not {MEDIA_TYPES['json']!r}"


def test_json_format_checker_checks_date_time() -> None:
    """The checker used below rejects what the JSON Feed schema must reject."""
    checker = format_checker()
    assert not checker.conforms("2025-11-02 06:30", "date-time")
    assert not checker.conforms("2025-13-02T06:30:00Z", "date-time")
    assert checker.conforms("2025-11-02T06:30:00+08:00", "date-time")


def test_json_validates_against_the_json_feed_schema(served: Served) -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema, format_checker=format_checker())
    document = served.json()
    problems = []
    for error in sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path)):
        path = list(error.absolute_path)
        where = ""
        if len(path) >= 2 and path[0] == "items" and isinstance(path[1], int):
            where = json_label(path[1], document["items"][path[1]]) + ": "
        problems.append(f"{where}$.{'.'.join(map(str, path))}: {error.message}")
    assert not problems, report("JSON Feed 1.1 schema", problems)


def test_json_feed_url_is_the_requested_url(served: Served) -> None:
    got = served.json().get("feed_url")
    assert got == served.url("json"), f"JSON feed_url {got!r}, requested {served.url('json')!r}"


def test_json_declares_a_language(served: Served) -> None:
    language = served.json().get("language")
    assert isinstance(language, str) and LANGUAGE_TAG.match(language), \
        f"JSON Feed language is {language!r}: missing or not a language tag"


def test_json_item_ids_are_unique_strings(served: Served) -> None:
    items = served.items()
    counts = Counter(str(item.get("id")) for item in items)
    problems = []
    for i, item in enumerate(items):
        if not isinstance(item.get("id"), str) or not item["id"]:
            problems.append(f"{json_label(i, item)}: id is not a non-empty string")
        elif counts[item["id"]] > 1:
            problems.append(f"{json_label(i, item)}: id appears {counts[item['id']]} times")
    assert not problems, report("JSON Feed item ids", problems)


def test_json_content_html_is_sanitized(served: Served) -> None:
    problems = [f"{json_label(i, item)}: {problem}" for i, item in enumerate(served.items())
                for problem in html_problems(item.get("content_html") or "")]
    assert not problems, report("JSON Feed content_html", problems)


def test_json_content_html_urls_are_absolute_http(served: Served) -> None:
    problems = [f"{json_label(i, item)}: {problem}" for i, item in enumerate(served.items())
                for problem in html_url_problems(item.get("content_html") or "")]
    assert not problems, report("JSON Feed content_html URLs", problems)


# --- every format -------------------------------------------------------------------------------

def test_the_same_item_has_the_same_id_in_every_format(served: Served) -> None:
    """RSS guid = Atom id = JSON Feed id, item by item, so switching format shows nothing new."""
    rss = [item.findtext("guid") for _, item in rss_items(served)]
    atom = [entry.findtext(f"{A}id") for _, entry in atom_entries(served)]
    feed = [item.get("id") for item in served.items()]
    problems = [f"item {i}: RSS guid {r!r}, Atom id {a!r}, JSON id {j!r}"
                for i, (r, a, j) in enumerate(zip(rss, atom, feed, strict=False))
                if not r == a == j]
    if not len(rss) == len(atom) == len(feed):
        problems.append(f"{len(rss)} RSS items, {len(atom)} Atom entries, {len(feed)} JSON items")
    assert not problems, report("ids across formats", problems)


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_xml_illegal_characters(served: Served, fmt: str) -> None:
    """No C0 control (other than tab, LF, CR), surrogate or U+FFFE/U+FFFF anywhere, raw or as
    a character reference; the JSON Feed's strings are held to the same rule."""
    body = served.get(fmt).body
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        pytest.fail(f"{served.url(fmt)} is not UTF-8: {exc}")
    if fmt == "json":
        problems = []
        for i, item in enumerate(served.items()):
            for key, value in _strings(item):
                problems += [f"{json_label(i, item)} {key}: U+{ord(ch):04X}"
                             for ch in value if XML_ILLEGAL.match(ch)]
    else:
        problems = illegal_characters(text)
    assert not problems, report(f"XML-illegal characters in {fmt}", problems)


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, child in value.items():
            yield from _strings(child, f"{path}.{key}")
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _strings(child, f"{path}[{i}]")


def _self_url(fmt: str, body: bytes) -> str | None:
    """The URL a document says it is at: atom:link rel=self, or JSON Feed's feed_url."""
    if fmt == "json":
        return json.loads(body).get("feed_url")
    root = etree.fromstring(body)
    parent = root.find("channel") if fmt == "xml" else root
    assert parent is not None
    links = _self_links(parent, f"{A}link")
    return links[0].get("href") if links else None


@pytest.mark.parametrize("fmt", FORMATS)
def test_self_link_keeps_the_query_string(served: Served, fmt: str) -> None:
    """A reader that subscribed to a URL with a query string finds that URL as self."""
    url = served.url(fmt, "utm_source=validator")
    reply = fetch(url)
    assert reply.status == 200, f"GET {url}: {reply.status}"
    got = _self_url(fmt, reply.body)
    assert got == url, f"{fmt}: self URL {got!r}, requested {url!r}"


@pytest.mark.parametrize("fmt", FORMATS)
def test_self_link_follows_each_requests_host(served: Served, fmt: str) -> None:
    """The self URL is the one each request was made at, so one client's Host header is
    never served to the next client (a rendered feed must not be cached across hosts)."""
    port = urlsplit(served.base).port
    problems = []
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"localhost:{port}"):
        reply = fetch(served.url(fmt), headers={"Host": host})
        want = f"http://{host}/feeds/{OUTPUT}.{fmt}"
        got = _self_url(fmt, reply.body) if reply.status == 200 else None
        if got != want:
            problems.append(f"GET with Host: {host}: {reply.status}, self URL {got!r}, "
                            f"wants {want!r}")
    assert not problems, report(f"{fmt} self URL per Host", problems)


@pytest.mark.parametrize("fmt", XML_FORMATS)
def test_xmllint_accepts_the_feed(served: Served, fmt: str, tmp_path: Path) -> None:
    if shutil.which("xmllint") is None:
        pytest.skip("xmllint not on PATH (Debian package libxml2-utils)")
    path = tmp_path / f"feed.{fmt}"
    path.write_bytes(served.get(fmt).body)
    result = subprocess.run(["xmllint", "--noout", "--nonet", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, f"xmllint rejects {served.url(fmt)}:\n{result.stderr[:3000]}"


XML_DECLARATION = re.compile(rb"^<\?xml\s[^?]*\?>")
STYLESHEET_PI = re.compile(rb"<\?xml-stylesheet\s([^?]*)\?>")
PSEUDO_ATTR = re.compile(r"""(\w[\w-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')""")


def _stylesheet(served: Served, fmt: str) -> dict[str, str]:
    """The pseudo-attributes of the feed's xml-stylesheet PI, which must come right after
    the XML declaration."""
    body = served.get(fmt).body
    declaration = XML_DECLARATION.match(body)
    assert declaration, f"{fmt}: no XML declaration at the start: {body[:80]!r}"
    rest = body[declaration.end():]
    found = STYLESHEET_PI.search(body)
    assert found, f"{fmt}: no <?xml-stylesheet?> processing instruction"
    following = STYLESHEET_PI.match(rest.lstrip())
    assert following, (f"{fmt}: <?xml-stylesheet?> does not come right after the XML "
                       f"declaration: {body[:200]!r}")
    return {m.group(1): m.group(2) if m.group(2) is not None else m.group(3)
            for m in PSEUDO_ATTR.finditer(following.group(1).decode("utf-8"))}


@pytest.mark.parametrize("fmt", XML_FORMATS)
def test_xml_stylesheet_follows_the_declaration(served: Served, fmt: str) -> None:
    attributes = _stylesheet(served, fmt)
    assert attributes.get("type") == "text/xsl", f"{fmt}: xml-stylesheet {attributes}"
    assert attributes.get("href"), f"{fmt}: xml-stylesheet without href: {attributes}"


@pytest.mark.parametrize("fmt", XML_FORMATS)
def test_xml_stylesheet_is_served_and_applies(served: Served, fmt: str, tmp_path: Path) -> None:
    href = _stylesheet(served, fmt).get("href") or ""
    url = urljoin(served.url(fmt), html.unescape(href))
    assert urlsplit(url)[:2] == urlsplit(served.base)[:2], \
        f"{fmt}: stylesheet {url!r} is not on the feed's server {served.base}"
    reply = fetch(url)
    assert reply.status == 200, f"GET {url}: {reply.status}"
    media = (reply.header("content-type") or "").split(";")[0].strip()
    assert media in ("text/xsl", "application/xslt+xml"), \
        f"{url}: Content-Type {reply.header('content-type')!r} is not an XSL type"
    (tmp_path / "feed.xsl").write_bytes(reply.body)
    (tmp_path / f"feed.{fmt}").write_bytes(served.get(fmt).body)
    if shutil.which("xsltproc") is None:
        pytest.skip("xsltproc not on PATH (Debian package xsltproc); the stylesheet is served "
                    "with an XSL type but was not applied")
    result = subprocess.run(["xsltproc", "--nonet", str(tmp_path / "feed.xsl"),
                             str(tmp_path / f"feed.{fmt}")], capture_output=True, timeout=60)
    assert result.returncode == 0, f"xsltproc fails on {fmt}: {result.stderr[:2000]!r}"
    assert result.stdout.strip(), f"xsltproc renders {fmt} to nothing"


# --- HTTP ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_if_none_match_gets_304_with_the_same_validators(served: Served, fmt: str) -> None:
    first = served.get(fmt)
    etag = first.header("etag")
    assert etag, f"{fmt}: no ETag"
    again = fetch(served.url(fmt), headers={"If-None-Match": etag})
    assert again.status == 304, f"{fmt}: If-None-Match {etag} got {again.status}"
    assert again.body == b"", f"{fmt}: 304 with a body"
    assert again.header("etag") == etag, f"{fmt}: 304 ETag {again.header('etag')!r} != {etag!r}"
    assert again.header("cache-control") == first.header("cache-control"), \
        (f"{fmt}: 304 Cache-Control {again.header('cache-control')!r} != "
         f"{first.header('cache-control')!r}")
    assert first.header("cache-control"), f"{fmt}: no Cache-Control"


@pytest.mark.parametrize("fmt", FORMATS)
def test_head_gives_the_get_headers_and_no_body(served: Served, fmt: str) -> None:
    get = served.get(fmt)
    head = fetch(served.url(fmt), method="HEAD")
    assert head.status == 200, f"{fmt}: HEAD got {head.status}"
    assert head.body == b"", f"{fmt}: HEAD has a body"
    ignore = {"date", "server"}
    want = {k: v for k, v in get.headers.items() if k not in ignore}
    got = {k: v for k, v in head.headers.items() if k not in ignore}
    assert got == want, f"{fmt}: HEAD headers differ from GET's:\n HEAD {got}\n GET  {want}"


def _gzip(served: Served, fmt: str) -> Reply:
    return fetch(served.url(fmt), headers={"Accept-Encoding": "gzip"})


@pytest.mark.parametrize("fmt", FORMATS)
def test_gzip_is_offered_and_decodes_to_the_identity_body(served: Served, fmt: str) -> None:
    identity = served.get(fmt)
    zipped = _gzip(served, fmt)
    assert zipped.status == 200, f"{fmt}: gzip GET got {zipped.status}"
    assert zipped.header("content-encoding") == "gzip", \
        f"{fmt}: Accept-Encoding: gzip got Content-Encoding {zipped.header('content-encoding')!r}"
    assert gzip.decompress(zipped.body) == identity.body, f"{fmt}: gunzipped body differs"
    assert identity.header("content-encoding") in (None, "identity"), \
        f"{fmt}: Accept-Encoding: identity got {identity.header('content-encoding')!r}"


@pytest.mark.parametrize("fmt", FORMATS)
def test_vary_names_accept_encoding(served: Served, fmt: str) -> None:
    """Both representations say they vary by Accept-Encoding, so no cache serves gzip to a
    client that did not ask for it (or the reverse)."""
    problems = []
    for label, reply in (("identity", served.get(fmt)), ("gzip", _gzip(served, fmt))):
        vary = [v.strip().lower() for v in (reply.header("vary") or "").split(",")]
        if "accept-encoding" not in vary:
            problems.append(f"{label} reply: Vary is {reply.header('vary')!r}")
    assert not problems, report(f"{fmt} Vary", problems)


@pytest.mark.parametrize("fmt", FORMATS)
def test_gzip_has_its_own_etag_and_either_etag_gets_304(served: Served, fmt: str) -> None:
    identity = served.get(fmt)
    zipped = _gzip(served, fmt)
    assert zipped.header("content-encoding") == "gzip", f"{fmt}: no gzip representation"
    plain_tag, gzip_tag = identity.header("etag"), zipped.header("etag")
    assert plain_tag and gzip_tag, f"{fmt}: ETags {plain_tag!r} / {gzip_tag!r}"
    assert plain_tag != gzip_tag, \
        f"{fmt}: gzip and identity bodies share the strong ETag {plain_tag}"
    problems = []
    for encoding in ("gzip", "identity"):
        for tag in (plain_tag, gzip_tag):
            reply = fetch(served.url(fmt), headers={"Accept-Encoding": encoding,
                                                      "If-None-Match": tag})
            if reply.status != 304:
                problems.append(f"Accept-Encoding {encoding} + If-None-Match {tag}: "
                                f"{reply.status}")
    assert not problems, report(f"{fmt} conditional GET per encoding", problems)


# --- real readers -------------------------------------------------------------------------------

def _newsboat(home: Path, urls: Path, cache: Path) -> None:
    result = subprocess.run(
        ["newsboat", "-u", str(urls), "-c", str(cache), "-x", "reload"],
        capture_output=True, text=True, timeout=120,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "TERM": "dumb"})
    assert result.returncode == 0, f"newsboat: {result.returncode}\n{result.stdout}\n" \
                                   f"{result.stderr}"


def _newsboat_items(cache: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(cache) as db:
        return [(str(title), str(url), str(guid)) for title, url, guid in
                db.execute("SELECT title, url, guid FROM rss_item ORDER BY id")]


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


@pytest.mark.parametrize("fmt", XML_FORMATS)
def test_newsboat_reads_the_feed(served: Served, fmt: str, tmp_path: Path) -> None:
    """newsboat subscribes to the output: every item's title, with its link, once; it keeps
    our ETag, and reloading unchanged feeds adds nothing.

    One newsboat profile per format: newsboat keys its cache on the guid alone, and the
    formats share ids on purpose, so one profile holding both would file every item under
    whichever feed it read last."""
    if shutil.which("newsboat") is None:
        pytest.skip(NEWSBOAT_MISSING)
    items = served.items()
    urls = tmp_path / "urls"
    urls.write_text(served.url(fmt) + "\n", encoding="utf-8")
    cache = tmp_path / "cache.db"
    _newsboat(tmp_path, urls, cache)
    first = _newsboat_items(cache)
    problems = []
    want = Counter(_one_line(item.get("title")) for item in items)
    got = Counter(_one_line(title) for title, _, _ in first)
    problems += [f"title {t!r}: {n}× in the JSON Feed, {got[t]}× in newsboat"
                 for t, n in (want - got).items()]
    problems += [f"newsboat has a title {t!r} that is not in the JSON Feed" for t in got - want]
    links = Counter(url for _, url, _ in first)
    problems += [f"{json_label(i, item)}: newsboat has no item with link {item['url']!r}"
                 for i, item in enumerate(items) if item.get("url") and not links[item["url"]]]
    guids = Counter(guid for _, _, guid in first)
    problems += [f"newsboat guid {g!r} {n}×" for g, n in guids.items() if n > 1]
    if set(guids) != {item.get("id") for item in items}:
        problems.append(f"newsboat guids differ from the JSON Feed ids: "
                        f"{sorted(set(guids) ^ {item.get('id') for item in items})[:10]}")
    assert not problems, report(f"newsboat cache for {fmt}", problems)
    # newsboat 2.21 stores the validators on its second reload (on the first, its UPDATE
    # of rss_feed runs before the feed's row exists); from then on it sends them.
    for reload in (2, 3):
        _newsboat(tmp_path, urls, cache)
        again = _newsboat_items(cache)
        assert len(again) == len(first), \
            f"reload {reload} of an unchanged feed: {len(first)} → {len(again)} items"
        assert Counter(guid for _, _, guid in again) == guids, \
            f"reload {reload} of an unchanged feed changed the guids"
    with sqlite3.connect(cache) as db:
        [(etag,)] = db.execute("SELECT etag FROM rss_feed")
    # newsboat asks for gzip, so what it keeps is the gzip representation's tag.
    sent = fetch(served.url(fmt), headers={"Accept-Encoding": "gzip, deflate"}).header("etag")
    assert etag == sent, f"newsboat keeps ETag {etag!r}, the server sent {sent!r}"


@pytest.mark.parametrize("fmt", XML_FORMATS)
def test_feedparser_reads_the_feed_cleanly(served: Served, fmt: str) -> None:
    reply = served.get(fmt)
    parsed = feedparser.parse(io.BytesIO(reply.body),
                              response_headers={"content-type": reply.header("content-type")})
    assert parsed.bozo == 0, f"feedparser: bozo {parsed.get('bozo_exception')!r}"
    items = served.items()
    problems = []
    if len(parsed.entries) != len(items):
        problems.append(f"{len(parsed.entries)} entries, the JSON Feed has {len(items)} items")
    for i, (entry, item) in enumerate(zip(parsed.entries, items, strict=False)):
        label = json_label(i, item)
        if entry.get("title") != item.get("title"):
            problems.append(f"{label}: feedparser title {entry.get('title')!r}")
        # `links`, not `link`: for an Atom entry without a link feedparser copies the id
        # into `link` (it takes every atom:id for a permalink).
        alternate = [link.get("href") for link in entry.get("links") or []
                     if link.get("rel") == "alternate"]
        if alternate != ([item["url"]] if item.get("url") else []):
            problems.append(f"{label}: feedparser alternate links {alternate}, "
                            f"JSON url {item.get('url')!r}")
        if entry.get("id") != item.get("id"):
            problems.append(f"{label}: feedparser id {entry.get('id')!r}")
    assert not problems, report(f"feedparser on {fmt}", problems)


def test_jsonfeed_util_reads_the_json_feed(served: Served) -> None:
    jsonfeed = pytest.importorskip("jsonfeed", reason="pip install jsonfeed-util (test extra)")
    parsed = jsonfeed.Feed.parse_string(served.get("json").body.decode("utf-8"))
    items = served.items()
    assert parsed.feed_url == served.url("json")
    assert [i.title for i in parsed.items] == [i.get("title") for i in items]
    assert [i.id for i in parsed.items] == [i.get("id") for i in items]
    assert [i.url for i in parsed.items] == [i.get("url") for i in items]
