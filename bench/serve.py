#!/usr/bin/env python3
"""Serving benchmark: a 50-item output from a database of 100,000 articles.

Run by hand (not a test), from the repository root::

    .venv/bin/python bench/serve.py                          # 100k (+ 10k), ~45 min, ~20 cached
    .venv/bin/python bench/serve.py --articles 3000 --compare 0 --duration 3   # smoke, ~3 min

What it does:

1. **Builds** (once; cached as ``bench/out/serve/db-v<schema VERSION>-n<N>.db`` with a
   ``.json`` beside it) a SQLite database of N articles over 1,000 sources. The text is the
   shared kit's (``gen_corpus.py``: Chinese full-text feeds, exact and near duplicates,
   half in Traditional script), generated with ``--span-hours 8760`` (a year) and no
   malformed feeds, with enough items per feed that dropping whole articles (all copies
   of a kit article id, chosen at random) leaves N. Each kit feed is cut into one feed
   body per source and ``--batch-days`` (7) window, oldest first, as a crawl would have
   found them; ``crawler.process.articles_from_body`` parses them in a process pool, and
   the main process stores each with ``Storage.record_success`` (after
   ``Storage.sync_sources``), so every derived column (fingerprint, story, language,
   search_text, text_length) is the real one.
2. Writes ``bench/out/serve/feeds-<key>.yaml``: the sources and three outputs, ``latest``
   (limit 50, collapse story), ``latest-articles`` (limit 50, collapse article) and
   ``filtered`` (limit 50, ``include: [word]`` + ``languages: [zh]``). The word is the
   vocabulary word (of the kit's ``zhtext``) whose share of a 1-in-20 sample of the
   articles (title or text, as the rule compares) is nearest 7.5 % within 5-10 %.
3. **In process** (the real app through Starlette's TestClient, on both databases): time
   uncached renders (each through a new app, whose caches are empty), count the candidate
   rows each render reads (``Storage.output_candidates`` wrapped), ``EXPLAIN QUERY PLAN``
   every statement a render and a cached request run,
   and time/count SQLite VM steps of a candidate page at depth 0, 5,000 and 50,000; the
   same for renders narrowed by ``?tag=`` / ``?source=`` (the query then names sources).
4. **Over HTTP**: starts ``.venv/bin/crawler --config FILE serve`` on 127.0.0.1 (a free
   port), times one-off uncached requests, then runs wrk (``-t2 -c16``, ``--duration``
   after a ``--warmup``) per output and format: 200 identity, 200 gzip, 304
   (``If-None-Match``), "uncached" (``?_=`` a counter: a reader's cache buster, which
   since 589161f costs an emit of the cached selection, not a selection) and uncached with
   ``?q=`` cycling
   over 400 keywords (more than the 256 renderings the server keeps, and the two wrk
   threads start half the list apart, so every request misses the cache). Before each
   run it waits (``--quiet-wait`` s at most) until the 1-minute load average is ≤ 1.0 or
   a 3 s window shows under 0.25 of a core busy (our own previous run is what keeps the
   load average up); the load average and the CPU used by others during the run are
   reported. The server is stopped by its PID in a ``finally``. ``--kinds`` picks runs
   (e.g. ``--kinds uncached,q --connections 2``); ``--skip-in-process`` skips step 3.

Results: ``bench/out/serve/results-<timestamp>.json`` and ``.md`` (the Markdown is
printed too).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import math
import multiprocessing
import os
import random
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "serve"
DEFAULT_KIT = ROOT.parent / "shared" / "bench"
KIT_FILES = ("gen_corpus.py", "zhtext.py")
CRAWLER = ROOT / ".venv" / "bin" / "crawler"
OUTPUTS = ("latest", "latest-articles", "filtered")
FORMATS = ("xml", "json")
FEEDS = 1000
SEED = "42"
EPOCH = "2025-11-01T08:00:00+00:00"  #: the kit's default: newest item
SPAN_HOURS = 8760
#: narrowings that name sources (share of the 1,000 sources: ~30 %, ~80 %, one)
NARROWINGS = ("tag=atom", "tag=fulltext", "source=f00001")
Q_VALUES = 400  #: distinct ?q= values; more than crawler.server.CACHE_ENTRIES (256)
console = Console(highlight=False, width=160)


def log(message: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}")


# --- the kit ------------------------------------------------------------------------------

def copy_kit(kit: Path, dest: Path | None = None,
             files: Sequence[str] = KIT_FILES) -> Path:
    """The kit's generator (or ``files``) copied to ``dest`` (bench/out/serve/kit): the kit
    itself is read-only."""
    dest = dest or OUT / "kit"
    dest.mkdir(parents=True, exist_ok=True)
    for name in files:
        source, target = kit / name, dest / name
        if not source.is_file():
            raise SystemExit(f"{kit} does not look like the bench kit: no {name}")
        if not target.exists() or target.read_bytes() != source.read_bytes():
            if target.exists():
                target.chmod(0o644)
            shutil.copyfile(source, target)
            target.chmod(0o644)
    return dest


def generator_python(kit: Path) -> Path:
    """A venv with zhconv (the kit's pin) only: the generator's one dependency."""
    venv = OUT / "genvenv"
    py = venv / "bin" / "python"
    pin = next((line.strip() for line in (kit / "requirements.txt").read_text().splitlines()
                if line.strip().lower().startswith("zhconv")), "zhconv")
    check = [str(py), "-c", "import zhconv"]
    if py.exists() and subprocess.run(check, capture_output=True, timeout=60).returncode == 0:
        return py
    log(f"creating {venv.relative_to(ROOT)} with {pin}")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=600)
    subprocess.run([str(py), "-m", "pip", "install", "-q", pin], check=True, timeout=900)
    subprocess.run(check, check=True, timeout=60)
    return py


def ensure_corpus(kit: Path, items: int) -> Path:
    kit_copy = copy_kit(kit)
    path = OUT / "corpus" / f"n{FEEDS}-i{items}-s{SEED}-h{SPAN_HOURS}-m0"
    if (path / "corpus.json").exists():
        return path
    py = generator_python(kit)
    log(f"generating the corpus {path.relative_to(ROOT)} ({FEEDS} feeds x {items} items)")
    started = time.perf_counter()
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run([str(py), str(kit_copy / "gen_corpus.py"), "generate", "--out", str(tmp),
                    "--feeds", str(FEEDS), "--items", str(items), "--seed", SEED,
                    "--span-hours", str(SPAN_HOURS), "--epoch", EPOCH,
                    "--malformed-share", "0"],
                   check=True, stdout=subprocess.DEVNULL, timeout=3600,
                   env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    tmp.rename(path)
    log(f"corpus generated in {time.perf_counter() - started:.0f} s")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def split_feed(data: bytes, fmt: str) -> tuple[bytes, list[bytes], bytes]:
    """(head, items, tail) of a kit feed file, which writes one item per `<item>\\n`."""
    opening, closing = ((b"<entry>\n", b"</entry>\n") if fmt == "atom"
                        else (b"<item>\n", b"</item>\n"))
    first = data.find(opening)
    if first < 0:
        return data, [], b""
    items, pos = [], first
    while (start := data.find(opening, pos)) >= 0:
        end = data.index(closing, start) + len(closing)
        items.append(data[start:end])
        pos = end
    return data[:first], items, data[pos:]


# --- building the database ---------------------------------------------------------------

def _parse_job(job: tuple[str, str, str, bytes, str]) -> tuple[str, Any, tuple[str, ...]]:
    """In a pool worker: one feed body → the project's Articles."""
    from crawler.errors import ParseError
    from crawler.process import articles_from_body

    name, url, content_type, body, now = job
    try:
        articles, warnings = articles_from_body("feed", body, content_type, url,
                                                datetime.fromisoformat(now))
    except ParseError as exc:
        return name, (), (f"parse error: {exc}",)
    return name, articles, warnings


def sources_yaml(feeds: Sequence[dict[str, Any]], database: Path,
                 outputs: str = "") -> str:
    lines = ["# written by bench/serve.py", "settings:",
             f"  database: {json.dumps('sqlite:///' + str(database))}", "feeds:"]
    for f in feeds:
        tags = [f["format"], f["script"], f["style"], "fulltext" if f["fulltext"] else "summary"]
        lines += [f"  - name: {f['slug']}",
                  f"    url: {json.dumps('http://127.0.0.1:8765' + f['path'])}",
                  f"    tags: [{', '.join(tags)}]"]
    return "\n".join(lines) + "\n" + outputs


def db_paths(n: int) -> tuple[Path, Path]:
    from storage.schema import VERSION

    key = f"v{VERSION}-n{n}"
    return OUT / f"db-{key}.db", OUT / f"db-{key}.json"


def time_parts() -> tuple[dict[str, float], Callable[[], None]]:
    """Wall seconds inside the parts of record_success (module attributes, so the calls
    from storage/ go through the timers); the rest is the transaction and its commit."""
    import storage
    import storage.articles
    import storage.sources
    import storage.stories

    parts: dict[str, float] = defaultdict(float)
    patched = [(storage.articles, "upsert_articles", "upsert_articles (all)"),
               (storage.stories, "assign_stories", "assign_stories (clustering)"),
               (storage.sources, "record_outcome", "record_outcome"),
               (storage.articles, "_match_existing", "_match_existing")]
    originals = [(module, name, getattr(module, name)) for module, name, _ in patched]

    def timed(function: Callable[..., Any], label: str) -> Callable[..., Any]:
        def call(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                parts[label] += time.perf_counter() - t
        return call

    for module, name, label in patched:
        setattr(module, name, timed(getattr(module, name), label))

    def undo() -> None:
        for module, name, function in originals:
            setattr(module, name, function)

    return parts, undo


def build(n: int, args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    db, meta_path = db_paths(n)
    if db.exists() and meta_path.exists() and not args.rebuild:
        meta = json.loads(meta_path.read_text())
        if meta.get("complete"):
            log(f"using the cached database {db.relative_to(ROOT)} ({meta['articles']:,} "
                f"articles, built in {meta['build_s']:.0f} s)")
            return db, meta
    started = time.perf_counter()
    items = math.ceil(n / FEEDS / 0.87) + 1  # ~11 % of slots are copies of another's article
    corpus = ensure_corpus(args.kit, items)
    feeds = read_jsonl(corpus / "feeds.jsonl")
    truth = read_jsonl(corpus / "items.jsonl")
    by_feed: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for t in truth:
        by_feed[t["feed"]].append(t)
    aids = sorted({t["aid"] for t in truth})
    if len(aids) < n:
        raise SystemExit(f"the corpus has {len(aids)} distinct articles, fewer than {n}")
    dropped = set(random.Random(f"{SEED}:drop:{n}").sample(aids, len(aids) - n))
    kept = [t for t in truth if t["aid"] not in dropped]
    first = min(datetime.fromisoformat(t["published"]) for t in kept)
    start = first.replace(hour=0, minute=0, second=0, microsecond=0)
    window = timedelta(days=args.batch_days)

    # (bucket, feed) → item bytes; a body per source and window, oldest window first
    buckets: dict[int, dict[int, list[bytes]]] = defaultdict(lambda: defaultdict(list))
    heads: dict[int, tuple[bytes, bytes]] = {}
    for f in feeds:
        head, feed_items, tail = split_feed((corpus / f["file"]).read_bytes(), f["format"])
        records = by_feed[f["id"]]
        if len(feed_items) != len(records):
            raise SystemExit(f"{f['file']}: {len(feed_items)} items, {len(records)} in "
                             "items.jsonl")
        heads[f["id"]] = (head, tail)
        for xml, record in zip(feed_items, records, strict=True):
            if record["aid"] in dropped:
                continue
            when = datetime.fromisoformat(record["published"])
            buckets[(when - start) // window][f["id"]].append(xml)
    slots = sum(len(x) for b in buckets.values() for x in b.values())

    tmp = db.with_name(db.name + ".tmp")
    for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        leftover.unlink(missing_ok=True)
    config_path = OUT / f"build-n{n}.yaml"
    config_path.write_text(sources_yaml(feeds, tmp), encoding="utf-8")
    log(f"building {db.relative_to(ROOT)}: {n:,} articles in {slots:,} item slots of "
        f"{len(feeds)} feeds, {len(buckets)} windows of {args.batch_days} days "
        f"from {start:%Y-%m-%d}")

    # The pool first: fork before any database connection or progress thread exists.
    self0, children0 = (resource.getrusage(resource.RUSAGE_SELF),
                        resource.getrusage(resource.RUSAGE_CHILDREN))
    pool = multiprocessing.get_context("fork").Pool(args.workers)
    from crawler import config as config_module
    from crawler.types import CachingInfo
    from storage import open_storage

    config = config_module.load(str(config_path))
    store = open_storage(config.settings.database, config.settings.stories)
    parts, undo = time_parts()
    by_id = {f["id"]: f for f in feeds}
    store_s = wait_s = 0.0
    calls = stored_new = 0
    warnings: Counter[str] = Counter()
    try:
        store.sync_sources(config.sources, start)
        order = sorted(buckets)

        def submit(b: int) -> Any:
            now = (start + (b + 1) * window).isoformat()
            jobs = []
            for fid, xmls in sorted(buckets[b].items()):
                f = by_id[fid]
                head, tail = heads[fid]
                jobs.append((f["slug"], "http://127.0.0.1:8765" + f["path"], f["content_type"],
                             head + b"".join(xmls) + tail, now))
            return pool.map_async(_parse_job, jobs, chunksize=16)

        pending = [submit(b) for b in order[:args.lookahead]]
        columns = (TextColumn("[bold]storing"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("items  {task.fields[rate]} items/s"), TimeElapsedColumn(),
                   TimeRemainingColumn())
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("store", total=slots, rate="–")
            loop_started = time.perf_counter()
            for i, b in enumerate(order):
                t = time.perf_counter()
                results = pending.pop(0).get(timeout=3600)
                wait_s += time.perf_counter() - t
                if i + args.lookahead < len(order):
                    pending.append(submit(order[i + args.lookahead]))
                now = start + (b + 1) * window
                for name, articles, warned in results:
                    warnings.update(w.split(":")[0] for w in warned)
                    t = time.perf_counter()
                    result = store.record_success(
                        name, articles, now=now, next_check=now + timedelta(minutes=30),
                        status=200, caching=CachingInfo())
                    store_s += time.perf_counter() - t
                    calls += 1
                    stored_new += result.new
                    progress.update(task, advance=len(articles))
                done = progress.tasks[0].completed
                rate = done / (time.perf_counter() - loop_started)
                progress.update(task, rate=f"{rate:.0f}")
                if not console.is_terminal and (i + 1) % max(1, len(order) // 10) == 0:
                    log(f"stored {done:,.0f} of {slots:,} items ({rate:.0f} items/s)")
        with store.engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        undo()
        pool.terminate()
        pool.join()
        store.close()
    build_s = time.perf_counter() - started
    self1, children1 = (resource.getrusage(resource.RUSAGE_SELF),
                        resource.getrusage(resource.RUSAGE_CHILDREN))
    main_cpu = self1.ru_utime + self1.ru_stime - self0.ru_utime - self0.ru_stime
    parse_cpu = (children1.ru_utime + children1.ru_stime
                 - children0.ru_utime - children0.ru_stime)
    conn = sqlite3.connect(tmp)
    try:
        counts = {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                  for table in ("articles", "article_sources", "stories", "article_keys",
                                "sources")}
        low, high = conn.execute("SELECT min(published_at), max(published_at) FROM articles"
                                 ).fetchone()
        versions = conn.execute("SELECT version FROM schema_version").fetchall()
    finally:
        conn.close()
    tmp.rename(db)
    meta = {
        "complete": True, "articles_wanted": n, "articles": counts["articles"],
        "counts": counts, "published": [low, high], "schema_version": versions,
        "corpus": str(corpus.relative_to(ROOT)), "items_per_feed": items,
        "item_slots": slots, "links_stored": stored_new, "record_success_calls": calls,
        "batch_days": args.batch_days, "windows": len(buckets), "workers": args.workers,
        "build_s": round(build_s, 1), "store_s": round(store_s, 1),
        "wait_for_parse_s": round(wait_s, 1), "main_cpu_s": round(main_cpu, 1),
        "parse_workers_cpu_s": round(parse_cpu, 1),
        "store_parts_s": {k: round(v, 1) for k, v in parts.items()},
        "store_ms_per_link": round(1000 * store_s / max(stored_new, 1), 2),
        "parse_warnings": dict(warnings), "db_mb": round(db.stat().st_size / 2**20, 1),
        "code": code_identity(), "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    meta_path.write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    log(f"built {db.relative_to(ROOT)} in {build_s:.0f} s: {counts['articles']:,} articles, "
        f"{counts['article_sources']:,} links, {counts['stories']:,} stories, "
        f"{meta['db_mb']} MB; record_success {store_s:.0f} s "
        f"({meta['store_ms_per_link']} ms per item), waiting for the parse {wait_s:.0f} s")
    return db, meta


# --- the run's feeds.yaml ----------------------------------------------------------------

def vocabulary(kit_copy: Path) -> dict[str, list[str]]:
    sys.path.insert(0, str(kit_copy))
    try:
        import zhtext  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(kit_copy))
    return {"topics": list(zhtext.TOPICS), "countries": list(zhtext.COUNTRIES),
            "cities": list(zhtext.CITIES), "roles": list(zhtext.ROLES),
            "events": list(zhtext.EVENTS), "ministries": list(zhtext.MINISTRIES),
            "markets": list(zhtext.MARKET), "people": [p[0] for p in zhtext.FOREIGN_NAMES]}


def sample_candidates(db: Path) -> list[Any]:
    """One article in 20 (by id), as the output rules see it."""
    from crawler.types import Candidate

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT id, title, language, text_length, search_text FROM articles"
                            " WHERE id % 20 = 0").fetchall()
    finally:
        conn.close()
    epoch = datetime(2025, 1, 1, tzinfo=UTC)
    return [Candidate(id=i, story_id=None, title=title, author=None, tags=(), language=lang,
                      text_length=length, search_text=text or "", published=epoch, priority=0)
            for i, title, lang, length, text in rows]


def keyword_shares(db: Path, words: Sequence[str]) -> dict[str, float]:
    from crawler.filters import Selector
    from crawler.types import Output, Rule

    sample = sample_candidates(db)
    shares = {}
    for word in words:
        selector = Selector(Output(name="x", title="x", include=(Rule(keywords=(word,)),)))
        shares[word] = sum(selector(c) is not None for c in sample) / len(sample)
    return shares


def choose_keyword(shares: dict[str, float]) -> str:
    fitting = [w for w, s in shares.items() if 0.05 <= s <= 0.10]
    if not fitting:
        raise SystemExit("no vocabulary word matches 5-10 % of the articles")
    return min(fitting, key=lambda w: (abs(shares[w] - 0.075), w))


def outputs_yaml(keyword: str) -> str:
    return (
        "outputs:\n"
        "  - name: latest\n    title: Latest stories\n    limit: 50\n    collapse: story\n"
        "  - name: latest-articles\n    title: Latest articles\n    limit: 50\n"
        "    collapse: article\n"
        "  - name: filtered\n    title: One keyword\n    limit: 50\n    collapse: story\n"
        f"    include: [{json.dumps(keyword, ensure_ascii=False)}]\n    languages: [zh]\n")


def q_values(vocab: dict[str, list[str]]) -> list[str]:
    """Single words of the vocabulary, then topic + country pairs (both must be found)."""
    singles = [w for group in ("countries", "cities", "topics", "roles", "events", "people")
               for w in vocab[group]]
    singles = list(dict.fromkeys(singles))
    r = random.Random(f"{SEED}:q")
    pairs = [f"{t} {c}" for t in vocab["topics"] for c in vocab["countries"]]
    r.shuffle(pairs)
    values = singles + pairs[:max(0, Q_VALUES - len(singles))]
    r.shuffle(values)
    return values[:Q_VALUES]


# --- in process --------------------------------------------------------------------------

class Probe:
    """Counts what a render reads (the Storage methods select_items calls) and keeps the
    SQL statements run meanwhile."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.reset()
        self.capturing = False
        for name in ("output_candidates", "story_members", "output_items"):
            setattr(store, name, self._wrap(name, getattr(store, name)))
        from sqlalchemy import event

        event.listen(store.engine, "before_cursor_execute", self._statement)

    def reset(self) -> None:
        self.calls: Counter[str] = Counter()
        self.rows: Counter[str] = Counter()
        self.statements: list[tuple[str, Any]] = []

    def _wrap(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*a: Any, **k: Any) -> Any:
            found = method(*a, **k)
            self.calls[name] += 1
            self.rows[name] += len(found)
            return found
        return counted

    def _statement(self, _conn: Any, _cursor: Any, statement: str, parameters: Any,
                   _context: Any, _executemany: bool) -> None:
        if self.capturing:
            self.statements.append((statement, parameters))


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def explain(db: Path, statements: Sequence[tuple[str, Any]]) -> list[dict[str, Any]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    seen: dict[str, dict[str, Any]] = {}
    try:
        for statement, parameters in statements:
            if statement in seen or not statement.lstrip().upper().startswith("SELECT"):
                continue
            plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + statement,
                                                   parameters)]
            full = [p for p in plan if p.startswith("SCAN ") and " USING " not in p
                    and p != "SCAN CONSTANT ROW"]
            seen[statement] = {"sql": " ".join(statement.split()), "plan": plan,
                               "full_scans": full,
                               "temp_btree": [p for p in plan if "TEMP B-TREE" in p]}
    finally:
        conn.close()
    return list(seen.values())


def vm_steps(db: Path, statement: str, parameters: Any) -> tuple[int, float, int]:
    """(SQLite VM instructions, rounded to 1,000; ms; rows) of one run of a statement."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    ticks = [0]

    def tick() -> int:
        ticks[0] += 1
        return 0

    try:
        conn.set_progress_handler(tick, 1000)
        t = time.perf_counter()
        rows = conn.execute(statement, parameters).fetchall()
        return ticks[0] * 1000, 1000 * (time.perf_counter() - t), len(rows)
    finally:
        conn.close()


def in_process(db: Path, feeds_yaml: Path, renders: int, qs: Sequence[str]) -> dict[str, Any]:
    import warnings

    from crawler import config as config_module
    from crawler.server import make_app
    from storage import open_storage

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    config = config_module.load(str(feeds_yaml))
    store = open_storage(config.settings.database, config.settings.stories)
    probe = Probe(store)
    result: dict[str, Any] = {"renders": {}, "plans": {}, "depth": [], "q": {},
                              "narrowed": {}}
    try:
        def fresh() -> Any:
            """A client of a new app: its selection and rendering caches are empty (an ?_=
            buster is a new rendering of a cached selection since 589161f, not a render)."""
            return TestClient(make_app(lambda: config, store), base_url="http://127.0.0.1")

        client = fresh()
        for output in OUTPUTS:
            for fmt in FORMATS:
                path = f"/feeds/{output}.{fmt}"
                client.get(path)  # first use: imports, page cache
                times, reads = [], []
                for _ in range(renders):
                    probe.reset()
                    uncached = fresh()
                    t = time.perf_counter()
                    response = uncached.get(path)
                    times.append(1000 * (time.perf_counter() - t))
                    reads.append((dict(probe.calls), dict(probe.rows)))
                    if response.status_code != 200:
                        raise SystemExit(f"{path}: {response.status_code} {response.text}")
                calls, rows = reads[-1]
                items = (response.json()["items"] if fmt == "json"
                         else response.text.count("<item>"))
                result["renders"][f"{output}.{fmt}"] = {
                    "ms_p50": statistics.median(times), "ms_p90": pct(times, 90),
                    "ms_min": min(times), "bytes": len(response.content),
                    "items": len(items) if isinstance(items, list) else items,
                    "candidate_pages": calls.get("output_candidates", 0),
                    "candidate_rows": rows.get("output_candidates", 0),
                    "story_member_rows": rows.get("story_members", 0),
                    "items_read": rows.get("output_items", 0)}
            # Every statement of one uncached render, and of a request the cache answers.
            probe.reset()
            probe.capturing = True
            fresh().get(f"/feeds/{output}.xml")
            render_sql = list(probe.statements)
            probe.reset()
            client.get(f"/feeds/{output}.xml")
            cached_sql = list(probe.statements)
            probe.capturing = False
            result["plans"][output] = {"render": explain(db, render_sql),
                                       "cached": explain(db, cached_sql)}
        # A candidate page at depth 0, 5,000 and 50,000 (the keyset cursor of select_items).
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        total = conn.execute("SELECT count(*) FROM articles").fetchone()[0]
        for depth in (0, 5000, 50000):
            if depth >= total:
                continue
            after = None
            if depth:
                published, article_id = conn.execute(
                    "SELECT published_at, id FROM articles ORDER BY published_at DESC, id DESC"
                    " LIMIT 1 OFFSET ?", (depth - 1,)).fetchone()
                after = (datetime.fromisoformat(published).replace(tzinfo=UTC), article_id)
            times = []
            for i in range(7):
                probe.reset()
                probe.capturing = i == 0
                t = time.perf_counter()
                page = store.output_candidates(None, since=None, min_length=0, after=after,
                                               limit=200)
                times.append(1000 * (time.perf_counter() - t))
                if i == 0:
                    statement, parameters = next(s for s in probe.statements
                                                 if "FROM articles" in s[0])
                probe.capturing = False
            steps, raw_ms, raw_rows = vm_steps(db, statement, parameters)
            result["depth"].append({"depth": depth, "rows": len(page),
                                    "ms_p50": statistics.median(times), "vm_steps": steps,
                                    "raw_sqlite_ms": raw_ms, "raw_rows": raw_rows})
        conn.close()
        # ?tag= / ?source= narrowings: the candidate query then names sources
        for output in ("latest", "filtered"):
            for narrowing in NARROWINGS:
                times, rows, pages = [], 0, 0
                for i in range(3):
                    probe.reset()
                    probe.capturing = i == 0
                    uncached = fresh()
                    t = time.perf_counter()
                    response = uncached.get(f"/feeds/{output}.xml?{narrowing}")
                    times.append(1000 * (time.perf_counter() - t))
                    rows = probe.rows.get("output_candidates", 0)
                    pages = probe.calls.get("output_candidates", 0)
                    if i == 0:
                        statements = list(probe.statements)
                    probe.capturing = False
                page_sql = [s for s in statements if "FROM articles" in s[0]
                            and "article_sources.article_id" in s[0] and "LIMIT" in s[0]]
                steps = vm_steps(db, *page_sql[-1]) if page_sql else (0, 0.0, 0)
                result["narrowed"][f"{output}?{narrowing}"] = {
                    "status": response.status_code, "items": response.text.count("<item>"),
                    "ms_p50": statistics.median(times), "ms_max": max(times),
                    "candidate_rows": rows, "candidate_pages": pages,
                    "last_page_vm_steps": steps[0], "last_page_raw_ms": steps[1],
                    "plans": explain(db, statements)}
        # ?q= renders (what the wrk q runs ask), uncached: rows read and time
        for output in OUTPUTS:
            scanned, times = [], []
            for q in qs[::4]:
                probe.reset()
                uncached = fresh()
                t = time.perf_counter()
                uncached.get(f"/feeds/{output}.xml?q={quote(q)}")
                times.append(1000 * (time.perf_counter() - t))
                scanned.append(probe.rows.get("output_candidates", 0))
            result["q"][output] = {
                "values": len(scanned), "rows_p50": statistics.median(scanned),
                "rows_p90": pct(scanned, 90), "rows_max": max(scanned),
                "at_scan_limit": sum(s >= 5000 for s in scanned),
                "ms_p50": statistics.median(times), "ms_p90": pct(times, 90),
                "ms_max": max(times)}
    finally:
        store.close()
    return result


# --- the machine -------------------------------------------------------------------------

def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def busy_jiffies() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields[:8]) - idle, sum(fields[:8])


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busy_cores(seconds: float) -> float:
    b0, _ = busy_jiffies()
    time.sleep(seconds)
    b1, _ = busy_jiffies()
    return (b1 - b0) / os.sysconf("SC_CLK_TCK") / seconds


def wait_quiet(max_wait: float) -> dict[str, Any]:
    started = time.time()
    first = loadavg()
    while True:
        la, busy = loadavg(), busy_cores(3.0)
        if la <= 1.0 or busy < 0.25:
            return {"loadavg_first": first, "loadavg": la, "busy_cores_3s": round(busy, 2),
                    "waited_s": round(time.time() - started)}
        if time.time() - started > max_wait:
            log(f"[yellow]still busy after {max_wait:.0f} s (load {la}, {busy:.2f} cores "
                "busy): measuring anyway")
            return {"loadavg_first": first, "loadavg": la, "busy_cores_3s": round(busy, 2),
                    "waited_s": round(time.time() - started), "gave_up": True}
        time.sleep(5)


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                  if line.startswith("model name")), "?")
    mem = next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal"))
    wrk = subprocess.run(["/usr/bin/wrk", "--version"], capture_output=True, text=True)
    return {"nproc": os.cpu_count(), "cpu": model, "mem_kb": int(mem),
            "python": sys.version.split()[0], "sqlite": sqlite3.sqlite_version,
            "kernel": os.uname().release,
            "wrk": (wrk.stdout + wrk.stderr).split("Copyright")[0].strip()}


def code_identity() -> dict[str, Any]:
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True,
                              timeout=60).stdout.strip()

    dirty = [line for line in git("status", "--porcelain", "--", "crawler", "storage")
             .splitlines() if line.strip()]
    digest = hashlib.sha256()
    for path in sorted([*(ROOT / "crawler").rglob("*.py"), *(ROOT / "storage").rglob("*.py")]):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return {"commit": git("rev-parse", "--short", "HEAD"), "dirty_files": len(dirty),
            "sources_sha256": digest.hexdigest()[:16]}


