"""RFI Chinese (rfi.fr/cn): the self-promotion slots and the 分享 share block.

Fixture: tests/data/jekyll/feedx-item_rfi_2023-10-28_korea-fm-north-korean-defectors_with-footer.md.
"""

from crawler.cleaners.rules import STATED_TIME, SiteRules

RULES = SiteRules(
    name="rfi",
    domains=("rfi.fr",),
    drop_selectors=(
        "div[data-selfpromo-newsletter]",
        "div[data-selfpromo-app]",
        "div:has(> div:-soup-contains-own('分享 :'))",
    ),
    text_rules=(STATED_TIME,),
    drop_empty=("div",),
)
