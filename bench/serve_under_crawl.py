#!/usr/bin/env python3
"""Serving while crawling: feed request latency during a cold crawl of 1,000 sources.

Run by hand (not a test), from the repository root::

    .venv/bin/python bench/serve_under_crawl.py                        # ~5 min on 2 cores
    .venv/bin/python bench/serve_under_crawl.py --feeds 100 --idle 5   # smoke, ~1 min

What it does:

1. **Corpus**: the shared kit's generator at its defaults (those of ``bench/ingest.py`` and
   PERF.md: 30 items per feed, a week's span, 2 % malformed feeds, seed 42), ``--feeds``
   feeds, generated once into ``bench/out/serve_under_crawl/corpus/`` (with the zhconv venv
   ``bench/serve.py`` makes). The kit's ``gen_corpus.py``, ``zhtext.py`` and
   ``feedserver.py`` are copied to ``bench/out/serve_under_crawl/kit/`` (the kit is
   read-only) and run from there.
2. **Feed server**: the kit's ``feedserver.py`` (ETag/304, whole corpus in memory) on a free
   loopback port.
3. **Rounds**, each with a fresh SQLite database and a fresh ``crawler run`` on a free port
   (``settings.concurrency: 10``, ``parse_workers: 0``, as shipped, and
   ``host_concurrency: 10``, since every kit feed is on one host; an output ``latest`` of
   50 items collapsed by story, as ``bench/serve.py``'s):

   * ``crawl alone``: the cold crawl, no request: its wall time is the yardstick.
   * ``crawl``: the same cold crawl while ``--clients`` clients (threads of this process,
     one keep-alive connection each, a closed loop with ``--think-ms`` between requests)
     GET ``/feeds/latest.xml`` and ``/feeds/latest.json`` in turn. It ends when every
     source has a fetch recorded (``fetch_state.last_fetch_at``, read with sqlite3 in
     read-only mode every 0.5 s). Each commit of the crawl moves the content version, so
     nearly every request renders.
   * then, the same daemon with nothing due, ``--idle`` seconds each: ``idle`` (the same
     URLs, answered from the rendering cache), ``idle, ?_=N`` (a reader's cache buster: a
     new emit of the cached selection) and ``idle, full render`` (400 identical copies of
     ``latest`` asked in turn, more than the server's caches hold: every request selects
     and renders, which a request during the crawl does whenever a commit has moved the
     content version since the last one).

   Per phase: requests, req/s, p50/p90/p99/max latency, statuses other than 200, and the
   CPU used by the daemon (its process group: the daemon, the forkserver, the parse
   workers), the feed server, this process and the rest of the machine.
4. Before the rounds it waits (``--quiet-wait`` s at most) until the 1-minute load average
   is ≤ ``--quiet-load`` (1.5); the load average is recorded per round either way.

Every process started is stopped by its PID in a ``finally``. Results:
``bench/out/serve_under_crawl/results-<timestamp>.json`` and ``.md`` (printed too).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve as serve_bench  # bench/serve.py: machine, venv and /proc helpers

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "serve_under_crawl"
DEFAULT_KIT = ROOT.parent / "shared" / "bench"
KIT_FILES = ("gen_corpus.py", "zhtext.py", "feedserver.py")
CRAWLER = ROOT / ".venv" / "bin" / "crawler"
SEED = "42"
PATHS = ("/feeds/latest.xml", "/feeds/latest.json")
#: identical copies of `latest`, requested in turn in the "idle, full render" phase: more
#: than the server's selection cache (64 outputs) and rendering cache (256 renderings)
#: hold, so every request there selects and renders (since 589161f a ?_=N buster only
#: re-emits a cached selection)
COPIES = 400
#: how far apart in that cycle the clients start. With two clients, copy k is then asked
#: (in either format) 250 and 150 requests of a client apart, ~500 and ~300 requests in
#: all: more than 64 outputs between two selections of one, more than 256 renderings
#: between two of one rendering, with a margin for the clients drifting apart.
COPY_OFFSET = 250
CRAWL_LIMIT_S = 1800.0  #: a crawl that takes longer is reported as unfinished
log = serve_bench.log


# --- kit, corpus, feed server ------------------------------------------------------------

def copy_kit(kit: Path) -> Path:
    return serve_bench.copy_kit(kit, OUT / "kit", KIT_FILES)


def ensure_corpus(kit: Path, feeds: int, items: int) -> Path:
    kit_copy = copy_kit(kit)
    path = OUT / "corpus" / f"n{feeds}-i{items}-s{SEED}"
    if (path / "corpus.json").exists():
        return path
    py = serve_bench.generator_python(kit)
    log(f"generating the corpus {path.relative_to(ROOT)} ({feeds} feeds x {items} items)")
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run([str(py), str(kit_copy / "gen_corpus.py"), "generate", "--out", str(tmp),
                    "--feeds", str(feeds), "--items", str(items), "--seed", SEED],
                   check=True, stdout=subprocess.DEVNULL, timeout=3600,
                   env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    tmp.rename(path)
    return path


@contextlib.contextmanager
def feed_server(corpus: Path, logs: Path) -> Iterator[tuple[str, int]]:
    ready = logs / "feedserver.ready"
    ready.unlink(missing_ok=True)
    out = (logs / "feedserver.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-B", str(OUT / "kit" / "feedserver.py"), "--corpus", str(corpus),
         "--port", "0", "--ready-file", str(ready), "--max-seconds", "7200",
         "--idle-exit", "1800"], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the feed server did not start; see {out.name}")
            time.sleep(0.2)
        info = json.loads(ready.read_text())
        log(f"feed server up: PID {proc.pid}, {info['base_url']}, {info['feeds']} feeds")
        yield info["base_url"], proc.pid
    finally:
        serve_bench.stop_process(proc, grace=30)
        out.close()


def feeds_yaml(corpus: Path, base_url: str, database: Path) -> str:
    lines = ["# written by bench/serve_under_crawl.py", "settings:",
             f"  database: {json.dumps('sqlite:///' + str(database))}",
             "  interval: 3600", "  timeout: 30", "  concurrency: 10", "  parse_workers: 0",
             "  allowed_networks: [127.0.0.0/8]",
             # All the kit's feeds are on one loopback host, where a real crawl spreads over
             # many: the per-host limit (2 by default) would be what is measured (as in
             # bench/ingest.py).
             "  host_concurrency: 10", "feeds:"]
    for line in (corpus / "feeds.jsonl").read_text(encoding="utf-8").splitlines():
        feed = json.loads(line)
        lines += [f"  - name: {feed['slug']}", f"    url: {json.dumps(base_url + feed['path'])}"]
    for name in ["latest"] + [f"copy{k:03d}" for k in range(COPIES)]:
        lines += ["outputs:"] if name == "latest" else []
        lines += [f"  - name: {name}", "    title: Latest stories", "    limit: 50",
                  "    collapse: story"]
    return "\n".join(lines) + "\n"


# --- the daemon -------------------------------------------------------------------------

def group_members(pgid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def group_cpu_s(pgid: int) -> float:
    """CPU seconds of the live members of a process group (parse workers included)."""
    total = 0.0
    for pid in group_members(pgid):
        with contextlib.suppress(OSError):
            total += serve_bench.proc_cpu_s(pid)
    return total


@contextlib.contextmanager
def daemon(config: Path, logs: Path, label: str) -> Iterator[tuple[int, int]]:
    port = serve_bench.free_port()
    out = (logs / f"crawler-{label}.log").open("wb")
    proc = subprocess.Popen([str(CRAWLER), "--config", str(config), "run", "--host",
                             "127.0.0.1", "--port", str(port)], stdout=out,
                            stderr=subprocess.STDOUT, cwd=OUT, start_new_session=True)
    try:
        yield port, proc.pid
    finally:
        serve_bench.stop_process(proc, grace=60)
        for _ in range(50):  # its forkserver and workers, should any outlive it
            members = group_members(proc.pid)
            if not members:
                break
            for pid in members:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        out.close()


def wait_healthy(port: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, http.client.HTTPException):
            if serve_bench.get(port, "/healthz", timeout=5)[0] == 200:
                return
        time.sleep(0.1)
    raise SystemExit(f"crawler run on port {port} did not answer /healthz in {seconds:g} s")


def progress(db: Path) -> tuple[int, int]:
    """(sources with a fetch recorded, sources); (0, 0) before the schema exists."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error:
        return 0, 0
    try:
        done, total = conn.execute("SELECT count(last_fetch_at), count(*) FROM fetch_state"
                                   ).fetchone()
        return int(done), int(total)
    except sqlite3.Error:
        return 0, 0
    finally:
        conn.close()