# --- the server and wrk --------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str, headers: dict[str, str] | None = None,
        timeout: float = 60) -> tuple[int, dict[str, str], bytes, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        t = time.perf_counter()
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        return (response.status, {k.lower(): v for k, v in response.getheaders()}, body,
                1000 * (time.perf_counter() - t))
    finally:
        conn.close()


@contextlib.contextmanager
def server(feeds_yaml: Path, logs: Path) -> Iterator[tuple[int, int]]:
    port = free_port()
    logs.mkdir(parents=True, exist_ok=True)
    log_file = (logs / f"server-{port}.log").open("wb")
    proc = subprocess.Popen([str(CRAWLER), "--config", str(feeds_yaml), "serve", "--host",
                             "127.0.0.1", "--port", str(port)],
                            stdout=log_file, stderr=subprocess.STDOUT, cwd=OUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"the server exited with {proc.returncode}; see {log_file.name}")
            with contextlib.suppress(OSError):
                if get(port, "/healthz", timeout=5)[0] == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit("the server did not answer /healthz within 60 s")
            time.sleep(0.2)
        log(f"server up: PID {proc.pid}, http://127.0.0.1:{port}/")
        yield port, proc.pid
    finally:
        stop_process(proc, grace=30)
        log_file.close()
        log(f"server PID {proc.pid} stopped (exit {proc.returncode})")


REPORT_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,'
    .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,'
    .. '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""

CYCLE_LUA = """
local paths = {%s}
local n = #paths
local nthreads = 0
local counter = 0
setup = function(thread)
  thread:set("tid", nthreads)
  nthreads = nthreads + 1
end
init = function(args)
  local threads = tonumber(args[1]) or 1
  counter = math.floor((tid or 0) * n / threads)
end
request = function()
  counter = counter + 1
  return wrk.format(nil, paths[(counter %% n) + 1])
end
"""

BUST_LUA = """
local base = "%s"
local counter = 0
setup = function(thread)
  thread:set("tid", (tid_next or 0))
  tid_next = (tid_next or 0) + 1
end
request = function()
  counter = counter + 1
  return wrk.format(nil, base .. "?_=" .. (tid or 0) .. "-" .. counter)
end
"""


def lua_script(name: str, body: str) -> Path:
    path = OUT / "lua" / f"{name}.lua"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body + REPORT_LUA, encoding="utf-8")
    return path


