"""The import rules of STYLE.md §2, checked on the source with ast."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted([*ROOT.joinpath("crawler").rglob("*.py"), *ROOT.joinpath("storage").rglob("*.py")])
STAGES = ("crawler/parsers/", "crawler/emitters/", "crawler/normalize.py", "crawler/sanitize.py",
          "crawler/encoding.py", "crawler/dates.py", "crawler/filters.py", "crawler/process.py")
# A third-party library may be imported only where it belongs.
OWNERS = {
    "httpx": ("crawler/fetch.py", "crawler/netguard.py"),
    "httpcore": ("crawler/netguard.py",),
    "sqlalchemy": ("storage/",),
    "sqlmodel": ("storage/",),
    "psycopg": ("storage/",),
    "apscheduler": ("crawler/scheduler.py",),
    "starlette": ("crawler/server.py",),
    "uvicorn": ("crawler/daemon.py",),
    "feedparser": ("crawler/parsers/",),
    "nh3": ("crawler/sanitize.py",),
    "trafilatura": ("crawler/parsers/page.py",),
    "bs4": ("crawler/parsers/", "crawler/cleaners/"),
    "rich": ("crawler/cli.py",),
    "opencc": ("crawler/script.py",),
    "rjieba": ("crawler/fingerprint.py",),
    "datasketch": ("crawler/fingerprint.py",),
    "ruamel": ("crawler/opml.py",),
    "defusedxml": ("crawler/opml.py",),
    "prometheus_client": ("crawler/metrics.py",),
}
STORAGE_USERS = ("crawler/pipeline.py", "crawler/server.py", "crawler/cli.py",
                 "crawler/daemon.py")


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("path", [pytest.param(p, id=rel(p)) for p in MODULES])
def test_libraries_stay_in_their_module(path: Path) -> None:
    """httpx only in fetch, SQL only in storage, the web stack only in the server, ..."""
    for name in imports(path):
        top = name.split(".")[0]
        if top in OWNERS:
            assert rel(path).startswith(OWNERS[top]), f"{rel(path)} imports {name}"


@pytest.mark.parametrize("path", [pytest.param(p, id=rel(p)) for p in MODULES
                                  if rel(p).startswith(STAGES)])
def test_stages_do_not_reach_storage_or_the_network(path: Path) -> None:
    """A stage is pure: no storage, no fetch, no orchestration."""
    for name in imports(path):
        assert not name.startswith(("storage", "crawler.fetch", "crawler.pipeline",
                                    "crawler.server", "crawler.cli")), f"{rel(path)}: {name}"


@pytest.mark.parametrize("path", [pytest.param(p, id=rel(p)) for p in MODULES])
def test_only_the_shell_calls_storage(path: Path) -> None:
    """storage is imported by pipeline, server, daemon and cli only; storage itself takes
    only crawler.types, crawler.errors and crawler.similarity (stdlib only) from crawler."""
    names = imports(path)
    if rel(path).startswith("storage/"):
        assert {n for n in names if n.startswith("crawler")} <= {
            "crawler.types", "crawler.errors", "crawler.similarity"}
    elif any(n == "storage" or n.startswith("storage.") for n in names):
        assert rel(path) in STORAGE_USERS, rel(path)


def test_importing_types_is_light() -> None:
    """crawler.types, and crawler.similarity which storage compares stories with, pull in
    no third-party library: the main process never loads the fingerprinting stack."""
    code = ("import sys, crawler.types, crawler.errors, crawler.similarity; "
            "print(sorted(m for m in ('httpx', 'feedparser', 'sqlalchemy', 'apscheduler', 'bs4',"
            " 'numpy', 'opencc', 'rjieba', 'datasketch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
