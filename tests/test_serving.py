"""The served outputs as people and readers meet them, over real HTTP on 127.0.0.1:
browser pages, narrowing by query, script conversion, matched rules, OPML, and validators
that move only when an output's own content does."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree

from crawler.emitters.html import STYLE
from tests.support import serving

ARCHIVE = Path(__file__).parent / "data" / "jekyll"
PALAU_CNA_LINK = "https://www.cna.com.tw/news/firstnews/202008280330.aspx"
BROWSER_ACCEPT = ("text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,"
                  "image/webp,*/*;q=0.8")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crawler", *args], capture_output=True,
                          text=True, timeout=180)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("serving")
    later = tmp / "later"
    later.mkdir()
    config = tmp / "feeds.yaml"
    config.write_text(f"""
settings:
  database: sqlite:///{tmp / "db.sqlite"}
  parse_workers: 1
feeds:
  - name: archive
    url: {ARCHIVE}
    format: jekyll
    tags: [archive]
  - name: later
    url: {later}
    format: jekyll
    tags: [archive]
  - name: cna-politics
    url: https://feeds.feedburner.com/rsscna/politics
    tags: [cna, taiwan]
outputs:
  - name: all
    title: 全部 All
    description: every article
    limit: 200
  - name: defense
    title: 國防 Defense
    include: {{keywords: [防長, 國防部], fields: [title]}}
    script: hans
