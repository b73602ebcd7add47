"""Epoch Times (epochtimes.com): the closing 责任编辑 (editor) line, kept as metadata.

Fixture: tests/data/jekyll/jekyll_2022-10-22_epochtimes_central-committee-list_title-v1.md.
"""

import re

from crawler.cleaners.rules import SiteRules, TextRule

RULES = SiteRules(
    name="epochtimes",
    domains=("epochtimes.com",),
    text_rules=(TextRule(re.compile(r"^\s*((?:责任编辑|責任編輯)[：:]\s*\S.{0,30})$"),
                         field="credit", remove=True),),
    drop_empty=("p",),
)
