#!/usr/bin/env python3
"""Ingest benchmark: our `crawler crawl` against lemon24/reader on the shared bench kit.

What it measures, on one deterministic Chinese full-text corpus (default 1,000 feeds x 30
items, seed 42) served by the kit's loopback feed server (ETag / Last-Modified / 304):

* ``cold``:    empty database, every feed answers 200;
* ``warm``:    the same crawl again, every feed answers 304;
* ``changed``: 10 % of the feeds got 3 new items each (the kit's ``/_bench/mutate``).

For each round: wall seconds, entries stored per second, CPU seconds (user + sys of the
whole process tree) and peak RSS, for our CLI and for reader (16 workers) in the same run,
interleaved on the same server, with the ratio ours / reader.

How to run (from the repository root; about 4 minutes per run at 1,000 feeds)::

    .venv/bin/python bench/ingest.py --feeds 1000 --items 30            # the real run
    .venv/bin/python bench/ingest.py --feeds 60 --runs 1                # smoke run, ~1 min

The shared kit (``../shared/bench`` beside the repository, or ``--kit PATH``) is used, not
re-implemented: its scripts are copied to ``bench/out/kit/`` and run from there, so that
nothing is ever written into the kit's folder (not even ``__pycache__``). Everything else
goes under ``bench/out/`` too (git-ignored): the peers' venv (``venv/``, created with
``python3 -m venv`` + the kit's requirements.txt), the corpus (``corpus/``), the kit's work
dirs (``work/``), our CLI's logs (``logs/``) and the results (``results/``: the kit's raw
JSON + Markdown, and ``*-summary.json`` / ``*-summary.md`` with the table printed at the end).

How our CLI is run: the kit's runner (``run_bench.py --suites reader --contender-cmd ...``)
runs a command per round under ``/usr/bin/time -v``. That command is this file's ``round``
subcommand, a small stdlib-only wrapper that

1. converts the kit's feeds.yaml (names like ``"f00001 南洋日報 地方"``, which our config
   loader rightly refuses) into a crawler feeds.yaml with a ``settings:`` block
   (database = the kit's ``{db}``), once per run, in the cold round;
2. runs ``crawler --config <converted> crawl --json`` as its child;
3. is a *child subreaper*: our CLI parses in ``forkserver`` worker processes, which are
   not children of the CLI and are never waited for by it, so GNU time (which reads the
   rusage of waited-for children) would not see their CPU and memory at all (checked: a
   forkserver pool burning 3 s of CPU shows as 0.05 s). The wrapper reaps every
   descendant, so the kit's CPU figure covers the whole tree. It also samples the sum of
   the tree's RSS (GNU time's peak RSS is the largest single process);
4. prints our CLI's JSON line, extended with those figures, as its last stdout line (the
   kit records it). Exit code 1 with a JSON line (some sources in error: the corpus has
   2 % malformed feeds on purpose) counts as success; anything else is passed through.

Bounded: every round has a timeout (``--round-timeout``), the kit kills a command that
overruns, the feed server has a lifetime and an idle exit and is stopped by its PID, and
the whole run has ``--total-timeout``. Only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import io
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
OUT = BENCH / "out"
ROUNDS = ("cold", "warm", "changed")
KIT_FILES = ("run_bench.py", "benchlib.py", "gen_corpus.py", "feedserver.py", "report.py",
             "zhtext.py", "requirements.txt", "peers/reader_round.py", "peers/parse_disk.py",
             "peers/httpx_floor.py", "peers/sqlite_floor.py")
PEER_IMPORTS = "import feedparser, fastfeedparser, reader, sgmllib, httpx, lxml, bs4, yaml, zhconv"
PR_SET_CHILD_SUBREAPER = 36
CODE_PACKAGES = ("crawler", "storage")  # what pyproject.toml installs
RUN_CLI = "import sys; from crawler.cli import main; sys.exit(main())"
TIME_BIN = "/usr/bin/time"


def log(*parts: object) -> None:
    print(time.strftime("%H:%M:%S"), "[ingest]", *parts, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- feeds.yaml


_ITEM = re.compile(r"^  - name: (?P<name>.+)$")
_FIELD = re.compile(r"^    (?P<key>url|tags): (?P<value>.+)$")
_NAME_OK = re.compile(r"^[a-z0-9._-]+$")


def read_kit_feeds(text: str) -> list[dict[str, Any]]:
    """The kit's generated feeds.yaml (a fixed, line-oriented shape) → name/url/tags dicts.

    Parsed by hand rather than with PyYAML so the wrapper stays stdlib-only and fast; any
    line of another shape is an error, not silently skipped.
    """
    feeds: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#") or line == "feeds:":
            continue
        if m := _ITEM.match(line):
            feeds.append({"name": json.loads(m["name"]), "url": None, "tags": []})
            continue
        m = _FIELD.match(line)
        if m is None or not feeds:
            raise ValueError(f"feeds.yaml line {number}: unexpected {line!r}")
        if m["key"] == "url":
            feeds[-1]["url"] = json.loads(m["value"])
        else:
            inner = m["value"].strip()
            if not (inner.startswith("[") and inner.endswith("]")):
                raise ValueError(f"feeds.yaml line {number}: tags is not a flow list")
            feeds[-1]["tags"] = [t.strip() for t in inner[1:-1].split(",") if t.strip()]
    for feed in feeds:
        if not feed["url"]:
            raise ValueError(f"feed {feed['name']!r} has no url")
    return feeds


def crawler_name(kit_name: str, url: str, taken: set[str]) -> str:
    """A name our loader accepts ([a-z0-9._-]): the kit's slug (first word), else the URL stem."""
    first = kit_name.split()[0].lower() if kit_name.split() else ""
    candidates = [first, Path(url.split("?")[0]).stem.lower()]
    for candidate in candidates:
        if _NAME_OK.match(candidate) and candidate not in taken:
            return candidate
    base = re.sub(r"[^a-z0-9._-]+", "-", candidates[1]).strip("-") or "feed"
    for index in range(1, len(taken) + 2):
        if f"{base}-{index}" not in taken:
            return f"{base}-{index}"
    raise AssertionError("unreachable: one of len(taken)+1 suffixes is free")