def wrk(port: int, path: str, args: argparse.Namespace, *, seconds: float,
        headers: dict[str, str] | None = None, script: Path | None = None,
        server_pid: int, logs: Path, label: str) -> dict[str, Any]:
    cmd = ["/usr/bin/wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds:g}s",
           "--latency", "--timeout", "60s",
           "-s", str(script or lua_script("report", ""))]
    for key, value in (headers or {}).items():
        cmd += ["-H", f"{key}: {value}"]
    cmd += [f"http://127.0.0.1:{port}{path}", "--", str(args.threads)]
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    server0, (busy0, _) = proc_cpu_s(server_pid), busy_jiffies()
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    wall = time.perf_counter() - t
    server1, (busy1, _) = proc_cpu_s(server_pid), busy_jiffies()
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    (logs / f"wrk-{label}.log").write_text(" ".join(cmd) + "\n" + done.stdout + done.stderr)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed ({done.returncode}): {done.stderr[-500:]}")
    found = json.loads(line.removeprefix("WRKJSON "))
    wrk_cpu = (after_children.ru_utime + after_children.ru_stime
               - before_children.ru_utime - before_children.ru_stime)
    busy = (busy1 - busy0) / os.sysconf("SC_CLK_TCK")
    found.update({
        "rps": found["requests"] / (found["duration_us"] / 1e6),
        "p50_ms": found["p50_us"] / 1000, "p99_ms": found["p99_us"] / 1000,
        "server_cpu_s": round(server1 - server0, 2), "wrk_cpu_s": round(wrk_cpu, 2),
        "other_cpu_s": round(max(0.0, busy - (server1 - server0) - wrk_cpu), 2),
        "wall_s": round(wall, 2), "command": " ".join(cmd[:-2])})
    return found


