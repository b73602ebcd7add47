"""Site cleaning rules, each shown firing on a real post from the archives."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from bs4 import BeautifulSoup

from crawler.cleaners import clean
from crawler.normalize import normalize, plain_text
from crawler.parsers.jekyll import parse_post
from crawler.types import ParsedItem

JEKYLL = Path(__file__).parent / "data" / "jekyll"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def item(name: str) -> ParsedItem:
    return parse_post((JEKYLL / name).read_text(encoding="utf-8"), NOW)


def text(parsed: ParsedItem) -> str:
    return plain_text(parsed.content_html)


def test_feedx_footer_is_removed_and_the_article_kept() -> None:
    """"获取更多RSS" and its feedx links go; the story's last paragraph stays."""
    for name in ("jekyll_2021-01-08_cna_hk-democrats-bailed_feedx-footer.md",
                 "jekyll_2021-01-08_rfi_52-democrats-bailed_feedx-footer.md",
                 "feedx-item_rfi_2023-10-28_korea-fm-north-korean-defectors_with-footer.md"):
        raw = item(name)
        assert "获取更多RSS" in raw.content_html
        cleaned = clean(raw)
        assert "获取更多RSS" not in cleaned.content_html, name
        assert "feedx." not in cleaned.content_html, name
        assert "<hr" not in cleaned.content_html, name
        assert len(text(cleaned)) > 0.8 * len(text(raw)) - 200, name


def test_item_without_footer_is_left_alone() -> None:
    """An item of an unknown site with nothing to clean comes back as it was."""
    raw = item("jekyll_2020-08-25_solidot_wuhan-hsmc-funding.md")
    assert clean(raw) is raw


def test_cna_keywords_become_tags_and_blocks_go() -> None:
    """moreArticle blocks: their keywords become tags, their teasers leave the text."""
    cleaned = clean(item("jekyll_2022-10-22_cna_white-house-musk-starlink-iran.md"))
    assert {"馬斯克", "布林肯"} <= set(cleaned.tags)
    assert "moreArticle" not in cleaned.content_html
    assert "電動車投資全球2030年前將達38兆" not in text(cleaned)  # a related-article teaser
    assert "星鏈" in text(cleaned)


def test_cna_dateline_credit_and_code() -> None:
    """The dateline and the credit go to metadata; the publication code leaves the text."""
    cleaned = clean(item("jekyll_2022-10-22_cna_white-house-musk-starlink-iran.md"))
    metadata = dict(cleaned.metadata)
    assert metadata["dateline"] == "中央社華盛頓21日綜合外電報導"
    assert metadata["credit"] == "譯者：張佑之/核稿：何宏儒"
    assert metadata["publication_code"] == "1111022"
    assert "1111022" not in text(cleaned)
    assert text(cleaned).endswith("（譯者：張佑之/核稿：何宏儒）")


def test_cna_related_reading_and_ad_slots() -> None:
    """延伸閱讀 lists and bottomArticleBanner ad slots are removed."""
    hu = clean(item("jekyll_2022-10-22_cna_hu-jintao-leaves-congress.md"))
    assert "延伸閱讀" not in text(hu)
    assert dict(hu.metadata)["credit"] == "編輯：呂佳蓉"
    banner = clean(item("jekyll_2021-01-08_cna_hk-democrats-bailed_feedx-footer.md"))
    assert "adslot" not in banner.content_html
    assert dict(banner.metadata)["dateline"] == "中央社記者張謙香港8日電"


def test_rfi_share_block_and_self_promotion() -> None:
    """RFI's 分享 share links and newsletter/app slots are removed."""
    raw = item("feedx-item_rfi_2023-10-28_korea-fm-north-korean-defectors_with-footer.md")
    cleaned = clean(raw)
    assert "分享" not in text(cleaned)
    assert "facebook.com" not in cleaned.content_html
    assert "selfpromo" not in cleaned.content_html
    assert "朴振" in text(cleaned)


def test_rules_follow_the_link_domain() -> None:
    """CNA's rules apply to a CNA link whatever the feed, and not to another site's link."""
    html = ("<p>（中央社台北1日電）內文。（編輯：王小明）1150101</p>"
            "<div class='paragraph moreArticle'><a href='/x'>相關</a></div>")
    base = ParsedItem(guid=None, link="https://www.cna.com.tw/news/a/1.aspx", title="t",
                      content_html=html, summary_html="", author=None, published=None,
                      updated=None)
    assert "相關" not in text(clean(base))
    other = replace(base, link="https://news.example.test/a/1")
    assert clean(other) is other


def test_cleaned_item_is_still_sanitized() -> None:
    """Cleaning comes before sanitizing: the stored HTML passes the allowlist."""
    cleaned = clean(item("jekyll_2022-10-22_cna_white-house-musk-starlink-iran.md"))
    article = normalize(cleaned, cleaned.link or "")
    assert "<svg" not in article.content_html and "class=" not in article.content_html
    assert dict(article.metadata)["credit"] == "譯者：張佑之/核稿：何宏儒"


