#!/usr/bin/env python3
"""Story clustering at scale, scored against the bench kit's ground truth.

Run by hand (not a test), from the repository root::

    .venv/bin/python bench/story_corpus.py --feeds 1000 --items 30     # the real run
    .venv/bin/python bench/story_corpus.py --feeds 50 --no-append      # smoke run

1. The shared kit (``../shared/bench``, or ``--kit``) is used the way ``bench/ingest.py``
   uses it, through that file's own functions (imported as a module, not copied): its
   scripts are copied to ``bench/out/kit/``, the peers' venv ``bench/out/venv`` (the corpus
   generator needs zhconv for the Traditional script) is created if missing, and the
   corpus is generated under ``bench/out/corpus/n<feeds>-s<seed>-i<items>``. Nothing is
   written into the kit's folder.
2. The kit's ``feedserver.py`` serves the corpus on 127.0.0.1 (a free port; bounded by
   ``--max-seconds`` and ``--idle-exit``; stopped by its PID). The kit's feeds.yaml for
   that port is converted into ours (``ingest.convert_feeds_yaml``: names = the slugs,
   a ``settings:`` block with a fresh SQLite file under ``bench/out/story-corpus/<run>/``)
   and ``.venv/bin/crawler --config <converted> crawl --json`` crawls it once; its wall
   time is recorded (and the CPU of its whole process tree: this process is a child
   subreaper, so the orphaned forkserver workers are reaped and counted here).
3. Every ground-truth item of ``items.jsonl`` is mapped to the stored article: source =
   the feed's slug; item = ``article_sources.item_key`` (``guid:<guid>``, else
   ``url:<canonical link>``), else ``article_sources.link``, else the article's
   ``canonical_url`` within that source. Items of feeds our crawl recorded an error for
   (``fetch_state.last_error``) are left out and counted.
4. Pairs of mapped items are scored; counted per group and per story, never enumerated
   over all items. The kit's "story" is the generator's ``story`` key: one article for an
   exact-duplicate group (``x<g>``), the variants of one near-duplicate cluster
   (``n<c>``), or a unique article; no story key is shared beyond its group.

   * exact pairs (same exact group): stored as one article, and in one story;
   * near pairs (same near group), same script / cross-script: in one story (recall);
   * precision: of the item pairs our stories put together, those of one kit story;
     also per article (each article once, its items' kit story);
   * examples: false merges (an article joined a story through an article of another kit
     story: how, score, the two titles, the signals recomputed) and missed near pairs.
5. A table is printed, and (unless ``--no-append``) a section "Story clustering on the
   bench corpus (ground truth)" is appended to ``bench/RESULTS.md``; the raw figures go to
   ``bench/out/story-corpus/<run>/summary.json``.

Bounded: the corpus is finite, every wait has a deadline, the crawl has ``--crawl-timeout``
(its process group is killed after it), the server has a lifetime, an idle exit, and is
stopped by its PID. Only 127.0.0.1 is used. While ``bench/stories.py`` runs (another
benchmark), the crawl of more than ``--quiet-feeds`` feeds waits for it, polling every
60 s, for ``--wait-other`` seconds at most, then runs anyway and says so.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import random
import resource
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"
RESULTS = BENCH / "RESULTS.md"
SECTION = "Story clustering on the bench corpus (ground truth)"
OTHER_BENCH = "bench/stories.py"

sys.path.insert(0, str(REPO))

from crawler.normalize import canonical_url  # noqa: E402
from crawler.similarity import copy_similarity, relatedness  # noqa: E402
from crawler.types import Fingerprint, StoryRules  # noqa: E402


def log(*parts: object) -> None:
    print(time.strftime("%H:%M:%S"), "[story_corpus]", *parts, file=sys.stderr, flush=True)


def load_ingest() -> ModuleType:
    """bench/ingest.py as a module: its kit, venv, corpus and feeds.yaml helpers."""
    spec = importlib.util.spec_from_file_location("bench_ingest", BENCH / "ingest.py")
    if spec is None or spec.loader is None:
        raise SystemExit("cannot load bench/ingest.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


ingest = load_ingest()


def c2(n: int) -> int:
    return n * (n - 1) // 2


def ratio(num: int, den: int) -> float | None:
    return num / den if den else None


# --------------------------------------------------------------------------- processes


def other_bench_running() -> list[str]:
    done = subprocess.run(["pgrep", "-f", OTHER_BENCH], capture_output=True, text=True,
                          timeout=30)
    return done.stdout.split()


def wait_other_bench(max_wait: float, poll: float = 60.0) -> dict[str, Any]:
    """Wait (bounded) while bench/stories.py runs: the full crawl is CPU-heavy."""
    started = time.monotonic()
    pids = other_bench_running()
    if not pids:
        return {"waited_s": 0.0, "still_running": False}
    log(f"{OTHER_BENCH} is running (pids {' '.join(pids)}); waiting up to {max_wait:g} s")
    while pids and time.monotonic() - started + poll <= max_wait:
        time.sleep(poll)
        pids = other_bench_running()
        log(f"{OTHER_BENCH}: {'still running' if pids else 'done'} after "
            f"{time.monotonic() - started:.0f} s")
    if pids:
        log(f"{OTHER_BENCH} still runs after {time.monotonic() - started:.0f} s: running anyway")
    return {"waited_s": round(time.monotonic() - started, 1), "still_running": bool(pids)}


@contextlib.contextmanager
def feed_server(py: Path, kit: Path, corpus: Path, rundir: Path, max_seconds: float,
                idle_exit: float) -> Iterator[dict[str, Any]]:
    """The kit's feedserver.py on 127.0.0.1, a free port; stopped by its PID on exit."""
    ready_file, pid_file = rundir / "server-ready.json", rundir / "server.pid"
    for stale in (ready_file, pid_file):
        stale.unlink(missing_ok=True)
    cmd = [str(py), str(kit / "feedserver.py"), "--corpus", str(corpus), "--host", "127.0.0.1",
           "--port", "0", "--max-seconds", f"{max_seconds:g}", "--idle-exit", f"{idle_exit:g}",
           "--ready-file", str(ready_file), "--pid-file", str(pid_file)]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    with open(rundir / "server.log", "ab") as log_fh:
        proc = subprocess.Popen(cmd, stdout=log_fh, stderr=subprocess.STDOUT, env=env,
                                cwd=str(kit), start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not ready_file.exists():
            if proc.poll() is not None:
                raise SystemExit(f"feedserver exited early (rc={proc.returncode}); see "
                                 f"{ingest.rel(rundir / 'server.log')}")
            if time.monotonic() > deadline:
                raise SystemExit("feedserver did not become ready within 300 s")
            time.sleep(0.05)
        ready = json.loads(ready_file.read_text())
        if not str(ready.get("base_url", "")).startswith("http://127.0.0.1:"):
            raise SystemExit(f"feedserver is not on 127.0.0.1: {ready}")
        ready["pid"] = proc.pid
        log(f"feed server pid {proc.pid} at {ready['base_url']} ({ready.get('feeds')} feeds)")
        yield ready
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)
        log(f"feed server pid {proc.pid} stopped (rc={proc.returncode})")
        ingest._stop_server_pid(pid_file)  # only if it is still a feedserver.py


