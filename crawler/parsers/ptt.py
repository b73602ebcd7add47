"""PTT (ptt.cc) web pages: a board index → post URLs; a post page → :class:`ParsedItem`.

A post page has the header lines 作者 / 看板 / 標題 / 時間 (``div.article-metaline``), the
body as preformatted BBS text (quotes in ``span.f6``), the ``※ 發信站`` / ``※ 文章網址``
lines, and one ``div.push`` per comment (推 push, 噓 boo, → neutral; user, text, "MM/DD
HH:MM" in Taiwan time, without a year). The board, the category (the ``[新聞]`` of the
title), the author and the quoted source URL go to metadata, and the pushes become
:class:`Comment`s, numbered by floor as PTT readers count them.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote, urljoin

from bs4 import BeautifulSoup, Tag

from crawler.errors import NotAFeed, ParseError
from crawler.parsers.folder import parse_bundle
from crawler.types import Comment, ParsedFeed, ParsedItem

TAIPEI = timezone(timedelta(hours=8))
KINDS = {"推": "push", "噓": "boo", "→": "neutral"}
SIGNATURE_LINES = 12  #: ptt.cc's limit on a signature is 6 lines; leave room
# "Re: [新聞] 5年7起隨機殺人 …": replies and forwards keep the category of the post
_TITLE = re.compile(r"^(?:(?:Re|Fw|RE|FW)\s*:\s*)*\[(?P<category>[^\]]{1,10})\]\s*(?P<rest>.*)$")
_PUSH_TIME = re.compile(r"(\d{1,2})/(\d{1,2})(?:\s+(\d{1,2}):(\d{2}))?\s*$")
_URL = re.compile(r"https?://[^\s<>\"'）)]+")
_SIGNATURE_SITE = re.compile(r"^※ (發信站|文章網址|編輯)[:：]")


def parse_ptt_index(body: bytes, url: str) -> tuple[str, ...]:
    """A board index page → absolute URLs of its posts, deleted ones skipped."""
    soup = BeautifulSoup(body, "lxml")
    _refuse_over18(soup)
    links = [urljoin(url, str(a["href"])) for a in soup.select("div.r-ent div.title a[href]")]
    if not links and not soup.select("div.r-ent"):
        raise NotAFeed("not a PTT board index (no div.r-ent rows)")
    return tuple(dict.fromkeys(links))


def parse_ptt_post(body: bytes, url: str, now: datetime) -> ParsedItem:
    soup = BeautifulSoup(body, "lxml")
    _refuse_over18(soup)
    main = soup.select_one("#main-content")
    if main is None:
        raise ParseError("not a PTT post page (no #main-content)")
    meta = {tag.get_text(strip=True): value.get_text(" ", strip=True)
            for line in main.select("div.article-metaline, div.article-metaline-right")
            if (tag := line.select_one(".article-meta-tag"))
            and (value := line.select_one(".article-meta-value"))}
    for line in main.select("div.article-metaline, div.article-metaline-right"):
        line.decompose()
    posted = _post_time(meta.get("時間", ""))
    pushes = main.select("div.push")
    comments = [_comment(i + 1, push, posted or now) for i, push in enumerate(pushes)]
    for push in pushes:
        push.decompose()
    canonical = soup.select_one("link[rel=canonical]")
    link = canonical["href"] if canonical and canonical.get("href") else url
    return _text_item(meta.get("標題", ""), _body_text(main),
                      meta.get("作者", "").split(" ")[0] or None, meta.get("看板"), posted,
                      comments, str(link))


def _refuse_over18(soup: BeautifulSoup) -> None:
    if soup.select_one("form[action='/ask/over18']") or soup.select_one("div.over18-notice"):
        raise NotAFeed("PTT asked for the over-18 confirmation (the over18 cookie was refused)")


def _post_time(value: str) -> datetime | None:
    """"Sun Apr  3 21:04:15 2016", Taiwan time (ptt.cc shows no zone)."""
    try:
        return datetime.strptime(" ".join(value.split()), "%a %b %d %H:%M:%S %Y").replace(
            tzinfo=TAIPEI).astimezone(UTC)
    except ValueError:
        return None


def _comment(floor: int, push: Tag, posted: datetime) -> Comment:
    def part(cls: str) -> str:
        found = push.select_one(f".{cls}")
        return found.get_text(strip=True) if found else ""

    return _text_comment(floor, part("push-userid"), KINDS.get(part("push-tag"), "neutral"),
                         part("push-content").removeprefix(":"), part("push-ipdatetime"),
                         posted)


def _body_text(main: Tag) -> str:
    return _post_lines(main.get_text().replace("\r\n", "\n").split("\n"))


def _post_lines(lines: list[str]) -> str:
    """The post's own text: BBS lines, without the ※ site lines and what follows them."""
    kept: list[str] = []
    for line in lines:
        if _SIGNATURE_SITE.match(line.strip()):
            break
        kept.append(line.rstrip())
    _drop_trailing(kept)
    # A signature follows the last "--" line: a few lines the author puts under every post.
    cut = max((i for i, line in enumerate(kept) if line.strip() == "--"), default=None)
    if cut is not None and len(kept) - cut <= SIGNATURE_LINES:
        del kept[cut:]
    _drop_trailing(kept)
    return "\n".join(kept).strip("\n")


