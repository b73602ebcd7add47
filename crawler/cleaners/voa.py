"""VOA Chinese (voachinese.com, via feedx): the leading <div><i>RFC 822 date</i></div>,
kept as metadata and cut from the text.

Fixture: tests/data/jekyll/jekyll_2022-10-22_voa_white-house-musk-starlink-iran.md.
"""

from crawler.cleaners.rules import STATED_TIME, SiteRules

RULES = SiteRules(
    name="voa",
    domains=("voachinese.com", "voanews.com"),
    text_rules=(STATED_TIME,),
    drop_empty=("div", "i"),
)
