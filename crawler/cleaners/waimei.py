"""The waimei Jekyll site's own Atom feeds (jekyll-feed over the archive's posts): each entry
opens with the post's ``[title](url)`` line and ``------`` rule rendered as HTML (a link to
the original, then "——"), repeating the title. The marker comment is dropped by the
sanitizer anyway.

Fixture: tests/data/feeds/solidot.atom (nodebe4.github.io/waimei/feed/by_tag/Solidot.xml).
"""

from crawler.cleaners.rules import SiteRules

RULES = SiteRules(
    name="waimei",
    domains=("nodebe4.github.io", "zhouxiang93123.github.io"),
    drop_selectors=("p:first-child:has(> a):-soup-contains-own('——')",),
)