def test_cleaning_twice_changes_nothing() -> None:
    """Export and re-import cleans again: a second pass must find nothing left to do."""
    for path in sorted(JEKYLL.glob("*.md")):
        once = clean(parse_post(path.read_text(encoding="utf-8"), NOW))
        assert clean(once).content_html == once.content_html, path.name


def test_cna_newsletter_box_goes_and_lazy_images_show() -> None:
    """The 訂閱 newsletter box is removed; a lazy-loaded photo gets a real src."""
    cleaned = clean(item("jekyll_2020-08-28_cna_us-defense-secretary-palau.md"))
    assert "電子報" not in text(cleaned) and "感謝您的訂閱" not in text(cleaned)
    article = normalize(cleaned, cleaned.link or "")
    assert 'src="https://imgcdn.cna.com.tw/www/WebPhotos/1024/20200828/963x669_85104637497.jpg"' \
        in article.content_html


def test_every_site_with_rules_can_be_named_in_feeds_yaml() -> None:
    """`site:` accepts exactly the sites crawler/cleaners has rules for."""
    from crawler.cleaners import SITES
    from crawler.types import SITE_NAMES

    assert tuple(r.name for r in SITES) == SITE_NAMES


def test_time_stated_in_the_body_becomes_metadata() -> None:
    """RFI's "dd/mm/yyyy - HH:MM", DW's ISO stamp and VOA's RFC 822 date at the top of the
    body are kept as metadata and leave the text."""
    cases = {
        "feedx-item_rfi_2023-09-26_russia-warrant-icc-judges_no-footer.md": "26/09/2023 - 10:44",
        "jekyll_2022-10-22_dw_li-keqiang-out-hu-jintao-escorted.md": "2022-10-22T09:36:15.297Z",
        "jekyll_2022-10-22_voa_white-house-musk-starlink-iran.md": "Sat, 22 Oct 2022 00:23:08 GMT",
    }
    for name, stated in cases.items():
        cleaned = clean(item(name))
        assert dict(cleaned.metadata)["stated_time"] == stated, name
        assert stated not in text(cleaned), name
        assert "<i><br/></i>" not in cleaned.content_html and "<div></div>" not in \
            cleaned.content_html, name


def test_dw_copyright_notice_goes() -> None:
    """DW's closing © 德国之声版权声明 paragraph is removed; the story stays."""
    raw = item("jekyll_2022-10-22_dw_li-keqiang-out-hu-jintao-escorted.md")
    cleaned = clean(raw)
    assert "德国之声版权声明" in text(raw) and "德国之声版权声明" not in text(cleaned)
    assert "胡锦涛" in text(cleaned)


def test_cdt_better_feed_footer_goes() -> None:
    """CDT's © / Permalink / Post tags / "Feed enhanced by Better Feed" footer is removed."""
    for name in ("jekyll_2020-08-28_cdt_cdtv-not-staged.md",
                 "jekyll_2020-08-28_cdt_malazongju-not-staged.md"):
        cleaned = text(clean(item(name)))
        assert "Better Feed" not in cleaned and "Permalink" not in cleaned, name
        assert "Ken Wong" in cleaned, name


def test_zaobao_paywall_goes() -> None:
    """Zaobao's 订阅/登录 call to action, its style and ad placeholders are removed."""
    cleaned = clean(item("jekyll_2022-10-22_zaobao_hu-jintao-leaves-video_paywall.md"))
    assert "继续阅读全文" not in text(cleaned)
    assert "cx_paywall" not in cleaned.content_html and "<style" not in cleaned.content_html
    assert text(cleaned).endswith("他没有继续参加下半场的大会。")


def test_epochtimes_editor_line_becomes_metadata() -> None:
    """The closing 责任编辑 line goes to metadata as the credit."""
    cleaned = clean(item("jekyll_2022-10-22_epochtimes_central-committee-list_title-v1.md"))
    assert dict(cleaned.metadata)["credit"] == "责任编辑：李穹"
    assert "责任编辑" not in text(cleaned)


def test_every_rule_fires_on_a_fixture() -> None:
    """Each selector, text pattern and heading of every site's rules matches something in
    the fixtures: a rule no fixture shows firing is a guess, not a rule."""
    import html
    import warnings

    from bs4 import XMLParsedAsHTMLWarning

    from crawler.cleaners import ALWAYS, SITES

    data = JEKYLL.parent
    documents = [*sorted(JEKYLL.rglob("*.md")), *sorted((data / "seeds").glob("*.md")),
                 *sorted((data / "pages").glob("*.html")), data / "feeds" / "waimei_posts.rss",
                 data / "feeds" / "solidot.atom"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", XMLParsedAsHTMLWarning)
        soups = [BeautifulSoup(html.unescape(p.read_text(encoding="utf-8")), "lxml")
                 for p in documents]
    texts = [soup.get_text("\n") for soup in soups]
    for rules in (*SITES, *ALWAYS):
        for selector in (*rules.drop_selectors, *rules.keyword_selectors):
            assert any(soup.select(selector) for soup in soups), (rules.name, selector)
        for rule in rules.text_rules:
            assert any(rule.pattern.search(line) for text in texts
                       for line in text.split("\n")), (rules.name, rule.pattern.pattern)
        for heading in rules.drop_from_headings:
            assert any(heading in text for text in texts), (rules.name, heading)
