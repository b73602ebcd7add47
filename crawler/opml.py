"""OPML in and out: subscription lists for feed readers, and feeds.yaml edits from them.

Export (ECOSYSTEM.md, "OPML 2.0"):
    :func:`sources_opml` (Config → the sources we poll, folders from their first tag) and
    :func:`outputs_opml` (Config → our own outputs, for a reader to subscribe to), both built
    with lxml, UTF-8, ``&`` escaped by the serializer.
Import:
    :func:`read_opml` (bytes → [:class:`Subscription`]) reads what real readers export:
    newsboat, rss2email, feed2exec and liferea all write OPML 1.0, liferea with
    ``type="folder"``. It is parsed with defusedxml because OPML never needs entities, and
    an entity declaration is how billion-laughs and XXE files work.
    :func:`add_subscriptions` (feeds.yaml + subscriptions → :class:`ImportResult`) appends
    the new ones to the ``feeds:`` list, validated with :func:`crawler.config.parse`, and
    written atomically.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from xml.etree.ElementTree import Element, ParseError, TreeBuilder

import defusedxml
import yaml
from defusedxml.ElementTree import DefusedXMLParser
from lxml import etree
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError as RuamelError
from ruamel.yaml.scalarstring import SingleQuotedScalarString

from crawler import config as config_module
from crawler.errors import ConfigError
from crawler.types import Config, is_local

OPML_DOCS = "http://opml.org/spec2.opml"
#: longest slug made from a title, leaving room for a "-N" suffix within the 100 characters
#: a source name may have (crawler.config._check_name)
SLUG_LENGTH = 60
# Encodings expat decodes itself; anything else (GBK, Big5, ...) is decoded by Python first.
_EXPAT_ENCODINGS = {"utf-8", "utf8", "utf-16", "utf16", "us-ascii", "ascii", "iso-8859-1",
                    "latin-1", "latin1"}
_DECLARED_ENCODING = re.compile(rb"""\A\s*<\?xml[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._-]+)""")
# XML 1.0 §2.2: characters an XML document cannot carry at all, not even escaped.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class Subscription:
    """One feed of an OPML file."""

    url: str
    title: str  #: the outline's text (or title); "" when it had neither
    html_url: str | None
    #: folder names from the outermost in, then the components of its ``category`` paths
    categories: tuple[str, ...] = ()
    line: int | None = field(default=None, compare=False)  #: where it is in the file


@dataclass(frozen=True)
class Skipped:
    """An outline or subscription left out, and why."""

    url: str
    title: str
    reason: str
    line: int | None = None  #: in the OPML file, when known


@dataclass(frozen=True)
class AddedFeed:
    name: str
    url: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class ImportResult:
    path: str  #: the feeds.yaml edited (symlinks resolved)
    added: tuple[AddedFeed, ...]
    skipped: tuple[Skipped, ...]  #: already in feeds.yaml (read_opml reports its own)
    block: str  #: the YAML text that was (or, in a dry run, would be) added
    written: bool
    #: the feeds list was in flow style (or empty), so the whole file was dumped back
    #: by ruamel.yaml, comments kept but spacing maybe not
    reformatted: bool


# Export


def sources_opml(config: Config, now: datetime, *, title: str = "crawler sources") -> bytes:
    """The enabled http(s) sources as OPML 2.0, one folder per source's first tag.

    Disabled sources are left out: a reader importing the list would poll them, which is
    what disabling one in feeds.yaml means not to do. Local folders (jekyll, saved PTT
    posts) are left out because no reader can fetch them. Untagged sources stay at the top
    level; every tag is also in ``category`` as a path (``/cna,/taiwan``), which keeps tags
    past the first for readers that read it (a tag containing "," or "/" does not survive
    that round trip).
    """
    root, body = _document(title, now)
    folders: dict[str, Any] = {}
    for source in config.sources:
        if not source.enabled or is_local(source.format, source.url):
            continue
        parent = body
        if source.tags:
            first = source.tags[0]
            if first not in folders:
                folders[first] = etree.SubElement(body, "outline", text=_xml_text(first))
            parent = folders[first]
        outline = etree.SubElement(parent, "outline", type="rss", text=_xml_text(source.name),
                                   title=_xml_text(source.name), xmlUrl=source.url)
        if source.tags:
            outline.set("category", ",".join(f"/{_xml_text(tag)}" for tag in source.tags))
    return _serialize(root)


def outputs_opml(config: Config, base_url: str, now: datetime, *,
                 title: str = "crawler outputs") -> bytes:
    """Our own outputs as OPML 2.0, for a reader to subscribe to all of them at once.

    ``base_url`` is where the server is reached, e.g. ``https://news.example/``.
    """
    if not base_url.endswith("/"):
        base_url += "/"
    root, body = _document(title, now)
    for output in config.outputs:
        outline = etree.SubElement(
            body, "outline", type="rss", version="RSS2", text=_xml_text(output.title),
            title=_xml_text(output.title), xmlUrl=f"{base_url}feeds/{output.name}.xml",
            htmlUrl=f"{base_url}feeds/{output.name}.html")
        if output.description:
            outline.set("description", _xml_text(output.description))
    return _serialize(root)


def _document(title: str, now: datetime) -> tuple[Any, Any]:
    if now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got naive {now!r}")
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = _xml_text(title)
    # RFC 822 as OPML 2.0 asks; usegmt needs the datetime in UTC itself.
    etree.SubElement(head, "dateCreated").text = format_datetime(now.astimezone(UTC),
                                                                 usegmt=True)
    etree.SubElement(head, "docs").text = OPML_DOCS
    return root, etree.SubElement(root, "body")


def _serialize(root: Any) -> bytes:
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8",
                                 pretty_print=True)
    return data


def _xml_text(value: str) -> str:
    # lxml refuses control characters outright, and feeds.yaml titles are not checked for them.
    return _NOT_XML.sub("", value)


# Import


class _LineBuilder(TreeBuilder):
    """A TreeBuilder that notes the line each element starts on, for the skip reasons."""

    def __init__(self) -> None:
        super().__init__()
        self.parser: Any = None
        self.lines: dict[Element, int] = {}

    def start(self, tag: str, attrs: dict[str, str]) -> Element:
        element = super().start(tag, attrs)
        if self.parser is not None:
            self.lines[element] = self.parser.parser.CurrentLineNumber
        return element


def read_opml(data: bytes, where: str, *, skipped: list[Skipped] | None = None
              ) -> list[Subscription]:
    """The http(s) feeds of an OPML 1.0 or 2.0 file, each URL once, in file order.

    ``where`` names the file in errors. Leniency as feed readers practise it: ``xmlUrl``
    and ``type`` in any capitalization, ``title`` when ``text`` is missing, any outline
    without a feed URL that has children (liferea's ``type="folder"`` included) is a
    folder. Outlines without a URL, with a URL that is not http(s), or repeating a URL are
    left out; pass a list as ``skipped`` to learn which and why.

    Raises ConfigError when the file is not well-formed XML, declares entities, or is not
    OPML.
    """
    report = skipped if skipped is not None else []
    root, lines = _parse_xml(data, where)
    if _local_name(root.tag) != "opml":
        raise ConfigError(where, [f"{where}:{lines.get(root, 1)}: not an OPML file: the root "
                                  f"element is <{_local_name(root.tag)}>"])
    body = next((e for e in root.iter() if _local_name(e.tag) == "body"), None)
    if body is None:
        raise ConfigError(where, [f"{where}: not an OPML file: it has no <body>"])
    found: list[Subscription] = []
    seen: dict[str, int | None] = {}
    for outline, folders in _outlines(body, ()):
        attrs = {_local_name(k).lower(): v for k, v in outline.attrib.items()}
        line = lines.get(outline)
        url = attrs.get("xmlurl", "").strip()
        title = _squash(attrs.get("text", "")) or _squash(attrs.get("title", ""))
        if not url:
            if not len(outline) and attrs.get("type", "").lower() != "folder":
                report.append(Skipped("", title, "no feed URL (xmlUrl)", line))
            continue
        why = _url_problem(url)
        if why:
            report.append(Skipped(url, title, why, line))
            continue
        key = url_key(url)
        if key in seen:
            first = seen[key]
            at = f" (line {first})" if first is not None else ""
            report.append(Skipped(url, title, f"listed twice in the file{at}", line))
            continue
        seen[key] = line
        categories = [*folders, *_category_paths(attrs.get("category", ""))]
        html_url = attrs.get("htmlurl", "").strip() or None
        found.append(Subscription(url=url, title=title, html_url=html_url,
                                  categories=tuple(dict.fromkeys(categories)), line=line))
    return found


def _parse_xml(data: bytes, where: str) -> tuple[Element, dict[Element, int]]:
    encoding: str | None = None
    declared = _DECLARED_ENCODING.match(data)
    if declared and declared.group(1).decode("ascii").lower() not in _EXPAT_ENCODINGS:
        # expat knows only UTF-8/16 and Latin-1; a GBK or Big5 export is decoded here and
        # handed over as UTF-8, overriding the declaration.
        name = declared.group(1).decode("ascii")
        try:
            data = data.decode(name).encode("utf-8")
        except LookupError as exc:
            raise ConfigError(where, [f"{where}:1: unknown encoding {name!r}"]) from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(where, [f"{where}: not valid {name}: {exc}"]) from exc
        encoding = "utf-8"
    builder = _LineBuilder()
    parser = DefusedXMLParser(target=builder, encoding=encoding, forbid_dtd=False,
                              forbid_entities=True, forbid_external=True)
    builder.parser = parser
    try:
        parser.feed(data)
        root: Element = parser.close()
    except ParseError as exc:
        line = exc.position[0]
        raise ConfigError(where, [f"{where}:{line}: not well-formed XML: {exc}"]) from exc
    except defusedxml.DefusedXmlException as exc:
        line = parser.parser.CurrentLineNumber
        raise ConfigError(where, [
            f"{where}:{line}: refused: the file declares entities or external references "
            f"({type(exc).__name__}); OPML never needs them"]) from exc
    return root, builder.lines


def _outlines(parent: Element, folders: tuple[str, ...]
              ) -> Iterator[tuple[Element, tuple[str, ...]]]:
    for child in parent:
        if _local_name(child.tag) != "outline":
            continue
        yield child, folders
        attrs = {_local_name(k).lower(): v for k, v in child.attrib.items()}
        if len(child):
            name = _squash(attrs.get("text", "")) or _squash(attrs.get("title", ""))
            # A feed with children (rare, but seen) is not a folder: its children keep
            # the folders it is in.
            inner = folders if attrs.get("xmlurl", "").strip() or not name else (*folders, name)
            yield from _outlines(child, inner)


def _category_paths(value: str) -> list[str]:
    """``/台灣/新聞,tag`` → [台灣, 新聞, tag]."""
    return [part.strip() for path in value.split(",") for part in path.split("/")
            if part.strip()]


def _local_name(tag: object) -> str:
    name = tag if isinstance(tag, str) else ""
    return name.rsplit("}", 1)[-1].lower()


def _squash(text: str) -> str:
    return " ".join(text.split())


def _url_problem(url: str) -> str | None:
    """The URL policy of feeds.yaml (crawler.config): http(s), with a host, no spaces.
    Addresses are checked at fetch time, against settings.allowed_networks."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return "not an http(s) URL"
    if not parts.hostname:
        return "the URL has no host"
    if any(c.isspace() for c in url):
        return "the URL contains whitespace"
    return None


def url_key(url: str) -> str:
    """What two URLs of one feed have in common: scheme and host lowercased, the default
    port, the fragment and a trailing slash dropped. Anything else may name another feed."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return url
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        host = f"{host}:{port}"
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}" if userinfo else host
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), parts.query, ""))


def slug(text: str) -> str:
    """A feed name or tag from a title: CJK and other letters kept, ASCII lowercased,
    spaces and punctuation folded into single '-'. NFKC first, so fullwidth ＡＢＣ is abc."""
    chars = []
    for char in unicodedata.normalize("NFKC", text).lower():
        keep = char.isalnum() or (not char.isascii()
                                  and unicodedata.category(char).startswith("M"))
        chars.append(char if keep else "-")
    return re.sub("-{2,}", "-", "".join(chars)).strip("-")[:SLUG_LENGTH].strip("-")


# feeds.yaml


def add_subscriptions(path: str, subscriptions: Iterable[Subscription], *,
                      dry_run: bool = False) -> ImportResult:
    """Append the subscriptions feeds.yaml lacks to its ``feeds:`` list.

    A URL already there (compared by :func:`url_key`) is skipped. Each new feed gets a
    ``name`` slugged from its title (from its host when the title has no letters), unique
    with -2, -3, ..., and ``tags`` slugged from its categories.

    The file's existing text is kept byte for byte: ruamel.yaml reads it (round-trip mode,
    for the list's position and indentation) and renders the new entries, which go in as
    text after the list's last entry. Dumping the whole document back would not do:
    ruamel re-spaces ``key:   value``, drops ``---`` and re-aligns comments. Only a feeds
    list in flow style (``feeds: [{...}]``) or without a value is dumped back that way,
    which ``ImportResult.reformatted`` tells.

    The result is checked with :func:`crawler.config.parse` before anything is written
    (ConfigError if it fails), then written to a temporary file in the same folder and
    moved over the original, so the daemon, which reloads feeds.yaml when it changes,
    never reads half a file. Nothing is written when nothing is new or ``dry_run`` is set.
    """
    real = os.path.realpath(path)
    try:
        # bytes, not read_text: universal newlines would turn a CRLF file into LF
        text = Path(real).read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [f"{path}: cannot read: {exc}"]) from exc
    data = _RoundTrip().load(text, path)
    feeds = data.get("feeds") if isinstance(data, CommentedMap) else None
    existing = [item for item in feeds if isinstance(item, dict)] \
        if isinstance(feeds, CommentedSeq) else []
    names = {str(item["name"]) for item in existing if "name" in item}
    known = {url_key(str(item["url"])): str(item.get("name", "")) for item in existing
             if "url" in item}

    added: list[AddedFeed] = []
    skipped: list[Skipped] = []
    for sub in subscriptions:
        key = url_key(sub.url)
        if key in known:
            skipped.append(Skipped(sub.url, sub.title,
                                   f"already in {Path(path).name} as {known[key]!r}", sub.line))
            continue
        name = _unique(slug(sub.title) or slug(urlsplit(sub.url).hostname or "") or "feed",
                       names)
        names.add(name)
        known[key] = name
        tags = tuple(dict.fromkeys(t for t in (slug(c) for c in sub.categories) if t))
        added.append(AddedFeed(name=name, url=sub.url.strip(), tags=tags))
    if not added:
        return ImportResult(real, (), tuple(skipped), "", written=False, reformatted=False)

    new_text, block, reformatted = _with_feeds(text, data, feeds, added)
    config_module.parse(new_text, path)
    if not dry_run:
        _replace(real, text, new_text)
    return ImportResult(real, tuple(added), tuple(skipped), block, written=not dry_run,
                        reformatted=reformatted)


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}-{n}"
    return candidate


class _RoundTrip:
    def __init__(self) -> None:
        self.yaml = YAML()  # round-trip mode: keeps line/column of every node (.lc)
        self.yaml.width = 4096  # never fold a long URL

    def load(self, text: str, path: str) -> Any:
        try:
            return self.yaml.load(text)
        except RuamelError as exc:
            raise ConfigError(path, [f"{path}: not valid YAML: {exc}"]) from exc

    def render(self, value: Any, *, sequence: int, offset: int) -> str:
        self.yaml.indent(mapping=2, sequence=sequence, offset=offset)
        out = io.StringIO()
        self.yaml.dump(value, out)
        return out.getvalue()


def _entries(added: list[AddedFeed]) -> CommentedSeq:
    seq = CommentedSeq()
    for feed in added:
        item = CommentedMap(name=_scalar(feed.name), url=_scalar(feed.url))
        if feed.tags:
            tags = CommentedSeq(_scalar(t) for t in feed.tags)
            tags.fa.set_flow_style()  # as feeds.yaml writes them: tags: [cna, taiwan]
            item["tags"] = tags
        seq.append(item)
    return seq


def _scalar(value: str) -> str:
    # crawler.config reads feeds.yaml with PyYAML, which speaks YAML 1.1: a name such as
    # "yes", "off" or "0755" would come back a bool or an int. ruamel writes 1.2 and would
    # leave them plain, so quote whatever PyYAML would not read back as the same string.
    try:
        same = yaml.safe_load(value) == value
    except yaml.YAMLError:
        same = False
    return value if same else SingleQuotedScalarString(value)


def _with_feeds(text: str, data: Any, feeds: Any, added: list[AddedFeed]
                ) -> tuple[str, str, bool]:
    """The new text of the file, the block added to it, and whether the existing text
    had to be dumped back (and so may be spaced differently)."""
    rt = _RoundTrip()
    entries = _entries(added)
    # the added lines end as the file's own do
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += newline
    if isinstance(feeds, CommentedSeq) and len(feeds) and not feeds.fa.flow_style():
        # Indent as the file's own first entry is: "  - name:" is dash 2, key 4.
        line, column = feeds.lc.data[0]
        dash = len(lines[line][:column].rstrip()) - 1
        block = _items_only(rt.render({"feeds": entries}, sequence=column, offset=dash),
                            newline)
        at = _end_of_list(lines, data, dash)
        return "".join(lines[:at]) + block + "".join(lines[at:]), block, False
    block_with_key = rt.render({"feeds": entries}, sequence=4, offset=2).replace("\n", newline)
    block = _items_only(block_with_key, newline)
    if isinstance(data, CommentedMap) and "feeds" in data and _is_empty_flow(feeds):
        line = data.lc.key("feeds")[0]
        match = re.match(r"(feeds:)\s*\[\s*\]\s*(#.*)?$", lines[line].rstrip("\r\n"))
        if match:
            comment = f"  {match.group(2)}" if match.group(2) else ""
            lines[line] = f"{match.group(1)}{comment}{newline}{block}"
            return "".join(lines), block, False
    if isinstance(data, CommentedMap) and "feeds" not in data:
        return "".join(lines) + block_with_key, block, False
    # A feeds list in flow style ([{name: a, ...}]) or with no value: there is no line to
    # add at, so the whole document is dumped back, at the cost of its spacing.
    if isinstance(feeds, CommentedSeq):
        feeds.extend(entries)
    elif isinstance(data, CommentedMap):
        data["feeds"] = entries
    else:
        data = CommentedMap(feeds=entries)
    return rt.render(data, sequence=4, offset=2), block, True


def _items_only(rendered: str, newline: str) -> str:
    """The entries of a rendered ``feeds:`` mapping, without its first line."""
    return rendered.replace("\r\n", "\n").split("\n", 1)[1].replace("\n", newline)


def _is_empty_flow(feeds: Any) -> bool:
    return isinstance(feeds, CommentedSeq) and not len(feeds)


def _end_of_list(lines: list[str], data: CommentedMap, dash: int) -> int:
    """The line index after the feeds list's last entry.

    The list runs up to the next top-level key (or the end). What comes just before that
    belongs to what follows: the comment lines touching the key at column 0 (``# outputs``
    above ``outputs:``), then blank lines and comments indented less than the list's
    dashes. A comment indented like the entries (a commented-out feed) stays with the
    list, above the new entries.
    """
    keys = list(data)
    after = keys.index("feeds") + 1
    end = data.lc.key(keys[after])[0] if after < len(keys) else len(lines)

    def indent_of(line: str) -> tuple[int, str]:
        stripped = line.lstrip(" ")
        return len(line) - len(stripped), stripped.strip()

    while end > 0:
        indent, content = indent_of(lines[end - 1])
        if not (content.startswith("#") and (indent == 0 or indent < dash)):
            break
        end -= 1
    while end > 0:
        indent, content = indent_of(lines[end - 1])
        outdented_comment = content.startswith("#") and indent < dash
        if content and not outdented_comment and not (indent == 0 and content == "..."):
            break
        end -= 1
    return end


def _replace(path: str, before: str, after: str) -> None:
    """Write ``after`` over ``path`` atomically, unless someone changed it meanwhile."""
    folder = os.path.dirname(path) or "."
    mode = os.stat(path).st_mode & 0o7777
    fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.",
                                suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(after)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, mode)  # mkstemp makes it 0600; keep the file readable as it was
        if Path(path).read_bytes().decode("utf-8") != before:
            raise ConfigError(path, [f"{path}: changed while importing; nothing written, "
                                     "run the import again"])
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise
