"""feeds.yaml validation: every mistake is named by file, line and field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from crawler import config
from crawler.errors import ConfigError
from crawler.types import Settings

REPO = Path(__file__).resolve().parents[1]


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config.parse(text, "feeds.yaml", env={})
    return info.value.problems


def test_shipped_feeds_yaml_is_valid() -> None:
    """The feeds.yaml in the repo loads, with real sources and the `all` output."""
    loaded = config.parse((REPO / "feeds.yaml").read_text(encoding="utf-8"),
                          str(REPO / "feeds.yaml"), env={})
    names = {s.name for s in loaded.sources}
    assert {"cna-feedx", "rfi-feedx"} <= names
    assert any("feedx.net" in s.url for s in loaded.sources)
    assert loaded.output("all") is not None


def test_every_setting_is_documented_in_shipped_feeds_yaml() -> None:
    """Each Settings field appears, commented, in the shipped feeds.yaml and the README."""
    shipped = (REPO / "feeds.yaml").read_text(encoding="utf-8")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for field in Settings.__dataclass_fields__:
        assert re.search(rf"^\s+{field}:", shipped, re.M), field
        assert f"`{field}`" in readme, field


def test_defaults_when_settings_are_missing() -> None:
    """Without settings, the documented defaults apply and an `all` output exists."""
    loaded = config.parse("feeds:\n  - name: a\n    url: https://example.com/rss\n",
                          "/srv/feeds.yaml", env={})
    assert loaded.settings.host == "127.0.0.1"
    assert loaded.settings.port == 8080
    assert loaded.settings.database == "sqlite:////srv/data/crawler.db"
    assert [o.name for o in loaded.outputs] == ["all"]
    assert loaded.outputs[0].limit == 100
    assert loaded.sources[0].format == "feed"
    assert loaded.sources[0].enabled is True


def test_database_environment_variable_wins() -> None:
    """CRAWLER_DATABASE overrides settings.database."""
    loaded = config.parse("settings:\n  database: sqlite:///x.db\nfeeds: []\n", "feeds.yaml",
                          env={"CRAWLER_DATABASE": "postgresql://u@db/crawler"})
    assert loaded.settings.database == "postgresql://u@db/crawler"


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("feeds:\n  - name: a\n    url: https://e.com/\n    colour: red\n",
                 "feeds.yaml:4: feeds[0].colour: unknown key", id="unknown-key"),
    pytest.param("settings:\n  port: eighty\nfeeds: []\n",
                 "feeds.yaml:2: settings.port: expected an integer, got a string", id="wrong-type"),
    pytest.param("settings:\n  port: yes\nfeeds: []\n",
                 "feeds.yaml:2: settings.port: expected an integer", id="bool-is-not-int"),
    pytest.param("feeds:\n  - name: a\n    url: https://e.com/1\n  - name: a\n    url: https://e.com/2\n",
                 "feeds.yaml:4: feeds[1].name: duplicate name 'a' (first used on line 2)",
                 id="duplicate-name"),
    pytest.param("feeds:\n  - name: a\n    url: ftp://e.com/feed\n",
                 "feeds.yaml:3: feeds[0].url: URL must start with http:// or https://",
                 id="bad-scheme"),
    pytest.param("feeds:\n  - name: a\n    url: https://e.com:99999/\n",
                 "feeds.yaml:3: feeds[0].url: not a valid URL", id="bad-port"),
    pytest.param("feeds:\n  - name: a\n    url: https://\n",
                 "feeds.yaml:3: feeds[0].url: URL has no host", id="no-host"),
    pytest.param("feeds:\n  - url: https://e.com/\n",
                 "feeds.yaml:2: feeds[0]: missing required key 'name'", id="missing-name"),
    pytest.param("feeds:\n  - name: a\n    url: https://e.com/\noutputs:\n  - name: Big Feed\n"
                 "    title: B\n", "feeds.yaml:5: outputs[0].name: 'Big Feed': use lowercase",
                 id="output-name-not-url-safe"),
    pytest.param("feeds:\n  - name: ' padded'\n    url: https://e.com/\n",
                 "feeds.yaml:2: feeds[0].name: ' padded': needs 1 to 100 printable",
                 id="source-name-padded"),
    pytest.param('feeds:\n  - name: "a\\tb"\n    url: https://e.com/\n',
                 "feeds.yaml:2: feeds[0].name: 'a\\tb': needs 1 to 100 printable",
                 id="source-name-control-char"),
    pytest.param("feeds:\n  - name: a\n    url: https://e.com/\n    format: gopher\n",
                 "feeds.yaml:4: feeds[0].format: unknown format 'gopher'", id="bad-format"),
    pytest.param("feeds:\n  - name: a\n    url: https://e.com/\n    interval: 0\n",
                 "feeds.yaml:4: feeds[0].interval: must be greater than 0", id="zero-interval"),
    pytest.param("feeds:\n  - name: a\n    url: https://e.com/\noutputs:\n  - name: o\n"
                 "    title: O\n    feeds: [b]\n",
                 "feeds.yaml:7: outputs[0].feeds[0]: no feed is named 'b'", id="unknown-feed"),
    pytest.param("feeds:\n  - name: a\n    url: https://e.com/\noutputs:\n  - name: o\n",
                 "feeds.yaml:5: outputs[0]: missing required key 'title'", id="output-title"),
    pytest.param("feeds: [\n", "feeds.yaml:2: not valid YAML", id="bad-yaml"),
    pytest.param("", "feeds.yaml: the file is empty", id="empty"),
    pytest.param("settings: {}\n", "feeds.yaml:1: feeds: missing", id="no-feeds"),
    pytest.param("settings:\n  stories:\n    copy_threshold: 1.5\nfeeds: []\n",
                 "feeds.yaml:3: settings.stories.copy_threshold: must be more than 0 and at "
                 "most 1", id="story-threshold"),
    pytest.param("settings:\n  stories:\n    window: 7\nfeeds: []\n",
                 "feeds.yaml:3: settings.stories.window: unknown key", id="story-unknown-key"),
    pytest.param("settings:\n  stories:\n    related_hours: 0\nfeeds: []\n",
                 "feeds.yaml:3: settings.stories.related_hours: must be more than 0",
                 id="story-window-zero"),
    pytest.param("feeds:\n  - name: a\n    url: https://e.com/\n    priority: high\n",
                 "feeds.yaml:4: feeds[0].priority: expected an integer", id="priority-type"),
    pytest.param("feeds:\n  - name: a\n    url: https://e.com/\noutputs:\n  - name: o\n"
                 "    title: O\n    collapse: cluster\n",
                 "feeds.yaml:7: outputs[0].collapse: 'cluster': use one of story, article",
                 id="collapse-value"),
    pytest.param("feeds:\n  - name: a\n    url: https://e.com/\n    encoding: big-five\n",
                 "feeds.yaml:4: feeds[0].encoding: 'big-five' is not a text encoding",
                 id="encoding-unknown"),
    pytest.param("feeds:\n  - name: a\n    url: https://e.com/\n    encoding: base64\n",
                 "feeds.yaml:4: feeds[0].encoding: 'base64' is not a text encoding",
                 id="encoding-not-text"),
    pytest.param("feeds:\n  - name: a\n    url: https://e.com/\n    encoding: 950\n",
                 "feeds.yaml:4: feeds[0].encoding: expected a string", id="encoding-type"),
    pytest.param("feeds:\n  - name: a\n    url: https://www.ptt.cc/bbs/Test/index.html\n"
                 "    format: ptt\n    encoding: big5\n",
                 "feeds.yaml:5: feeds[0].encoding: applies to format: feed only",
                 id="encoding-not-a-feed"),
])
def test_invalid_config_names_line_and_field(text: str, expected: str) -> None:
    """A bad feeds.yaml is refused with file:line: field: what is wrong."""
    found = problems(text)
    assert any(p.startswith(expected) for p in found), found


def test_all_problems_are_reported_at_once() -> None:
    """Three mistakes in one file give three messages, so one edit can fix them all."""
    found = problems("settings:\n  port: x\nfeeds:\n  - name: a\n    url: nope\n"
                     "  - name: a\n    url: https://e.com/\n")
    assert len(found) == 3, found


def test_missing_file_says_how_to_point_at_one(tmp_path: Path) -> None:
    """A missing feeds.yaml names the path and the two ways to give another."""
    with pytest.raises(ConfigError) as info:
        config.load(str(tmp_path / "nope.yaml"))
    assert "no such file" in str(info.value)
    assert "--config" in str(info.value) and "CRAWLER_CONFIG" in str(info.value)


def test_story_settings_source_priority_and_collapse_are_read() -> None:
    loaded = config.parse(
        "settings:\n  stories:\n    window_days: 3\n    related_threshold: 0.6\n"
        "feeds:\n  - name: a\n    url: https://e.com/\n    priority: 2\n"
        "outputs:\n  - name: o\n    title: O\n    collapse: article\n  - name: p\n"
        "    title: P\n", "feeds.yaml", env={})
    assert loaded.settings.stories.window_days == 3.0
    assert loaded.settings.stories.related_threshold == 0.6
    assert loaded.settings.stories.copy_threshold == 0.5  # the default stays
    assert loaded.sources[0].priority == 2
    assert [o.collapse for o in loaded.outputs] == ["article", "story"]


def test_source_names_may_be_chinese() -> None:
    """A source can be named as its readers know it; only output names must be URL-safe."""
    loaded = config.parse("feeds:\n  - name: 中央社 政治\n    url: https://e.com/rss\n"
                          "outputs:\n  - name: cna\n    title: 中央社\n    feeds: [中央社 政治]\n",
                          "feeds.yaml", env={})
    assert loaded.sources[0].name == "中央社 政治"
    assert loaded.outputs[0].feeds == ("中央社 政治",)


def test_source_encoding_is_read_by_its_codec_name() -> None:
    """`encoding:` takes any spelling Python knows and keeps the codec's own name."""
    loaded = config.parse("feeds:\n  - name: a\n    url: https://e.com/rss\n    encoding: Big5\n"
                          "  - name: b\n    url: https://e.com/b\n    encoding: GB2312\n"
                          "  - name: c\n    url: https://e.com/c\n",
                          "feeds.yaml", env={})
    assert [s.encoding for s in loaded.sources] == ["big5", "gb2312", None]