def _reap_orphans(exclude: set[int], deadline: float) -> None:
    """As the subreaper, wait for the crawl's orphans (the forkserver and its workers);
    bounded: what is left at the deadline is killed by PID, then waited for."""
    while True:
        pids = [p for p in ingest._descendants(os.getpid()) if p not in exclude]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        if time.monotonic() > deadline:
            for pid in pids:
                log(f"killing leftover process {pid} of the crawl")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
        time.sleep(0.05)


def run_crawl(crawler: Path, config: Path, rundir: Path, timeout: float,
              server_pid: int) -> dict[str, Any]:
    """`crawler --config <config> crawl --json`, once; wall time, tree CPU, its JSON line."""
    subreaper = ingest._become_subreaper()
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    stdout_path, stderr_path = rundir / "crawl.stdout", rundir / "crawl.stderr"
    cmd = [str(crawler), "--config", str(config), "crawl", "--json"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy_before = ingest.busy_cpu_s()
    timed_out = False
    with open(stdout_path, "wb") as out_fh, open(stderr_path, "wb") as err_fh:
        t0 = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=out_fh, stderr=err_fh, env=env, cwd=str(rundir),
                                 start_new_session=True)
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
        wall = time.perf_counter() - t0
    _reap_orphans({server_pid}, time.monotonic() + 30)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy = ingest.busy_cpu_s() - busy_before
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    stdout_text = stdout_path.read_text(encoding="utf-8", errors="replace")
    stderr_text = stderr_path.read_text(encoding="utf-8", errors="replace")
    line = ingest._last_json(stdout_text) or {}
    if timed_out or child.returncode not in (0, 1) or not line:
        sys.stderr.write(stderr_text[-4000:])
        raise SystemExit(f"the crawl failed (rc={child.returncode}, timed out: {timed_out})")
    return {"wall_s": round(wall, 2), "tree_cpu_s": round(cpu, 2) if subreaper else None,
            "other_cpu_s": round(max(0.0, busy - cpu), 1), "rc": child.returncode,
            "result": line, "stderr_lines": len(stderr_text.splitlines()),
            "tracebacks": stderr_text.count("Traceback (most recent call last)"),
            "command": " ".join(shlex.quote(x) for x in [
                ".venv/bin/crawler", "--config", ingest.rel(config), "crawl", "--json"])}


# --------------------------------------------------------------------------- mapping


@dataclass
class Stored:
    id: int
    story: int
    title: str
    published: datetime
    join: dict[str, Any]
    uid: str
    fingerprint: Fingerprint | None
    canonical: str | None
    content_hash: str


@dataclass
class Item:
    """A ground-truth item mapped to its stored article."""

    idx: int
    feed: int
    truth: str  #: the kit's story key
    kind: str
    group: str | None
    script: str
    title: str
    article: int
    story: int
    fulltext: bool


