"""Lianhe Zaobao (zaobao.com): the paywall call to action (订阅 / 登录 以继续阅读全文),
its inline style, the paywall placeholder and the ad section.

Fixture: tests/data/jekyll/jekyll_2022-10-22_zaobao_hu-jintao-leaves-video_paywall.md.
"""

from crawler.cleaners.rules import SiteRules

RULES = SiteRules(
    name="zaobao",
    domains=("zaobao.com", "zaobao.com.sg"),
    drop_selectors=(
        "div.article-microtransaction", "div.cta-subscribe", "div.cx_paywall_placeholder",
        "section#imu", "style",
    ),
    drop_empty=("div",),
)
