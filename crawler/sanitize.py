"""Untrusted HTML → HTML safe to put in any feed reader; once, with nh3 (ammonia).

An allowlist close to Miniflux's: no style, class or on* attributes, no script, svg, math,
form or iframe. Every URL-bearing attribute is made absolute against the item's base and
kept only when its scheme is http, https or mailto (checked after the HTML parser has
decoded entities, so ``&#106;avascript:`` is caught). ``srcset`` is dropped: ammonia does
not check the URLs inside it (RELIABILITY.md §2.1, XSS-14).
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit, urlunsplit

import nh3

TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "del", "details",
    "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i",
    "img", "ins", "kbd", "li", "mark", "ol", "p", "picture", "pre", "q", "rp", "rt", "ruby", "s",
    "small", "source", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td",
    "tfoot", "th", "thead", "time", "tr", "u", "ul", "wbr", "div", "section", "article",
    "audio", "video",
}
TAGS -= {"details", "summary"}  # toggles that can hide content from a reader's preview
ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "source": {"src", "type"},
    "audio": {"src", "controls"},
    "video": {"src", "controls", "poster", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
    "time": {"datetime"},
    "abbr": {"title"},
    "q": {"cite"},
    "blockquote": {"cite"},
}
URL_ATTRIBUTES = {"href", "src", "poster", "cite"}
SCHEMES = {"http", "https", "mailto"}
DROP_WITH_CONTENT = {"script", "style", "noscript", "template", "iframe", "object", "embed",
                     "svg", "math", "form", "button", "select", "textarea", "title"}
_INVISIBLE = re.compile(r"[\x00-\x20\x7f]+")
TRACKING_PARAMS = frozenset({
    "fbclid", "gclid", "dclid", "msclkid", "yclid", "igshid", "mc_cid", "mc_eid", "spm",
    "ref", "ref_src", "share_token", "cmpid", "ocid", "wt.mc_id", "_ga",
    "__twitter_impression", "s_cid", "xtor", "at_medium", "at_campaign",
})


def is_tracking(parameter: str) -> bool:
    """A query parameter that only tells the site where a click came from."""
    name = parameter.lower()
    return name.startswith("utm_") or name in TRACKING_PARAMS


def without_tracking(url: str) -> str:
    """The URL with its tracking parameters removed; everything else kept as written."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    pairs = [p for p in parts.query.split("&") if p and not is_tracking(p.split("=", 1)[0])]
    return urlunsplit(parts._replace(query="&".join(pairs)))


def safe_url(value: str, base: str | None) -> str | None:
    """``value`` resolved against ``base`` if its scheme is allowed, else None."""
    value = _INVISIBLE.sub("", value)
    if not value:
        return None
    try:
        # Most URLs in feeds are absolute already; urljoin is the costly part of this.
        absolute = value[:8].lower().startswith(("https://", "http://"))
        resolved = urljoin(base, value) if base and not absolute else value
        parts = urlsplit(resolved)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return None
    if parts.scheme.lower() not in SCHEMES:
        return None
    if parts.scheme.lower() in ("http", "https") and not parts.netloc:
        return None
    return without_tracking(resolved) if parts.query else resolved


def sanitize_html(html: str, base_url: str | None) -> str:
    if not html:
        return ""

    def keep(tag: str, attribute: str, value: str) -> str | None:
        if attribute in URL_ATTRIBUTES:
            return safe_url(value, base_url)
        if attribute in ("width", "height", "colspan", "rowspan"):
            return value if value.isdigit() and 0 < int(value) < 10000 else None
        return value

    cleaned: str = nh3.clean(
        html,
        tags=TAGS,
        clean_content_tags=DROP_WITH_CONTENT,
        attributes=ATTRIBUTES,
        attribute_filter=keep,
        url_schemes=SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    return cleaned.strip()
