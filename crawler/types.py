"""The values that flow between the stages; stdlib only.

config → :class:`Config` (with :class:`Source`, :class:`Output`, :class:`Settings`)
fetch  → :class:`Fetched` | :class:`NotModified` (carrying :class:`CachingInfo`)
parse  → :class:`ParsedItem` ...
normalize → :class:`Article` (what storage keeps and the emitters write)
storage → :class:`StoredArticle` (an Article as read back, with its sources)

Every datetime here is timezone-aware UTC; ``__post_init__`` checks it, because a naive
datetime that slips through is an 8-hour error for a Taipei or Beijing feed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

FEED_FORMATS = ("feed", "jekyll", "ptt")
LOCAL_FORMATS = ("jekyll",)  #: formats whose url is always a folder on this machine
#: the files a local folder of each format is made of (ptt: posts saved as text)
FOLDER_FILES = {"jekyll": ".md", "ptt": ".txt"}


def is_local(format_name: str, url: str) -> bool:
    """A folder on this machine rather than a URL: always for jekyll; for ptt when the url
    is not http(s) (a folder of saved posts instead of a board index)."""
    if format_name in LOCAL_FORMATS:
        return True
    return format_name in FOLDER_FILES and not url.startswith(("http://", "https://"))
#: the content type of a folder read as one body (crawler.local → crawler.parsers.jekyll)
FOLDER_BUNDLE_TYPE = "application/x-crawler-folder+json"
#: sites with cleaning rules (crawler/cleaners/): what feeds.yaml's site: may name
SITE_NAMES = ("cdt", "cna", "dw", "epochtimes", "rfi", "udn", "voa", "waimei", "zaobao")


def _require_utc(name: str, value: datetime | None) -> None:
    if value is not None and value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware UTC, got naive {value!r}")


@dataclass(frozen=True)
class StoryRules:
    """When two articles are one story (crawler.similarity explains the two signals)."""

    window_days: float = 7.0  #: copies further apart than this are separate stories
    copy_threshold: float = 0.5  #: estimated Jaccard similarity of the bodies' 3-grams
    related_threshold: float = 0.45  #: title-and-lead score of independent reports
    related_hours: float = 48.0  #: independent reports further apart are not related


@dataclass(frozen=True)
class Settings:
    database: str = "sqlite:///data/crawler.db"
    host: str = "127.0.0.1"
    port: int = 8080
    interval: int = 1800  #: seconds between two checks of one source
    concurrency: int = 10  #: simultaneous fetches
    host_concurrency: int = 2  #: simultaneous requests to one host
    #: seconds between two requests to one host, kept by every worker on the database
    host_delay: float = 0.0
    max_backoff: int = 86400  #: longest wait after errors, and longest a publisher may ask
    timeout: float = 30.0  #: total seconds one fetch may take, body included
    user_agent: str = "crawler/0.1 (+https://github.com/chinese-news-crawler/crawler)"
    max_bytes: int = 15 * 1024 * 1024  #: decompressed body cap per fetch
    parse_workers: int = 0  #: processes that parse; 0 means one per CPU
    #: networks (CIDR) a feed may live on besides the public internet: loopback, private,
    #: link-local and the like are refused by default, on every redirect too (SSRF), except
    #: for hosts written in feeds.yaml
    allowed_networks: tuple[str, ...] = ()
    allow_private_networks: bool = False  #: true: fetch from any address
    stories: StoryRules = field(default_factory=StoryRules)


@dataclass(frozen=True)
class Source:
    name: str
    url: str
    format: str = "feed"
    interval: int | None = None  #: overrides Settings.interval
    tags: tuple[str, ...] = ()
    enabled: bool = True
    full_text: bool = False  #: fetch each new item's page and keep the article from it
    site: str | None = None  #: cleaning rules to use instead of the link domain's
    #: a story told by several sources is shown with the article of the highest priority
    #: (then the earliest)
    priority: int = 0
    #: BCP 47 tag of the source's items (zh-TW, zh-CN, en), overriding what the feed says
    language: str | None = None
    #: the feed's character encoding (a Python codec name), overriding the HTTP charset and
    #: the XML declaration, for a server that lies in a way detection cannot see through
    encoding: str | None = None


@dataclass(frozen=True)
class Rule:
    """Keywords looked for in some fields of an item; `/…/` is a regular expression.

    Matching is blind to script, case and width: "防長" finds "防长" and "ＡＩ" finds "ai".
    """

    keywords: tuple[str, ...]
    fields: tuple[str, ...] = ("title", "text")
    match: str = "any"  #: "any": one keyword is enough; "all": every keyword must be found


RULE_FIELDS = ("title", "text", "author", "tags")
MATCH_MODES = ("any", "all")
SCRIPTS = ("original", "hant", "hans")


@dataclass(frozen=True)
class Output:
    name: str
    title: str
    description: str = ""
    feeds: tuple[str, ...] = ()  #: source names; empty means every source
    tags: tuple[str, ...] = ()  #: a source with any of these tags is included
    limit: int = 100
    collapse: str = "story"  #: "story": one item per story; "article": every article
    include: tuple[Rule, ...] = ()  #: an item must pass every one of these
    exclude: tuple[Rule, ...] = ()  #: an item passing any of these is left out
    languages: tuple[str, ...] = ()  #: BCP 47 tags or prefixes (zh, zh-Hant, zh-TW, en)
    min_length: int = 0  #: characters of plain text
    max_age: int | None = None  #: seconds: older items are left out
    script: str = "original"  #: "hant" / "hans": text converted with OpenCC when served
    language: str | None = None  #: the language the output declares; derived when None


COLLAPSE_MODES = ("story", "article")


@dataclass(frozen=True)
class Candidate:
    """What output rules look at of one stored article; no body HTML, so a scan is light."""

    id: int
    story_id: int | None
    title: str
    author: str | None
    tags: tuple[str, ...]
    language: str
    text_length: int  #: -1 when not stored (articles from before schema 3)
    #: title-less plain text in the folded form rules compare (crawler.script.search_form)
    search_text: str
    published: datetime
    priority: int  #: the highest priority of the sources carrying it
    #: the body HTML, only for an article stored without search_text: folded when read
    raw_html: str | None = None


@dataclass(frozen=True)
class Matched:
    """One rule that selected an item, as the JSON Feed's `_crawler.matched` lists it."""

    rule: str  #: "feeds", "tags", "include", "q", "languages", "min_length", "max_age"
    value: str
    field: str | None = None  #: for keywords: the field it was found in