def wait_crawled(db: Path, feeds: int, limit: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        done, total = progress(db)
        if total == feeds and done == total:
            return time.monotonic() - started
        time.sleep(0.5)
    raise SystemExit(f"the crawl did not finish within {limit:g} s")


def database_counts(db: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return {
            "articles": conn.execute("SELECT count(*) FROM articles").fetchone()[0],
            "links": conn.execute("SELECT count(*) FROM article_sources").fetchone()[0],
            "sources_in_error": conn.execute(
                "SELECT count(*) FROM fetch_state WHERE last_error IS NOT NULL").fetchone()[0]}
    finally:
        conn.close()


# --- the load ----------------------------------------------------------------------------

@dataclass
class Load:
    """Client threads requesting the outputs in a closed loop; each reply is filed under
    the phase current when its request was sent."""

    port: int
    clients: int
    think: float
    phase: str = "warmup"
    mode: str = "latest"  #: "latest", "buster" (?_=N) or "copies" (every copy in turn)
    stop: threading.Event = field(default_factory=threading.Event)
    replies: list[tuple[str, float, int | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for number in range(self.clients):
            thread = threading.Thread(target=self._client, args=(number,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _client(self, number: int) -> None:
        conn: http.client.HTTPConnection | None = None
        count = 0
        while not self.stop.is_set():
            count += 1
            if self.mode == "copies":
                # Format-major: each copy in xml, then each in json (see COPY_OFFSET).
                turn = (count + number * COPY_OFFSET) % (2 * COPIES)
                path = f"/feeds/copy{turn % COPIES:03d}.{('xml', 'json')[turn // COPIES]}"
            else:
                path = PATHS[(count + number) % len(PATHS)]
            if self.mode == "buster":
                path += f"?_={number}-{count}"
            phase, status = self.phase, None
            started = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
            elapsed = 1000 * (time.perf_counter() - started)
            with self.lock:
                self.replies.append((phase, elapsed, status))
            if self.think:
                self.stop.wait(self.think)
        if conn is not None:
            conn.close()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=150)


class Meter:
    """Wall time, load average and CPU split (daemon group, feed server, us, the rest)."""

    def __init__(self, daemon_pid: int, server_pid: int) -> None:
        self.daemon_pid, self.server_pid = daemon_pid, server_pid
        self.wall = time.perf_counter()
        self.load = serve_bench.loadavg()
        self.busy = serve_bench.busy_jiffies()[0]
        self.daemon = group_cpu_s(daemon_pid)
        self.server = serve_bench.proc_cpu_s(server_pid)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.own = usage.ru_utime + usage.ru_stime

    def since(self, before: Meter) -> dict[str, float]:
        busy = (self.busy - before.busy) / os.sysconf("SC_CLK_TCK")
        # A parse worker that exited took its CPU with it: the daemon figure is a floor.
        daemon_cpu = max(0.0, self.daemon - before.daemon)
        server = self.server - before.server
        own = self.own - before.own
        return {"wall_s": round(self.wall - before.wall, 2), "load_before": before.load,
                "load_after": self.load, "busy_cpu_s": round(busy, 2),
                "daemon_cpu_s": round(daemon_cpu, 2), "feedserver_cpu_s": round(server, 2),
                "client_cpu_s": round(own, 2),
                "other_cpu_s": round(max(0.0, busy - daemon_cpu - server - own), 2)}


def latency(replies: list[tuple[str, float, int | None]], phase: str,
            seconds: float) -> dict[str, Any]:
    times = [ms for p, ms, _ in replies if p == phase]
    statuses = Counter(str(status) for p, _, status in replies if p == phase)
    if not times:
        return {"requests": 0}
    return {"requests": len(times), "rps": round(len(times) / seconds, 1),
            "p50_ms": round(statistics.median(times), 1),
            "p90_ms": round(serve_bench.pct(times, 90), 1),
            "p99_ms": round(serve_bench.pct(times, 99), 1), "max_ms": round(max(times), 1),
            "mean_ms": round(statistics.fmean(times), 1), "statuses": dict(statuses),
            "not_200": sum(n for s, n in statuses.items() if s != "200")}


def log_problems(path: Path) -> dict[str, int]:
    text = path.read_text(encoding="utf-8", errors="replace")
    return {p: text.count(p) for p in ("database is locked", "Traceback", "internal error")}


# --- the rounds --------------------------------------------------------------------------

def fresh_database(label: str, stamp: str) -> Path:
    db = OUT / "db" / f"{stamp}-{label}.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    for leftover in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        leftover.unlink(missing_ok=True)
    return db


def crawl_alone(corpus: Path, base_url: str, server_pid: int, args: argparse.Namespace,
                stamp: str, logs: Path) -> dict[str, Any]:
    db = fresh_database("alone", stamp)
    config = OUT / f"feeds-{stamp}-alone.yaml"
    config.write_text(feeds_yaml(corpus, base_url, db), encoding="utf-8")
    with daemon(config, logs, "alone") as (_port, pid):
        before = Meter(pid, server_pid)
        wait_crawled(db, args.feeds, CRAWL_LIMIT_S)
        result = {"crawl": Meter(pid, server_pid).since(before)}
    result.update(database=database_counts(db), log=log_problems(logs / "crawler-alone.log"))
    log(f"crawl alone: {result['crawl']['wall_s']} s")
    return result


def crawl_with_load(corpus: Path, base_url: str, server_pid: int, args: argparse.Namespace,
                    stamp: str, logs: Path) -> dict[str, Any]:
    db = fresh_database("load", stamp)
    config = OUT / f"feeds-{stamp}-load.yaml"
    config.write_text(feeds_yaml(corpus, base_url, db), encoding="utf-8")
    result: dict[str, Any] = {"phases": {}}
    with daemon(config, logs, "load") as (port, pid):
        spawned = Meter(pid, server_pid)
        wait_healthy(port)
        load = Load(port, args.clients, args.think_ms / 1000)
        load.phase = "crawl"
        load.start()
        loaded = time.perf_counter()
        try:
            wait_crawled(db, args.feeds, CRAWL_LIMIT_S)
            crawled = Meter(pid, server_pid)
            load.phase = "idle"
            time.sleep(args.idle)
            idle = Meter(pid, server_pid)
            load.mode, load.phase = "buster", "idle, ?_=N"
            time.sleep(args.idle)
            buster = Meter(pid, server_pid)
            load.mode, load.phase = "copies", "idle, full render"
            time.sleep(args.idle)
            full = Meter(pid, server_pid)
        finally:
            load.finish()
    for phase, (start, end) in {"crawl": (spawned, crawled), "idle": (crawled, idle),
                                "idle, ?_=N": (idle, buster),
                                "idle, full render": (buster, full)}.items():
        meter = end.since(start)
        # The crawl's wall runs from the daemon's start, as in the crawl-alone round; its
        # requests from /healthz answering.
        seconds = crawled.wall - loaded if phase == "crawl" else meter["wall_s"]
        result["phases"][phase] = {**meter, **latency(load.replies, phase, seconds)}
        log(f"{phase}: " + json.dumps(result["phases"][phase]))
    result.update(database=database_counts(db), log=log_problems(logs / "crawler-load.log"))
    return result


def wait_quiet(max_wait: float, threshold: float) -> dict[str, Any]:
    started, first = time.time(), serve_bench.loadavg()
    while True:
        load = serve_bench.loadavg()
        if load <= threshold:
            return {"loadavg_first": first, "loadavg": load,
                    "waited_s": round(time.time() - started)}
        if time.time() - started > max_wait:
            log(f"[yellow]load average still {load} after {max_wait:.0f} s: measuring anyway")
            return {"loadavg_first": first, "loadavg": load,
                    "waited_s": round(time.time() - started), "gave_up": True}
        time.sleep(5)


def markdown(res: dict[str, Any]) -> str:
    m, code, a = res["machine"], res["code"], res["args"]
    dirty = " with uncommitted changes" if code["dirty_files"] else ""
    alone, loaded = res["alone"], res["load"]
    quiet = res["quiet"]
    lines = [f"## Serving under a crawl: `{code['commit']}`{dirty}, {res['started']}", "",
             "| | |", "|---|---|",
             f"| machine | {m['nproc']} CPUs, `{m['cpu']}`, {m['mem_kb'] / 2**20:.1f} GiB RAM, "
             f"Linux {m['kernel']}, Python {m['python']}, SQLite {m['sqlite']} |",
             f"| command | `{res['command']}` |",
             f"| code | `{code['commit']}`{dirty} (crawler/ + storage/ sha256 "
             f"`{code['sources_sha256']}`; at the end `{res['code_end']['sources_sha256']}`) |",
             f"| corpus | kit defaults, {a['feeds']} feeds x {a['items']} items, seed {SEED} "
             f"(`{res['corpus']}`) |",
             f"| load | {a['clients']} clients, closed loop, {a['think_ms']:g} ms between "
             f"requests, `{PATHS[0]}` and `{PATHS[1]}` in turn (50 items, collapse story) |",
             f"| load average before | {quiet['loadavg']}"
             + (f" (gave up waiting for ≤ {a['quiet_load']})" if quiet.get("gave_up") else "")
             + " |", "",
             "| phase | wall s | requests | req/s | p50 ms | p90 ms | p99 ms | max ms | "
             "not 200 | load avg (before → after) | CPU s: daemon / feed server / client / "
             "others |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    c = alone["crawl"]
    lines.append(f"| crawl alone (no requests) | {c['wall_s']} | – | – | – | – | – | – | – | "
                 f"{c['load_before']} → {c['load_after']} | {c['daemon_cpu_s']} / "
                 f"{c['feedserver_cpu_s']} / {c['client_cpu_s']} / {c['other_cpu_s']} |")
    for phase, p in loaded["phases"].items():
        if not p.get("requests"):
            lines.append(f"| {phase} | {p['wall_s']} | 0 | | | | | | | | |")
            continue
        lines.append(
            f"| {phase} | {p['wall_s']} | {p['requests']:,} | {p['rps']} | {p['p50_ms']} | "
            f"{p['p90_ms']} | {p['p99_ms']} | {p['max_ms']} | {p['not_200']} | "
            f"{p['load_before']} → {p['load_after']} | {p['daemon_cpu_s']} / "
            f"{p['feedserver_cpu_s']} / {p['client_cpu_s']} / {p['other_cpu_s']} |")
    lines += ["", "| round | articles | links | sources in error | log: database is locked / "
              "Traceback / internal error |", "|---|---|---|---|---|"]
    for name, r in (("crawl alone", alone), ("crawl with requests", loaded)):
        d, problems = r["database"], r["log"]
        lines.append(f"| {name} | {d['articles']:,} | {d['links']:,} | {d['sources_in_error']} "
                     f"| {problems['database is locked']} / {problems['Traceback']} / "
                     f"{problems['internal error']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--items", type=int, default=30)
    parser.add_argument("--kit", type=Path, default=DEFAULT_KIT)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--think-ms", type=float, default=50.0,
                        help="pause of each client between two requests")
    parser.add_argument("--idle", type=float, default=20.0,
                        help="seconds of each idle phase after the crawl")
    parser.add_argument("--quiet-wait", type=float, default=600.0)
    parser.add_argument("--quiet-load", type=float, default=1.5)
    parser.add_argument("--skip-alone", action="store_true",
                        help="no crawl-alone round (no yardstick for the crawl's slowdown)")
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%S")
    logs = OUT / "logs" / stamp
    logs.mkdir(parents=True, exist_ok=True)
    corpus = ensure_corpus(args.kit, args.feeds, args.items)
    code = serve_bench.code_identity()
    result: dict[str, Any] = {
        "started": started.strftime("%Y-%m-%d %H:%M UTC"), "machine": serve_bench.machine(),
        "host": socket.gethostname(), "code": code,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "command": ".venv/bin/python bench/serve_under_crawl.py "
                   + " ".join(sys.argv[1:] if argv is None else argv),
        "corpus": str(corpus.relative_to(ROOT))}
    with feed_server(corpus, logs) as (base_url, server_pid):
        result["quiet"] = wait_quiet(args.quiet_wait, args.quiet_load)
        log(f"load average {result['quiet']['loadavg']}")
        result["alone"] = ({"crawl": {"wall_s": "–", "load_before": "–", "load_after": "–",
                                      "daemon_cpu_s": "–", "feedserver_cpu_s": "–",
                                      "client_cpu_s": "–", "other_cpu_s": "–"},
                            "database": {"articles": 0, "links": 0, "sources_in_error": 0},
                            "log": dict.fromkeys(("database is locked", "Traceback",
                                                  "internal error"), 0)}
                           if args.skip_alone else
                           crawl_alone(corpus, base_url, server_pid, args, stamp, logs))
        result["load"] = crawl_with_load(corpus, base_url, server_pid, args, stamp, logs)
    result["code_end"] = serve_bench.code_identity()
    if result["code_end"] != code:
        log("[yellow]crawler/ or storage/ changed during the run")
    serve_bench.write_results(OUT, stamp, result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
