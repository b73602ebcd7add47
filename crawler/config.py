"""feeds.yaml → a frozen :class:`~crawler.types.Config`, or a ConfigError naming file:line:field.

The YAML is composed into nodes (not loaded into dicts) so every problem can point at the
line it is on. Every problem found is reported at once, so one edit fixes them all.
Environment: ``CRAWLER_DATABASE`` overrides ``settings.database``.
"""

from __future__ import annotations

import codecs
import ipaddress
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from crawler.errors import ConfigError
from crawler.languages import language_tag
from crawler.types import (
    COLLAPSE_MODES,
    FEED_FORMATS,
    MATCH_MODES,
    RULE_FIELDS,
    SCRIPTS,
    SITE_NAMES,
    Config,
    Output,
    Rule,
    Settings,
    Source,
    StoryRules,
    is_local,
)

DEFAULT_PATH = "feeds.yaml"
# libyaml's loader when PyYAML has it: the pure-Python composer takes half a second for a
# thousand feeds. Both keep the line marks the error messages need.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_.")


@dataclass(frozen=True)
class _Field:
    type: type | tuple[type, ...]
    required: bool = False


SETTINGS_FIELDS = {
    "database": _Field(str),
    "host": _Field(str),
    "port": _Field(int),
    "interval": _Field(int),
    "concurrency": _Field(int),
    "host_concurrency": _Field(int),
    "host_delay": _Field((str, int, float)),
    "max_backoff": _Field((str, int)),
    "timeout": _Field((int, float)),
    "user_agent": _Field(str),
    "max_bytes": _Field(int),
    "parse_workers": _Field(int),
    "allowed_networks": _Field(list),
    "allow_private_networks": _Field(bool),
    "stories": _Field(dict),
}
STORY_FIELDS = {
    "window_days": _Field((int, float)),
    "copy_threshold": _Field((int, float)),
    "related_threshold": _Field((int, float)),
    "related_hours": _Field((int, float)),
}
SOURCE_FIELDS = {
    "name": _Field(str, required=True),
    "url": _Field(str, required=True),
    "format": _Field(str),
    "interval": _Field(int),
    "tags": _Field(list),
    "enabled": _Field(bool),
    "full_text": _Field(bool),
    "site": _Field(str),
    "priority": _Field(int),
    "language": _Field(str),
    "encoding": _Field(str),
}
OUTPUT_FIELDS = {
    "name": _Field(str, required=True),
    "title": _Field(str, required=True),
    "description": _Field(str),
    "feeds": _Field(list),
    "tags": _Field(list),
    "limit": _Field(int),
    "collapse": _Field(str),
    "include": _Field((list, dict)),
    "exclude": _Field((list, dict)),
    "languages": _Field(list),
    "min_length": _Field(int),
    "max_age": _Field((str, int)),
    "script": _Field(str),
    "language": _Field(str),
}
RULE_SPEC = {
    "keywords": _Field(list, required=True),
    "fields": _Field(list),
    "match": _Field(str),
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
TOP_FIELDS = {"settings", "feeds", "outputs"}


def default_path() -> str:
    return os.environ.get("CRAWLER_CONFIG") or DEFAULT_PATH


class _Checker:
    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[str] = []

    def problem(self, node: yaml.Node | None, where: str, message: str) -> None:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        self.problems.append(f"{self.path}{line}: {where}: {message}")

    def mapping(
        self, node: yaml.Node, where: str, spec: dict[str, _Field], loader: Any
    ) -> dict[str, tuple[Any, yaml.Node]]:
        """Check a mapping against its field spec; return the valid fields with their nodes."""
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, where, f"expected a mapping, got {_kind(node)}")
            return {}
        found: dict[str, tuple[Any, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            at = f"{where}.{key}" if where else key
            if key not in spec:
                self.problem(key_node, at, f"unknown key (known: {', '.join(sorted(spec))})")
                continue
            if key in found:
                self.problem(key_node, at, "given twice")
                continue
            value = loader.construct_object(value_node, deep=True)
            expected = spec[key].type
            # bool is an int in Python, and `port: yes` must not pass as 1.
            wrong_bool = isinstance(value, bool) and expected is not bool
            if wrong_bool or not isinstance(value, expected):
                self.problem(
                    value_node, at, f"expected {_type_name(expected)}, got {_kind(value_node)}"
                )
                continue
            found[key] = (value, value_node)
        for key, field_spec in spec.items():
            if field_spec.required and key not in found and not _has_key(node, key):
                self.problem(node, where, f"missing required key '{key}'")
        return found

    def string_list(self, value: list[Any], node: yaml.Node, where: str) -> tuple[str, ...]:
        items: list[str] = []
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                item_node = node.value[index] if isinstance(node, yaml.SequenceNode) else node
                self.problem(item_node, f"{where}[{index}]", "expected a non-empty string")
            else:
                items.append(item.strip())
        return tuple(items)

    def positive(self, found: dict[str, tuple[Any, yaml.Node]], key: str, where: str) -> None:
        if key in found and found[key][0] <= 0:
            self.problem(found[key][1], f"{where}.{key}", "must be greater than 0")


def _has_key(node: yaml.MappingNode, key: str) -> bool:
    return any(k.value == key for k, _ in node.value)


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    tag = str(node.tag).rsplit(":", 1)[-1]
    names = {"str": "a string", "int": "a number", "float": "a number", "bool": "true/false"}
    shown = f" ({node.value!r})" if node.value not in ("", None) else ""
    return names.get(tag, tag) + shown


def _type_name(expected: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             list: "a list"}
    if isinstance(expected, tuple):
        return "a number"
    return names.get(expected, expected.__name__)


def _valid_url(url: str) -> str | None:
    """None if the URL is one we can fetch, else why not."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return f"URL must start with http:// or https://, got {url!r}"
    if not parts.hostname:
        return f"URL has no host: {url!r}"
    if any(c.isspace() for c in url):
        return f"URL contains whitespace: {url!r}"
    return None


def _resolve_database(url: str, config_dir: Path) -> str:
    """A relative SQLite path is taken relative to the config file, not the working directory."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////"):
        rest = url[len(prefix):]
        if rest and rest != ":memory:" and not rest.startswith("/"):
            return prefix + str((config_dir / rest).resolve())
    return url


def parse(text: str, path: str = DEFAULT_PATH, env: dict[str, str] | None = None) -> Config:
    """Validate the text of a feeds.yaml; raise ConfigError listing every problem."""
    env = dict(os.environ) if env is None else env
    check = _Checker(path)
    loader = _LOADER(text)
    try:
        root = loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(path, [f"{path}{line}: not valid YAML: {exc}"]) from exc
    finally:
        loader.dispose()
    if root is None:
        raise ConfigError(path, [f"{path}: the file is empty; it needs a 'feeds' list"])

    spec = {key: _Field(dict if key == "settings" else list) for key in TOP_FIELDS}
    top = check.mapping(root, "", spec, loader)
    settings = _settings(check, top, loader)
    sources = _sources(check, top, loader, Path(path).resolve().parent)
    outputs = _outputs(check, top, loader, {s.name for s in sources}, sources)
    if "feeds" not in top and not check.problems:
        check.problem(root, "feeds", "missing: the file needs a 'feeds' list")
    if check.problems:
        raise ConfigError(path, check.problems)

    database = env.get("CRAWLER_DATABASE") or settings.database
    database = _resolve_database(database, Path(path).resolve().parent)
    settings = Settings(**{**_asdict(settings), "database": database})
    if not outputs:
        outputs = (Output(name="all", title="All sources"),)
    return Config(path=path, settings=settings, sources=sources, outputs=outputs)


def load(path: str | None = None) -> Config:
    path = path or default_path()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(path, [f"{path}: no such file (use --config or CRAWLER_CONFIG)"]) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [f"{path}: cannot read: {exc}"]) from exc
    return parse(text, path)


