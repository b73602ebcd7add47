"""CNA (中央社) items and pages: related-article and keyword blocks, carousels, ad slots;
the dateline and the editor/translator credit go to metadata, the keywords to tags, and
the trailing publication code (ROC year + MMDD, e.g. 1111022) is cut.

Fixtures: tests/data/jekyll/jekyll_2022-10-22_cna_white-house-musk-starlink-iran.md
(moreArticle tag blocks, 譯者/核稿, 1111022) and …_cna_hu-jintao-leaves-congress.md
(延伸閱讀, 編輯), …_cna_hk-democrats-bailed_feedx-footer.md (bottomArticleBanner),
…_cna_us-defense-secretary-palau.md (SubscriptionInner, lazy-loaded images), and the
article page tests/data/pages/cna_201603190029.html (share bars, ad boxes, expiry notice).
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
        # article pages
        "h1", "div.breadcrumb", "div.timeBox", "div.mbBtnGroup", "div.shareSide",
        "div.BtnShareGroup", "div.toolBox", "div.fbShareBox", "div.articleADbox",
        "div.advertiseBox",
        "div:-soup-contains-own('您所瀏覽的新聞已過查詢時效')",
    ),
    drop_empty=("div",),
    page_body=("div.centralContent", "article.article", "div.paragraph"),
    page_title=("div.centralContent h1", "h1"),
    page_byline=("div.updatetime", "div.timeBox"),
    text_rules=(
        # （中央社記者李雅雯台北21日電） / （中央社華盛頓21日綜合外電報導）
        TextRule(re.compile(r"^\s*[（(](中央社[^）)]{0,40}?(?:電|報導))[）)]"), field="dateline"),
        # （譯者：張佑之/核稿：何宏儒） / （編輯：呂佳蓉）
        TextRule(re.compile(r"[（(]((?:編輯|譯者|核稿|記者|責任編輯)[：:][^（）()]{1,60})[）)]"),
                 field="credit"),
        TextRule(re.compile(r"(?<=[）)])\s*(\d{7})\s*$"), field="publication_code", remove=True),
    ),
)