def _knows_setting(code_path: str | None, setting: str) -> bool:
    """Whether the measured code has this setting (older revisions refuse unknown keys)."""
    root = Path(code_path) if code_path else REPO
    config = root / "crawler" / "config.py"
    return config.exists() and f'"{setting}"' in config.read_text(encoding="utf-8")


def _knows_allowed_networks(code_path: str | None) -> bool:
    return _knows_setting(code_path, "allowed_networks")


def convert_feeds_yaml(kit_yaml: Path, out: Path, db: Path, concurrency: int,
                       timeout: float, loopback: bool = True,
                       host_limit: bool = False) -> int:
    """Write a crawler feeds.yaml for the kit's feeds.yaml; return the number of feeds."""
    feeds = read_kit_feeds(kit_yaml.read_text(encoding="utf-8"))
    taken: set[str] = set()
    lines = [
        "# generated by bench/ingest.py from the bench kit's feeds.yaml",
        "settings:",
        f"  database: {json.dumps('sqlite:///' + str(db.resolve()))}",
        f"  concurrency: {concurrency}",
        f"  timeout: {timeout:g}",
        "  interval: 1800",
        "  parse_workers: 0",
        # The kit's server is on loopback, which the crawler refuses unless allowed.
        *(["  allowed_networks: [127.0.0.1/32]"] if loopback else []),
        # All 1,000 kit feeds are on one loopback host, where a real crawl spreads over
        # many: the per-host limit (2 by default) would measure the limit, not the crawler.
        *([f"  host_concurrency: {concurrency}"] if host_limit else []),
        "feeds:",
    ]
    for feed in feeds:
        name = crawler_name(feed["name"], feed["url"], taken)
        taken.add(name)
        lines.append(f"  - name: {json.dumps(name)}")
        lines.append(f"    url: {json.dumps(feed['url'])}")
        tags = ", ".join(json.dumps(t, ensure_ascii=False) for t in feed["tags"])
        lines.append(f"    tags: [{tags}]")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(out)
    return len(feeds)


# --------------------------------------------------------------------------- round wrapper


def _descendants(root: int) -> list[int]:
    """PIDs of every live descendant of root (from /proc), root excluded."""
    parent_of: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # comm may hold spaces and parentheses; the fields after the last ')' are fixed.
        fields_after = stat[stat.rfind(b")") + 2:].split()
        parent_of[int(entry.name)] = int(fields_after[1])
    found: list[int] = []
    frontier = [root]
    while frontier:
        current = frontier.pop()
        children = [pid for pid, ppid in parent_of.items() if ppid == current]
        found.extend(children)
        frontier.extend(children)
    return found


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except (OSError, IndexError, ValueError):
        return 0


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has been busy since boot (all cores, from /proc/stat)."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    # user nice system idle iowait irq softirq steal (guest time is already in user)
    busy = sum(fields[:3]) + sum(fields[5:8])
    return busy / os.sysconf("SC_CLK_TCK")