def _drop_trailing(lines: list[str]) -> None:
    while lines and lines[-1].strip() in ("", "--"):
        lines.pop()


def _quoted_url(text: str) -> str | None:
    """The source a [新聞] repost links to: the one under the template's 新聞連結 line,
    else the first URL that is not PTT's own."""
    marker = text.find("新聞連結")
    if marker >= 0:
        after = _URL.search(text, marker)
        if after and "ptt.cc" not in after.group(0):
            return after.group(0).rstrip(".,")
    for found in _URL.findall(text):
        if "ptt.cc" not in found:
            return str(found).rstrip(".,")
    return None


def _as_html(text: str) -> str:
    """BBS text → paragraphs at blank lines, line breaks kept, URLs as links."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    rendered = []
    for paragraph in paragraphs:
        escaped = html.escape(paragraph)
        linked = _URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped)
        rendered.append("<p>" + linked.replace("\n", "<br>") + "</p>")
    return "".join(rendered)


# Text forms of a post: the raw BBS file (作者/標題/時間 header, ANSI colours, push lines
# "推 user: text   MM/DD HH:MM") and the rendering of seed 004 (title line, body,
# "推文討論 N", then "NF user MM/DD HH:MM" and the push's text on the next line).
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_RAW_HEADER = re.compile(r"^作者[:：]\s*(?P<author>\S+)(?:\s*\([^)]*\))?"
                         r"(?:\s*看板[:：]\s*(?P<board>\S+))?")
_RAW_PUSH = re.compile(r"^(?P<tag>推|噓|→)\s*(?P<user>[^\s:：]+)\s*[:：]\s?(?P<text>.*?)"
                       r"\s+(?P<when>\d{1,2}/\d{1,2}(?:\s+\d{1,2}:\d{2})?)\s*$")
_RENDERED_PUSH = re.compile(r"^(?P<floor>\d+)F\s+(?P<user>\S+)\s+(?P<when>\d{1,2}/\d{1,2}"
                            r"\s+\d{1,2}:\d{2})\s*$")
_BODY_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2})")


def parse_ptt_text(text: str, url: str, now: datetime) -> ParsedItem:
    """A PTT post as text (raw BBS file or seed 004's rendering) → :class:`ParsedItem`."""
    lines = _ANSI.sub("", text).replace("\r\n", "\n").split("\n")
    header = _RAW_HEADER.match(lines[0]) if lines else None
    if header:
        return _from_raw(lines, header, url, now)
    if lines and _TITLE.match(lines[0].strip()):
        return _from_rendering(lines, url, now)
    raise ParseError("not a PTT post (no 作者 header and no [category] title line)")


def _from_raw(lines: list[str], header: re.Match[str], url: str, now: datetime) -> ParsedItem:
    fields: dict[str, str] = {}
    index = 1
    while index < len(lines) and (found := re.match(r"^(標題|時間)[:：]\s*(.*)$", lines[index])):
        fields[found.group(1)] = found.group(2).strip()
        index += 1
    posted = _post_time(fields.get("時間", ""))
    body: list[str] = []
    comments: list[Comment] = []
    for line in lines[index:]:
        push = _RAW_PUSH.match(line.strip())
        if push:
            comments.append(_text_comment(len(comments) + 1, push.group("user"),
                                          KINDS[push.group("tag")], push.group("text"),
                                          push.group("when"), posted or now))
        elif not comments:
            body.append(line)
    address = next((m.group(1) for line in lines
                    if (m := re.match(r"^※ 文章網址[:：]\s*(https?://\S+)", line.strip()))), url)
    return _text_item(fields.get("標題", ""), _post_lines(body), header.group("author"),
                      header.group("board"), posted, comments, address)


def _from_rendering(lines: list[str], url: str, now: datetime) -> ParsedItem:
    title = lines[0].strip()
    end = next((i for i, line in enumerate(lines) if line.startswith("推文討論")), len(lines))
    body_text = "\n".join(lines[1:end]).strip("\n")
    stated = _BODY_DATE.search(body_text)
    posted = None
    if stated:
        year, month, day, hour, minute = (int(g) for g in stated.groups())
        posted = datetime(year, month, day, hour, minute, tzinfo=TAIPEI).astimezone(UTC)
    comments: list[Comment] = []
    index = end + 1
    while index < len(lines):
        push = _RENDERED_PUSH.match(lines[index].strip())
        if push:
            following = lines[index + 1].strip() if index + 1 < len(lines) else ""
            text = "" if _RENDERED_PUSH.match(following) else following
            comments.append(_text_comment(int(push.group("floor")), push.group("user"),
                                          "neutral", text, push.group("when"), posted or now))
            index += 1 if _RENDERED_PUSH.match(following) else 2
        else:
            index += 1
    return _text_item(title, body_text, None, None, posted, comments, url)


def _text_comment(floor: int, user: str, kind: str, text: str, when: str,
                  posted: datetime) -> Comment:
    """A push from its parts; "MM/DD HH:MM" has no year: the post's, or the next one's for
    a push made after new year."""
    match = _PUSH_TIME.search(when)
    moment = None
    if match:
        local = posted.astimezone(TAIPEI)
        try:
            moment = local.replace(month=int(match.group(1)), day=int(match.group(2)),
                                   hour=int(match.group(3) or 0), minute=int(match.group(4) or 0),
                                   second=0)
            if moment < local - timedelta(days=1):  # pushed after new year
                moment = moment.replace(year=local.year + 1)
        except ValueError:
            moment = None
    return Comment(floor=floor, user=user, kind=kind, text=text.strip(),
                   time=moment.astimezone(UTC) if moment else None)


def _text_item(title: str, text: str, author: str | None, board: str | None,
               posted: datetime | None, comments: list[Comment], url: str) -> ParsedItem:
    title = " ".join(title.split())
    metadata: dict[str, str] = {}
    match = _TITLE.match(title)
    if match:
        metadata["category"] = match.group("category")
    if board:
        metadata["board"] = board
    if author:
        metadata["author"] = author
    quoted = _quoted_url(text)
    if quoted:
        metadata["source_url"] = quoted
    return ParsedItem(
        guid=None, link=url, title=title or "(PTT)", content_html=_as_html(text),
        summary_html="", author=author, published=posted, updated=None,
        tags=tuple(v for k, v in metadata.items() if k in ("board", "category")),
        metadata=tuple(sorted(metadata.items())), comments=tuple(comments),
    )


def parse_ptt_folder(body: bytes, content_type: str | None, url: str,
                     now: datetime) -> ParsedFeed:
    """A folder of PTT posts saved as text (crawler.local's bundle) → one item per post."""
    return parse_bundle(body, url, ".txt PTT posts",
                        lambda name, text: parse_ptt_text(text, urljoin(url, quote(name)), now))
