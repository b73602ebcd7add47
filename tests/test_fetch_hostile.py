"""crawler.fetch over real loopback HTTP against the shared hostile server.

The server (../shared/fixtures/hostile/server/hostile_server.py) misbehaves on demand:
drips bytes, never ends, inflates a gzip bomb, loops redirects, lies about charsets.
"""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from crawler.encoding import decode
from crawler.errors import FetchError, FetchTimeout, HTTPStatusError, TooLarge
from crawler.fetch import MAX_REDIRECTS, fetch, make_client
from crawler.types import CachingInfo, Fetched, NotModified, Settings

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SERVER = SHARED / "fixtures" / "hostile" / "server" / "hostile_server.py"
MiB = 1024 * 1024


def _load_server() -> ModuleType:
    """Import hostile_server.py by path (it is not a package and must not shadow anything)."""
    spec = importlib.util.spec_from_file_location("_hostile_server_for_fetch_tests", SERVER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    """One hostile server for the module on 127.0.0.1, always stopped afterwards."""
    if not SERVER.is_file():
        pytest.skip(f"hostile server not found at {SERVER} (the shared folder next to the repo)")
    # No secondary 127.0.0.2 listener: these tests do not exercise SSRF.
    running = _load_server().start_in_thread(max_seconds=120, secondary=None)
    try:
        yield running
    finally:
        running.stop()


def run_fetch(
    url: str, caching: CachingInfo | None = None, *, max_bytes: int = MiB, deadline: float = 10.0
) -> Fetched | NotModified:
    """One fetch with a client from make_client (per-read timeout 5 s) on a fresh loop."""

    async def go() -> Fetched | NotModified:
        async with make_client(user_agent=Settings().user_agent, concurrency=2,
                               timeout=5.0) as client:
            return await fetch(client, url, caching or CachingInfo(),
                               max_bytes=max_bytes, deadline=deadline)

    return asyncio.run(go())


def hits(server: Any, prefix: str) -> int:
    """Requests the server saw for paths starting with prefix."""
    return sum(n for path, n in server.stats().items() if path.startswith(prefix))


def test_ok_feed_is_fetched_with_validators(server: Any) -> None:
    """The control feed arrives whole, with its content type and both validators."""
    result = run_fetch(server.base_url + "/ok")
    assert isinstance(result, Fetched)
    assert result.status == 200
    assert "回環測試".encode() in result.body
    assert result.content_type == "application/rss+xml; charset=utf-8"
    assert result.caching == CachingInfo(etag='"v1"', last_modified="Sun, 02 Nov 2025 06:00:00 GMT")


@pytest.mark.parametrize(("path", "deadline"), [
    pytest.param("/slow-body?delay=1&chunk=1", 3.0, id="slow-body"),
    pytest.param("/slow-headers?delay=1", 2.0, id="slow-headers"),
])
def test_drip_feed_is_cut_off_by_the_total_deadline(
    server: Any, path: str, deadline: float
) -> None:
    """A server dripping a byte (or a header) a second is ended by the total deadline."""
    started = time.monotonic()
    with pytest.raises(FetchTimeout) as caught:
        run_fetch(server.base_url + path, deadline=deadline)
    elapsed = time.monotonic() - started
    # A bound on a hang, not a speed target: per-read timeouts alone never fire here.
    assert elapsed < 10
    assert caught.value.kind == "timeout"


@pytest.mark.parametrize("path", [
    pytest.param("/endless", id="endless"),
    pytest.param("/gzip-bomb", id="gzip-bomb"),
    pytest.param("/gzip-bomb-xml", id="gzip-bomb-xml"),
    pytest.param("/huge?bytes=50000000", id="huge-streamed"),
    pytest.param("/huge?bytes=50000000&cl=1", id="huge-content-length"),
])
def test_oversized_body_is_too_large(server: Any, path: str) -> None:
    """A body past max_bytes (after decompression) is refused instead of read to the end."""
    started = time.monotonic()
    with pytest.raises(TooLarge):
        run_fetch(server.base_url + path, max_bytes=MiB)
    assert time.monotonic() - started < 10


def test_content_length_over_the_cap_is_refused_before_reading(server: Any) -> None:
    """An announced Content-Length above the cap is refused from the headers alone."""
    with pytest.raises(TooLarge, match="Content-Length 200000000"):
        run_fetch(server.base_url + "/huge?cl=1", max_bytes=MiB)


@pytest.mark.parametrize("path", [
    pytest.param("/redirect-loop/a", id="redirect-loop"),
    pytest.param("/redirect-self", id="redirect-self"),
    pytest.param("/redirect-chain/30", id="redirect-chain-30"),
])
def test_endless_redirects_are_a_fetch_error(server: Any, path: str) -> None:
    """Redirect loops and long chains end in "too many redirects" after at most 6 requests."""
    prefix = path.rsplit("/", 1)[0] if path.count("/") > 1 else path
    before = hits(server, prefix)
    with pytest.raises(FetchError, match="too many redirects"):
        run_fetch(server.base_url + path)
    assert hits(server, prefix) - before == MAX_REDIRECTS + 1


@pytest.mark.parametrize(("path", "permanent"), [
    pytest.param("/moved", True, id="301"),
    pytest.param("/moved-308", True, id="308"),
    pytest.param("/temp", False, id="302"),
])
def test_redirect_to_the_feed_reports_permanence(server: Any, path: str, permanent: bool) -> None:
    """A 301/308 reports its target as the new URL; a 302 is followed but not reported."""
    result = run_fetch(server.base_url + path)
    assert isinstance(result, Fetched)
    assert result.final_url == server.base_url + "/ok"
    assert result.permanent_redirect == (server.base_url + "/ok" if permanent else None)


def test_location_missing_is_an_http_status_error(server: Any) -> None:
    """A 301 without Location is an error with the status, not a body handed to the parser."""
    with pytest.raises(HTTPStatusError) as caught:
        run_fetch(server.base_url + "/location-missing")
    assert caught.value.status == 301


@pytest.mark.parametrize(("path", "status"), [
    pytest.param("/gone", 410, id="gone"),
    pytest.param("/notfound", 404, id="notfound"),
    pytest.param("/always500", 500, id="always500"),
    pytest.param("/ratelimit", 429, id="ratelimit"),
    pytest.param("/cf-challenge", 403, id="cf-challenge"),
])
def test_error_status_is_an_http_status_error(server: Any, path: str, status: int) -> None:
    """4xx/5xx answers are http_status errors that carry the status."""
    with pytest.raises(HTTPStatusError) as caught:
        run_fetch(server.base_url + path)
    assert caught.value.status == status


@pytest.mark.parametrize("path", [
    pytest.param("/etag-weak", id="etag-weak"),
    pytest.param("/lastmod-only", id="lastmod-only"),
    pytest.param("/ok", id="etag-and-lastmod"),
])
def test_second_fetch_with_returned_validators_is_not_modified(server: Any, path: str) -> None:
    """Validators from the first answer are sent back, and the server's 304 is "no change"."""
    url = server.base_url + path
    first = run_fetch(url)
    assert isinstance(first, Fetched)
    assert first.caching != CachingInfo()
    second = run_fetch(url, first.caching)
    assert isinstance(second, NotModified)
    assert second.caching == first.caching
    sent = [entry for entry in server.log() if entry["path"] == path][-1]
    assert sent["status"] == 304
    assert sent["if_none_match"] == first.caching.etag
    assert sent["if_modified_since"] == first.caching.last_modified


def test_304_without_validators_is_not_modified(server: Any) -> None:
    """A 304 to an unconditional request is "no change", not an error."""
    result = run_fetch(server.base_url + "/304-always")
    assert isinstance(result, NotModified)
    assert result.caching == CachingInfo()


def test_charset_lie_is_decoded_correctly(server: Any) -> None:
    """A Big5 body served as charset=utf-8 still decodes to the right Chinese text."""
    result = run_fetch(server.base_url + "/charset-lie")
    assert isinstance(result, Fetched)
    assert result.content_type == "application/rss+xml; charset=utf-8"
    text, encoding, warnings = decode(result.body, result.content_type)
    assert encoding == "big5hkscs"
    assert "\ufffd" not in text
    for title in ("<title>回環測試</title>", "<title>第一則</title>", "<title>第二則</title>",
                  "<description>第二則內容</description>"):
        assert title in text
    assert warnings  # the lie is recorded as a warning for the feed


@pytest.mark.parametrize("path", [
    pytest.param("/bad-gzip", id="bad-gzip"),
    pytest.param("/reset", id="reset"),
    pytest.param("/garbage", id="garbage"),
    pytest.param("/truncated-body", id="truncated-body"),
    pytest.param("/huge-headers", id="huge-headers"),
])
def test_broken_transport_is_a_fetch_error(server: Any, path: str) -> None:
    """Broken encodings, resets and non-HTTP answers are plain fetch errors."""
    with pytest.raises(FetchError) as caught:
        run_fetch(server.base_url + path)
    assert caught.value.kind == "fetch"


def test_connection_refused_names_the_host() -> None:
    """Nothing listening on the port is a fetch error naming the host."""
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FetchError, match=r"cannot connect to 127\.0\.0\.1"):
        run_fetch(f"http://127.0.0.1:{port}/feed.xml")


def test_user_agent_reaches_the_server(server: Any) -> None:
    """The server sees the project's User-Agent."""
    run_fetch(server.base_url + "/ok?format=json")
    seen = [entry for entry in server.log() if entry["path"] == "/ok?format=json"][-1]
    assert seen["user_agent"] == Settings().user_agent