def _become_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        result: int = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        return result == 0
    except (OSError, AttributeError):
        return False


def _reap_all(deadline: float) -> None:
    """Wait for every remaining descendant (orphans come to us as the subreaper); bounded."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid:
            continue
        if time.monotonic() > deadline:
            for child in _descendants(os.getpid()):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
            deadline = time.monotonic() + 10
        time.sleep(0.02)


def _last_json(text: str) -> dict[str, Any] | None:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def cmd_round(a: argparse.Namespace) -> int:
    """One round of our CLI, as the kit's contender command (see the module docstring)."""
    started = time.monotonic()
    busy_start = busy_cpu_s()
    workdir = Path(a.workdir)
    rounds = a.rounds.split(",")
    if a.round not in rounds:
        print(json.dumps({"round": a.round, "skipped": True}))
        return 0
    config = workdir / "crawler.yaml"
    convert_s = 0.0
    if not config.exists():
        t = time.perf_counter()
        convert_feeds_yaml(Path(a.feeds_yaml), config, Path(a.db), a.concurrency, a.timeout,
                           loopback=_knows_allowed_networks(a.code_path),
                           host_limit=_knows_setting(a.code_path, "host_concurrency"))
        convert_s = time.perf_counter() - t
    subreaper = _become_subreaper()
    env = dict(os.environ)
    # The kit's runner gets TMPDIR=bench/out/tmp; our CLI gets the caller's own TMPDIR
    # (forkserver puts a Unix socket there, and socket paths are limited to 108 bytes).
    original_tmp = env.pop("INGEST_ORIGINAL_TMPDIR", None)
    env.pop("TMPDIR", None)
    if original_tmp:
        env["TMPDIR"] = original_tmp
    stdout_path = workdir / f"crawler-{a.round}.stdout"
    stderr_path = workdir / f"crawler-{a.round}.stderr"
    args = ["--config", str(config), "crawl", "--json"]
    if a.code_path:
        # A frozen copy of the code, first on sys.path (the forkserver workers inherit it),
        # run by the project's venv python: the editable install's finder comes after it.
        # -P: no current directory on sys.path (run from the repo root, it would shadow the
        # copy, in the workers too, since forkserver passes the parent's sys.path on).
        cmd = [a.python, "-P", "-c", RUN_CLI, *args]
        env["PYTHONPATH"] = os.pathsep.join(
            [a.code_path, *filter(None, [env.get("PYTHONPATH")])])
    else:
        cmd = [a.crawler, *args]
    peak_tree_kb = 0
    timed_out = False
    with open(stdout_path, "wb") as out_fh, open(stderr_path, "wb") as err_fh:
        child = subprocess.Popen(cmd, stdout=out_fh, stderr=err_fh, env=env, cwd=workdir,
                                 start_new_session=True)
        deadline = started + a.round_timeout
        while child.poll() is None:
            tree = [child.pid, *_descendants(child.pid)]
            peak_tree_kb = max(peak_tree_kb, sum(_rss_kb(pid) for pid in tree))
            if time.monotonic() > deadline:
                timed_out = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.wait(timeout=30)
                break
            time.sleep(a.sample_interval)
    _reap_all(time.monotonic() + 30)
    rc = child.returncode
    stdout_text = stdout_path.read_text(encoding="utf-8", errors="replace")
    stderr_text = stderr_path.read_text(encoding="utf-8", errors="replace")
    if a.log_dir:
        log_dir = Path(a.log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        shutil.copyfile(stderr_path, log_dir / f"{stamp}-{a.round}.stderr.log")
    result = _last_json(stdout_text)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    me = resource.getrusage(resource.RUSAGE_SELF)
    busy = busy_cpu_s() - busy_start
    tree_cpu = children.ru_utime + children.ru_stime
    wrapper_cpu = me.ru_utime + me.ru_stime
    line: dict[str, Any] = dict(result or {})
    line.update({
        "round": a.round, "crawler_rc": rc, "timed_out": timed_out,
        "subreaper": subreaper,
        "tree_cpu_s": round(tree_cpu, 3),
        "tree_peak_rss_mb": round(peak_tree_kb / 1024, 1),
        "largest_process_rss_mb": round(children.ru_maxrss / 1024, 1),
        "wrapper_cpu_s": round(wrapper_cpu, 3),
        # Busy CPU of the machine during this round that is not ours (the feed server's
        # own share, ~0.5 s at 1,000 feeds, is in it): other load skews the figures.
        "other_cpu_s": round(busy - tree_cpu - wrapper_cpu, 2),
        "convert_s": round(convert_s, 3),
        "crawler_wall_s": round(time.monotonic() - started, 3),
        "stderr_lines": len(stderr_text.splitlines()),
        "tracebacks": stderr_text.count("Traceback (most recent call last)"),
    })
    if result is None or rc not in (0, 1) or timed_out:
        sys.stderr.write(stderr_text[-4000:])
        print(json.dumps(line))
        return rc if rc not in (0, None) else 1
    print(json.dumps(line))
    return 0


# --------------------------------------------------------------------------- setup


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def copy_kit(kit: Path, dest: Path) -> Path:
    """Copy the kit's scripts to dest (refreshed when they differ); the kit is never written."""
    missing = [f for f in KIT_FILES if not (kit / f).is_file()]
    if missing:
        raise SystemExit(f"{kit} does not look like the bench kit: missing {', '.join(missing)}")
    for name in KIT_FILES:
        source, target = kit / name, dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or _sha256(target) != _sha256(source):
            if target.exists():
                target.chmod(0o644)
            shutil.copyfile(source, target)
            target.chmod(0o644)
    return dest


def ensure_gnu_time() -> None:
    if os.access(TIME_BIN, os.X_OK):
        return
    if os.geteuid() != 0:
        raise SystemExit(f"{TIME_BIN} (GNU time) is missing: apt-get install time")
    log("installing GNU time (apt-get)")
    subprocess.run(["apt-get", "update", "-q"], check=True, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "-q", "time"], check=True, timeout=600)


