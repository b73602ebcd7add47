"""UDN (聯合新聞網) article pages: title, date, author/agency and body; the share bar, the
byline block, mobile-only slots and the 延伸閱讀 / 相關新聞 / 商品推薦 lists go.

Fixtures: tests/data/pages/udn_3705102.html (udn.com/news/story/7315/3705102, 2019) and
tests/data/pages/udn_9112304_from_seed002.html (the sections after the story, in the order
seed 002 shows them).
"""

import re

from crawler.cleaners.rules import SiteRules

RULES = SiteRules(
    name="udn",
    domains=("udn.com",),
    drop_selectors=(
        "h1",
        "#story_bar", ".story_bar_new",
        "#story_bady_info", ".story_bady_info_author",
        ".only_mobile",
        "a:-soup-contains-own('分享')",
        "div.keywords",
    ),
    keyword_selectors=("div.keywords a",),
    drop_from_headings=("延伸閱讀", "相關新聞", "商品推薦", "udn討論區"),
    drop_empty=("p", "div"),
    page_body=("#story_body_content", "section.article-content__editor"),
    page_title=("h1.story_art_title", "h1.article-content__title", "h1"),
    page_byline=(".story_bady_info_author", ".article-content__info", "#story_bady_info"),
    # "2019-03-18 23:59 聯合報 記者 陳嘉寧 ／桃園機場報導" → "聯合報 記者 陳嘉寧"
    page_author=re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}\s*(.+?)\s*(?:／.*)?$"),
)