def over_http(feeds_yaml: Path, args: argparse.Namespace, qs: Sequence[str],
              logs: Path) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    one_off: dict[str, Any] = {}
    q_paths = {}
    with server(feeds_yaml, logs) as (port, pid):
        for output in OUTPUTS:
            for fmt in FORMATS:
                path = f"/feeds/{output}.{fmt}"
                get(port, path)
                times = [get(port, f"{path}?_=once-{i}")[3] for i in range(args.renders)]
                one_off[f"{output}.{fmt}"] = {"ms_p50": statistics.median(times),
                                              "ms_p90": pct(times, 90), "ms_min": min(times)}
                q_paths[f"{output}.{fmt}"] = lua_script(
                    f"q-{output}-{fmt}",
                    CYCLE_LUA % ", ".join(json.dumps(f"{path}?q={quote(q)}") for q in qs))
        log("one-off uncached requests: " + ", ".join(
            f"{k} {v['ms_p50']:.0f} ms" for k, v in one_off.items()))
        plan = []
        for output in OUTPUTS:
            for fmt in FORMATS:
                path = f"/feeds/{output}.{fmt}"
                plan += [(output, fmt, "200", path, {}, None),
                         (output, fmt, "200 gzip", path, {"Accept-Encoding": "gzip"}, None),
                         (output, fmt, "304", path, "etag", None)]
        for output in OUTPUTS:
            for fmt in FORMATS:
                path = f"/feeds/{output}.{fmt}"
                plan += [(output, fmt, "uncached", path, {},
                          lua_script(f"bust-{output}-{fmt}", BUST_LUA % path)),
                         (output, fmt, "uncached ?q=", path, {}, q_paths[f"{output}.{fmt}"])]
        short = {"200": "200", "200 gzip": "gzip", "304": "304", "uncached": "uncached",
                 "uncached ?q=": "q"}
        plan = [p for p in plan if short[p[2]] in args.kinds.split(",")]
        for number, (output, fmt, kind, path, headers, script) in enumerate(plan, 1):
            if headers == "etag":
                status, got, _, _ = get(port, path)
                headers = {"If-None-Match": got["etag"]}
            status, got, body, _ = get(port, path, headers)
            expected = 304 if kind == "304" else 200
            if status != expected:
                raise SystemExit(f"{path} {headers}: {status}, expected {expected}")
            label = f"{output}-{fmt}-{kind.replace(' ', '').replace('?', '')}"
            quiet = wait_quiet(args.quiet_wait)
            wrk(port, path, args, seconds=args.warmup, headers=headers, script=script,
                server_pid=pid, logs=logs, label=label + "-warmup")
            found = wrk(port, path, args, seconds=args.duration, headers=headers,
                        script=script, server_pid=pid, logs=logs, label=label)
            found.update({"output": output, "format": fmt, "kind": kind, "quiet": quiet,
                          "http_status": status, "body_bytes": len(body),
                          "content_encoding": got.get("content-encoding", ""),
                          "headers": headers})
            runs.append(found)
            log(f"[{number}/{len(plan)}] {output}.{fmt} {kind}: {found['rps']:.0f} req/s, "
                f"p50 {found['p50_ms']:.1f} ms, p99 {found['p99_ms']:.1f} ms "
                f"(load {quiet['loadavg']}, others {found['other_cpu_s']} CPU-s)")
    return {"one_off": one_off, "runs": runs}


