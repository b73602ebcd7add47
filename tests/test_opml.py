"""OPML: our exports read back (by us, xmllint and newsboat), and imports into feeds.yaml
that keep the file as its author wrote it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crawler import config
from crawler.cli import main
from crawler.errors import ConfigError
from crawler.opml import (
    Skipped,
    Subscription,
    add_subscriptions,
    outputs_opml,
    read_opml,
    slug,
    sources_opml,
    url_key,
)

REPO = Path(__file__).resolve().parents[1]
OPML = Path(__file__).parent / "data" / "opml"
NOW = datetime(2025, 11, 2, 6, 30, tzinfo=UTC)
READER_EXPORT = OPML / "liferea-newsboat.opml"


def write_mixed_config(folder: Path) -> Path:
    """Sources of every kind sources_opml has to sort out."""
    posts = folder / "posts"
    posts.mkdir()
    path = folder / "feeds.yaml"
    path.write_text(f"""\
feeds:
  - name: 中央社 政治
    url: https://feeds.feedburner.com/rsscna/politics
    tags: [台灣, cna]
  - name: udn
    url: https://udn.com/rssfeed/news/2/6638?ch=news&from=rss
    tags: [台灣]
  - name: solidot
    url: https://www.solidot.org/index.rss
  - name: old
    url: https://old.example.com/rss
    tags: [台灣]
    enabled: false
  - name: archive
    url: {posts}
    format: jekyll
    tags: [archive]
outputs:
  - name: taiwan
    title: 台灣新聞 & more
    description: Taiwan, merged.
    tags: [台灣]
  - name: all
    title: All
