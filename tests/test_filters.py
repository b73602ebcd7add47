"""Output rules, one by one, on the real archive posts (tests/data/jekyll: CNA in
Traditional, RFI/DW/VOA/... in Simplified, one English Economist piece), crawled into a
real SQLite file and selected the way the server selects them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crawler import config as config_module
from crawler.errors import ConfigError
from crawler.filters import Narrowing
from crawler.pipeline import Crawler
from crawler.present import feed_language, present
from crawler.selection import select_items
from crawler.types import Config, StoredArticle
from storage import Storage, open_storage

ARCHIVE = Path(__file__).parent / "data" / "jekyll"
NOW = datetime(2023, 11, 1, tzinfo=UTC)  # after the newest post, so max_age is testable
PALAU_CNA = "美國防長訪帛琉 指責中國破壞太平洋區域穩定"
PALAU_RFI = "美国防长访帛琉 指责中国破坏太平洋区域稳定 – 法国国际广播电台 - RFI"
HK_CNA = "港警執行國安法溯及既往 追究批評者過去言行"
HK_RFI = "港警执行国安法溯及既往 追究批评者过去言行 – 法国国际广播电台 - RFI"
ECONOMIST = "Rosalind Franklin—her discoveries are more relevant than ever"


def _config(tmp: Path, outputs: str) -> Config:
    text = f"""
settings:
  database: sqlite:///{tmp / "db.sqlite"}
  parse_workers: 1
feeds:
  - name: archive
    url: {ARCHIVE}
    format: jekyll
    tags: [archive]