# --- the report ----------------------------------------------------------------------------

def markdown(res: dict[str, Any]) -> str:
    m, code, args = res["machine"], res["code"], res["args"]
    dirty = " with uncommitted changes" if code["dirty_files"] else ""
    lines = [f"## Serving: `{code['commit']}`{dirty}, {res['started']}", ""]
    lines += ["| | |", "|---|---|",
              f"| machine | {m['nproc']} CPUs, `{m['cpu']}`, "
              f"{m['mem_kb'] / 2**20:.1f} GiB RAM, Linux {m['kernel']} |",
              f"| software | Python {m['python']}, SQLite {m['sqlite']}, {m['wrk']} |",
              f"| command | `{res['command']}` |",
              f"| code | `{code['commit']}`{dirty} (crawler/ + storage/ sha256 "
              f"`{code['sources_sha256']}`; at the end `{res['code_end']['sources_sha256']}`)"
              " |",
              f"| wrk | `-t{args['threads']} -c{args['connections']} -d{args['duration']}s "
              f"--latency`, after a {args['warmup']} s warm-up |", ""]
    lines += ["| database | articles | links | stories | published | DB MB | build |",
              "|---|---|---|---|---|---|---|"]
    for meta in res["databases"].values():
        c = meta["counts"]
        lines.append(
            f"| `{Path(meta['db']).name}` | {c['articles']:,} | {c['article_sources']:,} | "
            f"{c['stories']:,} | {meta['published'][0][:10]} – {meta['published'][1][:10]} | "
            f"{meta['db_mb']:,.0f} | {meta['build_s']:.0f} s (record_success "
            f"{meta['store_s']:.0f} s, {meta['store_ms_per_link']} ms/item) |")
    kw = res["keyword"]
    lines += ["", f"`filtered` keeps `{kw['word']}`: {100 * kw['share']:.1f} % of a 1-in-20 "
              "sample (title or text).", ""]
    lines += ["### Over HTTP (wrk)", "",
              "| output | fmt | request | req/s | p50 ms | p99 ms | body KB | load before "
              "| others CPU-s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in res["http"]["runs"]:
        errors = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
        lines.append(
            f"| {r['output']} | {r['format']} | {r['kind']} | {r['rps']:,.1f} | "
            + (f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f}" if r["requests"] else
               "none done | in the run") + f" | {r['body_bytes'] / 1024:.0f} | "
            f"{r['quiet']['loadavg']} | {r['other_cpu_s']}"
            + (f" ({errors} errors)" if errors else "") + " |")
    lines += ["", "One-off uncached requests, one at a time (ms, median / p90 of "
              f"{args['renders']}): " + "; ".join(
                  f"{k} {v['ms_p50']:.0f} / {v['ms_p90']:.0f}"
                  for k, v in res["http"]["one_off"].items()), ""]
    lines += ["### In process: uncached renders", "",
              "| database | output.fmt | ms p50 | ms p90 | candidate rows (pages) | story "
              "members | items | body KB |", "|---|---|---|---|---|---|---|---|"]
    for size, found in res["in_process"].items():
        for key, r in found["renders"].items():
            lines.append(f"| {size} | {key} | {r['ms_p50']:.1f} | {r['ms_p90']:.1f} | "
                         f"{r['candidate_rows']} ({r['candidate_pages']}) | "
                         f"{r['story_member_rows']} | {r['items']} | {r['bytes'] / 1024:.0f} |")
    lines += ["", "| database | output | ?q= values | candidate rows p50 / p90 / max | at "
              "the 5,000 bound | ms p50 / p90 / max |", "|---|---|---|---|---|---|"]
    for size, found in res["in_process"].items():
        for output, q in found["q"].items():
            lines.append(f"| {size} | {output} | {q['values']} | {q['rows_p50']:.0f} / "
                         f"{q['rows_p90']} / {q['rows_max']} | {q['at_scan_limit']} | "
                         f"{q['ms_p50']:.0f} / {q['ms_p90']:.0f} / {q['ms_max']:.0f} |")
    lines += ["", "| database | candidate page at depth | rows | ms (Storage) | SQLite VM "
              "steps |", "|---|---|---|---|---|"]
    for size, found in res["in_process"].items():
        for d in found["depth"]:
            lines.append(f"| {size} | {d['depth']:,} | {d['rows']} | {d['ms_p50']:.1f} | "
                         f"{d['vm_steps']:,} |")
    lines += ["", "| database | narrowed request | ms p50 / max | candidate rows (pages) | "
              "SQLite VM steps, last page | items |", "|---|---|---|---|---|---|"]
    for size, found in res["in_process"].items():
        for key, r in found["narrowed"].items():
            lines.append(f"| {size} | `{key}` | {r['ms_p50']:.0f} / {r['ms_max']:.0f} | "
                         f"{r['candidate_rows']} ({r['candidate_pages']}) | "
                         f"{r['last_page_vm_steps']:,} | {r['items']} |")
    lines += ["", "### Query plans (EXPLAIN QUERY PLAN, every SELECT of one render)", ""]
    main = res["in_process"].get(str(args["articles"]), {"plans": {}, "narrowed": {}})
    narrowed = {k: {"render": v["plans"], "cached": []} for k, v in main["narrowed"].items()}
    for output, plans in {**main["plans"], **narrowed}.items():
        for phase in ("render", "cached"):
            for p in plans[phase]:
                flag = ""
                if p["full_scans"] or p["temp_btree"]:
                    flag = " **" + "; ".join(p["full_scans"] + p["temp_btree"]) + "**"
                lines.append(f"* {output} ({phase}): `{p['sql'][:90]}…` → "
                             f"{' / '.join(p['plan'])}{flag}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--compare", type=int, default=10_000,
                        help="a second database size for in-process figures (0: none)")
    parser.add_argument("--kit", type=Path, default=DEFAULT_KIT)
    parser.add_argument("--batch-days", type=int, default=7,
                        help="one record_success per source and this many days")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--lookahead", type=int, default=2,
                        help="windows parsed ahead of the one being stored")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--no-wrk", action="store_true")
    parser.add_argument("--renders", type=int, default=20,
                        help="uncached renders timed per output and format")
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--quiet-wait", type=float, default=180)
    parser.add_argument("--kinds", default="200,gzip,304,uncached,q",
                        help="wrk runs to make: 200, gzip, 304, uncached (?_=), q (?q=)")
    parser.add_argument("--skip-in-process", action="store_true")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%S")
    logs = OUT / "logs" / stamp
    logs.mkdir(parents=True, exist_ok=True)
    code = code_identity()
    sizes = [args.articles] + ([args.compare] if args.compare else [])
    databases = {}
    for n in sizes:
        db, meta = build(n, args)
        databases[str(n)] = {**meta, "db": str(db)}
    if args.build_only:
        return 0

    kit_copy = copy_kit(args.kit)
    vocab = vocabulary(kit_copy)
    main_db = Path(databases[str(args.articles)]["db"])
    words = [w for group in ("topics", "countries", "cities", "roles", "events") for w in
             vocab[group]]
    shares = keyword_shares(main_db, list(dict.fromkeys(words)))
    keyword = choose_keyword(shares)
    log(f"filtered: include [{keyword}] ({100 * shares[keyword]:.1f} % of the sample)")
    qs = q_values(vocab)
    yamls = {}
    for n in sizes:
        meta = databases[str(n)]
        feeds = read_jsonl(ROOT / meta["corpus"] / "feeds.jsonl")
        path = OUT / f"feeds-{Path(meta['db']).stem}.yaml"
        path.write_text(sources_yaml(feeds, Path(meta["db"]), outputs_yaml(keyword)),
                        encoding="utf-8")
        yamls[str(n)] = path
    result: dict[str, Any] = {
        "started": started.strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
        "code": code, "args": {k: str(v) if isinstance(v, Path) else v
                               for k, v in vars(args).items()},
        "command": ".venv/bin/python bench/serve.py " + " ".join(sys.argv[1:] if argv is None
                                                                 else argv),
        "databases": databases,
        "keyword": {"word": keyword, "share": shares[keyword],
                    "shares": {w: round(s, 4) for w, s in shares.items()}},
        "feeds_yaml": {k: str(v) for k, v in yamls.items()}, "q_values": qs,
        "in_process": {}}
    for n in [] if args.skip_in_process else sizes:
        log(f"in process, {n:,} articles: uncached renders, rows read, query plans")
        result["in_process"][str(n)] = in_process(Path(databases[str(n)]["db"]),
                                                  yamls[str(n)], args.renders, qs)
        for key, r in result["in_process"][str(n)]["renders"].items():
            log(f"  {key}: {r['ms_p50']:.1f} ms, {r['candidate_rows']} candidate rows "
                f"in {r['candidate_pages']} pages, {r['items']} items")
    if not args.no_wrk:
        result["http"] = over_http(yamls[str(args.articles)], args, qs, logs)
    else:
        result["http"] = {"one_off": {}, "runs": []}
    result["code_end"] = code_identity()
    if result["code_end"] != code:
        log("[yellow]crawler/ or storage/ changed during the run")
    write_results(OUT, stamp, result, markdown(result))
    return 0


def stop_process(proc: subprocess.Popen[Any], grace: float) -> None:
    """SIGTERM to a process we started, by its PID; SIGKILL after ``grace`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def write_results(out: Path, stamp: str, result: dict[str, Any], report: str) -> None:
    """results-<stamp>.json (everything) and .md (the report, printed too)."""
    (out / f"results-{stamp}.json").write_text(json.dumps(result, indent=1, ensure_ascii=False,
                                                          default=str) + "\n")
    (out / f"results-{stamp}.md").write_text(report, encoding="utf-8")
    print(report)
    log(f"written {(out / f'results-{stamp}.json').relative_to(ROOT)} and .md")


if __name__ == "__main__":
    sys.exit(main())
