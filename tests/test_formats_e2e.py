"""Every source format in one feeds.yaml, one crawl, one merged output: all cleaned.

A loopback server serves feeds, article pages and a PTT board; a Jekyll folder is read from
disk. The served JSON Feed must carry every article, with no boilerplate phrase of
tests/data/boilerplate.txt left and no active content; a broken page costs only its item.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bs4 import BeautifulSoup

DATA = Path(__file__).parent / "data"
PHRASES = [line.split("\t")[0].strip() for line in
           (DATA / "boilerplate.txt").read_text(encoding="utf-8").splitlines()
           if line.strip() and not line.startswith("#")]


def test_every_phrase_is_in_the_inputs() -> None:
    """Each listed phrase occurs in the raw fixtures, so its absence below means something."""
    import html

    inputs = [DATA / "feeds/waimei_posts.rss", DATA / "pages/cna_201603190029.html",
              DATA / "pages/udn_3705102.html", *sorted((DATA / "jekyll").rglob("*.md"))]
    raw = "".join(html.unescape(p.read_text(encoding="utf-8")) for p in inputs)
    assert [p for p in PHRASES if p not in raw] == []


def rss(items: list[tuple[str, str]]) -> bytes:
    entries = "".join(f"<item><title>{t}</title><link>{u}</link><guid>{u}</guid>"
                      f"<description>摘要 {t}</description></item>" for t, u in items)
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t'
            f"</title><link>http://x/</link>{entries}</channel></rss>").encode()


def test_every_format_in_one_crawl(tmp_path: Path, feed_server: Any) -> None:
    """feed (with full_text and site:), jekyll and ptt sources → one output, all cleaned."""
    page = "text/html; charset=utf-8"
    cna_page = feed_server.add("/cna/201603190029.aspx",
                               (DATA / "pages/cna_201603190029.html").read_bytes(), page)
    broken = feed_server.add("/cna/broken.aspx", b"<html><body><div class='centr", page)
    no_body = feed_server.add("/cna/empty.aspx", b"<html><head><title>x</title></head>"
                              b"<body><nav>menu</nav></body></html>", page)
    # Big5 bytes served as UTF-8: the page is still read, in the right characters.
    mislabeled = feed_server.add(
        "/cna/big5.aspx", (DATA / "pages/cna_201603190029.html").read_text(encoding="utf-8")
        .replace('charset="utf-8"', "").encode("big5", errors="ignore"), page)
    udn_page = feed_server.add("/udn/3705102", (DATA / "pages/udn_3705102.html").read_bytes(),
                               page)
    feeds = {
        "waimei": feed_server.add_file("waimei_posts.rss"),
        "cna-pages": feed_server.add("/cna.xml", rss([("平鎮輪胎行惡火", cna_page),
                                                      ("壞掉的頁面", broken),
                                                      ("沒有內文", no_body),
                                                      ("編碼錯了", mislabeled)]),
                                     "application/rss+xml"),
        "udn-pages": feed_server.add("/udn.xml", rss([("血濺桃機", udn_page)]),
                                     "application/rss+xml"),
        "ptt": feed_server.add("/bbs/Gossiping/index.html",
                               (DATA / "ptt/index.html").read_bytes(), page),
    }
    feed_server.add("/bbs/Gossiping/M.1459688662.A.CFE.html",
                    (DATA / "ptt/M.1459688662.A.CFE.html").read_bytes(), page)
    config = tmp_path / "feeds.yaml"
    config.write_text(
        f"settings:\n  database: sqlite:///{tmp_path / 'c.db'}\n  parse_workers: 2\n"
        "  allowed_networks: [127.0.0.1/32]\nfeeds:\n"
        f"  - name: waimei\n    url: {feeds['waimei']}\n"
        f"  - name: cna-pages\n    url: {feeds['cna-pages']}\n    full_text: true\n"
        f"    site: cna\n"
        f"  - name: udn-pages\n    url: {feeds['udn-pages']}\n    full_text: true\n"
        f"    site: udn\n"
        f"  - name: ptt\n    url: {feeds['ptt']}\n    format: ptt\n"
        f"  - name: archive\n    url: {DATA / 'jekyll'}\n    format: jekyll\n"
        "outputs:\n  - name: all\n    title: All\n    limit: 1000\n    collapse: article\n",
        encoding="utf-8")
    crawl = subprocess.run([sys.executable, "-m", "crawler", "--config", str(config), "crawl",
                            "--json"], capture_output=True, text=True, timeout=180)
    assert crawl.returncode == 0, crawl.stdout + crawl.stderr
    assert json.loads(crawl.stdout.strip().splitlines()[-1])["errors"] == 0
    # The broken pages are reported, each naming its page; their items keep the feed's text.
    assert "broken.aspx" in crawl.stderr and "empty.aspx" in crawl.stderr

    from crawler.config import load
    from crawler.emitters import EMITTERS
    from crawler.types import FeedView
    from storage import open_storage

    store = open_storage(load(str(config)).settings.database)
    try:
        articles = store.articles_for_output(None, 1000)
    finally:
        store.close()
    view = FeedView(name="all", title="All", description="", self_url="http://x/feeds/all.json",
                    home_url="http://x/", articles=articles)
    items = json.loads(EMITTERS["json"][0](view))["items"]
    by_title = {i["title"]: i for i in items}
    # Each format's articles are there, cleaned by their rules.
    assert "一名62歲女子逃生不及" in by_title["平鎮輪胎行惡火"]["content_html"]  # full text
    assert "川普會救他" in by_title["血濺桃機"]["content_html"]
    assert by_title["壞掉的頁面"]["content_html"] == "摘要 壞掉的頁面"  # the feed's text kept
    assert by_title["沒有內文"]["content_html"] == "摘要 沒有內文"
    assert "一名62歲女子逃生不及" in by_title["編碼錯了"]["content_html"]
    ptt = by_title["Re: [新聞] 5年7起隨機殺人 台灣社會學到甚麼？"]
    assert len(ptt["_crawler"]["comments"]) == 8
    cna = by_title["CNN：白宮與馬斯克洽談 對伊朗提供星鏈網路服務"]
    assert {s["name"] for s in cna["_crawler"]["sources"]} == {"waimei", "archive"}
    assert cna["_crawler"]["metadata"]["credit"] == "譯者：張佑之/核稿：何宏儒"
    assert len(items) >= 30
    for item in items:
        html = item["content_html"]
        for phrase in PHRASES:
            assert phrase not in html, (item["title"], phrase)
        for tag in BeautifulSoup(html, "html.parser").find_all(True):
            assert tag.name not in ("script", "style", "iframe", "svg", "form")
            assert not any(a.startswith("on") or a in ("style", "class") for a in tag.attrs)
