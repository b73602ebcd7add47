"""Article pages (full_text: true): the site's page rules, or trafilatura for other sites."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crawler import config as config_module
from crawler.normalize import normalize, plain_text
from crawler.parsers.page import parse_page
from storage import open_storage

PAGES = Path(__file__).parent / "data" / "pages"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def page(name: str, url: str) -> Any:
    item = parse_page((PAGES / name).read_bytes(), "text/html; charset=utf-8", url, NOW)
    return item, plain_text(normalize(item, url).content_html)


def test_udn_page_fields_and_body() -> None:
    """UDN: title, the byline's date and author, the body without share bar or byline."""
    item, text = page("udn_3705102.html", "https://udn.com/news/story/7315/3705102")
    assert item.title == "血濺桃機 他把老婆丟下樓再跳樓"
    assert item.author == "聯合報 記者 陳嘉寧"
    assert item.published == datetime(2019, 3, 18, 15, 59, tzinfo=UTC)
    assert text.startswith("陸裔美籍萬姓男子")  # the photo caption, then the story
    assert "萬姓男子昨天凌晨準備搭機飛往美國前" in text and "川普會救他" in text
    for boilerplate in ("用LINE傳送", "列印", "A+", "桃園機場報導", "分享"):
        assert boilerplate not in text, boilerplate


def test_cna_page_fields_and_body() -> None:
    """CNA: title, update time, dateline to metadata; no share bars, ads or expiry notice."""
    item, text = page("cna_201603190029.html",
                      "https://www.cna.com.tw/news/asoc/201603190029.aspx")
    assert " ".join(item.title.split()) == "平鎮輪胎行惡火 疏散7人1女命喪"
    assert item.published == datetime(2016, 3, 19, 2, 48, tzinfo=UTC)
    assert dict(item.metadata)["dateline"] == "中央社記者邱俊欽桃園19日電"
    assert "一名62歲女子逃生不及，命喪火窟" in text
    assert "付費會員" not in text and "首頁" not in text and "最新更新" not in text
    assert 'src="https://img5.cna.com.tw/www/WebPhotos/1024/20160319/6868754.jpg"' in \
        normalize(item, "https://www.cna.com.tw/").content_html


def test_other_sites_fall_back_to_trafilatura() -> None:
    """A site without page rules (RFI's page) is read by trafilatura: title, author, text."""
    item, text = page("rfi_t-dome.html", "https://www.rfi.fr/cn/台湾/20251130-t-dome")
    assert item.title == "台湾增加400亿美元国防开支 加速部署T-Dome防空系统"
    assert item.author == "左依"
    assert "“T-Dome”是什么？" in text
    assert "为了确保“T-Dome”系统的有效运作" in text


def rss(items: list[tuple[str, str]]) -> bytes:
    entries = "".join(
        f"<item><title>{title}</title><link>{link}</link><guid>{link}</guid>"
        f"<pubDate>Sat, 19 Mar 2016 02:48:00 GMT</pubDate><description>摘要：{title}"
        "</description></item>" for title, link in items)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>CNA</title><link>https://www.cna.com.tw/</link>{entries}"
            "</channel></rss>").encode()


def test_full_text_fetches_new_items_once(tmp_path: Path, feed_server: Any,
                                          crawl_once: Any) -> None:
    """full_text: the page's article replaces the feed's text, the summary stays, and a
    stored item's page is not fetched again; site: picks the rules whatever the domain."""
    first = feed_server.add("/news/1.aspx", (PAGES / "cna_201603190029.html").read_bytes(),
                            "text/html; charset=utf-8")
    feed = feed_server.add("/rss.xml", rss([("平鎮輪胎行惡火", first)]), "application/rss+xml")
    config = config_module.parse(
        f"settings:\n  database: sqlite:///{tmp_path / 'c.db'}\n  parse_workers: 1\n"
        "  allowed_networks: [127.0.0.1/32]\n"
        f"feeds:\n  - name: cna\n    url: {feed}\n    full_text: true\n    site: cna\n",
        str(tmp_path / "feeds.yaml"), env={})
    store = open_storage(config.settings.database)
    store.sync_sources(config.sources, NOW)

    def crawl() -> Any:
        return crawl_once(config, store)["cna"]

    try:
        assert crawl().new == 1
        stored = store.articles_for_output(None, 10)[0]
        assert "一名62歲女子逃生不及" in plain_text(stored.content_html)
        assert stored.summary == "摘要：平鎮輪胎行惡火"
        assert dict(stored.metadata)["dateline"] == "中央社記者邱俊欽桃園19日電"
        second = feed_server.add("/news/2.aspx", (PAGES / "udn_3705102.html").read_bytes(),
                                 "text/html; charset=utf-8")
        feed_server.add("/rss.xml", rss([("平鎮輪胎行惡火", first), ("第二篇", second)]),
                        "application/rss+xml")
        outcome = crawl()
        assert (outcome.new, outcome.unchanged) == (1, 1)
        assert feed_server.hits["/news/1.aspx"] == 1 and feed_server.hits["/news/2.aspx"] == 1
    finally:
        store.close()


def test_seed_002_udn_page_golden() -> None:
    """Seed 002 (a UDN page's text, put back into UDN's markup): the fields it shows, the
    story from its first to its last sentence, keywords as tags, and none of the headlines,
    related lists, product block or comment rules around it."""
    item, text = page("udn_9112304_from_seed002.html", "https://udn.com/news/story/6813/9112304")
    assert item.title == "澤倫斯基：正與盟國協商安全保障細節"
    assert item.author == "中央社"  # the agency; "基輔22日專電" is the dateline
    assert item.published == datetime(2025, 8, 22, 16, 0, tzinfo=UTC)
    assert item.tags == ("烏克蘭", "俄羅斯", "俄烏戰爭")
    assert text.startswith("烏克蘭總統澤倫斯基。圖／美聯社 烏克蘭與西方盟國近日持續就俄烏戰事")
    assert text.endswith("均未能阻止俄羅斯於2022年全面入侵烏克蘭。")
    seed = (PAGES.parent / "seeds" / "002.txt").read_text(encoding="utf-8")
    story = seed[seed.index("烏克蘭與西方盟國"):seed.index("烏克蘭 俄羅斯 俄烏戰爭")]
    for paragraph in (p.strip() for p in story.split("\n") if p.strip()):
        assert paragraph in text, paragraph[:30]
    for gone in ("調查認定葉丙成未違性平法", "延伸閱讀", "相關新聞", "近幾周最大空襲",
                 "商品推薦", "udn討論區", "張貼文章或下標籤", "快訊"):
        assert gone not in text, gone


def test_zaobao_page_via_trafilatura_golden() -> None:
    """Zaobao's article page (no page rules): title, author, date, first and last sentence."""
    item, text = page("zaobao_realtime.html", "https://www.zaobao.com/realtime/singapore/x")
    assert item.title == "明年起符合资格骨髓病患 采集干细胞可获全额津贴"
    assert item.author == "郑智浩"
    assert item.published == datetime(2025, 11, 21, 16, 0, tzinfo=UTC)  # 2025-11-22, +08:00
    assert text.startswith("明年1月1日起，在公立医院求医且通过“骨髓捐赠计划”成功匹配到")
    assert text.endswith("“希望更多雇主加入提供支持，提高骨髓捐赠的意识。”")
