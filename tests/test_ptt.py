"""PTT: a real post page parsed into fields and pushes; a board index crawled end to end."""

from __future__ import annotations

import http.server
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from crawler import config as config_module
from crawler.emitters import EMITTERS
from crawler.errors import NotAFeed
from crawler.normalize import plain_text
from crawler.parsers.ptt import parse_ptt_index, parse_ptt_post
from crawler.types import FeedView
from storage import open_storage

PTT = Path(__file__).parent / "data" / "ptt"
POST_URL = "https://www.ptt.cc/bbs/Gossiping/M.1459688662.A.CFE.html"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def post() -> Any:
    return parse_ptt_post((PTT / "M.1459688662.A.CFE.html").read_bytes(), POST_URL, NOW)


def test_post_header_fields() -> None:
    """Board, category, title, author and time (Taipei time, stored in UTC)."""
    item = post()
    metadata = dict(item.metadata)
    assert item.title == "Re: [新聞] 5年7起隨機殺人 台灣社會學到甚麼？"
    assert metadata["board"] == "Gossiping" and metadata["category"] == "新聞"
    assert item.author == "senyek9527"
    assert item.published == datetime(2016, 4, 3, 13, 4, 15, tzinfo=UTC)
    assert item.link == POST_URL
    assert metadata["source_url"] == "http://www.ntdtv.com.tw/b5/20160402/video/169005.html"


def test_post_body_without_header_signature_or_site_lines() -> None:
    """The body keeps the reply and the quote, and drops the signature and ※ lines."""
    text = plain_text(post().content_html)
    assert text.startswith("學不到什麼的啦")
    assert "※ 引述《sunbysea (忠言逆耳良藥苦口)》之銘言" in text
    assert ": 律師 呂秋遠" in text
    for gone in ("作者", "發信站", "文章網址", "機會就像老二", "還沒崩潰完"):
        assert gone not in text, gone


def test_pushes_are_structured_comments() -> None:
    """Each push: floor, user, kind (推 push, 噓 boo, → neutral), text, time."""
    comments = post().comments
    assert len(comments) == 8
    first, third = comments[0], comments[2]
    assert (first.floor, first.user, first.kind, first.text) == (1, "skyexers", "boo",
                                                                 "還沒崩潰完？")
    assert first.time == datetime(2016, 4, 3, 13, 7, tzinfo=UTC)
    assert (third.kind, third.user) == ("push", "pictograma")
    assert {c.kind for c in comments} == {"push", "boo", "neutral"}
    assert [c.floor for c in comments] == list(range(1, 9))


def test_board_index_lists_posts_and_skips_deleted() -> None:
    """Index rows → absolute post URLs; a deleted post's row has no link and is skipped."""
    urls = parse_ptt_index((PTT / "index.html").read_bytes(),
                           "https://www.ptt.cc/bbs/Gossiping/index.html")
    assert urls == (POST_URL, "https://www.ptt.cc/bbs/Gossiping/M.1459689999.A.000.html")


def test_over18_question_is_a_clear_error() -> None:
    """The over-18 page instead of an index is reported as such, not as an empty board."""
    with pytest.raises(NotAFeed, match="over-18"):
        parse_ptt_index((PTT / "over18.html").read_bytes(),
                        "https://www.ptt.cc/bbs/Gossiping/index.html")


@pytest.fixture
def ptt_server(serve_handler: Any) -> dict[str, Any]:
    """ptt.cc on loopback: the over-18 page unless the over18 cookie is sent."""
    hits: dict[str, int] = {}
    pages = {"/bbs/Gossiping/index.html": (PTT / "index.html").read_bytes(),
             "/bbs/Gossiping/M.1459688662.A.CFE.html":
                 (PTT / "M.1459688662.A.CFE.html").read_bytes()}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits[self.path] = hits.get(self.path, 0) + 1
            if "over18=1" not in (self.headers.get("Cookie") or ""):
                body = (PTT / "over18.html").read_bytes()
            elif self.path in pages:
                body = pages[self.path]
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return {"base": serve_handler(Handler), "hits": hits}


