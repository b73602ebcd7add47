"""CNA (中央社) items and pages: related-article and keyword blocks, carousels, ad slots;
the dateline and the editor/translator credit go to metadata, the keywords to tags, and
the trailing publication code (ROC year + MMDD, e.g. 1111022) is cut.

Fixtures: tests/data/jekyll/jekyll_2022-10-22_cna_white-house-musk-starlink-iran.md
(moreArticle tag blocks, 譯者/核稿, 1111022) and …_cna_hu-jintao-leaves-congress.md
(延伸閱讀, 編輯), …_cna_hk-democrats-bailed_feedx-footer.md (bottomArticleBanner),
…_cna_us-defense-secretary-palau.md (SubscriptionInner, lazy-loaded images).
"""

import re

from crawler.cleaners.rules import SiteRules, TextRule

RULES = SiteRules(
    name="cna",
    domains=("cna.com.tw",),
    keyword_selectors=(
        "div.moreArticle-title a[href*='hysearchws']",
        "div.articlekeywordGroup a",
    ),
    drop_selectors=(
        "div.moreArticle",
        "div.articlekeywordGroup",
        "div.bottomBox",
        "div.bottomArticleBanner",
        "div.topNewsTitle",
        "#TopNews",
        ".owl-carousel",
        "div.SubscriptionInner",  # 訂閱《國際新聞》電子報 newsletter box
        "svg",
    ),
    drop_empty=("div",),
    text_rules=(
        # （中央社記者李雅雯台北21日電） / （中央社華盛頓21日綜合外電報導）
        TextRule(re.compile(r"^\s*[（(](中央社[^）)]{0,40}?(?:電|報導))[）)]"), field="dateline"),
        # （譯者：張佑之/核稿：何宏儒） / （編輯：呂佳蓉）
        TextRule(re.compile(r"[（(]((?:編輯|譯者|核稿|記者|責任編輯)[：:][^（）()]{1,60})[）)]"),
                 field="credit"),
        TextRule(re.compile(r"(?<=[）)])\s*(\d{7})\s*$"), field="publication_code", remove=True),
    ),
)