outputs:
  - name: all
    title: All
    collapse: article
    limit: 1000
{outputs}
"""
    return config_module.parse(text, str(tmp / "feeds.yaml"))


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Storage]]:
    tmp = tmp_path_factory.mktemp("filters")
    config = _config(tmp, "")
    store = open_storage(config.settings.database)
    store.sync_sources(config.sources, datetime.now(UTC))
    crawler = Crawler(config, store)
    try:
        [outcome] = asyncio.run(crawler.crawl())
        assert outcome.error is None and outcome.new == 29
    finally:
        crawler.close()
    yield tmp, store
    store.close()


def select(archive: tuple[Path, Storage], output_yaml: str,
           narrowing: Narrowing | None = None) -> list[StoredArticle]:
    tmp, store = archive
    config = _config(tmp, "  - name: test\n    title: Test\n" + output_yaml)
    output = config.output("test")
    assert output is not None
    return list(present(select_items(store, config, output, narrowing, NOW), output))


def titles(items: list[StoredArticle]) -> set[str]:
    return {item.title for item in items}


@pytest.mark.parametrize("keyword", ["防長", "防长"])
def test_a_keyword_finds_both_scripts(archive: tuple[Path, Storage], keyword: str) -> None:
    found = select(archive, "    collapse: article\n"
                            f"    include: {{keywords: [{keyword}], fields: [title]}}\n")
    assert titles(found) == {PALAU_CNA, PALAU_RFI}
    assert all(item.matched[-1].value == keyword for item in found)


def test_fields_say_where_keywords_are_looked_for(archive: tuple[Path, Storage]) -> None:
    # 艾斯培 (Esper) is in the text of both Palau reports and in neither title.
    in_text = select(archive, "    collapse: article\n    include: [艾斯培]\n")
    assert titles(in_text) == {PALAU_CNA, PALAU_RFI}
    assert {m.field for item in in_text for m in item.matched} == {"text"}
    in_title = select(archive, "    collapse: article\n"
                               "    include: {keywords: [艾斯培], fields: [title]}\n")
    assert in_title == []


def test_author_and_tags_fields(archive: tuple[Path, Storage]) -> None:
    by_author = select(archive, "    collapse: article\n"
                                "    include: {keywords: [中央社], fields: [author]}\n")
    assert len(by_author) == 5 and PALAU_CNA in titles(by_author)
    # Tags written in Traditional (馬斯克), asked for in Simplified.
    by_tag = select(archive, "    collapse: article\n"
                             "    include: {keywords: [马斯克], fields: [tags]}\n")
    assert titles(by_tag) == {"CNN：白宮與馬斯克洽談 對伊朗提供星鏈網路服務"}


def test_match_all_needs_every_keyword(archive: tuple[Path, Storage]) -> None:
    rule = "{keywords: [胡錦濤, 李克強], fields: [title], match: %s}"
    both = select(archive, f"    collapse: article\n    include: {rule % 'all'}\n")
    assert titles(both) == {"二十大闭幕：李克强未入中委会名单、胡锦涛中途“被离场”"}
    assert [m.value for m in both[0].matched] == ["胡錦濤", "李克強"]
    either = select(archive, f"    collapse: article\n    include: {rule % 'any'}\n")
    assert len(either) == 5  # CNA, Zaobao and DW on Hu Jintao; Epoch Times, CCTV
    assert titles(both) < titles(either)


def test_a_regular_expression(archive: tuple[Path, Storage]) -> None:
    found = select(archive, "    collapse: article\n    include: ['/金斯[伯柏]格去世/']\n")
    assert titles(found) == {"美最高法院大法官金斯伯格去世 享年87岁",
                             "美国最高法院大法官金斯伯格去世"}


def test_exclude_leaves_out_what_it_matches(archive: tuple[Path, Storage]) -> None:
    found = select(archive, "    collapse: article\n"
                            "    include: {keywords: [帛琉, 國安法], fields: [title]}\n"
                            "    exclude: {keywords: [RFI], fields: [title]}\n")
    assert titles(found) == {PALAU_CNA, HK_CNA}


def test_latin_keywords_are_words_and_ignore_case(archive: tuple[Path, Storage]) -> None:
    assert titles(select(archive, "    collapse: article\n    include: [dna]\n")) == {ECONOMIST}
    # "NA" is not a word of "DNA" or of "CNA".
    assert select(archive, "    collapse: article\n"
                           "    include: {keywords: [NA], fields: [text, author]}\n") == []


def test_languages(archive: tuple[Path, Storage]) -> None:
    traditional = select(archive, "    collapse: article\n    languages: [zh-Hant]\n")
    assert len(traditional) == 5 and PALAU_CNA in titles(traditional)
    english = select(archive, "    collapse: article\n    languages: [en]\n")
    assert titles(english) == {ECONOMIST}
    chinese = select(archive, "    collapse: article\n    languages: [zh]\n")
    assert len(chinese) == 28
    assert [m.value for m in english[0].matched] == ["en"]


def test_min_length_and_max_age(archive: tuple[Path, Storage]) -> None:
    long_ones = select(archive, "    collapse: article\n    min_length: 1400\n")
    assert titles(long_ones) == {"李克强汪洋未入二十届中央委员 分析：习权力空前",
                                 "二十大闭幕：李克强未入中委会名单、胡锦涛中途“被离场”"}
    recent = select(archive, "    collapse: article\n    max_age: 60d\n")  # since 2023-09-02
    assert len(recent) == 2 and all(item.published.year == 2023 for item in recent)


def test_limit_keeps_the_newest(archive: tuple[Path, Storage]) -> None:
    found = select(archive, "    collapse: article\n    limit: 3\n")
    assert [i.published for i in found] == sorted((i.published for i in found), reverse=True)
    assert found[0].published.year == 2023 and len(found) == 3


def test_script_conversion_changes_text_not_links(archive: tuple[Path, Storage]) -> None:
    hans = select(archive, "    collapse: article\n    include: [帛琉]\n    script: hans\n")
    assert {i.title for i in hans} == {PALAU_CNA.replace("國防長訪", "国防长访")
                                       .replace("指責中國破壞太平洋區域穩定",
                                                "指责中国破坏太平洋区域稳定"), PALAU_RFI}
    hant = select(archive, "    collapse: article\n    include: [帛琉]\n    script: hant\n")
    rfi = next(i for i in hant if "RFI" in i.title)
    assert rfi.title.startswith("美國防長訪帛琉 指責中國破壞太平洋區域穩定")
    assert "國防" in rfi.content_html and "国防" not in rfi.content_html
    original = select(archive, "    collapse: article\n    include: [帛琉]\n")
    assert {i.link for i in hant} == {i.link for i in original}
    assert {i.language for i in hant} == {"zh-Hant"}


def test_collapsed_stories_show_a_matching_member(archive: tuple[Path, Storage]) -> None:
    # CNA and RFI's copy are one story, RFI's the earlier. Unfiltered, the item is
    # RFI's; asked for CNA's author, it is CNA's, with RFI's as "also reported by".
    plain = select(archive, "    collapse: story\n"
                            "    include: {keywords: [帛琉], fields: [title]}\n")
    assert len(plain) == 1 and plain[0].title == PALAU_RFI
    found = select(archive, "    collapse: story\n"
                            "    include: {keywords: [中央社], fields: [author]}\n")
    palau = next(i for i in found if "帛琉" in i.title)
    assert palau.title == PALAU_CNA
    assert [a.title for a in palau.also] == [PALAU_RFI]
    assert palau.uid == plain[0].uid  # one story, one item id, whichever article shows


def test_query_narrowing(archive: tuple[Path, Storage]) -> None:
    found = select(archive, "    collapse: article\n", Narrowing(q="星鏈 伊朗"))
    assert len(found) == 2
    assert {m.rule for item in found for m in item.matched} == {"q"}
    assert len(select(archive, "    collapse: article\n", Narrowing(q="星鏈 帛琉"))) == 0
    assert len(select(archive, "    collapse: article\n", Narrowing(limit=4))) == 4
    tagged = select(archive, "    collapse: article\n", Narrowing(tag="archive", limit=2))
    assert [m.rule for m in tagged[0].matched] == ["tag"]
    with pytest.raises(ConfigError, match="no feed has the tag 'nope'"):
        select(archive, "", Narrowing(tag="nope"))
    with pytest.raises(ConfigError, match="no feed is named 'nope'"):
        select(archive, "", Narrowing(source="nope"))


def test_feed_language_follows_the_items(archive: tuple[Path, Storage]) -> None:
    tmp, _ = archive
    config = _config(tmp, "  - name: t\n    title: T\n    script: hant\n")
    output = config.output("t")
    assert output is not None
    mostly = select(archive, "    collapse: article\n    languages: [zh-Hant]\n")
    assert feed_language(mostly, config.outputs[0]) == "zh-Hant"
    mixed = select(archive, "    collapse: article\n")
    assert feed_language(mixed, config.outputs[0]) == "zh-Hans"  # 23 of 29
    assert feed_language(mixed, output) == "zh-Hant"  # converted, so declared so


def test_bad_rules_are_reported_with_their_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(tmp_path, "  - name: bad\n    title: Bad\n"
                          "    include: [{keywords: ['/(/'], fields: [body]}]\n"
                          "    languages: [Chinese]\n    max_age: soon\n    script: simplified\n")
    text = str(caught.value)
    for expected in ("feeds.yaml:17: outputs[1].include[0].keywords[0]: /(/ is not a valid",
                     "feeds.yaml:17: outputs[1].include[0].fields[0]: 'body'",
                     "feeds.yaml:18: outputs[1].languages[0]: 'Chinese' is not a language tag",
                     "feeds.yaml:19: outputs[1].max_age: 'soon'",
                     "feeds.yaml:20: outputs[1].script: 'simplified'"):
        assert expected in text
