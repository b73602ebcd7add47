"""Jekyll post archives: read as a `format: jekyll` source, written by `crawler export`."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crawler import config as config_module
from crawler.errors import ConfigError, ParseError
from crawler.parsers.jekyll import parse_post
from storage import open_storage

JEKYLL = Path(__file__).parent / "data" / "jekyll"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def post(name: str) -> str:
    return (JEKYLL / name).read_text(encoding="utf-8")


def test_post_with_front_matter() -> None:
    """Title, link, author and tags from the front matter; the time from the marker."""
    item = parse_post(post("jekyll_2022-10-22_cna_white-house-musk-starlink-iran.md"), NOW)
    assert item.title == "CNN：白宮與馬斯克洽談 對伊朗提供星鏈網路服務"
    assert item.link == "https://www.cna.com.tw/news/aopl/202210220130.aspx"
    assert item.author == "(臺)中央社CNA"
    assert item.tags == ("(臺)中央社CNA",)
    assert item.published == datetime.fromtimestamp(1666429443, UTC)
    assert item.content_html.startswith("<div>") and "星鏈" in item.content_html


def test_marker_wins_over_front_matter_date() -> None:
    """The marker is the feed's date; front-matter `date:` (a clamped crawl time) differs."""
    item = parse_post(post("jekyll_2020-07-26_zaobao_ag600-first-sea-flight_quotes-in-title.md"),
                      NOW)
    assert item.published == datetime.fromtimestamp(1595764680, UTC)
    assert item.title == '中国自研大型水陆两栖飞机"鲲龙"AG600海上首飞成功'


def test_feedx_item_without_front_matter() -> None:
    """Seed 003 shape: marker, link line, rule, HTML; the title comes from the link line."""
    item = parse_post(post("feedx-item_rfi_2023-10-28_korea-fm-north-korean-defectors"
                           "_with-footer.md"), NOW)
    assert item.title == "韩国外长：已向王毅传达反对遣返在华脱北者立场"
    assert item.link.startswith("https://www.rfi.fr/cn/")
    assert item.published == datetime.fromtimestamp(1698488101, UTC)


def test_2020_variant_takes_the_date_line() -> None:
    """No marker: the 日期： line under the rule gives the time."""
    item = parse_post(post("feedx-item-variant_cdt_2020-06_liciecuncun-no-onlookers.md"), NOW)
    assert item.title == "【立此存照】不许围观"
    assert item.published == datetime(2020, 6, 20, 18, 46, 58, tzinfo=UTC)
    assert "日期" not in item.content_html


def test_title_spanning_lines_and_file_name_with_newline() -> None:
    """A YAML title with a line break is one line; a file whose name holds a newline reads."""
    path = next(p for p in JEKYLL.rglob("*.md") if "\n" in p.name)
    item = parse_post(path.read_text(encoding="utf-8"), NOW)
    assert item.title == "美四大科技巨头国会听证 提及中国"


@pytest.mark.parametrize("text", [
    pytest.param("just some notes\n", id="plain-text"),
    pytest.param("---\ntitle: [unclosed\n---\n", id="bad-yaml"),
    pytest.param("---\ntitle: x\n", id="unclosed-front-matter"),
])
def test_what_is_not_a_post_is_a_parse_error(text: str) -> None:
    """A file that is not a post is a ParseError naming the cause."""
    with pytest.raises(ParseError):
        parse_post(text, NOW)


def test_missing_folder_is_a_config_error(tmp_path: Path) -> None:
    """A jekyll source whose folder does not exist is refused by `crawler check`."""
    with pytest.raises(ConfigError, match=r"feeds\[0\].url: no such folder"):
        config_module.parse("feeds:\n  - name: a\n    url: nowhere\n    format: jekyll\n",
                            str(tmp_path / "feeds.yaml"), env={})


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crawler", *args], capture_output=True,
                          text=True, timeout=120)


def write_config(path: Path, folder: Path) -> Path:
    path.write_text(f"settings:\n  database: sqlite:///{path.parent / 'c.db'}\n"
                    f"  parse_workers: 1\nfeeds:\n  - name: 外媒报道\n    url: {folder}\n"
                    "    format: jekyll\n", encoding="utf-8")
    return path


def test_round_trip_through_export(tmp_path: Path) -> None:
    """Archive → crawl → `crawler export jekyll` → crawl the export: the same articles."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_config(tmp_path / "a" / "feeds.yaml", JEKYLL)
    (tmp_path / "a" / "notes").mkdir()
    crawled = run("--config", str(first), "crawl")
    assert crawled.returncode == 0, crawled.stdout + crawled.stderr
    exported = run("--config", str(first), "export", "jekyll", str(tmp_path / "posts"))
    assert exported.returncode == 0, exported.stderr
    files = sorted((tmp_path / "posts").glob("*.md"))
    assert len(files) >= 25
    assert all(f.name[:4].isdigit() and f.name.endswith(".md") for f in files)

    second = write_config(tmp_path / "b" / "feeds.yaml", tmp_path / "posts")
    again = run("--config", str(second), "crawl")
    assert again.returncode == 0, again.stdout + again.stderr

    def articles(db: Path) -> dict[str, tuple[str, datetime, str]]:
        store = open_storage(f"sqlite:///{db}")
        try:
            return {a.link or a.title: (a.title, a.published, a.content_html)
                    for a in store.articles_for_output(None, 1000)}
        finally:
            store.close()

    original = articles(tmp_path / "a" / "c.db")
    copy = articles(tmp_path / "b" / "c.db")
    assert copy.keys() == original.keys()
    for key, (title, published, html) in original.items():
        assert copy[key][0] == title
        assert copy[key][1] == published.replace(microsecond=published.microsecond // 1000
                                                 * 1000)
        assert "".join(copy[key][2].split()) == "".join(html.split())