def ensure_venv(venv: Path, requirements: Path, python: str) -> Path:
    """bench/out/venv with the kit's pinned requirements; rebuilt only when they change."""
    py = venv / "bin" / "python"
    stamp = venv / ".requirements.sha256"
    wanted = _sha256(requirements)
    if py.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        check = subprocess.run([str(py), "-c", PEER_IMPORTS], capture_output=True, timeout=120)
        if check.returncode == 0:
            return py
    if not py.exists():
        log(f"creating the peers' venv in {rel(venv)}")
        subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=600)
    log("installing the kit's requirements.txt into it")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True,
                   timeout=900)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", str(requirements)],
                   check=True, timeout=1800)
    subprocess.run([str(py), "-c", PEER_IMPORTS], check=True, timeout=120)
    stamp.write_text(wanted + "\n")
    return py


def ensure_corpus(py: Path, kit: Path, root: Path, feeds: int, items: int, seed: str,
                  timeout: float) -> Path:
    """The kit's corpus under bench/out/corpus, with the directory name run_bench.py expects."""
    path = root / f"n{feeds}-s{seed}-i{items}"
    if (path / "corpus.json").exists():
        return path
    log(f"generating the corpus {rel(path)} ({feeds} feeds x {items} items, seed {seed})")
    t = time.perf_counter()
    subprocess.run([str(py), str(kit / "gen_corpus.py"), "generate", "--out", str(path),
                    "--feeds", str(feeds), "--items", str(items), "--seed", seed],
                   check=True, stdout=subprocess.DEVNULL, timeout=timeout)
    log(f"corpus generated in {time.perf_counter() - t:.1f} s")
    return path


def rel(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(REPO))
    return str(path)


def _tree_sha256(root: Path) -> str:
    digest = hashlib.sha256()
    for package in CODE_PACKAGES:
        for path in sorted((root / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(root)).encode() + b"\0")
                digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def snapshot_code(mode: str, dest_root: Path) -> dict[str, Any]:
    """Freeze the code to measure: the editable install is live, and edits made while a
    run goes on would otherwise be measured half-way. `worktree` copies crawler/ and
    storage/ as they are now; any other value is a git revision, exported with git archive."""
    if mode == "live":
        return {"mode": "live", "path": None, "tree_sha256": _tree_sha256(REPO)}
    if mode == "worktree":
        sha = _tree_sha256(REPO)
        dest = dest_root / f"worktree-{sha[:12]}"
        if not dest.exists():
            tmp = dest.with_name(dest.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            for package in CODE_PACKAGES:
                shutil.copytree(REPO / package, tmp / package,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            tmp.rename(dest)
        return {"mode": "worktree", "path": str(dest), "tree_sha256": sha}
    done = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", f"{mode}^{{commit}}"],
                          capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise SystemExit(f"--code {mode}: not a git revision of this repository")
    commit = done.stdout.strip()
    dest = dest_root / f"rev-{commit[:12]}"
    if not dest.exists():
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit,
                                  *CODE_PACKAGES], capture_output=True, check=True, timeout=120)
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(tmp, filter="data")
        tmp.rename(dest)
    return {"mode": "revision", "revision": mode, "commit": commit, "path": str(dest),
            "tree_sha256": _tree_sha256(dest)}