def _asdict(settings: Settings) -> dict[str, Any]:
    return {f.name: getattr(settings, f.name) for f in fields(settings)}


def _settings(
    check: _Checker, top: dict[str, tuple[Any, yaml.Node]], loader: Any
) -> Settings:
    if "settings" not in top:
        return Settings()
    node = top["settings"][1]
    found = check.mapping(node, "settings", SETTINGS_FIELDS, loader)
    for key in ("port", "interval", "concurrency", "host_concurrency", "timeout",
                "max_bytes"):
        check.positive(found, key, "settings")
    if "port" in found and found["port"][0] > 65535:
        check.problem(found["port"][1], "settings.port", "must be at most 65535")
    if "parse_workers" in found and found["parse_workers"][0] < 0:
        check.problem(found["parse_workers"][1], "settings.parse_workers", "must be 0 or more")
    values = {key: value for key, (value, _) in found.items()}
    if "timeout" in values:
        values["timeout"] = float(values["timeout"])
    for key, least in (("max_backoff", 60), ("host_delay", 0)):
        if key in found:
            value, value_node = found[key]
            seconds = (float(value) if isinstance(value, float) and value >= 0
                       else parse_duration(value))
            if seconds is None or seconds < least:
                check.problem(value_node, f"settings.{key}",
                              f"{value!r}: write a duration of at least {least} s, such as "
                              + ("24h or 90m" if least else "2s, 1m or 0.5 (0 for none)"))
            else:
                values[key] = seconds if key == "host_delay" else int(seconds)
    if "allowed_networks" in found:
        value, value_node = found["allowed_networks"]
        networks = check.string_list(value, value_node, "settings.allowed_networks")
        for index, network in enumerate(networks):
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                check.problem(value_node, f"settings.allowed_networks[{index}]",
                              f"not a network such as 127.0.0.1/32 or 10.0.0.0/8: {network!r}")
        values["allowed_networks"] = networks
    if "stories" in found:
        values["stories"] = _story_rules(check, found["stories"][1], loader)
    return Settings(**values)