def test_board_crawl_end_to_end(tmp_path: Path, ptt_server: dict[str, Any],
                                crawl_once: Any) -> None:
    """format: ptt → the index's posts are fetched (over-18 answered), stored with their
    pushes, served in JSON Feed; a missing post is a warning; a second crawl refetches
    nothing that is stored."""
    base = ptt_server["base"]
    config = config_module.parse(
        f"settings:\n  database: sqlite:///{tmp_path / 'c.db'}\n  parse_workers: 1\n"
        "  allowed_networks: [127.0.0.1/32]\n"
        f"feeds:\n  - name: ptt-gossiping\n    url: {base}/bbs/Gossiping/index.html\n"
        "    format: ptt\n", str(tmp_path / "feeds.yaml"), env={})
    store = open_storage(config.settings.database)
    store.sync_sources(config.sources, NOW)

    def crawl() -> Any:
        return crawl_once(config, store)["ptt-gossiping"]

    try:
        outcome = crawl()
        assert outcome.error is None and outcome.new == 1
        assert any("M.1459689999.A.000.html" in w and "404" in w for w in outcome.warnings)
        stored = store.articles_for_output(None, 10)
        assert len(stored) == 1 and len(stored[0].comments) == 8
        assert "推文 (8)" in plain_text(stored[0].content_html)
        view = FeedView(name="all", title="t", description="", self_url="http://x/",
                        home_url="http://x/", articles=stored)
        item = json.loads(EMITTERS["json"][0](view))["items"][0]
        assert item["_crawler"]["comments"][0] == {
            "floor": 1, "user": "skyexers", "kind": "boo", "text": "還沒崩潰完？",
            "time": "2016-04-03T13:07:00+00:00"}
        assert item["_crawler"]["metadata"]["board"] == "Gossiping"
        again = crawl()
        assert again.error is None and again.not_modified
        assert ptt_server["hits"]["/bbs/Gossiping/M.1459688662.A.CFE.html"] == 1
    finally:
        store.close()


def test_raw_bbs_file_golden() -> None:
    """A raw BBS file (Big5-UAO, ANSI colours): header fields, body, pushes, post address."""
    from crawler.encoding import decode
    from crawler.parsers.ptt import parse_ptt_text

    data = Path(__file__).parent / "data" / "encoding" / "ptt-bbs-raw_big5-uao.txt"
    text, _, _ = decode(data.read_bytes(), None)
    item = parse_ptt_text(text, "file:///saved/post.txt", NOW)
    metadata = dict(item.metadata)
    assert item.title == "[新聞] TVBS六都民調 侯奪冠、盧升第四、柯墊底"
    assert item.author == "cheinshin" and metadata["board"] == "Gossiping"
    assert metadata["category"] == "新聞" and metadata["source_url"] == "https://reurl.cc/8nK7eo"
    assert item.published == datetime(2020, 12, 21, 11, 45, 20, tzinfo=UTC)
    assert item.link == "https://www.ptt.cc/bbs/Gossiping/M.1608551127.A.91E.html"
    body = plain_text(item.content_html)
    assert body.startswith("1.媒體來源: TVBS 2.記者署名: 韋家齊")
    assert body.endswith("草包滾了 柯果然墊底")
    assert "\x1b" not in item.content_html and "發信站" not in body
    assert len(item.comments) == 76
    assert (item.comments[-1].user, item.comments[-1].kind, item.comments[-1].text) == \
        ("ken0062", "push", "做越多越被嫌ww")
    assert item.comments[-1].time == datetime(2020, 12, 21, 16, 11, tzinfo=UTC)
    assert {c.kind for c in item.comments} == {"push", "boo", "neutral"}


