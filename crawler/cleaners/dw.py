"""DW Chinese (dw.com/zh): the leading <div><i><br>ISO-UTC</i></div> time stamp (kept as
metadata) and the closing © 德国之声版权声明 paragraph.

Fixture: tests/data/jekyll/jekyll_2022-10-22_dw_li-keqiang-out-hu-jintao-escorted.md.
"""

import re

from crawler.cleaners.rules import STATED_TIME, SiteRules, TextRule

RULES = SiteRules(
    name="dw",
    domains=("dw.com",),
    text_rules=(STATED_TIME,
                TextRule(re.compile(r"^\s*(©\s*\d{4}年?德国之声版权声明.*)$"), field=None,
                         remove=True)),
    drop_empty=("div", "i", "p", "em"),
)