def _story_rules(check: _Checker, node: yaml.Node, loader: Any) -> StoryRules:
    found = check.mapping(node, "settings.stories", STORY_FIELDS, loader)
    values: dict[str, float] = {}
    for key, (value, value_node) in found.items():
        where = f"settings.stories.{key}"
        if key.endswith("threshold") and not 0 < value <= 1:
            check.problem(value_node, where, "must be more than 0 and at most 1")
        elif not key.endswith("threshold") and value <= 0:
            check.problem(value_node, where, "must be more than 0")
        values[key] = float(value)
    return StoryRules(**values)


def _check_name(check: _Checker, found: dict[str, tuple[Any, yaml.Node]], where: str, *,
                in_url: bool) -> None:
    """Output names go into URLs, so they are kept URL-safe; a source name is shown and
    typed, so any readable text will do (中央社 政治 included)."""
    if "name" not in found:
        return
    name, node = found["name"]
    if in_url and (not name or not set(name) <= NAME_CHARS):
        check.problem(node, f"{where}.name",
                      f"{name!r}: use lowercase letters, digits, '-', '_' and '.' only")
    elif not in_url and (not name.strip() or name != name.strip() or len(name) > 100
                         or not name.isprintable()):
        check.problem(node, f"{where}.name",
                      f"{name!r}: needs 1 to 100 printable characters, no leading or "
                      "trailing spaces")


def _sources(
    check: _Checker, top: dict[str, tuple[Any, yaml.Node]], loader: Any,
    config_dir: Path,
) -> tuple[Source, ...]:
    if "feeds" not in top:
        return ()
    seq = top["feeds"][1]
    sources: list[Source] = []
    seen: dict[str, int] = {}
    for index, node in enumerate(seq.value):
        where = f"feeds[{index}]"
        found = check.mapping(node, where, SOURCE_FIELDS, loader)
        _check_name(check, found, where, in_url=False)
        check.positive(found, "interval", where)
        local = "url" in found and is_local(found.get("format", ("feed", None))[0],
                                            found["url"][0].strip())
        if "url" in found and local:
            folder = (config_dir / found["url"][0].strip()).resolve()
            if not folder.is_dir():
                check.problem(found["url"][1], f"{where}.url", f"no such folder: {folder}")
            found["url"] = (str(folder), found["url"][1])
        elif "url" in found:
            why = _valid_url(found["url"][0])
            if why:
                check.problem(found["url"][1], f"{where}.url", why)
        if "site" in found and found["site"][0] not in SITE_NAMES:
            check.problem(found["site"][1], f"{where}.site",
                          f"no rules for site {found['site'][0]!r} "
                          f"(known: {', '.join(SITE_NAMES)})")
        if "format" in found and found["format"][0] not in FEED_FORMATS:
            check.problem(
                found["format"][1], f"{where}.format",
                f"unknown format {found['format'][0]!r} (known: {', '.join(FEED_FORMATS)})",
            )
        tags = check.string_list(found["tags"][0], found["tags"][1], f"{where}.tags") \
            if "tags" in found else ()
        if "name" in found:
            name = found["name"][0]
            if name in seen:
                check.problem(
                    found["name"][1], f"{where}.name",
                    f"duplicate name {name!r} (first used on line {seen[name]})",
                )
            else:
                seen[name] = found["name"][1].start_mark.line + 1
        if {"name", "url"} <= found.keys():
            sources.append(Source(
                name=found["name"][0],
                url=found["url"][0].strip(),
                format=found.get("format", ("feed", None))[0],
                interval=found.get("interval", (None, None))[0],
                tags=tags,
                enabled=found.get("enabled", (True, None))[0],
                full_text=found.get("full_text", (False, None))[0],
                site=found.get("site", (None, None))[0],
                priority=found.get("priority", (0, None))[0],
                language=_language(check, found, "language", where),
                encoding=_encoding(check, found, where),
            ))
    return tuple(sources)