def test_seed_004_rendering_golden() -> None:
    """Seed 004 (a post rendered as text): title, category, the quoted UDN story and its
    URL, and the 34 pushes with floor, user, time and text (16F has no text)."""
    from crawler.parsers.ptt import parse_ptt_text

    seed = (Path(__file__).parent / "data" / "seeds" / "004.txt").read_text(encoding="utf-8")
    item = parse_ptt_text(seed, "file:///seeds/004.txt", NOW)
    metadata = dict(item.metadata)
    assert item.title == "[新聞] 美防長讚「美中關係史上最佳」!雙方同意設軍事溝通管道 美"
    assert metadata["category"] == "新聞"
    assert metadata["source_url"] == "https://udn.com/news/story/6813/9112304"
    assert item.published == datetime(2025, 11, 2, 4, 43, tzinfo=UTC)  # the story's stated time
    body = plain_text(item.content_html)
    assert body.startswith("美防長讚「美中關係史上最佳」!雙方同意設軍事溝通管道 美媒有質疑")
    assert body.endswith("還是聯合報比較敢寫 反觀中央社根本隻字不提....")
    assert "推文討論" not in body and "BaRanKa" not in body
    assert len(item.comments) == 34 and [c.floor for c in item.comments] == list(range(1, 35))
    first, sixteenth = item.comments[0], item.comments[15]
    assert (first.user, first.text) == ("BaRanKa", "ㄏㄏ大膽 那美台呢")
    assert first.time == datetime(2025, 11, 2, 10, 17, tzinfo=UTC)
    assert (sixteenth.user, sixteenth.text) == ("yangweiisi", "")


def test_folder_of_saved_posts_is_a_ptt_source(tmp_path: Path, crawl_once: Any) -> None:
    """format: ptt with a folder: every .txt post in it is read (Big5 or UTF-8)."""
    import shutil

    folder = tmp_path / "saved"
    folder.mkdir()
    shutil.copy(Path(__file__).parent / "data" / "encoding" / "ptt-bbs-raw_big5-uao.txt",
                folder / "tvbs.txt")
    shutil.copy(Path(__file__).parent / "data" / "seeds" / "004.txt", folder / "udn.txt")
    (folder / "notes.txt").write_text("not a post\n", encoding="utf-8")
    config = config_module.parse(
        f"settings:\n  database: sqlite:///{tmp_path / 'c.db'}\n  parse_workers: 1\n"
        "  allowed_networks: [127.0.0.1/32]\n"
        f"feeds:\n  - name: saved\n    url: {folder}\n    format: ptt\n",
        str(tmp_path / "feeds.yaml"), env={})
    store = open_storage(config.settings.database)
    store.sync_sources(config.sources, NOW)
    try:
        outcome = crawl_once(config, store)["saved"]
        assert outcome.error is None and outcome.new == 2
        assert any("notes.txt" in w for w in outcome.warnings)
        titles = {a.title for a in store.articles_for_output(None, 10)}
        assert "[新聞] TVBS六都民調 侯奪冠、盧升第四、柯墊底" in titles
    finally:
        store.close()


def test_raw_bbs_file_in_utf8_reads_the_same() -> None:
    """The same raw post converted to UTF-8 by go-pttbbsweb (a prefix of it) parses to the
    same header fields and first pushes as the Big5 original."""
    from crawler.encoding import decode
    from crawler.parsers.ptt import parse_ptt_text

    data = Path(__file__).parent / "data" / "encoding"
    big5 = parse_ptt_text(decode((data / "ptt-bbs-raw_big5-uao.txt").read_bytes(), None)[0],
                          "file:///a.txt", NOW)
    utf8 = parse_ptt_text((data / "ptt-bbs-raw_utf8.txt").read_text(encoding="utf-8"),
                          "file:///b.txt", NOW)
    assert (utf8.title, utf8.author, utf8.published, utf8.link) == \
        (big5.title, big5.author, big5.published, big5.link)
    assert utf8.content_html == big5.content_html
    assert utf8.comments[:10] == big5.comments[:10]