@dataclass(frozen=True)
class Config:
    path: str
    settings: Settings
    sources: tuple[Source, ...]
    outputs: tuple[Output, ...]

    def source(self, name: str) -> Source:
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(name)

    def output(self, name: str) -> Output | None:
        return next((o for o in self.outputs if o.name == name), None)


@dataclass(frozen=True)
class CachingInfo:
    """The validators a server gave us, handed back on the next request (RFC 9110 §13)."""

    etag: str | None = None
    last_modified: str | None = None
    #: sha256 of the last body parsed: a server that sends no validators (or new ones for
    #: the same bytes) still costs no parse when nothing changed
    body_hash: str | None = None
    #: sha256 of the last body that could not be parsed, and the error it gave: the same
    #: broken bytes again are the same failure, reported without a parse
    failed_body_hash: str | None = None
    failed_error: str | None = None


@dataclass(frozen=True)
class Fetched:
    url: str  #: the URL asked for
    final_url: str  #: after redirects; the base for relative links
    status: int
    body: bytes
    content_type: str | None
    caching: CachingInfo
    permanent_redirect: str | None = None  #: target of a 301/308 on the way, if any
    #: seconds the server says the answer stays fresh (Cache-Control max-age, Expires)
    fresh_for: float | None = None


@dataclass(frozen=True)
class NotModified:
    url: str
    caching: CachingInfo
    fresh_for: float | None = None


@dataclass(frozen=True)
class PublisherHints:
    """How often a feed asks to be read, from its own body: RSS ``ttl``, ``sy:updatePeriod``
    and ``sy:updateFrequency``, and the GMT hours and days it asks to be left alone."""

    ttl: int | None = None  #: seconds
    update_every: int | None = None  #: seconds, the syndication module's period/frequency
    skip_hours: tuple[int, ...] = ()  #: 0-23, GMT
    skip_days: tuple[int, ...] = ()  #: 0 (Monday) to 6 (Sunday), GMT

    def to_json(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if v not in (None, ())}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> PublisherHints:
        return cls(ttl=raw.get("ttl"), update_every=raw.get("update_every"),
                   skip_hours=tuple(raw.get("skip_hours", ())),
                   skip_days=tuple(raw.get("skip_days", ())))