def _encoding(check: _Checker, found: dict[str, tuple[Any, yaml.Node]],
              where: str) -> str | None:
    """A codec Python can decode text with, by its canonical name; the override only
    applies where this project decodes a feed's bytes itself (format: feed)."""
    if "encoding" not in found:
        return None
    value, node = found["encoding"]
    try:
        name = codecs.lookup(value.strip()).name
        # base64, rot13, zlib... are codecs too, but not text encodings: decoding refuses
        # them (empty bytes would not: Python returns "" before asking the codec).
        b"x".decode(name, errors="replace")
    except LookupError:
        check.problem(node, f"{where}.encoding",
                      f"{value!r} is not a text encoding Python knows (big5, gb18030, utf-8, ...)")
        return None
    if found.get("format", ("feed", None))[0] != "feed":
        check.problem(node, f"{where}.encoding", "applies to format: feed only")
        return None
    return name


def _outputs(
    check: _Checker,
    top: dict[str, tuple[Any, yaml.Node]],
    loader: Any,
    source_names: set[str],
    sources: tuple[Source, ...],
) -> tuple[Output, ...]:
    if "outputs" not in top:
        return ()
    known_tags = {tag for s in sources for tag in s.tags}
    outputs: list[Output] = []
    seen: set[str] = set()
    for index, node in enumerate(top["outputs"][1].value):
        where = f"outputs[{index}]"
        found = check.mapping(node, where, OUTPUT_FIELDS, loader)
        _check_name(check, found, where, in_url=True)
        check.positive(found, "limit", where)
        feeds: tuple[str, ...] = ()
        if "feeds" in found:
            feeds = check.string_list(found["feeds"][0], found["feeds"][1], f"{where}.feeds")
            for i, name in enumerate(feeds):
                if name not in source_names:
                    check.problem(found["feeds"][1], f"{where}.feeds[{i}]",
                                  f"no feed is named {name!r}")
        tags: tuple[str, ...] = ()
        if "tags" in found:
            tags = check.string_list(found["tags"][0], found["tags"][1], f"{where}.tags")
            for i, tag in enumerate(tags):
                if tag not in known_tags:
                    check.problem(found["tags"][1], f"{where}.tags[{i}]",
                                  f"no feed has the tag {tag!r}")
        if "collapse" in found and found["collapse"][0] not in COLLAPSE_MODES:
            check.problem(found["collapse"][1], f"{where}.collapse",
                          f"{found['collapse'][0]!r}: use one of {', '.join(COLLAPSE_MODES)}")
        if "limit" in found and found["limit"][0] > 1000:
            check.problem(found["limit"][1], f"{where}.limit", "must be at most 1000")
        if "name" in found:
            if found["name"][0] in seen:
                check.problem(found["name"][1], f"{where}.name",
                              f"duplicate output name {found['name'][0]!r}")
            seen.add(found["name"][0])
        selection = _selection(check, found, where, loader)
        if {"name", "title"} <= found.keys():
            outputs.append(Output(
                name=found["name"][0],
                title=found["title"][0],
                description=found.get("description", ("", None))[0],
                feeds=feeds,
                tags=tags,
                limit=found.get("limit", (100, None))[0],
                collapse=found.get("collapse", ("story", None))[0],
                **selection,
            ))
    return tuple(outputs)


