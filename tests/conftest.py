"""Shared fixtures: storage on SQLite and PostgreSQL, a loopback feed server, a temp config."""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from storage import Storage, open_storage

DATA = Path(__file__).parent / "data"
FEEDS = DATA / "feeds"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
POSTGRES_ENV = "CRAWLER_TEST_POSTGRES_URL"
CONTENT_TYPES = {".rss": "application/rss+xml", ".atom": "application/atom+xml",
                 ".json": "application/feed+json", ".xml": "application/xml",
                 ".html": "text/html; charset=utf-8"}


def _postgres_schema() -> Iterator[str]:
    """A database URL whose connections live in a fresh schema, dropped afterwards."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV} (e.g. "
                    "postgresql://postgres@127.0.0.1:5432/test); .ci/run sets it")
    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    schema = f"crawler_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from _postgres_schema()


def _postgres_storage() -> Iterator[Storage]:
    for url in _postgres_schema():
        store = open_storage(url)
        try:
            yield store
        finally:
            store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """A fresh, real database: a SQLite file, or a private schema on PostgreSQL."""
    if request.param == "sqlite":
        store = open_storage(f"sqlite:///{tmp_path / 'crawler.db'}")
        try:
            yield store
        finally:
            store.close()
    else:
        yield from _postgres_storage()


class FeedServer:
    """Serves files over loopback with ETag/Last-Modified and 304s; routes can be swapped."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.hits: dict[str, int] = {}
        self.conditional_hits: dict[str, int] = {}
        server = self
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                with server.lock:
                    server.hits[path] = server.hits.get(path, 0) + 1
                    found = server.files.get(path)
                if found is None:
                    self.send_error(404)
                    return
                body, content_type = found
                etag = '"' + hashlib.sha1(body).hexdigest() + '"'
                if self.headers.get("If-None-Match") == etag:
                    with server.lock:
                        server.conditional_hits[path] = server.conditional_hits.get(path, 0) + 1
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", formatdate(usegmt=True))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add(self, path: str, body: bytes, content_type: str) -> str:
        with self.lock:
            self.files[path] = (body, content_type)
        return self.base_url + path

    def add_file(self, name: str, path: str | None = None) -> str:
        file = FEEDS / name
        return self.add(path or f"/{name}", file.read_bytes(),
                        CONTENT_TYPES.get(file.suffix, "application/xml"))

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    server = FeedServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def module_feed_server() -> Iterator[FeedServer]:
    """The same server, shared by a module whose tests all read one crawl."""
    server = FeedServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_config() -> object:
    """The function below, for tests (conftest is not importable in importlib mode)."""
    return write_config


def write_config(path: Path, database: str, feeds: dict[str, str], *, limit: int = 1000,
                 extra_outputs: str = "", collapse: str = "article") -> Path:
    """A feeds.yaml with the given name → URL feeds and one output `all` (every article
    by default, so tests can count the fixtures' items)."""
    lines = ["settings:", f"  database: {database}", "  interval: 3600", "  timeout: 10",
             "  allowed_networks: [127.0.0.0/8]",
             "  concurrency: 4", "  parse_workers: 2", "feeds:"]
    for name, url in feeds.items():
        lines += [f"  - name: {name}", f"    url: {url}", f"    tags: [{name.split('-')[0]}]"]
    lines += ["outputs:", "  - name: all", "    title: Everything", f"    limit: {limit}",
              f"    collapse: {collapse}"]
    path.write_text("\n".join(lines) + "\n" + extra_outputs, encoding="utf-8")
    return path


@pytest.fixture
def serve_handler() -> Iterator[Any]:
    """Start a loopback server for a handler class; returns its base URL. All stop after."""
    servers: list[ThreadingHTTPServer] = []

    def start(handler: type[BaseHTTPRequestHandler]) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    try:
        yield start
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.fixture
def crawl_once() -> Any:
    """Crawl every source of a Config into a Storage once, in-process; outcomes by name."""
    import asyncio

    from crawler.pipeline import Crawler

    def run(config: Any, store: Storage, names: list[str] | None = None) -> dict[str, Any]:
        crawler = Crawler(config, store)
        try:
            return {o.source: o for o in asyncio.run(crawler.crawl(names))}
        finally:
            crawler.close()

    return run