@dataclass(frozen=True)
class FeedBody:
    """A parsed feed body, as a parse worker hands it back."""

    articles: tuple[Article, ...]
    warnings: tuple[str, ...] = ()
    hints: PublisherHints = field(default_factory=PublisherHints)


@dataclass(frozen=True)
class FetchState:
    """What the crawler needs of a source's stored state before fetching it."""

    caching: CachingInfo = field(default_factory=CachingInfo)
    moved_to: str | None = None  #: where a 301/308 sent us; fetched instead of the url
    hints: PublisherHints = field(default_factory=PublisherHints)
    error_count: int = 0


@dataclass(frozen=True)
class Comment:
    """A reader's comment kept with the article: a PTT push (推), boo (噓) or reply (→)."""

    floor: int  #: 1 for the first comment, as PTT readers count (1F, 2F, ...)
    user: str
    kind: str  #: "push", "boo" or "neutral"
    text: str
    time: datetime | None

    def __post_init__(self) -> None:
        _require_utc("time", self.time)


@dataclass(frozen=True)
class ParsedItem:
    """One entry as the feed told it, HTML not yet sanitized."""

    guid: str | None
    link: str | None
    title: str
    content_html: str
    summary_html: str
    author: str | None
    published: datetime | None
    updated: datetime | None
    tags: tuple[str, ...] = ()
    #: what a cleaner took out of the text and kept: dateline, credit, publication_code
    metadata: tuple[tuple[str, str], ...] = ()
    comments: tuple[Comment, ...] = ()
    #: the xml:base in effect for the content, when the feed declared one: relative URLs in
    #: the content resolve against it rather than against the item's link
    base: str | None = None

    def __post_init__(self) -> None:
        _require_utc("published", self.published)
        _require_utc("updated", self.updated)


@dataclass(frozen=True)
class ParsedFeed:
    title: str
    link: str | None
    items: tuple[ParsedItem, ...]
    warnings: tuple[str, ...] = ()  #: what was recovered from (bozo, re-decoded charset)
    language: str = ""  #: as the feed declares it (RSS language, xml:lang, JSON Feed)
    hints: PublisherHints = field(default_factory=PublisherHints)


@dataclass(frozen=True)
class Fingerprint:
    """What story clustering compares (crawler.fingerprint makes it, crawler.similarity
    compares it); text folded to Simplified script, punctuation and spacing removed."""

    signature: bytes  #: MinHash of the body's character 3-grams: NUM_PERM uint32, LE
    shingles: int  #: how many 3-grams the body had
    title: str  #: folded title, decorations removed
    lead: str  #: folded start of the body, dateline removed
    names: tuple[str, ...]  #: proper names, and numbers written "#205", of title and lead


@dataclass(frozen=True)
class Article:
    """An item after cleaning and normalizing: what storage keeps for one source."""

    item_key: str  #: identity within its source: guid, else canonical link, else content hash
    canonical_url: str | None  #: link without tracking parameters or fragment
    content_hash: str  #: sha256 of the normalized plain text of title + content
    title: str  #: plain text
    link: str | None
    content_html: str  #: sanitized
    summary: str  #: plain text
    author: str | None
    published: datetime | None
    updated: datetime | None
    tags: tuple[str, ...] = ()
    #: long enough that equal hashes mean the same story, not two one-word stubs
    distinctive_text: bool = True
    metadata: tuple[tuple[str, str], ...] = ()
    comments: tuple[Comment, ...] = ()
    fingerprint: Fingerprint | None = None  #: set in the parse worker
    #: BCP 47: the source's language:, else the feed's, else detected from the script
    language: str = ""
    text_length: int = 0  #: characters of plain text: what min_length compares
    search_text: str = ""  #: plain text folded for rules (crawler.script.search_form)

    def __post_init__(self) -> None:
        _require_utc("published", self.published)
        _require_utc("updated", self.updated)