""", encoding="utf-8")
    return path


def copy_repo_feeds(folder: Path) -> Path:
    target = folder / "feeds.yaml"
    shutil.copyfile(REPO / "feeds.yaml", target)
    return target


def run_import(feeds: Path, opml: Path, *extra: str) -> int:
    return main(["--config", str(feeds), "import", "opml", str(opml), *extra])


# Export


def test_sources_round_trip_through_read_opml(tmp_path: Path) -> None:
    """Every enabled http(s) source comes back with its tags as categories; the disabled
    one and the local folder are left out."""
    loaded = config.load(str(write_mixed_config(tmp_path)))
    back = read_opml(sources_opml(loaded, NOW), "ours.opml")
    assert [(s.url, s.title, s.categories) for s in back] == [
        ("https://feeds.feedburner.com/rsscna/politics", "中央社 政治", ("台灣", "cna")),
        ("https://udn.com/rssfeed/news/2/6638?ch=news&from=rss", "udn", ("台灣",)),
        ("https://www.solidot.org/index.rss", "solidot", ()),
    ]


def test_sources_of_the_shipped_feeds_yaml_round_trip() -> None:
    loaded = config.load(str(REPO / "feeds.yaml"))
    back = read_opml(sources_opml(loaded, NOW), "ours.opml")
    # grouped by first tag, so in another order than feeds.yaml's
    expected = [(s.url, s.tags) for s in loaded.sources if s.enabled]
    assert sorted((s.url, s.categories) for s in back) == sorted(expected)


def test_sources_opml_shape(tmp_path: Path) -> None:
    """OPML 2.0 head; one folder per first tag, untagged at the top; & escaped."""
    data = sources_opml(config.load(str(write_mixed_config(tmp_path))), NOW)
    text = data.decode("utf-8")
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert '<opml version="2.0">' in text
    assert "<dateCreated>Sun, 02 Nov 2025 06:30:00 GMT</dateCreated>" in text
    assert "<docs>http://opml.org/spec2.opml</docs>" in text
    assert 'xmlUrl="https://udn.com/rssfeed/news/2/6638?ch=news&amp;from=rss"' in text
    assert 'category="/台灣,/cna"' in text
    folder = re.search(r'<outline text="台灣">(.*?)</outline>', text, re.S)
    assert folder is not None and folder.group(1).count("<outline ") == 2
    assert re.search(r'^    <outline type="rss" text="solidot"', text, re.M)
    assert "old.example.com" not in text and "posts" not in text


def test_outputs_opml_lists_our_feeds(tmp_path: Path) -> None:
    data = outputs_opml(config.load(str(write_mixed_config(tmp_path))),
                        "https://news.example/", NOW)
    text = data.decode("utf-8")
    assert ('<outline type="rss" version="RSS2" text="台灣新聞 &amp; more" '
            'title="台灣新聞 &amp; more" xmlUrl="https://news.example/feeds/taiwan.xml" '
            'htmlUrl="https://news.example/feeds/taiwan.html" '
            'description="Taiwan, merged."/>') in text
    back = read_opml(data, "outputs.opml")
    assert [s.url for s in back] == ["https://news.example/feeds/taiwan.xml",
                                     "https://news.example/feeds/all.xml"]
    assert back[0].html_url == "https://news.example/feeds/taiwan.html"


def test_a_naive_now_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        sources_opml(config.load(str(write_mixed_config(tmp_path))), datetime(2025, 1, 1))


@pytest.mark.skipif(shutil.which("xmllint") is None,
                    reason="xmllint is not on PATH (Debian: apt-get install libxml2-utils)")
def test_xmllint_accepts_our_opml(tmp_path: Path) -> None:
    loaded = config.load(str(write_mixed_config(tmp_path)))
    for name, data in (("sources.opml", sources_opml(loaded, NOW)),
                       ("outputs.opml", outputs_opml(loaded, "http://127.0.0.1:8080/", NOW))):
        file = tmp_path / name
        file.write_bytes(data)
        done = subprocess.run(["xmllint", "--noout", str(file)], capture_output=True,
                              text=True, timeout=30)
        assert done.returncode == 0, done.stderr


@pytest.mark.skipif(shutil.which("newsboat") is None,
                    reason="newsboat is not on PATH (Debian: apt-get install newsboat)")
def test_newsboat_imports_our_sources(tmp_path: Path) -> None:
    """`newsboat -i` writes our feed URLs (& unescaped) with the folder as a tag."""
    loaded = config.load(str(write_mixed_config(tmp_path)))
    opml = tmp_path / "ours.opml"
    opml.write_bytes(sources_opml(loaded, NOW))
    home = tmp_path / "home"
    home.mkdir()
    urls = home / "urls"
    done = subprocess.run(
        ["newsboat", "-u", str(urls), "-c", str(home / "cache.db"), "-i", str(opml)],
        env={**os.environ, "HOME": str(home)}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = urls.read_text(encoding="utf-8").splitlines()
    assert [line.split()[0] for line in lines] == [
        "https://feeds.feedburner.com/rsscna/politics",
        "https://udn.com/rssfeed/news/2/6638?ch=news&from=rss",
        "https://www.solidot.org/index.rss"]
    assert lines[0].endswith('"台灣"')


# Reading what readers export


def test_read_a_liferea_and_newsboat_export() -> None:
    """OPML 1.0: folders (nested, liferea's type="folder") become categories, title stands
    in for a missing text, xmlurl/TYPE in any case, &amp; decoded; the rest is skipped
    with a reason and a line."""
    skipped: list[Skipped] = []
    subs = read_opml(READER_EXPORT.read_bytes(), "export.opml", skipped=skipped)
    assert [(s.title, s.url, s.categories) for s in subs] == [
        ("中央社 政治", "https://feeds.feedburner.com/rsscna/politics", ("台灣新聞",)),
        ("自由時報 即時新聞", "https://news.ltn.com.tw/rss/all.xml", ("台灣新聞",)),
        ("聯合新聞網 要聞", "https://udn.com/rssfeed/news/2/6638?ch=news&from=rss", ("台灣新聞",)),
        ("中時新聞網 社會", "https://www.chinatimes.com/rss/realtimenews-society.xml",
         ("台灣新聞", "地方新聞")),
        ("Solidot 奇客的資訊", "https://www.solidot.org/index.rss", ()),
        ("Hacker News: Newest (100+)", "https://hnrss.org/newest?points=100", ()),
    ]
    assert subs[0].html_url == "https://www.cna.com.tw/list/aipl.aspx"
    assert [(s.line, s.reason) for s in skipped] == [
        (11, "not an http(s) URL"),
        (16, "no feed URL (xmlUrl)"),
        (18, "listed twice in the file (line 9)"),
        (19, "the URL contains whitespace"),
    ]


def test_category_attribute_paths_are_categories() -> None:
    data = ('<opml version="2.0"><head/><body><outline text="新聞">'
            '<outline text="a" type="rss" xmlUrl="https://a.example/rss" '
            'category="/台灣/新聞,/tech, world"/></outline></body></opml>').encode()
    [sub] = read_opml(data, "x.opml")
    assert sub.categories == ("新聞", "台灣", "tech", "world")


def test_a_gbk_export_is_read() -> None:
    """expat knows no GBK; the file is decoded by Python instead."""
    data = ('<?xml version="1.0" encoding="GBK"?>\n<opml version="1.0"><body>'
            '<outline text="联合早报" type="rss" xmlUrl="https://www.zaobao.com/rss"/>'
            "</body></opml>").encode("gbk")
    assert [s.title for s in read_opml(data, "gbk.opml")] == ["联合早报"]


@pytest.mark.parametrize(("data", "expected"), [
    pytest.param(b'<opml version="1.0"><body><outline text="a"', "x.opml:1: not well-formed XML",
                 id="truncated"),
    pytest.param(b'<?xml version="1.0"?>\n<rss version="2.0"><channel/></rss>',
                 "x.opml:2: not an OPML file: the root element is <rss>", id="not-opml"),
    pytest.param(b'<opml version="2.0"><head/></opml>', "x.opml: not an OPML file: it has no "
                 "<body>", id="no-body"),
    pytest.param(b'<opml><body><outline text="&nbsp;"/></body></opml>',
                 "x.opml:1: not well-formed XML: undefined entity", id="html-entity"),
    pytest.param(b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
                 b' <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\n]>\n'
                 b'<opml><body><outline text="&lol2;"/></body></opml>',
                 "x.opml:3: refused: the file declares entities", id="billion-laughs"),
    pytest.param(b'<?xml version="1.0"?>\n<!DOCTYPE opml [<!ENTITY xxe SYSTEM '
                 b'"file:///etc/passwd">]>\n<opml><body><outline text="&xxe;" '
                 b'xmlUrl="https://a.example/"/></body></opml>',
                 "x.opml:2: refused: the file declares entities", id="external-entity"),
])
def test_bad_files_are_config_errors(data: bytes, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        read_opml(data, "x.opml")
    assert info.value.problems[0].startswith(expected), info.value.problems


@pytest.mark.parametrize(("title", "expected"), [
    ("中央社 政治", "中央社-政治"),
    ("Hacker News: Newest (100+)", "hacker-news-newest-100"),
    ("ＢＢＣ　中文網", "bbc-中文網"),
    ("自由時報／即時", "自由時報-即時"),
    ("  --!!  ", ""),
    ("x" * 80, "x" * 60),
])
def test_slug(title: str, expected: str) -> None:
    assert slug(title) == expected


def test_url_key_ignores_only_trivial_differences() -> None:
    assert url_key("HTTPS://Feeds.Example.com:443/rss/") == url_key("https://feeds.example.com/rss")
    assert url_key("https://e.com/rss#top") == url_key("https://e.com/rss")
    assert url_key("http://e.com/rss") != url_key("https://e.com/rss")
    assert url_key("https://e.com/rss?ch=1") != url_key("https://e.com/rss?ch=2")
    assert url_key("https://e.com/RSS") != url_key("https://e.com/rss")


# Importing into feeds.yaml


def test_import_keeps_feeds_yaml_and_appends(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped feeds.yaml, comments and all, is still there byte for byte; the new
    feeds follow its last feed, named and tagged from the export; `crawler check` is happy."""
    feeds = copy_repo_feeds(tmp_path)
    before = feeds.read_text(encoding="utf-8")
    assert run_import(feeds, READER_EXPORT) == 0
    after = feeds.read_text(encoding="utf-8")

    block = ("  - name: 自由時報-即時新聞\n"
             "    url: https://news.ltn.com.tw/rss/all.xml\n"
             "    tags: [台灣新聞]\n"
             "  - name: 聯合新聞網-要聞\n"
             "    url: https://udn.com/rssfeed/news/2/6638?ch=news&from=rss\n"
             "    tags: [台灣新聞]\n"
             "  - name: 中時新聞網-社會\n"
             "    url: https://www.chinatimes.com/rss/realtimenews-society.xml\n"
             "    tags: [台灣新聞, 地方新聞]\n"
             "  - name: hacker-news-newest-100\n"
             "    url: https://hnrss.org/newest?points=100\n")
    assert block in after
    assert after.replace(block, "", 1) == before
    comments = [line for line in before.splitlines() if line.lstrip().startswith("#")
                or " # " in line]
    assert all(line in after.splitlines() for line in comments)

    old = config.parse(before, str(feeds), env={})
    new = config.load(str(feeds))
    assert [s.name for s in new.sources][:len(old.sources)] == [s.name for s in old.sources]
    assert [(s.name, s.tags) for s in new.sources[len(old.sources):]] == [
        ("自由時報-即時新聞", ("台灣新聞",)), ("聯合新聞網-要聞", ("台灣新聞",)),
        ("中時新聞網-社會", ("台灣新聞", "地方新聞")), ("hacker-news-newest-100", ())]
    # The new feeds sit in the feeds list, before `outputs:` and its blank line.
    assert after.index(block) < after.index("\noutputs:")
    assert after.endswith(before[before.index("\noutputs:"):])

    out = capsys.readouterr().out
    assert "added 4 feeds" in out
    assert "already in feeds.yaml as 'cna-politics'" in out
    assert "liferea-newsboat.opml:11: javascript:alert(document.cookie): not an http(s) URL" in out
    assert main(["--config", str(feeds), "check"]) == 0


def test_importing_twice_adds_nothing(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    feeds = copy_repo_feeds(tmp_path)
    assert run_import(feeds, READER_EXPORT) == 0
    once = feeds.read_bytes()
    capsys.readouterr()
    assert run_import(feeds, READER_EXPORT) == 0
    assert feeds.read_bytes() == once
    out = capsys.readouterr().out
    assert "added 0 feeds" in out
    assert "already in feeds.yaml as '自由時報-即時新聞'" in out


def test_dry_run_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    feeds = copy_repo_feeds(tmp_path)
    before = feeds.read_bytes()
    assert run_import(feeds, READER_EXPORT, "--dry-run") == 0
    assert feeds.read_bytes() == before
    out = capsys.readouterr().out
    assert "would add 4 feeds" in out
    assert "  - name: 中時新聞網-社會\n" in out
    assert [p.name for p in tmp_path.iterdir()] == ["feeds.yaml"]


@pytest.mark.parametrize("data", [
    pytest.param(b'<opml version="1.0"><body><outline text="a" xmlUrl="https://a.example/">',
                 id="malformed"),
    pytest.param(b'<?xml version="1.0"?>\n<!DOCTYPE opml [<!ENTITY xxe SYSTEM '
                 b'"file:///etc/passwd">]>\n<opml><body><outline text="&xxe;" '
                 b'xmlUrl="https://a.example/"/></body></opml>', id="external-entity"),
    pytest.param(b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY a "aaaaaaaaaa">'
                 b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
                 b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>\n'
                 b'<opml><body><outline text="&c;" xmlUrl="https://a.example/"/></body></opml>',
                 id="billion-laughs"),
])
def test_a_bad_opml_changes_nothing(tmp_path: Path, data: bytes,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    feeds = copy_repo_feeds(tmp_path)
    before = feeds.read_bytes()
    opml = tmp_path / "bad.opml"
    opml.write_bytes(data)
    assert run_import(feeds, opml) == 2
    assert feeds.read_bytes() == before
    err = capsys.readouterr().err
    assert f"{opml}: nothing imported:" in err
    assert re.search(r"bad\.opml:\d+: (not well-formed XML|refused: the file declares "
                     r"entities)", err), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.opml", "feeds.yaml"]


def test_a_missing_opml_file_is_a_usage_error(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    feeds = copy_repo_feeds(tmp_path)
    assert run_import(feeds, tmp_path / "nope.opml") == 2
    assert "nope.opml: cannot read" in capsys.readouterr().err


def test_a_result_that_would_not_validate_is_not_written(tmp_path: Path) -> None:
    """add_subscriptions checks the new text with crawler.config.parse before writing."""
    feeds = copy_repo_feeds(tmp_path)
    before = feeds.read_bytes()
    with pytest.raises(ConfigError, match="not a valid URL"):
        add_subscriptions(str(feeds), [Subscription("https://e.com:99999/rss", "bad port",
                                                     None)])
    assert feeds.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["feeds.yaml"]


def test_names_are_unique_and_read_back_as_strings(tmp_path: Path) -> None:
    """Taken names get -2, -3; a name PyYAML would read as a bool or a number is quoted;
    a title without letters is named after the host."""
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("feeds:\n  - name: solidot\n    url: https://www.solidot.org/index.rss\n",
                     encoding="utf-8")
    subs = [Subscription("https://solidot.example/a", "Solidot", None),
            Subscription("https://solidot.example/b", "solidot", None),
            Subscription("https://yes.example/", "Yes", None, ("on", "台灣")),
            Subscription("https://n.example/", "0755", None),
            Subscription("https://feeds.bbci.co.uk/zhongwen/rss.xml", "", None)]
    result = add_subscriptions(str(feeds), subs)
    assert [f.name for f in result.added] == ["solidot-2", "solidot-3", "yes", "0755",
                                              "feeds-bbci-co-uk"]
    loaded = config.load(str(feeds))
    assert [s.name for s in loaded.sources] == ["solidot", "solidot-2", "solidot-3", "yes",
                                                "0755", "feeds-bbci-co-uk"]
    assert loaded.source("yes").tags == ("on", "台灣")
    assert "  - name: 'yes'\n" in feeds.read_text(encoding="utf-8")


def test_odd_but_valid_files_keep_their_text(tmp_path: Path) -> None:
    """Spacing ruamel.yaml would normalize, a document marker, a commented-out feed at the
    end of the list and a section comment before the next key all stay as they were."""
    feeds = tmp_path / "feeds.yaml"
    before = ("---\n# top\nsettings:\n  port:   8080   # two spaces\n"
              "feeds:\n- {name: a, url: 'https://a.example/rss'}\n\n"
              "# a group\n- name:  b\n  url: https://b.example/rss   # trailing\n"
              "  tags:\n  - x\n  - y\n# - name: old\n#   url: https://old.example/rss\n\n"
              "# outputs\noutputs:\n- name: all\n  title: All\n")
    feeds.write_text(before, encoding="utf-8")
    result = add_subscriptions(str(feeds), [Subscription("https://c.example/rss", "C", None,
                                                         ("x",))])
    after = feeds.read_text(encoding="utf-8")
    assert result.block == "- name: c\n  url: https://c.example/rss\n  tags: [x]\n"
    assert not result.reformatted
    assert after == before.replace("\n\n# outputs", "\n" + result.block + "\n# outputs")
    assert [s.name for s in config.load(str(feeds)).sources] == ["a", "b", "c"]


def test_an_empty_flow_list_becomes_a_block_list(tmp_path: Path) -> None:
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("# mine\nfeeds: []  # none yet\noutputs:\n  - name: all\n    title: All\n",
                     encoding="utf-8")
    add_subscriptions(str(feeds), [Subscription("https://c.example/rss", "C", None)])
    assert feeds.read_text(encoding="utf-8") == (
        "# mine\nfeeds:  # none yet\n  - name: c\n    url: https://c.example/rss\n"
        "outputs:\n  - name: all\n    title: All\n")
    assert config.load(str(feeds)).sources[0].name == "c"


def test_crlf_files_get_crlf_lines(tmp_path: Path) -> None:
    feeds = tmp_path / "feeds.yaml"
    before = b"feeds:\r\n  - name: a\r\n    url: https://a.example/rss\r\n"
    feeds.write_bytes(before)
    add_subscriptions(str(feeds), [Subscription("https://c.example/rss", "C", None)])
    assert feeds.read_bytes() == before + b"  - name: c\r\n    url: https://c.example/rss\r\n"


def test_the_file_mode_and_a_symlink_survive(tmp_path: Path) -> None:
    real = copy_repo_feeds(tmp_path)
    real.chmod(0o640)
    link = tmp_path / "link.yaml"
    link.symlink_to(real)
    result = add_subscriptions(str(link), [Subscription("https://c.example/rss", "C", None)])
    assert result.path == str(real.resolve())
    assert link.is_symlink()
    assert real.stat().st_mode & 0o777 == 0o640
    assert "https://c.example/rss" in real.read_text(encoding="utf-8")