def _utc(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_db(db: Path) -> dict[str, Any]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        sources = {name: sid for sid, name in con.execute("SELECT id, name FROM sources")}
        errors = {sid: err for sid, err in con.execute(
            "SELECT source_id, last_error FROM fetch_state WHERE last_error IS NOT NULL")}
        fetched = {sid for (sid,) in con.execute("SELECT source_id FROM fetch_state")}
        by_key: dict[tuple[int, str], int] = {}
        by_link: dict[tuple[int, str], int] = {}
        for sid, aid, key, link in con.execute(
                "SELECT source_id, article_id, item_key, link FROM article_sources"):
            by_key[(sid, key)] = aid
            if link:
                by_link.setdefault((sid, link), aid)
        by_canon: dict[tuple[int, str], int] = {}
        for sid, aid, canon in con.execute(
                "SELECT s.source_id, a.id, a.canonical_url FROM article_sources s "
                "JOIN articles a ON a.id = s.article_id WHERE a.canonical_url IS NOT NULL"):
            by_canon.setdefault((sid, canon), aid)
        articles: dict[int, Stored] = {}
        for row in con.execute(
                "SELECT id, story_id, title, published_at, story_join, uid, signature, "
                "shingles, fp_title, fp_lead, fp_names, canonical_url, content_hash "
                "FROM articles"):
            fp = None if row[6] is None else Fingerprint(
                signature=bytes(row[6]), shingles=row[7], title=row[8], lead=row[9],
                names=tuple(json.loads(row[10])))
            articles[row[0]] = Stored(row[0], row[1] if row[1] is not None else -row[0], row[2],
                                      _utc(row[3]), json.loads(row[4] or "{}"), row[5], fp,
                                      row[11], row[12])
        stories = con.execute("SELECT count(*) FROM stories").fetchone()[0]
    finally:
        con.close()
    return {"sources": sources, "errors": errors, "fetched": fetched, "by_key": by_key,
            "by_link": by_link, "by_canon": by_canon, "articles": articles, "stories": stories}


def map_items(truth: list[dict[str, Any]], feeds: dict[int, dict[str, Any]],
              db: dict[str, Any]) -> tuple[list[Item], dict[str, Any]]:
    sources, errors = db["sources"], db["errors"]
    methods: Counter[str] = Counter()
    unmapped: Counter[str] = Counter()
    excluded: Counter[str] = Counter()
    mapped: list[Item] = []
    unmapped_examples: list[dict[str, Any]] = []
    # The kit's own canonical URLs collide now and then (n % 100000 per outlet and month):
    # two kit stories at one URL are one article to any aggregator, so the ground truth
    # contradicts itself there; those items are left out and counted.
    kit_canon: dict[str, set[str]] = defaultdict(set)
    for t in truth:
        kit_canon[t["canonical"]].add(t["story"])
    collided = {url for url, stories in kit_canon.items() if len(stories) > 1}
    for idx, t in enumerate(truth):
        feed = feeds[t["feed"]]
        sid = sources.get(feed["slug"])
        if sid is None:
            unmapped["no such source"] += 1
            continue
        if sid in errors:
            excluded[feed.get("malformed") or "well-formed"] += 1
            continue
        if t["canonical"] in collided:
            excluded["kit canonical URL collision"] += 1
            continue
        guid = " ".join(t["guid"].split()) if t.get("guid") else ""
        canon = canonical_url(t["link"])
        attempts = [("guid key", db["by_key"], f"guid:{guid}" if guid else None),
                    ("url key", db["by_key"], f"url:{canon}" if canon else None),
                    ("link", db["by_link"], t["link"]),
                    ("canonical url", db["by_canon"], canon),
                    ("kit canonical url", db["by_canon"], t["canonical"])]
        article = None
        for method, table, value in attempts:
            if value is not None and (sid, value) in table:
                article = table[(sid, value)]
                methods[method] += 1
                break
        if article is None:
            unmapped[feed.get("malformed") or "well-formed"] += 1
            if len(unmapped_examples) < 5:
                unmapped_examples.append({"feed": feed["slug"], "malformed": feed["malformed"],
                                          "guid": t.get("guid"), "link": t["link"]})
            continue
        stored = db["articles"][article]
        mapped.append(Item(idx, t["feed"], t["story"], t["kind"], t.get("group"), t["script"],
                           t["title"], article, stored.story, bool(feed["fulltext"])))
    used = {i.article for i in mapped}
    info = {"items": len(truth), "mapped": len(mapped), "methods": dict(methods),
            "unmapped": dict(unmapped), "unmapped_total": sum(unmapped.values()),
            "excluded_error_feeds": len(errors),
            "excluded_items": dict(excluded), "excluded_total": sum(excluded.values()),
            "error_messages": sorted({e.split(":")[0] for e in errors.values()}),
            "articles_stored": len(db["articles"]),
            "articles_without_truth_item": len(set(db["articles"]) - used),
            "unmapped_examples": unmapped_examples,
            "kit_canonical_urls_shared": len(collided)}
    return mapped, info


# --------------------------------------------------------------------------- scoring


def pair_scores(items: list[Item]) -> dict[str, Any]:
    """Pair counts through groupings only: C(n, 2) per group, per story, per article."""
    by_group: dict[str, list[Item]] = defaultdict(list)
    for it in items:
        if it.group:
            by_group[it.group].append(it)
    exact = Counter[str]()
    near = Counter[str]()
    for members in by_group.values():
        kind = members[0].kind
        if kind == "exact":
            exact["pairs"] += c2(len(members))
            exact["same_article"] += sum(c2(n) for n in Counter(m.article for m in members)
                                         .values())
            exact["same_story"] += sum(c2(n) for n in Counter(m.story for m in members).values())
        elif kind == "near":
            scripts = Counter(m.script for m in members)
            near["same_script"] += sum(c2(n) for n in scripts.values())
            near["cross_script"] += scripts["simp"] * scripts["trad"]
            per_story: dict[int, Counter[str]] = defaultdict(Counter)
            for m in members:
                per_story[m.story][m.script] += 1
            for counts in per_story.values():
                near["same_script_same_story"] += sum(c2(n) for n in counts.values())
                near["cross_script_same_story"] += counts["simp"] * counts["trad"]
            near["same_article"] += sum(c2(n) for n in Counter(m.article for m in members)
                                        .values())
    # Precision over items: the pairs our stories make, and how many the kit agrees with.
    story_items: dict[int, Counter[str]] = defaultdict(Counter)
    for it in items:
        story_items[it.story][it.truth] += 1
    ours = sum(c2(sum(c.values())) for c in story_items.values())
    agreed = sum(c2(n) for c in story_items.values() for n in c.values())
    truth_sizes = Counter(it.truth for it in items)
    truth_pairs = sum(c2(n) for n in truth_sizes.values())
    # Per article: each stored article once, as the kit story most of its items belong to.
    article_truth: dict[int, Counter[str]] = defaultdict(Counter)
    article_story: dict[int, int] = {}
    for it in items:
        article_truth[it.article][it.truth] += 1
        article_story[it.article] = it.story
    mixed = sum(1 for c in article_truth.values() if len(c) > 1)
    story_articles: dict[int, Counter[str]] = defaultdict(Counter)
    for aid, counts in article_truth.items():
        story_articles[article_story[aid]][counts.most_common(1)[0][0]] += 1
    ours_a = sum(c2(sum(c.values())) for c in story_articles.values())
    agreed_a = sum(c2(n) for c in story_articles.values() for n in c.values())
    truth_article_sizes: Counter[str] = Counter()
    for counts in article_truth.values():
        truth_article_sizes[counts.most_common(1)[0][0]] += 1
    truth_pairs_a = sum(c2(n) for n in truth_article_sizes.values())
    sizes = Counter(sum(c.values()) for c in story_articles.values())
    # Kit stories split over several of ours, and ours mixing several kit stories.
    truth_stories: dict[str, set[int]] = defaultdict(set)
    for it in items:
        truth_stories[it.truth].add(it.story)
    uniques = [it for it in items if it.kind == "unique"]
    unique_merged = sum(1 for it in uniques if sum(story_items[it.story].values()) > 1)
    return {
        "exact": dict(exact), "near": dict(near),
        "items": {"our_pairs": ours, "agreed_pairs": agreed, "truth_pairs": truth_pairs},
        "articles": {"our_pairs": ours_a, "agreed_pairs": agreed_a,
                     "truth_pairs": truth_pairs_a, "articles": len(article_truth),
                     "mixing_truth_stories": mixed},
        "stories": {"ours": len(story_articles),
                    "multi": sum(1 for c in story_articles.values() if sum(c.values()) > 1),
                    "mixed": sum(1 for c in story_articles.values() if len(c) > 1),
                    "largest": max(sizes) if sizes else 0,
                    "size_histogram": {str(k): v for k, v in sorted(sizes.items())},
                    "truth_stories": len(truth_stories),
                    "truth_split": sum(1 for s in truth_stories.values() if len(s) > 1)},
        "unique_items": len(uniques), "unique_items_merged": unique_merged,
    }


def _signals(a: Stored, b: Stored, rules: StoryRules) -> dict[str, Any]:
    hours = abs((a.published - b.published).total_seconds()) / 3600
    if a.fingerprint is None or b.fingerprint is None:
        return {"hours": round(hours, 1)}
    rel = relatedness(a.fingerprint, b.fingerprint, hours, rules.related_hours)
    return {"hours": round(hours, 1),
            "copy": round(copy_similarity(a.fingerprint, b.fingerprint), 3),
            "related": round(rel.score, 3), "rel_title": round(rel.title, 2),
            "rel_lead": round(rel.lead, 2), "shared": list(rel.shared),
            "numbers": list(rel.numbers)}


def false_merges(items: list[Item], articles: dict[int, Stored], rules: StoryRules,
                 limit: int) -> dict[str, Any]:
    """Joins (copy / related) that went through an article of another kit story."""
    truth_of: dict[int, Counter[str]] = defaultdict(Counter)
    for it in items:
        truth_of[it.article][it.truth] += 1
    kit = {aid: c.most_common(1)[0][0] for aid, c in truth_of.items()}
    kind = {it.article: it.kind for it in items}
    by_uid = {a.uid: a for a in articles.values()}
    edges: Counter[str] = Counter()
    wrong: Counter[str] = Counter()
    scores: dict[str, list[float]] = defaultdict(list)
    examples: list[dict[str, Any]] = []
    bins: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # "how score" → [right, wrong]
    for aid, truth in kit.items():
        article = articles[aid]
        how = article.join.get("by", "founder")
        other = by_uid.get(article.join.get("with", ""))
        if how == "founder" or other is None or other.id not in kit:
            continue
        edges[how] += 1
        score = float(article.join.get("score") or 0.0)
        low = min(int(score * 20) / 20, 0.95)  # bins of 0.05
        bins[f"{how} {low:.2f}"][0 if kit[other.id] == truth else 1] += 1
        if kit[other.id] == truth:
            continue
        wrong[how] += 1
        scores[how].append(float(article.join.get("score") or 0.0))
        examples.append({"by": how, "score": article.join.get("score"),
                         "title": article.title, "with_title": other.title,
                         "kinds": [kind[aid], kind[other.id]],
                         **_signals(article, other, rules)})
    examples.sort(key=lambda e: -(e["score"] or 0))
    rng = random.Random(7)
    shown = examples[:limit // 2] + rng.sample(examples[limit // 2:],
                                               min(len(examples[limit // 2:]), limit - limit // 2))
    return {"edges": dict(edges), "wrong_edges": dict(wrong),
            "wrong_score_range": {k: [round(min(v), 3), round(sorted(v)[len(v) // 2], 3),
                                      round(max(v), 3)] for k, v in scores.items()},
            "by_score": dict(sorted(bins.items())), "examples": shown}


def missed_pairs(items: list[Item], articles: dict[int, Stored], rules: StoryRules,
                 kind: str, limit: int) -> dict[str, Any]:
    """Pairs of one kit group (distinct articles) that are in different stories of ours."""
    by_group: dict[str, list[Item]] = defaultdict(list)
    for it in items:
        if it.kind == kind and it.group:
            by_group[it.group].append(it)
    found: list[dict[str, Any]] = []
    for members in by_group.values():
        firsts = {m.article: m for m in members}  # one item per article
        ordered = list(firsts.values())
        for i, a in enumerate(ordered):
            for b in ordered[i + 1:]:
                if a.story == b.story:
                    continue
                sig = _signals(articles[a.article], articles[b.article], rules)
                found.append({"group": a.group, "scripts": f"{a.script}/{b.script}",
                              "cross": a.script != b.script, "title": a.title,
                              "with_title": b.title, **sig})
    stats: dict[str, Any] = {"pairs": len(found)}
    for cross in (False, True):
        part = [f for f in found if f["cross"] == cross and "copy" in f]
        label = "cross_script" if cross else "same_script"
        if not part:
            stats[label] = {"pairs": 0}
            continue
        copies = sorted(f["copy"] for f in part)
        rel = sorted(f["related"] for f in part)
        stats[label] = {
            "pairs": len(part),
            "copy_p10_p50_p90": [copies[len(part) // 10], copies[len(part) // 2],
                                 copies[9 * len(part) // 10]],
            "related_p10_p50_p90": [rel[len(part) // 10], rel[len(part) // 2],
                                    rel[9 * len(part) // 10]],
            "copy_at_threshold": sum(1 for c in copies if c >= rules.copy_threshold),
            "related_at_threshold": sum(1 for r in rel if r >= rules.related_threshold),
        }
    rng = random.Random(11)
    examples = rng.sample(found, min(limit, len(found)))
    examples.sort(key=lambda e: (not e["cross"], -(e.get("copy") or 0)))
    stats["examples"] = examples
    return stats


def exact_split(items: list[Item], articles: dict[int, Stored]) -> dict[str, Any]:
    """Why items of one exact group became several articles: pairs of distinct articles by
    what differs, and the query parameters left in their canonical URLs."""
    by_group: dict[str, dict[int, Item]] = defaultdict(dict)
    for it in items:
        if it.kind == "exact" and it.group:
            by_group[it.group].setdefault(it.article, it)
    reasons: Counter[str] = Counter()
    params: Counter[str] = Counter()
    for members in by_group.values():
        ordered = list(members.values())
        for i, a in enumerate(ordered):
            for b in ordered[i + 1:]:
                x, y = articles[a.article], articles[b.article]
                url = "same canonical URL" if x.canonical == y.canonical else "canonical differs"
                text = "same text hash" if x.content_hash == y.content_hash else (
                    "summary-only vs full text" if a.fulltext != b.fulltext else "text differs")
                reasons[f"{url}, {text}"] += 1
                if x.canonical != y.canonical:
                    for canon in (x.canonical, y.canonical):
                        query = urlsplit(canon or "").query
                        params.update({k for k, _ in parse_qsl(query, keep_blank_values=True)})
    return {"pairs": sum(reasons.values()), "reasons": dict(reasons.most_common()),
            "params_left": dict(params.most_common())}


def largest_stories(items: list[Item], articles: dict[int, Stored], limit: int
                    ) -> list[dict[str, Any]]:
    members: dict[int, dict[int, Item]] = defaultdict(dict)
    for it in items:
        members[it.story].setdefault(it.article, it)
    big = sorted(members.items(), key=lambda kv: -len(kv[1]))[:limit]
    out = []
    for story, group in big:
        truths = Counter(m.truth for m in group.values())
        joins = Counter(articles[a].join.get("by", "founder") for a in group)
        out.append({"story": story, "articles": len(group), "kit_stories": len(truths),
                    "joins": dict(joins),
                    "titles": [articles[a].title for a in list(group)[:4]]})
    return out


# --------------------------------------------------------------------------- report


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def frac(num: int, den: int) -> str:
    return f"{pct(ratio(num, den))} ({num:,} / {den:,})"


def render_table(s: dict[str, Any]) -> str:
    p, m = s["pairs"], s["mapping"]
    ex, nr, it, ar = p["exact"], p["near"], p["items"], p["articles"]
    near_all = nr.get("same_script", 0) + nr.get("cross_script", 0)
    near_found = nr.get("same_script_same_story", 0) + nr.get("cross_script_same_story", 0)
    prec_i = ratio(it["agreed_pairs"], it["our_pairs"])
    rec_i = ratio(it["agreed_pairs"], it["truth_pairs"])
    f1 = 2 * prec_i * rec_i / (prec_i + rec_i) if prec_i and rec_i else None
    rows = [
        ("exact-duplicate pairs stored as one article",
         frac(ex.get("same_article", 0), ex.get("pairs", 0))),
        ("exact-duplicate pairs in one story", frac(ex.get("same_story", 0), ex.get("pairs", 0))),
        ("near-duplicate pairs in one story, same script",
         frac(nr.get("same_script_same_story", 0), nr.get("same_script", 0))),
        ("near-duplicate pairs in one story, cross-script",
         frac(nr.get("cross_script_same_story", 0), nr.get("cross_script", 0))),
        ("near-duplicate pairs in one story, all", frac(near_found, near_all)),
        ("near-duplicate pairs stored as one article",
         frac(nr.get("same_article", 0), near_all)),
        ("**precision**, item pairs our stories make", frac(it["agreed_pairs"], it["our_pairs"])),
        ("**recall**, item pairs of one kit story", frac(it["agreed_pairs"], it["truth_pairs"])),
        ("F1 (item pairs)", pct(f1)),
        ("precision, article pairs (each article once)",
         frac(ar["agreed_pairs"], ar["our_pairs"])),
        ("recall, article pairs", frac(ar["agreed_pairs"], ar["truth_pairs"])),
        ("unique items put in a story with others",
         frac(p["unique_items_merged"], p["unique_items"])),
    ]
    st = p["stories"]
    lines = ["| figure | value |", "|---|---|"]
    lines += [f"| {a} | {b} |" for a, b in rows]
    lines += [
        "",
        f"Items: {m['items']:,} in items.jsonl; {m['excluded_total']:,} left out "
        f"({m['excluded_items'].get('kit canonical URL collision', 0)} at the "
        f"{m['kit_canonical_urls_shared']} canonical URLs the kit gives to 2+ of its stories, "
        f"its URL numbers colliding; the rest are of the {m['excluded_error_feeds']} feeds our "
        "crawl recorded an error for: "
        + (", ".join(f"{k} {v}" for k, v in sorted(m["excluded_items"].items())
                     if k != "kit canonical URL collision") or "none") + "); "
        f"{m['mapped']:,} mapped ("
        + ", ".join(f"{k} {v:,}" for k, v in sorted(m["methods"].items(), key=lambda x: -x[1]))
        + f"); {m['unmapped_total']:,} not mapped ("
        + (", ".join(f"{k} {v}" for k, v in sorted(m["unmapped"].items())) or "none") + "). "
        f"Stored articles: {m['articles_stored']:,} ({m['articles_without_truth_item']:,} "
        "matched by no kit item).",
        "",
        f"Stories: {st['ours']:,} of ours (with a mapped item) against {st['truth_stories']:,} "
        f"kit stories; {st['multi']:,} of ours have 2+ articles, {st['mixed']:,} mix kit "
        f"stories, the largest has {st['largest']} articles; {st['truth_split']:,} kit stories "
        f"are split over 2+ of ours. Stored articles that mix kit stories: "
        f"{ar['mixing_truth_stories']}.",
    ]
    return "\n".join(lines)


def render_examples(s: dict[str, Any], limit: int) -> str:
    fm = s["false_merges"]
    lines = [f"False joins (an article joined through an article of another kit story): "
             f"{fm['wrong_edges']} of {fm['edges']} joins; score min/median/max "
             f"{fm['wrong_score_range']}."]
    related_bins = {k.split()[1]: v for k, v in fm["by_score"].items()
                    if k.startswith("related ")}
    if related_bins:
        lines += ["", "Related joins by their score (right / wrong, as the kit sees the article "
                  "joined through): " + ", ".join(f"{k}: {r} / {w}"
                                                 for k, (r, w) in related_bins.items()) + "."]
    if fm["examples"]:
        lines += ["", "| by | score | title | joined through | copy* | related* (title, lead) "
                  "| shared names, numbers | h apart |", "|---|---|---|---|---|---|---|---|"]
        for e in fm["examples"][:limit]:
            lines.append(
                f"| {e['by']} | {e['score']} | {e['title']} | {e['with_title']} | "
                f"{e.get('copy')} | {e.get('related')} "
                f"({e.get('rel_title')}, {e.get('rel_lead')}) | "
                f"{' '.join(e.get('shared', []))}; {' '.join(e.get('numbers', []))} | "
                f"{e['hours']} |")
    es = s["exact_split"]
    lines += ["", f"Exact-duplicate items stored as separate articles: {es['pairs']:,} article "
              f"pairs; {es['reasons']}; query parameters left in those canonical URLs: "
              f"{es['params_left']}."]
    for kind in ("near", "exact"):
        mp = s[f"missed_{kind}"]
        lines += ["", f"Missed {kind}-duplicate pairs (distinct articles, different stories): "
                  f"{mp['pairs']:,}."]
        for label in ("same_script", "cross_script"):
            x = mp.get(label, {})
            if x.get("pairs"):
                lines.append(
                    f"* {label.replace('_', ' ')}: {x['pairs']:,}; copy similarity p10/p50/p90 "
                    f"{x['copy_p10_p50_p90']}, related score {x['related_p10_p50_p90']}; "
                    f"at the copy threshold {x['copy_at_threshold']}, at the related "
                    f"threshold {x['related_at_threshold']}")
        if mp["examples"]:
            lines += ["", "| scripts | title | other title | copy* | related* (title, lead) "
                      "| shared names, numbers | h apart |", "|---|---|---|---|---|---|---|"]
            for e in mp["examples"][:limit]:
                lines.append(
                    f"| {e['scripts']} | {e['title']} | {e['with_title']} | {e.get('copy')} | "
                    f"{e.get('related')} ({e.get('rel_title')}, {e.get('rel_lead')}) | "
                    f"{' '.join(e.get('shared', []))}; {' '.join(e.get('numbers', []))} | "
                    f"{e['hours']} |")
    lines += ["", "\\* recomputed here from the stored fingerprints with "
              "`crawler.similarity` as it is when scoring, without the per-name weights "
              "the storage may apply (the join's own score is the `score` column)."]
    lines += ["", "Largest stories of ours:", ""]
    for big in s["largest"]:
        lines.append(f"* {big['articles']} articles, {big['kit_stories']} kit stories, joins "
                     f"{big['joins']}: " + " / ".join(big["titles"]))
    return "\n".join(lines)


def render_section(s: dict[str, Any], limit: int) -> str:
    mc, cr = s["machine"], s["crawl"]
    res = cr["result"]
    other = s["other_bench"]
    wait_note = ""
    if other.get("waited_s"):
        wait_note = (f" Waited {other['waited_s']:.0f} s for `{OTHER_BENCH}` to finish"
                     + (" and ran while it still ran (figures of time skewed)."
                        if other.get("still_running") else "."))
    code = s["code"]
    code_note = (" crawler/ or storage/ differed from HEAD: "
                 + ", ".join(f"`{x}`" for x in code["dirty"]) + "." if code["dirty"] else "")
    if code["changed_during_run"]:
        code_note += " **crawler/ or storage/ changed during the run.**"
    return "\n".join([
        f"## {SECTION}",
        "",
        f"Run {mc['date']}, commit `{s['revision']}`, {mc['nproc']} cores ({mc['cpu']}), "
        f"{mc['mem_gib']} GiB RAM, Python {mc['python']}.{code_note}",
        "",
        "```bash",
        s["command"],
        "```",
        "",
        f"Corpus `{s['corpus']}` ({s['feeds']:,} feeds x {s['items_per_feed']} items, seed "
        f"{s['seed']}), served by the kit's feedserver.py on 127.0.0.1; one cold crawl, "
        f"`{cr['command']}` (settings: concurrency {s['concurrency']}, parse_workers 0; "
        f"stories at the defaults {s['rules']}): **{cr['wall_s']:.2f} s wall**, "
        f"{cr['tree_cpu_s']} CPU-s (whole process tree), {res.get('new', 0):,} new entries, "
        f"{res.get('errors', 0)} feeds in error; other load during the crawl "
        f"{cr['other_cpu_s']} CPU-s.{wait_note}",
        "",
        "Pairs are of ground-truth items (an item = one feed's entry); \"in one story\" = "
        "`articles.story_id` equal. Precision: of all item pairs our stories put together, "
        "those the kit calls one story (its `story` key: one exact group, one near cluster, "
        "or a unique article; the generator shares no story key beyond its group).",
        "",
        render_table(s),
        "",
        render_examples(s, limit),
        "",
        f"Raw figures: `{s['summary_file']}`.",
        "",
    ])


def git_head() -> str:
    done = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, timeout=30)
    return done.stdout.strip() or "?"


def git_dirty_code() -> list[str]:
    done = subprocess.run(["git", "--no-optional-locks", "-C", str(REPO), "status",
                           "--porcelain", "--", *ingest.CODE_PACKAGES],
                          capture_output=True, text=True, timeout=30)
    return [line[3:] for line in done.stdout.splitlines() if line.strip()]


# --------------------------------------------------------------------------- main


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(type(value).__name__)


def analyse(corpus: Path, db_path: Path, limit: int) -> dict[str, Any]:
    rules = StoryRules()
    feeds = {f["id"]: f for f in read_jsonl(corpus / "feeds.jsonl")}
    truth = read_jsonl(corpus / "items.jsonl")
    db = load_db(db_path)
    items, mapping = map_items(truth, feeds, db)
    return {
        "mapping": mapping,
        "pairs": pair_scores(items),
        "false_merges": false_merges(items, db["articles"], rules, limit),
        "missed_near": missed_pairs(items, db["articles"], rules, "near", limit),
        "missed_exact": missed_pairs(items, db["articles"], rules, "exact", limit),
        "exact_split": exact_split(items, db["articles"]),
        "largest": largest_stories(items, db["articles"], 5),
        "rules": {"window_days": rules.window_days, "copy_threshold": rules.copy_threshold,
                  "related_threshold": rules.related_threshold,
                  "related_hours": rules.related_hours},
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="story_corpus.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--feeds", type=int, default=1000, help="feeds in the corpus (1000)")
    ap.add_argument("--items", type=int, default=30, help="items per feed (30)")
    ap.add_argument("--seed", default="42", help="corpus seed (42)")
    ap.add_argument("--kit", help="the bench kit (default: ../shared/bench from the repo root)")
    ap.add_argument("--crawler", default=str(REPO / ".venv" / "bin" / "crawler"))
    ap.add_argument("--python", default="python3", help="python for the peers' venv")
    ap.add_argument("--concurrency", type=int, default=10, help="settings.concurrency (10)")
    ap.add_argument("--fetch-timeout", type=float, default=30.0, help="settings.timeout (30)")
    ap.add_argument("--crawl-timeout", type=float, default=3600.0,
                    help="seconds the crawl may take; then its process group is killed (3600)")
    ap.add_argument("--examples", type=int, default=8, help="examples of each kind (8)")
    ap.add_argument("--wait-other", type=float, default=2400.0,
                    help=f"seconds to wait at most while {OTHER_BENCH} runs (2400)")
    ap.add_argument("--quiet-feeds", type=int, default=100,
                    help="crawls of more feeds than this wait for the other benchmark (100)")
    ap.add_argument("--quiet-wait", type=float, default=120.0,
                    help="then wait up to this many seconds for an idle machine (120)")
    ap.add_argument("--no-append", action="store_true", help="do not append to RESULTS.md")
    ap.add_argument("--name", help="run directory name (default n<feeds>-<timestamp>)")
    ap.add_argument("--rescore", metavar="RUNDIR",
                    help="score a finished run's database again (no crawl); prints only")
    a = ap.parse_args(argv)
    if a.rescore:
        return rescore(Path(a.rescore), a.examples)
    if a.feeds < 2 or a.items < 1 or a.examples < 0:
        ap.error("--feeds at least 2, --items at least 1")
    t_start = time.monotonic()
    kit_src = Path(a.kit).resolve() if a.kit else (REPO.parent / "shared" / "bench").resolve()
    crawler = Path(a.crawler)
    if not os.access(crawler, os.X_OK):
        raise SystemExit(f"{crawler}: not an executable (pip install -e . in .venv)")
    other: dict[str, Any] = {"waited_s": 0.0, "still_running": False}
    if a.feeds > a.quiet_feeds:
        other = wait_other_bench(a.wait_other)
    kit = ingest.copy_kit(kit_src, OUT / "kit")
    py = ingest.ensure_venv(OUT / "venv", kit / "requirements.txt", a.python)
    corpus = ingest.ensure_corpus(py, kit, OUT / "corpus", a.feeds, a.items, a.seed, 1800)
    name = a.name or f"n{a.feeds}-i{a.items}-s{a.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    rundir = OUT / "story-corpus" / name
    rundir.mkdir(parents=True, exist_ok=True)
    db = rundir / "crawl.db"
    for stale in rundir.glob("crawl.db*"):
        stale.unlink()
    revision, dirty, tree = git_head(), git_dirty_code(), ingest._tree_sha256(REPO)
    with feed_server(py, kit, corpus, rundir, max_seconds=a.crawl_timeout + 600,
                     idle_exit=900) as ready:
        kit_yaml = rundir / "kit-feeds.yaml"
        subprocess.run([str(py), str(kit / "gen_corpus.py"), "feeds-yaml", "--corpus",
                        str(corpus), "--base-url", ready["base_url"], "--out", str(kit_yaml)],
                       check=True, stdout=subprocess.DEVNULL, timeout=300,
                       env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
        config = rundir / "crawler.yaml"
        count = ingest.convert_feeds_yaml(kit_yaml, config, db, a.concurrency, a.fetch_timeout,
                                          loopback=ingest._knows_allowed_networks(None),
                                          host_limit=True)
        log(f"crawling {count} feeds into {ingest.rel(db)}")
        if a.quiet_wait > 0:
            ingest.wait_quiet(a.quiet_wait)
        crawl = run_crawl(crawler, config, rundir, a.crawl_timeout, ready["pid"])
    log(f"crawl: {crawl['wall_s']:.2f} s wall, {crawl['result']}")
    log("scoring against items.jsonl")
    t = time.perf_counter()
    summary = analyse(corpus, db, a.examples)
    log(f"scored in {time.perf_counter() - t:.1f} s")
    summary.update({
        "feeds": a.feeds, "items_per_feed": a.items, "seed": a.seed,
        "corpus": ingest.rel(corpus), "db": ingest.rel(db), "crawl": crawl,
        "concurrency": a.concurrency, "machine": ingest.machine(), "revision": revision,
        "code": {"dirty": dirty, "tree_sha256": tree,
                 "changed_during_run": ingest._tree_sha256(REPO) != tree},
        "other_bench": other,
        "command": " ".join(shlex.quote(x) for x in [
            ".venv/bin/python", "bench/story_corpus.py", *argv]),
        "summary_file": ingest.rel(rundir / "summary.json"),
        "elapsed_s": round(time.monotonic() - t_start, 1),
    })
    (rundir / "summary.json").write_text(
        json.dumps(summary, indent=1, ensure_ascii=False, default=_json_default) + "\n")
    section = render_section(summary, a.examples)
    (rundir / "section.md").write_text(section)
    print(section)
    if not a.no_append:
        existing = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
        with open(RESULTS, "a", encoding="utf-8") as fh:
            fh.write(("\n" if existing and not existing.endswith("\n\n") else "") + section)
        log(f"appended the section to {ingest.rel(RESULTS)}")
    log(f"done in {time.monotonic() - t_start:.0f} s; run dir {ingest.rel(rundir)}")
    return 0


def rescore(rundir: Path, limit: int) -> int:
    """A finished run scored again by this file's current code (its crawl figures kept)."""
    old = json.loads((rundir / "summary.json").read_text())
    summary = {**old, **analyse(REPO / old["corpus"], REPO / old["db"], limit),
               "rescored": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    (rundir / "summary-rescored.json").write_text(
        json.dumps(summary, indent=1, ensure_ascii=False, default=_json_default) + "\n")
    section = render_section(summary, limit)
    (rundir / "section-rescored.md").write_text(section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