""", encoding="utf-8")
    crawled = _run("--config", str(config), "crawl", "archive")
    assert crawled.returncode == 0, crawled.stdout + crawled.stderr
    with serving(config, tmp / "serve.log") as base:
        yield {"base": base, "config": config, "later": later}


def test_a_browser_gets_a_page_a_reader_gets_the_feed(site: dict[str, Any]) -> None:
    url = f"{site['base']}/feeds/all.xml"
    page = httpx.get(url, headers={"Accept": BROWSER_ACCEPT})
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "Accept" in page.headers["vary"]
    assert "<article" in page.text and "美國防長訪帛琉" in page.text
    for accept in ("*/*", "", "application/rss+xml, application/xml;q=0.9, */*;q=0.8"):
        feed = httpx.get(url, headers={"Accept": accept} if accept else {})
        assert feed.headers["content-type"] == "application/rss+xml; charset=utf-8", accept
        assert feed.content.startswith(b"<?xml")
    # The two representations have different validators: a 304 for one is not for the other.
    assert page.headers["etag"] != feed.headers["etag"]
    explicit = httpx.get(f"{site['base']}/feeds/all.html")
    assert explicit.headers["content-type"] == "text/html; charset=utf-8"


def test_the_page_is_sanitized_and_locked_down(site: dict[str, Any]) -> None:
    page = httpx.get(f"{site['base']}/feeds/all.html")
    policy = page.headers["content-security-policy"]
    digest = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
    assert "default-src 'none'" in policy and f"'sha256-{digest}'" in policy
    assert "script-src" not in policy and "unsafe-inline" not in policy
    document = etree.HTML(page.content)
    assert document.xpath("//script | //iframe | //object | //embed | //form") == []
    assert not [a for a in document.xpath("//@*") if a.attrname.startswith("on")]
    assert not [h for h in document.xpath("//@href | //@src")
                if not str(h).startswith(("http://", "https://", "data:"))]
    # The one <style> is the one whose hash the policy allows.
    assert [s.text for s in document.xpath("//style")] == [STYLE]


def test_the_index_and_the_stylesheet(site: dict[str, Any]) -> None:
    index = httpx.get(f"{site['base']}/")
    assert "content-security-policy" in index.headers
    assert "國防 Defense" in index.text and index.text.count("<li>") >= 2
    xsl = httpx.get(f"{site['base']}/feed.xsl")
    assert xsl.status_code == 200 and xsl.headers["content-type"].startswith("text/xsl")
    rss = httpx.get(f"{site['base']}/feeds/all.xml").content
    assert rss.split(b"\n")[1] == (
        f'<?xml-stylesheet type="text/xsl" href="{site["base"]}/feed.xsl"?>'.encode())
    if shutil.which("xsltproc") is None:
        pytest.skip("xsltproc not installed; .ci/run installs Debian's xsltproc")
    tmp = site["later"].parent
    (tmp / "feed.xsl").write_bytes(xsl.content)
    (tmp / "all.xml").write_bytes(rss)
    shown = subprocess.run(["xsltproc", str(tmp / "feed.xsl"), str(tmp / "all.xml")],
                           capture_output=True, timeout=60, check=True).stdout.decode()
    title = "李克强汪洋未入二十届中央委员 分析：习权力空前"
    assert re.search(f'<h2><a href="https://[^"]+">{title}</a></h2>', shown)


def test_query_parameters_narrow_any_output(site: dict[str, Any]) -> None:
    base = site["base"]
    found = httpx.get(f"{base}/feeds/all.json", params={"q": "星鏈", "limit": "5"}).json()
    # VOA's and CNA's reports are one story: one item, the other outlet under "also".
    [item] = found["items"]
    assert {item["title"], *(a["title"] for a in item["_crawler"]["also"])} == {
        "CNN：白宫与马斯克讨论向伊朗提供“星链”服务", "CNN：白宮與馬斯克洽談 對伊朗提供星鏈網路服務"}
    assert found["feed_url"] == f"{base}/feeds/all.json?q=%E6%98%9F%E9%8F%88&limit=5"
    assert len(httpx.get(f"{base}/feeds/all.json?limit=3&_=12345").json()["items"]) == 3
    source = httpx.get(f"{base}/feeds/all.json?source=archive&limit=2").json()["items"]
    assert {"rule": "source", "value": "archive"} in source[0]["_crawler"]["matched"]
    for query, message in (("limit=abc", "limit must be a whole number"),
                           ("limit=0", "limit must be between 1 and 200"),
                           ("tag=nope", "no feed has the tag 'nope'"),
                           ("source=cna-politics&tag=nope", "no feed has the tag 'nope'")):
        reply = httpx.get(f"{base}/feeds/all.xml?{query}")
        assert reply.status_code == 400 and message in reply.text, query


def test_a_filtered_output_in_simplified_says_what_selected_each_item(
        site: dict[str, Any]) -> None:
    feed = httpx.get(f"{site['base']}/feeds/defense.json").json()
    assert feed["language"] == "zh-Hans"
    [item] = feed["items"]  # CNA's report and RFI's copy are one story
    assert item["title"].startswith("美国防长访帛琉 指责中国破坏太平洋区域稳定")
    assert "帛琉" in item["content_html"] and "國" not in item["content_html"]
    assert {"rule": "include", "value": "防長", "field": "title"} in item["_crawler"]["matched"]
    rss = httpx.get(f"{site['base']}/feeds/defense.xml").content
    assert b"<language>zh-Hans</language>" in rss and "防长".encode() in rss


def test_explain_names_the_outputs_and_rules(site: dict[str, Any]) -> None:
    shown = _run("--config", str(site["config"]), "explain", PALAU_CNA_LINK)
    assert shown.returncode == 0, shown.stderr
    row = next(line for line in shown.stdout.splitlines() if "defense" in line)
    assert "yes" in row and "include: 防長 (in title)" in row
    assert re.search(r"all\s+│\s+yes", shown.stdout)


def test_opml_lists_the_sources_and_the_outputs(site: dict[str, Any]) -> None:
    sources = httpx.get(f"{site['base']}/opml")
    assert sources.headers["content-type"].startswith("text/x-opml")
    tree = etree.fromstring(sources.content)
    urls = [o.get("xmlUrl") for o in tree.iter("outline") if o.get("xmlUrl")]
    assert urls == ["https://feeds.feedburner.com/rsscna/politics"]  # folders are not feeds
    outputs = etree.fromstring(httpx.get(f"{site['base']}/outputs.opml").content)
    assert [o.get("xmlUrl") for o in outputs.iter("outline")] == [
        f"{site['base']}/feeds/all.xml", f"{site['base']}/feeds/defense.xml"]


def test_validators_move_only_with_the_outputs_own_content(site: dict[str, Any]) -> None:
    base = site["base"]
    before = {name: httpx.get(f"{base}/feeds/{name}.atom") for name in ("all", "defense")}
    post = site["later"] / "2030-01-01-later.md"
    post.write_text("---\nlayout: post\ntitle: \"颱風過境 北部豪雨\"\n"
                    "date: 2030-01-01T00:00:00.000Z\nauthor: test\n---\n"
                    "颱風今晨過境，北部各地豪雨，氣象局發布警報。" * 3, encoding="utf-8")
    crawled = _run("--config", str(site["config"]), "crawl", "later")
    assert crawled.returncode == 0, crawled.stdout + crawled.stderr
    after = {name: httpx.get(f"{base}/feeds/{name}.atom") for name in ("all", "defense")}
    assert after["all"].headers["etag"] != before["all"].headers["etag"]
    assert "颱風過境" in after["all"].text
    # Nothing new in the defense output: same bytes, same validators, still a 304.
    assert after["defense"].content == before["defense"].content
    assert after["defense"].headers["last-modified"] == before["defense"].headers["last-modified"]
    again = httpx.get(f"{base}/feeds/defense.atom",
                      headers={"If-None-Match": before["defense"].headers["etag"]})
    assert again.status_code == 304
