"""China Digital Times (chinadigitaltimes.net): the WordPress "Better Feed" footer
(``<hr><p><small>© author for 中国数字时代 … | Permalink | … Post tags: …</small></p>
<p><small>Feed enhanced by Better Feed from Ozh</small></p>``).

Fixtures: tests/data/jekyll/jekyll_2020-08-28_cdt_cdtv-not-staged.md and
…_cdt_malazongju-not-staged.md.
"""

from crawler.cleaners.rules import SiteRules

RULES = SiteRules(
    name="cdt",
    domains=("chinadigitaltimes.net",),
    markers=("Better Feed", "Permalink"),
    drop_selectors=(
        "p:has(> small:-soup-contains('Feed enhanced by'))",
        "p:has(> small:-soup-contains('Permalink'))",
    ),
    drop_before=("hr",),
)