@dataclass(frozen=True)
class SourceRef:
    name: str
    url: str  #: the feed URL
    link: str | None  #: the article's link in that feed
    priority: int = 0  #: the source's priority in feeds.yaml


@dataclass(frozen=True)
class AlsoReported:
    """Another outlet's article of the same story."""

    url: str | None
    title: str
    source: str  #: the source's name in feeds.yaml


@dataclass(frozen=True)
class StoryMember:
    """One article of a story, as `crawler explain` shows it."""

    uid: str
    title: str
    link: str | None
    sources: tuple[str, ...]
    published: datetime
    joined_by: str  #: "founder", "copy" or "related"
    joined_with: str | None  #: uid of the article it matched when it joined
    join_score: float | None
    joined_via: str | None = None  #: the index key that found the match: a band, names
    copy_similarity: float | None = None  #: to the article asked about
    related_score: float | None = None  #: to the article asked about


@dataclass(frozen=True)
class StoryExplanation:
    story_id: str
    article: StoryMember
    others: tuple[StoryMember, ...]


@dataclass(frozen=True)
class StoredArticle:
    uid: str  #: stable unique id, used as guid / id in every emitted format
    title: str
    link: str | None
    content_html: str
    summary: str
    author: str | None
    published: datetime  #: the feed's date, or first-seen when it gave none we trust
    updated: datetime
    tags: tuple[str, ...]
    sources: tuple[SourceRef, ...]
    metadata: tuple[tuple[str, str], ...] = ()
    comments: tuple[Comment, ...] = ()
    story_id: str | None = None  #: set when the output collapses stories: the item's id
    #: the story's other articles in the output, when it collapses stories
    also: tuple[AlsoReported, ...] = ()
    language: str = ""
    changed: datetime | None = None  #: when we last changed it or its story
    matched: tuple[Matched, ...] = ()  #: the output rules that selected it

    def __post_init__(self) -> None:
        _require_utc("published", self.published)
        _require_utc("updated", self.updated)


@dataclass(frozen=True)
class FeedView:
    """What an emitter needs to write one output."""

    name: str
    title: str
    description: str
    self_url: str
    home_url: str
    articles: tuple[StoredArticle, ...]
    updated: datetime = field(default_factory=lambda: datetime.now(UTC))
    language: str = ""  #: BCP 47; empty when the items have no language in common
    stylesheet_url: str | None = None  #: an XSL for browsers that still apply one
    feed_id: str = ""  #: a permanent id for the whole feed (Atom's), whatever host served it


@dataclass(frozen=True)
class StoreResult:
    new: int = 0  #: items this source had not carried (merged ones included)
    updated: int = 0
    unchanged: int = 0
    #: of the new, those that were an article already stored (same canonical URL or text,
    #: from any source) and were linked to it instead of stored again
    merged: int = 0
    #: new articles that joined a story as a copy of one stored (or earlier in the batch)
    copies: int = 0


@dataclass(frozen=True)
class SourceStatus:
    name: str
    url: str
    enabled: bool
    last_fetch_at: datetime | None
    last_status: int | None
    last_error: str | None
    error_count: int
    next_check_at: datetime | None
    articles: int
    moved_to: str | None = None  #: the URL fetched instead of feeds.yaml's, after a 301/308
    stopped: str | None = None  #: why the source is no longer fetched (410 Gone)
    hints: PublisherHints = field(default_factory=PublisherHints)


@dataclass(frozen=True)
class CrawlOutcome:
    """What one crawl of one source came to; one row of `crawler crawl`'s table."""

    source: str
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    not_modified: bool = False
    status: int | None = None
    error: str | None = None
    warnings: tuple[str, ...] = ()
    # For logs and /metrics:
    url: str = ""
    seconds: float = 0.0  #: wall time of the source's crawl: fetch, parse and store
    body_bytes: int = 0  #: size of the feed document received (0 for a 304 or an error)
    error_kind: str | None = None  #: the error's kind (timeout, http_status, parse, ...)
    merged: int = 0  #: see StoreResult
    copies: int = 0

    @property
    def outcome(self) -> str:
        """ok, not_modified, or the error's kind: what logs and /metrics call it."""
        if self.error is not None:
            return self.error_kind or "error"
        return "not_modified" if self.not_modified else "ok"
