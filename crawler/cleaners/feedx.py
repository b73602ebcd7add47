"""feedx.net full-text feeds: the promotion footer it appends to some items (not all).

Seen as ``<br><hr><div>获取更多RSS：<br><a href="https://feedx.net">…</a> <br>
<a href="https://feedx.<mirror>">…</a><br></div>``; the mirror moved over the years
(.xyz, .fun, .best, .run; .site and .co elsewhere). Fixture:
tests/data/jekyll/jekyll_2021-01-08_cna_hk-democrats-bailed_feedx-footer.md.
"""

import re

from crawler.cleaners.rules import SiteRules

RULES = SiteRules(
    name="feedx",
    markers=("获取更多RSS", "獲取更多RSS"),
    # The footer as feedx writes it, cut as text: most items need no parse at all. The
    # selectors below catch any other markup of it.
    strip_patterns=(re.compile(
        r"(?:<br\s*/?>\s*)*<hr\s*/?>\s*<div>\s*[获獲]取更多RSS(?:[^<]|<(?!/?div\b)[^>]*>)*</div>",
        re.I),),
    drop_selectors=("div:-soup-contains('获取更多RSS')",),
    drop_before=("hr", "br"),
)
