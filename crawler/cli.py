"""The `crawler` command: run | crawl [NAME ...] | serve | check | status | export | explain
| import opml FILE.

Exit codes: 0 done; 1 a crawl finished with some sources in error; 2 bad config or usage
(for import: an unreadable or malformed OPML file, or a feeds.yaml the import would make
invalid, in which case nothing is written); 3 the database could not be opened.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from crawler import config as config_module
from crawler.errors import ConfigError, CrawlerError, StorageError
from crawler.logs import LOG_FORMATS
from crawler.logs import configure as configure_logging
from crawler.types import Config, CrawlOutcome, SourceStatus, StoryExplanation, StoryMember

if TYPE_CHECKING:
    from storage import Storage

log = logging.getLogger("crawler")
STDERR = Console(stderr=True)


def _parser() -> argparse.ArgumentParser:
    def options(default: object) -> argparse.ArgumentParser:
        # Subcommands default to SUPPRESS, or `crawler --config X crawl` would lose X.
        common = argparse.ArgumentParser(add_help=False)
        common.add_argument("--config", metavar="PATH", default=default,
                            help="feeds.yaml to use (default: $CRAWLER_CONFIG or ./feeds.yaml)")
        common.add_argument("-v", "--verbose", action="store_true", default=default or False,
                            help="log more")
        common.add_argument("--log-format", choices=LOG_FORMATS, default=default or "text",
                            help="text (default) or json: one JSON object per line, with "
                                 "source, url, status and outcome fields on fetch lines")
        return common

    common = options(argparse.SUPPRESS)
    parser = argparse.ArgumentParser(
        prog="crawler", parents=[options(None)],
        description="Feed aggregator: polls the feeds in feeds.yaml and serves merged feeds.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in (("run", "the daemon: scheduled crawls and the HTTP server"),
                       ("serve", "the HTTP server alone, serving what is stored")):
        command = commands.add_parser(name, parents=[common], help=text, description=text)
        command.add_argument("--host", default=None, help="address to bind (settings.host)")
        command.add_argument("--port", type=int, default=None, help="port (settings.port)")
    crawl = commands.add_parser(
        "crawl", parents=[common], help="crawl now",
        description="Crawl now: every enabled source, or those named. Sources backing off "
                    "after errors or a Retry-After, and those stopped by a 410, are left "
                    "alone unless --force.")
    crawl.add_argument("names", nargs="*", metavar="NAME", help="source names from feeds.yaml")
    crawl.add_argument("--force", action="store_true",
                       help="fetch even sources that are backing off or stopped")
    crawl.add_argument("--json", action="store_true",
                       help="print the totals as one JSON line instead of a table")
    export = commands.add_parser(
        "export", parents=[common], help="write stored articles in an archive format",
        description="Write the articles of an output as Jekyll posts (one .md file each), in "
                    "the shape that a `format: jekyll` source reads back.")
    export.add_argument("archive_format", choices=["jekyll"], metavar="FORMAT",
                        help="jekyll")
    export.add_argument("folder", metavar="DIR", help="folder to write the posts into")
    export.add_argument("--output", default="all", help="output name from feeds.yaml (all)")
    export.add_argument("--limit", type=int, default=None,
                        help="newest N articles (default: every stored article)")
    explain = commands.add_parser(
        "explain", parents=[common], help="show the story of one stored article",
        description="The story an article belongs to: the other articles in it, how similar "
                    "each is to this one, and what joined each to the story.")
    explain.add_argument("url", metavar="URL", help="the article's link")
    import_ = commands.add_parser(
        "import", parents=[common], help="add the feeds of a subscription list to feeds.yaml",
        description="Append the feeds of an OPML file (as feed readers export it) that "
                    "feeds.yaml lacks to its feeds list, named after their titles and tagged "
                    "with their folders. The file's comments and formatting are kept.")
    import_.add_argument("import_format", choices=["opml"], metavar="FORMAT", help="opml")
    import_.add_argument("file", metavar="FILE", help="the OPML file")
    import_.add_argument("--dry-run", action="store_true",
                         help="print what would be added; write nothing")
    commands.add_parser("check", parents=[common], help="validate feeds.yaml")
    commands.add_parser("status", parents=[common], help="per source: last fetch, errors, next")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    terminal = None
    if sys.stderr.isatty():
        # Through rich, so log lines print above a progress bar instead of breaking it.
        from rich.logging import RichHandler

        terminal = RichHandler(console=STDERR, show_path=False)
    configure_logging(args.log_format, verbose=args.verbose, terminal=terminal)
    err = Console(stderr=True)
    try:
        config = config_module.load(args.config)
    except ConfigError as exc:
        # Plain lines, never wrapped: editors and grep jump to file:line.
        print(f"{exc.path} is not valid:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    if args.command == "check":
        return _check(config)
    if args.command == "import":
        return _import_opml(config, args.file, dry_run=args.dry_run)
    try:
        return _with_storage(args, config)
    except StorageError as exc:
        err.print(f"[bold red]database error:[/] {exc}", highlight=False)
        return 3
    except KeyboardInterrupt:
        return 130


def _with_storage(args: argparse.Namespace, config: Config) -> int:
    from storage import open_storage

    storage = open_storage(config.settings.database, config.settings.stories)
    try:
        storage.sync_sources(config.sources, datetime.now(UTC))
        if args.command == "crawl":
            return _crawl(config, storage, args.names, as_json=args.json, force=args.force)
        if args.command == "status":
            return _status(storage)
        if args.command == "export":
            return _export(config, storage, args.folder, args.output, args.limit)
        if args.command == "explain":
            return _explain(config, storage, args.url)
        from crawler.daemon import run_daemon

        host = args.host or config.settings.host
        port = args.port or config.settings.port
        try:
            run_daemon(config, storage, host, port, crawl=args.command == "run")
        except CrawlerError as exc:
            Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False)
            return 1
        return 0
    finally:
        storage.close()


def _check(config: Config) -> int:
    enabled = sum(1 for s in config.sources if s.enabled)
    print(f"{config.path}: OK: {len(config.sources)} feeds ({enabled} enabled), "
          f"{len(config.outputs)} outputs")
    return 0


def _import_opml(config: Config, file: str, *, dry_run: bool) -> int:
    from pathlib import Path

    from crawler.opml import Skipped, add_subscriptions, read_opml

    try:
        data = Path(file).read_bytes()
    except OSError as exc:
        print(f"{file}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return 2
    skipped: list[Skipped] = []
    try:
        subscriptions = read_opml(data, file, skipped=skipped)
        result = add_subscriptions(config.path, subscriptions, dry_run=dry_run)
    except ConfigError as exc:
        print(f"{exc.path}: nothing imported:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{config.path}: cannot write: {exc}", file=sys.stderr)
        return 2
    verb = "would add" if dry_run else "added"
    print(f"{config.path}: {verb} {len(result.added)} feeds from {file}")
    if dry_run and result.block:
        print(result.block, end="")
    elif not dry_run:
        for feed in result.added:
            tags = f"  [{', '.join(feed.tags)}]" if feed.tags else ""
            print(f"  + {feed.name}  {feed.url}{tags}")
    if result.reformatted:
        print(f"note: the feeds list of {config.path} was not in block style, so the whole "
              "file was rewritten; comments are kept, spacing may differ")
    every_skip = sorted([*skipped, *result.skipped], key=lambda s: s.line or 0)
    if every_skip:
        print(f"skipped {len(every_skip)}:")
        for skip in every_skip:
            at = f"{file}:{skip.line}: " if skip.line else f"{file}: "
            print(f"  {at}{skip.url or skip.title or '(outline)'}: {skip.reason}")
    return 0


def _crawl(config: Config, storage: Storage, names: list[str], *, as_json: bool,
           force: bool = False) -> int:
    from crawler.pipeline import Crawler

    known = {s.name for s in config.sources}
    unknown = [n for n in names if n not in known]
    if unknown:
        Console(stderr=True).print(f"[bold red]no such feed:[/] {', '.join(unknown)} "
                                   f"(known: {', '.join(sorted(known))})", highlight=False)
        return 2
    console = _console()
    crawler = Crawler(config, storage)
    progress = Progress(TextColumn("crawling"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TextColumn("{task.description}"),
                        console=STDERR, transient=True,
                        disable=as_json or not sys.stderr.isatty())
    task = progress.add_task("", total=None)

    def started(count: int) -> None:
        progress.update(task, total=count)

    def finished(outcome: CrawlOutcome) -> None:
        progress.update(task, advance=1, description=outcome.source)

    try:
        with progress:
            outcomes = asyncio.run(crawler.crawl(names or None, force=force,
                                                 on_start=started, on_outcome=finished))
    finally:
        crawler.close()
    errors = [o for o in outcomes if o.error]
    skipped = _left_alone(config, storage, names, {o.source for o in outcomes})
    if as_json:
        print(json.dumps({
            "sources": len(outcomes), "new": sum(o.new for o in outcomes),
            "updated": sum(o.updated for o in outcomes),
            "unchanged": sum(o.unchanged for o in outcomes),
            "not_modified": sum(1 for o in outcomes if o.not_modified),
            "errors": len(errors),
            "skipped": {s.name: _why_left_alone(s) for s in skipped}}))
    else:
        console.print(_summary(outcomes))
        for status in skipped:
            console.print(f"[yellow]left alone:[/] {status.name}: {_why_left_alone(status)}",
                          highlight=False)
        if skipped:
            console.print("crawl them anyway with --force", highlight=False)
    return 1 if errors else 0


def _left_alone(config: Config, storage: Storage, names: list[str],
                crawled: set[str]) -> list[SourceStatus]:
    """The sources asked for (all enabled ones by default) that the crawl did not take."""
    wanted = set(names) if names else {s.name for s in config.sources if s.enabled}
    return [s for s in storage.statuses()
            if s.name in wanted and s.name not in crawled and s.enabled]


def _why_left_alone(status: SourceStatus) -> str:
    if status.stopped:
        return status.stopped
    if status.error_count:
        return (f"backing off after {status.error_count} error(s) until "
                f"{_when(status.next_check_at)}: {status.last_error}")
    return "being fetched by another worker"


def _export(config: Config, storage: Storage, folder: str, output_name: str,
            limit: int | None) -> int:
    from pathlib import Path

    from crawler.emitters.jekyll import jekyll_posts
    from crawler.filters import sources_for_output
    from crawler.types import FeedView

    output = config.output(output_name)
    if output is None:
        names = ", ".join(o.name for o in config.outputs)
        print(f"no output named {output_name!r} (known: {names})", file=sys.stderr)
        return 2
    articles = storage.articles_for_output(sources_for_output(config, output),
                                           limit or 10_000_000)
    view = FeedView(name=output.name, title=output.title, description=output.description,
                    self_url="", home_url="", articles=articles)
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    posts = jekyll_posts(view)
    for name, content in posts.items():
        (target / name).write_bytes(content)
    print(f"wrote {len(posts)} posts to {target}")
    return 0


def _explain(config: Config, storage: Storage, url: str) -> int:
    from crawler.normalize import canonical_url

    found = storage.explain(canonical_url(url), url.strip())
    if found is None:
        print(f"no stored article has the link {url}", file=sys.stderr)
        return 1
    console = _console()
    me = found.article
    console.print(f"[bold]{me.title}[/]\n{me.link or ''}\nstory {found.story_id}: "
                  f"{len(found.others) + 1} articles; this one {_joined(me, found)}",
                  highlight=False)
    console.print(_outputs_table(config, storage, me))
    if not found.others:
        return 0
    table = Table(title="the other articles of the story")
    for column in ("published", "source", "title", "copy", "related", "joined"):
        table.add_column(column, overflow="fold")
    for other in found.others:
        table.add_row(_when(other.published), ", ".join(other.sources), other.title,
                      _score(other.copy_similarity), _score(other.related_score),
                      _joined(other, found))
    console.print(table)
    console.print("copy: estimated Jaccard similarity of the two bodies (MinHash of character "
                  "3-grams, both folded to Simplified); related: the title-and-lead score of "
                  "independent reports (shared names and numbers, headline overlap, time "
                  "apart).", highlight=False)
    return 0


def _outputs_table(config: Config, storage: Storage, me: StoryMember) -> Table:
    """Which outputs select the article, and the rules that did (what the JSON Feed's
    `_crawler.matched` says); an output shows it while it is among its newest `limit`."""
    from crawler.filters import Selector, sources_for_output

    candidate = storage.candidate(me.uid)
    table = Table(title="outputs")
    for column in ("output", "selected", "by"):
        table.add_column(column, overflow="fold")
    now = datetime.now(UTC)
    for output in config.outputs:
        names = sources_for_output(config, output)
        carried = [n for n in me.sources if names is None or n in names]
        verdict = None
        if not carried:
            why = "its sources are not in this output"
        elif output.max_age and (now - me.published).total_seconds() > output.max_age:
            why = "older than max_age"
        elif candidate is None or (verdict := Selector(output)(candidate)) is None:
            why = "left out by its rules (include, exclude, languages or min_length)"
        if verdict is None:
            table.add_row(output.name, "no", why)
            continue
        rules = [f"feeds: {n}" for n in carried if n in output.feeds] + [
            f"{m.rule}: {m.value}" + (f" (in {m.field})" if m.field else "") for m in verdict]
        table.add_row(output.name, "yes", "; ".join(rules) or "every article of its sources")
    return table


def _joined(member: StoryMember, story: StoryExplanation) -> str:
    if member.joined_by == "founder":
        return "founded it"
    titles = {m.uid: m.title for m in (story.article, *story.others)}
    matched = titles.get(member.joined_with or "", member.joined_with or "?")
    via = f", found through {member.joined_via}" if member.joined_via else ""
    return f"joined as a {member.joined_by} of 「{matched}」 (score {member.join_score}{via})"


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _summary(outcomes: list[CrawlOutcome]) -> Table:
    table = Table(title=f"{len(outcomes)} sources crawled")
    for column in ("source", "new", "updated", "unchanged", "error"):
        table.add_column(column, justify="right" if column in ("new", "updated", "unchanged")
                         else "left", overflow="fold")
    for o in outcomes:
        error = o.error or ("not modified (304)" if o.not_modified else "")
        table.add_row(o.source, str(o.new), str(o.updated), str(o.unchanged),
                      f"[red]{error}[/]" if o.error else error)
    table.add_section()
    table.add_row("total", str(sum(o.new for o in outcomes)),
                  str(sum(o.updated for o in outcomes)),
                  str(sum(o.unchanged for o in outcomes)),
                  f"{sum(1 for o in outcomes if o.error)} errors")
    return table


def _status(storage: Storage) -> int:
    rows = storage.statuses()
    table = Table(title="sources")
    for column in ("source", "last fetch", "HTTP", "articles", "state", "next check"):
        table.add_column(column, overflow="fold")
    for s in rows:
        state, style = _state(s)
        table.add_row(s.name, _when(s.last_fetch_at), str(s.last_status or "-"),
                      str(s.articles), f"[{style}]{state}[/]" if style else state,
                      "disabled" if not s.enabled else
                      "never (stopped)" if s.stopped else _when(s.next_check_at))
    _console().print(table)
    backing_off = sum(1 for s in rows if s.enabled and s.error_count and not s.stopped)
    stopped = sum(1 for s in rows if s.enabled and s.stopped)
    if backing_off or stopped:
        _console().print(f"{backing_off} backing off, {stopped} stopped", highlight=False)
    return 0


def _state(status: SourceStatus) -> tuple[str, str]:
    """What a source is doing, and why, in words; and the colour to say it in."""
    notes: list[str] = []
    style = ""
    if status.stopped:
        notes.append(status.stopped)
        style = "red"
    elif status.error_count:
        notes.append(f"backing off ({status.error_count} error"
                     f"{'s' if status.error_count > 1 else ''} in a row): {status.last_error}")
        style = "red"
    if status.moved_to:
        notes.append(f"moved permanently to {status.moved_to}; fetched from there (update "
                     "its url in feeds.yaml)")
        style = style or "yellow"
    hints = status.hints
    asked = [f"ttl {hints.ttl // 60} min" if hints.ttl else "",
             f"updates every {hints.update_every // 60} min" if hints.update_every else "",
             "skips GMT hours " + ",".join(map(str, hints.skip_hours)) if hints.skip_hours
             else "",
             "skips " + ",".join(_DAY_NAMES[d] for d in hints.skip_days) if hints.skip_days
             else ""]
    if any(asked):
        notes.append("publisher asks: " + "; ".join(a for a in asked if a))
    return ("; ".join(notes) or "ok"), style


_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _console() -> Console:
    # Piped output (logs, grep, tests) gets full-width rows instead of 80-column folding.
    return Console() if sys.stdout.isatty() else Console(width=200)


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value else "never"


if __name__ == "__main__":
    sys.exit(main())