def _selection(check: _Checker, found: dict[str, tuple[Any, yaml.Node]], where: str,
               loader: Any) -> dict[str, Any]:
    """An output's rules beyond its sources: keywords, languages, length, age, script."""
    chosen: dict[str, Any] = {}
    for key in ("include", "exclude"):
        if key in found:
            chosen[key] = _rules(check, found[key][1], f"{where}.{key}", loader)
    if "languages" in found:
        value, node = found["languages"]
        tags = []
        for i, raw in enumerate(check.string_list(value, node, f"{where}.languages")):
            tag = language_tag(raw)
            if not tag:
                check.problem(node, f"{where}.languages[{i}]",
                              f"{raw!r} is not a language tag (zh, zh-Hant, zh-TW, en, ...)")
            tags.append(tag)
        chosen["languages"] = tuple(tags)
    if "min_length" in found:
        if found["min_length"][0] < 0:
            check.problem(found["min_length"][1], f"{where}.min_length", "must be 0 or more")
        chosen["min_length"] = found["min_length"][0]
    if "max_age" in found:
        value, node = found["max_age"]
        seconds = parse_duration(value)
        if seconds is None or seconds <= 0:
            check.problem(node, f"{where}.max_age",
                          f"{value!r}: write a duration such as 90m, 36h, 7d or 2w")
        else:
            chosen["max_age"] = seconds
    if "script" in found:
        if found["script"][0] not in SCRIPTS:
            check.problem(found["script"][1], f"{where}.script",
                          f"{found['script'][0]!r}: use one of {', '.join(SCRIPTS)}")
        else:
            chosen["script"] = found["script"][0]
    chosen["language"] = _language(check, found, "language", where)
    return chosen


def parse_duration(value: str | int) -> int | None:
    """Seconds of "90m", "36h", "7d", "2w" (or a bare number of seconds); None if neither."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _DURATION.match(str(value))
    if match is None:
        return None
    return int(float(match.group(1)) * _DURATION_UNITS[match.group(2)])


def _language(check: _Checker, found: dict[str, tuple[Any, yaml.Node]], key: str,
              where: str) -> str | None:
    if key not in found:
        return None
    tag = language_tag(found[key][0])
    if not tag:
        check.problem(found[key][1], f"{where}.{key}",
                      f"{found[key][0]!r} is not a language tag (zh-TW, zh-CN, zh-Hant, en, ...)")
        return None
    return tag


def _rules(check: _Checker, node: yaml.Node, where: str, loader: Any) -> tuple[Rule, ...]:
    """`[kw, /re/]` is one rule; a mapping {keywords, fields, match} is one; a list of such
    mappings is several (every include rule must pass; any exclude rule leaves out)."""
    if isinstance(node, yaml.SequenceNode) and node.value and all(
            isinstance(item, yaml.MappingNode) for item in node.value):
        return tuple(rule for i, item in enumerate(node.value)
                     for rule in _rule_mapping(check, item, f"{where}[{i}]", loader))
    if isinstance(node, yaml.MappingNode):
        return _rule_mapping(check, node, where, loader)
    keywords = _keywords(check, loader.construct_object(node, deep=True), node, where)
    return (Rule(keywords=keywords),) if keywords else ()


def _rule_mapping(check: _Checker, node: yaml.Node, where: str,
                  loader: Any) -> tuple[Rule, ...]:
    found = check.mapping(node, where, RULE_SPEC, loader)
    if "keywords" not in found:
        return ()
    keywords = _keywords(check, found["keywords"][0], found["keywords"][1], f"{where}.keywords")
    rule_fields: tuple[str, ...] = ("title", "text")
    if "fields" in found:
        rule_fields = check.string_list(found["fields"][0], found["fields"][1],
                                        f"{where}.fields")
        for i, name in enumerate(rule_fields):
            if name not in RULE_FIELDS:
                check.problem(found["fields"][1], f"{where}.fields[{i}]",
                              f"{name!r}: use some of {', '.join(RULE_FIELDS)}")
        if not rule_fields:
            check.problem(found["fields"][1], f"{where}.fields", "name at least one field")
    match = found.get("match", ("any", None))
    if match[0] not in MATCH_MODES:
        check.problem(match[1], f"{where}.match", f"{match[0]!r}: use any or all")
    if not keywords:
        return ()
    return (Rule(keywords=keywords, fields=tuple(dict.fromkeys(rule_fields)), match=match[0]),)


def _keywords(check: _Checker, value: Any, node: yaml.Node, where: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        check.problem(node, where, f"expected a list of keywords, got {_kind(node)}")
        return ()
    keywords = check.string_list(value, node, where)
    if not keywords and value == []:
        check.problem(node, where, "name at least one keyword")
    for i, keyword in enumerate(keywords):
        if is_pattern(keyword):
            try:
                re.compile(keyword[1:-1])
            except re.error as exc:
                item = node.value[i] if isinstance(node, yaml.SequenceNode) else node
                check.problem(item, f"{where}[{i}]",
                              f"{keyword} is not a valid regular expression: {exc}")
    return keywords


def is_pattern(keyword: str) -> bool:
    """A keyword written /…/ is a regular expression."""
    return len(keyword) >= 3 and keyword.startswith("/") and keyword.endswith("/")