def git_revision() -> str:
    """`git describe --always --dirty` of the repo: the code measured (it is installed editable)."""
    try:
        done = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return done.stdout.strip() or "?"


def _revision_text(revision: dict[str, str]) -> str:
    start, end = revision.get("start", "?"), revision.get("end", "?")
    return f"`{start}`" if start == end else f"`{start}` → `{end}` (changed during the run)"


def _code_text(summary: dict[str, Any]) -> str:
    code = summary.get("code", {})
    where = _revision_text(summary.get("revision", {}))
    sha = code.get("tree_sha256", "?")[:12]
    if code.get("mode") == "revision":
        return f"commit `{code['commit'][:12]}` ({code['revision']}), sources {sha}"
    if code.get("mode") == "worktree":
        return f"working tree frozen at the start (repo at {where}), sources {sha}"
    return f"the live editable install (repo at {where}), sources {sha} at the start"


def machine() -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = None
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo") as fh:
        mem_gib = round(int(fh.readline().split()[1]) / 1024 / 1024, 1)
    return {"nproc": os.cpu_count(), "cpu": cpu, "mem_gib": mem_gib,
            "python": platform.python_version(), "kernel": platform.release(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


# --------------------------------------------------------------------------- the run


def _lit(value: str | Path) -> str:
    """A shell-quoted literal for the kit's str.format template (braces doubled)."""
    return shlex.quote(str(value)).replace("{", "{{").replace("}", "}}")


def contender_template(a: argparse.Namespace, log_dir: Path) -> str:
    parts = [
        _lit(sys.executable), _lit(Path(__file__).resolve()), "round",
        "--round", "{round}", "--feeds-yaml", "{feeds_yaml}", "--workdir", "{workdir}",
        "--db", "{db}", "--crawler", _lit(a.crawler),
        "--python", _lit(Path(a.crawler).parent / "python"), "--concurrency", str(a.concurrency),
        "--timeout", f"{a.fetch_timeout:g}", "--rounds", _lit(a.rounds),
        "--round-timeout", f"{a.round_timeout:g}", "--log-dir", _lit(log_dir),
    ]
    if a.code_path:
        parts += ["--code-path", _lit(a.code_path)]
    return " ".join(parts)


@contextlib.contextmanager
def stopping(proc: subprocess.Popen[bytes], tmp: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Make sure the kit's runner and the feed server it started are gone when we leave."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            # SIGINT, not SIGTERM: the runner then leaves its `with Server(...)` block and
            # stops the server by PID itself.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        for pid_file in tmp.glob("feedserver-*/pid"):
            _stop_server_pid(pid_file)


def _stop_server_pid(pid_file: Path) -> None:
    """A feed server we started (its PID file is in our TMPDIR) that outlived its runner."""
    with contextlib.suppress(OSError, ValueError):
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"feedserver.py" in cmdline:
            log(f"stopping leftover feed server pid {pid}")
            os.kill(pid, signal.SIGTERM)


def wait_quiet(max_wait: float, window: float = 5.0, threshold: float = 0.15) -> bool:
    """Wait (at most max_wait s) for a window in which the machine is busy less than
    threshold of one core; True if found. The machine is shared with other sessions."""
    deadline = time.monotonic() + max_wait
    while True:
        before = busy_cpu_s()
        time.sleep(window)
        cores_busy = (busy_cpu_s() - before) / window
        if cores_busy < threshold:
            return True
        if time.monotonic() + window > deadline:
            log(f"the machine is still busy ({cores_busy:.2f} cores); starting anyway")
            return False
        log(f"waiting for a quiet machine ({cores_busy:.2f} cores busy by others)")


def cmd_run(a: argparse.Namespace) -> int:
    t_start = time.monotonic()
    rounds = a.rounds.split(",")
    if not rounds or rounds[0] != "cold" or any(r not in ROUNDS for r in rounds):
        raise SystemExit(f"--rounds: a comma list of {', '.join(ROUNDS)} starting with cold")
    kit_src = Path(a.kit).resolve() if a.kit else (REPO.parent / "shared" / "bench").resolve()
    crawler = Path(a.crawler)
    if not os.access(crawler, os.X_OK):
        raise SystemExit(f"{crawler}: not an executable (install the project: pip install -e .)")
    out = OUT
    for sub in ("results", "logs", "tmp", "work", "corpus"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    ensure_gnu_time()
    kit = copy_kit(kit_src, out / "kit")
    py = ensure_venv(out / "venv", kit / "requirements.txt", a.python)
    corpus = ensure_corpus(py, kit, out / "corpus", a.feeds, a.items, a.seed, a.total_timeout)

    revision_start = git_revision()
    code = snapshot_code(a.code, out / "code")
    a.code_path = code["path"]
    log(f"measuring our code: {a.code}"
        + (f" (frozen in {rel(Path(code['path']))})" if code["path"] else " (editable install)"))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = a.name or f"ingest-n{a.feeds}-i{a.items}-s{a.seed}-r{a.runs}-{stamp}"
    results = out / "results" / f"{name}.json"
    log_dir = out / "logs" / name
    template = contender_template(a, log_dir)
    cmd = [str(py), str(kit / "run_bench.py"), "--sizes", str(a.feeds), "--items", str(a.items),
           "--seed", a.seed, "--runs", str(a.runs), "--suites", "reader",
           "--reader-workers", str(a.reader_workers), "--contender-name", a.contender_name,
           "--contender-cmd", template, "--corpus-root", str(out / "corpus"),
           "--work", str(out / "work"), "--out", str(results),
           "--timeout", f"{a.round_timeout + 120:g}"]
    env = dict(os.environ, TMPDIR=str(out / "tmp"), PYTHONDONTWRITEBYTECODE="1")
    env["INGEST_ORIGINAL_TMPDIR"] = os.environ.get("TMPDIR", "")
    log(f"corpus {rel(corpus)}; running the kit: {a.runs} run(s) x (reader, {a.contender_name})")
    log(f"contender command: {template}")
    remaining = a.total_timeout - (time.monotonic() - t_start)
    if a.quiet_wait > 0:
        wait_quiet(a.quiet_wait)
    busy_start, load_start = busy_cpu_s(), os.getloadavg()
    proc = subprocess.Popen(cmd, cwd=str(kit), env=env, start_new_session=True)
    with stopping(proc, out / "tmp"):
        try:
            rc = proc.wait(timeout=max(60.0, remaining))
        except subprocess.TimeoutExpired:
            log(f"the whole run took longer than --total-timeout {a.total_timeout:g} s; stopped")
            return 124
    if rc != 0 or not results.exists():
        log(f"the kit's runner failed (rc={rc}); partial results, if any: {rel(results)}")
        return rc or 1
    busy = busy_cpu_s() - busy_start
    data = json.loads(results.read_text())
    summary = summarize(data, a, rounds)
    summary["interference"] = interference(data, busy, load_start)
    other = summary["interference"]
    if other["other_share"] > 0.05 and other["other_cpu_s"] > 5:
        log(f"warning: other programs used {summary['interference']['other_cpu_s']:.1f} CPU-s "
            "during the run: the machine was not quiet; figures are skewed")
    summary["machine"] = machine()
    summary["command"] = " ".join(shlex.quote(x) for x in [
        ".venv/bin/python", "bench/ingest.py", *a.argv])
    summary["kit_results"] = rel(results)
    summary["revision"] = {"start": revision_start, "end": git_revision()}
    summary["code"] = code
    if code["mode"] == "live" and _tree_sha256(REPO) != code["tree_sha256"]:
        log("warning: crawler/ or storage/ changed during the run (--code live)")
        summary["code"]["changed_during_run"] = True
    if summary["revision"]["start"] != summary["revision"]["end"]:
        log("warning: the repository changed during the run: "
            f"{revision_start} -> {summary['revision']['end']}")
    summary["elapsed_s"] = round(time.monotonic() - t_start, 1)
    table = render(summary)
    (out / "results" / f"{name}-summary.json").write_text(
        json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    (out / "results" / f"{name}-summary.md").write_text(table + "\n")
    print(table)
    log(f"wrote {rel(results)}, {rel(results.with_suffix(''))}.md and "
        f"{rel(results.with_suffix(''))}-summary.{{json,md}}")
    return 0


# --------------------------------------------------------------------------- summary


def _med(values: Sequence[Any]) -> float | None:
    nums = sorted(v for v in values if isinstance(v, int | float) and not isinstance(v, bool))
    if not nums:
        return None
    mid = len(nums) // 2
    return nums[mid] if len(nums) % 2 else (nums[mid - 1] + nums[mid]) / 2


def _ratio(ours: float | None, theirs: float | None) -> float | None:
    return round(ours / theirs, 3) if ours and theirs else None


def summarize(data: dict[str, Any], a: argparse.Namespace, rounds: Sequence[str]) -> dict[str, Any]:
    size = data["sizes"][str(a.feeds)]
    clients = size["clients"]
    reader_name = next(n for n in clients if n.startswith("reader"))
    ours_all = clients[a.contender_name]
    rows: list[dict[str, Any]] = []
    for rnd in rounds:
        r = clients[reader_name]["median"].get(rnd, {})
        o = ours_all["median"].get(rnd, {})
        runs = [run[rnd] for run in ours_all["runs"] if rnd in run]
        outs = [run.get("out", {}) for run in runs]
        row: dict[str, Any] = {
            "round": rnd,
            "ours": {
                "wall_s": o.get("wall_s"), "cpu_s": o.get("cpu_s"),
                "maxrss_mb": o.get("maxrss_mb"), "new_entries": o.get("new_entries"),
                "entries_per_s": o.get("entries_per_s"), "errors": o.get("errors"),
                "tree_peak_rss_mb": _med([x.get("tree_peak_rss_mb") for x in outs]),
                "not_modified": _med([x.get("not_modified") for x in outs]),
                "updated": _med([x.get("updated") for x in outs]),
                "unchanged": _med([x.get("unchanged") for x in outs]),
                "crawler_rc": sorted({x.get("crawler_rc") for x in outs}, key=str),
                "tracebacks": sum(x.get("tracebacks") or 0 for x in outs),
                "http_status": o.get("http_status"), "server_cpu_s": o.get("server_cpu_s"),
                "runs": len(runs),
            },
            "reader": {
                "wall_s": r.get("wall_s"), "cpu_s": r.get("cpu_s"),
                "maxrss_mb": r.get("maxrss_mb"), "new_entries": r.get("new_entries"),
                "entries_per_s": r.get("entries_per_s"), "errors": r.get("errors"),
                "http_status": r.get("http_status"), "server_cpu_s": r.get("server_cpu_s"),
            },
        }
        row["ratio"] = {k: _ratio(row["ours"][k], row["reader"][k])
                        for k in ("wall_s", "cpu_s", "maxrss_mb")}
        rows.append(row)
    return {"feeds": a.feeds, "items": a.items, "seed": a.seed, "runs": a.runs,
            "reader": reader_name, "contender": a.contender_name,
            "corpus": size.get("corpus"), "rounds": rows}


def interference(data: dict[str, Any], busy: float,
                 load_start: tuple[float, float, float]) -> dict[str, Any]:
    """CPU the machine spent during the run beyond the measured programs and the server."""
    measured = 0.0
    for size in data["sizes"].values():
        for client in size.get("clients", {}).values():
            for run in client["runs"]:
                for rnd in run.values():
                    measured += rnd.get("cpu_s") or 0.0
                    measured += (rnd.get("server") or {}).get("server_cpu_s") or 0.0
    other = max(0.0, busy - measured)
    return {"busy_cpu_s": round(busy, 1), "measured_cpu_s": round(measured, 1),
            "other_cpu_s": round(other, 1),
            "other_share": round(other / measured, 3) if measured else 0.0,
            "loadavg_at_start": [round(x, 2) for x in load_start]}


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def render(summary: dict[str, Any]) -> str:
    m = summary.get("machine", {})
    lines = [
        f"## {summary['feeds']:,} feeds x {summary['items']} items, seed {summary['seed']}, "
        f"median of {summary['runs']} run(s)",
        "",
        f"{m.get('nproc')} cores ({m.get('cpu')}), {m.get('mem_gib')} GiB, "
        f"Python {m.get('python')}, {m.get('date')}",
        "",
        f"Our CLI: {_code_text(summary)}.",
        "",
        "| round | program | wall s | entries/s | new entries | CPU s | peak RSS MB "
        "| errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in summary["rounds"]:
        for who, label in (("ours", summary["contender"]), ("reader", summary["reader"])):
            x = row[who]
            rss = _fmt(x["maxrss_mb"], 0)
            if who == "ours" and x.get("tree_peak_rss_mb"):
                rss += f" (tree {_fmt(x['tree_peak_rss_mb'], 0)})"
            lines.append(
                f"| {row['round']} | {label} | {_fmt(x['wall_s'])} | "
                f"{_fmt(x['entries_per_s'], 0)} | {_fmt(x['new_entries'], 0)} | "
                f"{_fmt(x['cpu_s'])} | {rss} | {_fmt(x['errors'], 0)} |")
        ratio = row["ratio"]
        lines.append(
            f"| {row['round']} | **ratio ours / reader** | **{_fmt(ratio['wall_s'])}** | | | "
            f"**{_fmt(ratio['cpu_s'])}** | **{_fmt(ratio['maxrss_mb'])}** | |")
    lines += [
        "",
        "CPU s = user + sys of the whole process tree (our forkserver parse workers "
        "included). Peak RSS = the largest single process (GNU time); \"tree\" = the "
        "sampled peak of the sum over our process tree.",
    ]
    if "interference" in summary:
        i = summary["interference"]
        lines += ["", f"Other load: the machine was busy {i['busy_cpu_s']:.1f} CPU-s during the "
                  f"run, of which {i['other_cpu_s']:.1f} s ({i['other_share']:.0%} of the "
                  f"measured programs' {i['measured_cpu_s']:.1f} s) was neither the measured "
                  f"programs nor the feed server (load average at the start "
                  f"{i['loadavg_at_start'][0]:.2f})."]
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["round"]:
        ap = argparse.ArgumentParser(prog="ingest.py round",
                                     description="one round of our CLI (the kit runs this)")
        ap.add_argument("--round", required=True, choices=ROUNDS)
        ap.add_argument("--feeds-yaml", required=True)
        ap.add_argument("--workdir", required=True)
        ap.add_argument("--db", required=True)
        ap.add_argument("--crawler", required=True)
        ap.add_argument("--concurrency", type=int, default=10)
        ap.add_argument("--timeout", type=float, default=30.0)
        ap.add_argument("--rounds", default=",".join(ROUNDS))
        ap.add_argument("--round-timeout", type=float, default=900.0)
        ap.add_argument("--sample-interval", type=float, default=0.2)
        ap.add_argument("--log-dir")
        ap.add_argument("--python", help="the project's venv python (with --code-path)")
        ap.add_argument("--code-path", help="a frozen copy of crawler/ and storage/ to run")
        return cmd_round(ap.parse_args(argv[1:]))
    ap = argparse.ArgumentParser(
        prog="ingest.py", description=__doc__.split("\n\n")[0],
        epilog="Results: bench/out/results/. See bench/README.md.")
    ap.add_argument("--feeds", type=int, default=1000, help="feeds in the corpus (1000)")
    ap.add_argument("--items", type=int, default=30, help="items per feed (30)")
    ap.add_argument("--seed", default="42", help="corpus seed (42)")
    ap.add_argument("--runs", type=int, default=1, help="runs of every program; medians (1)")
    ap.add_argument("--rounds", default=",".join(ROUNDS),
                    help="rounds of ours to run and report, cold first (cold,warm,changed); "
                         "reader always runs all three: the kit's protocol is fixed")
    ap.add_argument("--kit", help="the bench kit (default: ../shared/bench from the repo root)")
    ap.add_argument("--crawler", default=str(REPO / ".venv" / "bin" / "crawler"),
                    help="our CLI (default: .venv/bin/crawler)")
    ap.add_argument("--concurrency", type=int, default=10,
                    help="settings.concurrency for our CLI (10, as the shipped feeds.yaml)")
    ap.add_argument("--fetch-timeout", type=float, default=30.0, help="settings.timeout (30)")
    ap.add_argument("--reader-workers", type=int, default=16, help="reader's workers (16)")
    ap.add_argument("--contender-name", default="crawler")
    ap.add_argument("--name", help="results file stem (default ingest-n…-<timestamp>)")
    ap.add_argument("--round-timeout", type=float, default=900.0,
                    help="seconds one round of our CLI may take (900)")
    ap.add_argument("--total-timeout", type=float, default=3600.0,
                    help="seconds the whole benchmark may take (3600)")
    ap.add_argument("--python", default="python3", help="python for the peers' venv")
    ap.add_argument("--code", default="worktree",
                    help="the code to measure: worktree (a copy of crawler/ and storage/ taken "
                         "at the start; default), a git revision (e.g. HEAD), or live (the "
                         "editable install as it is during the run)")
    ap.add_argument("--quiet-wait", type=float, default=120.0,
                    help="wait up to this many seconds for the machine to be idle first (120)")
    a = ap.parse_args(argv)
    if not 1 <= a.runs <= 10 or a.feeds < 1 or a.items < 1:
        ap.error("--runs must be 1..10, --feeds and --items at least 1")
    a.argv = argv
    return cmd_run(a)


if __name__ == "__main__":
    sys.exit(main())
