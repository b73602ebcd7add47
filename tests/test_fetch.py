"""Unit tests of crawler.fetch.fetch, with respx standing in for the network."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import AsyncIterator
from itertools import pairwise

import httpx
import pytest
import respx

from crawler.errors import FetchError, FetchTimeout, HTTPStatusError, TooLarge
from crawler.fetch import MAX_REDIRECTS, fetch, make_client
from crawler.types import CachingInfo, Fetched, NotModified, Settings

FEED = "https://feeds.example.test/rss.xml"
RSS = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel><title>中央社</title>'
    "<item><title>第一則</title><guid>1</guid></item></channel></rss>\n"
).encode()
RSS_TYPE = "application/rss+xml; charset=utf-8"
ETAG = '"v1"'
LAST_MODIFIED = "Sun, 02 Nov 2025 06:00:00 GMT"
MiB = 1024 * 1024


def run_fetch(
    url: str = FEED,
    caching: CachingInfo | None = None,
    *,
    max_bytes: int = MiB,
    deadline: float = 10.0,
    user_agent: str = Settings().user_agent,
) -> Fetched | NotModified:
    """One fetch through a real client from make_client, on a fresh event loop."""

    async def go() -> Fetched | NotModified:
        async with make_client(user_agent=user_agent, concurrency=2, timeout=5.0) as client:
            return await fetch(client, url, caching or CachingInfo(),
                               max_bytes=max_bytes, deadline=deadline)

    return asyncio.run(go())


def test_200_returns_body_final_url_type_and_validators() -> None:
    """A 200 hands back the exact bytes, the URL, the Content-Type and both validators."""
    with respx.mock(assert_all_called=True) as mock:
        mock.get(FEED).respond(200, content=RSS, headers={
            "Content-Type": RSS_TYPE, "ETag": ETAG, "Last-Modified": LAST_MODIFIED})
        result = run_fetch()
    assert isinstance(result, Fetched)
    assert result.status == 200
    assert result.body == RSS
    assert result.url == FEED
    assert result.final_url == FEED
    assert result.content_type == RSS_TYPE
    assert result.caching == CachingInfo(etag=ETAG, last_modified=LAST_MODIFIED)
    assert result.permanent_redirect is None


def test_200_without_validators_has_empty_caching() -> None:
    """A server that sends no validators leaves nothing to send back next time."""
    with respx.mock(assert_all_called=True) as mock:
        mock.get(FEED).respond(200, content=RSS, headers={"Content-Type": RSS_TYPE})
        result = run_fetch()
    assert isinstance(result, Fetched)
    assert result.caching == CachingInfo()


def test_no_conditional_headers_without_stored_validators() -> None:
    """A first fetch is unconditional: no If-None-Match or If-Modified-Since is invented."""
    with respx.mock(assert_all_called=True) as mock:
        route = mock.get(FEED).respond(200, content=RSS)
        run_fetch()
    sent = route.calls.last.request.headers
    assert "If-None-Match" not in sent
    assert "If-Modified-Since" not in sent


def test_304_with_stored_validators_is_not_modified() -> None:
    """Stored validators are sent, and the 304 that answers them means "no change"."""
    stored = CachingInfo(etag=ETAG, last_modified=LAST_MODIFIED)
    with respx.mock(assert_all_called=True) as mock:
        route = mock.get(FEED).respond(304)
        result = run_fetch(caching=stored)
    sent = route.calls.last.request.headers
    assert sent["If-None-Match"] == ETAG
    assert sent["If-Modified-Since"] == LAST_MODIFIED
    assert isinstance(result, NotModified)
    assert result.url == FEED
    assert result.caching == stored


def test_304_with_a_fresh_etag_updates_it_and_keeps_last_modified() -> None:
    """A 304 carrying a new ETag replaces the stored one; the missing Last-Modified is kept."""
    stored = CachingInfo(etag=ETAG, last_modified=LAST_MODIFIED)
    with respx.mock(assert_all_called=True) as mock:
        mock.get(FEED).respond(304, headers={"ETag": '"v2"'})
        result = run_fetch(caching=stored)
    assert isinstance(result, NotModified)
    assert result.caching == CachingInfo(etag='"v2"', last_modified=LAST_MODIFIED)


def test_read_timeout_is_fetch_timeout() -> None:
    """httpx's per-read timeout surfaces as the project's FetchTimeout, not an httpx error."""
    with respx.mock(assert_all_called=True) as mock:
        mock.get(FEED).mock(side_effect=httpx.ReadTimeout)
        with pytest.raises(FetchTimeout) as caught:
            run_fetch()
    assert caught.value.kind == "timeout"


def test_slow_response_hits_the_total_deadline() -> None:
    """A server slower than the total deadline is cut off at the deadline, not waited for."""

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, content=RSS)

    # The cancelled side effect never returns, so respx does not count the call.
    with respx.mock(assert_all_called=False) as mock:
        route = mock.get(FEED).mock(side_effect=slow)
        started = time.monotonic()
        with pytest.raises(FetchTimeout):
            run_fetch(deadline=0.3)
        elapsed = time.monotonic() - started
    assert elapsed < 3  # a bound on a hang: the 5 s answer was not awaited
    assert not route.called


def test_content_length_over_the_cap_is_too_large() -> None:
    """A body announced as bigger than max_bytes is refused on its Content-Length alone."""
    with respx.mock(assert_all_called=True) as mock:
        mock.get(FEED).respond(200, content=b"x" * (MiB + 1))
        with pytest.raises(TooLarge, match=f"Content-Length {MiB + 1} ") as caught:
            run_fetch(max_bytes=MiB)
    assert caught.value.kind == "too_large"


def test_streamed_body_over_the_cap_without_content_length_is_too_large() -> None:
    """A chunked body with no Content-Length is stopped once it passes max_bytes."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b"x" * 64 * 1024  # 2.5 MiB in all

    with respx.mock(assert_all_called=True) as mock:
        route = mock.get(FEED).mock(return_value=httpx.Response(200, content=chunks()))
        with pytest.raises(TooLarge):
            run_fetch(max_bytes=MiB)
    assert "Content-Length" not in route.calls.last.response.headers


def test_body_of_exactly_max_bytes_is_accepted() -> None:
    """The cap is inclusive: a body of exactly max_bytes arrives whole."""
    body = b"x" * 4096
    with respx.mock(assert_all_called=True) as mock:
        mock.get(FEED).respond(200, content=body)
        result = run_fetch(max_bytes=len(body))
    assert isinstance(result, Fetched)
    assert result.body == body


def test_cap_counts_decompressed_bytes() -> None:
    """A small gzip body that inflates past max_bytes is too large (a gzip bomb)."""
    bomb = gzip.compress(b"\0" * (4 * MiB))
    assert len(bomb) < MiB
    with respx.mock(assert_all_called=True) as mock:
        mock.get(FEED).respond(200, content=bomb, headers={"Content-Encoding": "gzip"})
        with pytest.raises(TooLarge):
            run_fetch(max_bytes=MiB)


def test_gzip_body_under_the_cap_is_decoded() -> None:
    """A gzip-encoded feed comes back decoded, as the feed's own bytes."""
    with respx.mock(assert_all_called=True) as mock:
        mock.get(FEED).respond(200, content=gzip.compress(RSS),
                               headers={"Content-Encoding": "gzip"})
        result = run_fetch()
    assert isinstance(result, Fetched)
    assert result.body == RSS


def test_bad_gzip_is_a_fetch_error() -> None:
    """A body that claims gzip but is not is a recorded fetch error, not an httpx exception."""

    async def not_gzip() -> AsyncIterator[bytes]:
        yield RSS  # a lazy body: respx would otherwise decode it while building the mock

    with respx.mock(assert_all_called=True) as mock:
        mock.get(FEED).mock(return_value=httpx.Response(
            200, content=not_gzip(), headers={"Content-Encoding": "gzip"}))
        with pytest.raises(FetchError, match="content encoding"):
            run_fetch()


@pytest.mark.parametrize("status", [
    pytest.param(301, id="301"),
    pytest.param(308, id="308"),
])
def test_permanent_redirect_is_followed_and_reported(status: int) -> None:
    """After a 301/308 the feed is fetched from the target, which is reported as permanent."""
    target = "https://new.example.test/feed.xml"
    with respx.mock(assert_all_called=True) as mock:
        mock.get(FEED).respond(status, headers={"Location": target})
        mock.get(target).respond(200, content=RSS, headers={"Content-Type": RSS_TYPE})
        result = run_fetch()
    assert isinstance(result, Fetched)
    assert result.url == FEED
    assert result.final_url == target
    assert result.permanent_redirect == target
    assert result.body == RSS


def test_relative_location_is_resolved_against_the_request_url() -> None:
    """A relative Location is joined to the URL that answered with it."""
    with respx.mock(assert_all_called=True) as mock:
        mock.get(FEED).respond(301, headers={"Location": "/v2/rss.xml"})
        mock.get("https://feeds.example.test/v2/rss.xml").respond(200, content=RSS)
        result = run_fetch()
    assert isinstance(result, Fetched)
    assert result.final_url == "https://feeds.example.test/v2/rss.xml"


def test_temporary_redirect_is_followed_but_not_reported_as_permanent() -> None:
    """A 302 is followed, but the stored URL must not move: no permanent_redirect."""
    target = "https://mirror.example.test/rss.xml"
    with respx.mock(assert_all_called=True) as mock:
        mock.get(FEED).respond(302, headers={"Location": target})
        mock.get(target).respond(200, content=RSS)
        result = run_fetch()
    assert isinstance(result, Fetched)
    assert result.final_url == target
    assert result.permanent_redirect is None


def _chain(mock: respx.MockRouter, hops: int) -> list[respx.Route]:
    """FEED → /hop/1 → ... → /hop/<hops>, the last answering 200; returns every route."""
    urls = [FEED] + [f"https://feeds.example.test/hop/{i}" for i in range(1, hops + 1)]
    routes = [mock.get(a).respond(302, headers={"Location": b}) for a, b in pairwise(urls)]
    routes.append(mock.get(urls[-1]).respond(200, content=RSS))
    return routes


def test_five_redirects_are_followed() -> None:
    """A chain of exactly MAX_REDIRECTS (5) hops still reaches the feed."""
    assert MAX_REDIRECTS == 5
    with respx.mock(assert_all_called=True) as mock:
        _chain(mock, MAX_REDIRECTS)
        result = run_fetch()
    assert isinstance(result, Fetched)
    assert result.final_url == f"https://feeds.example.test/hop/{MAX_REDIRECTS}"


def test_more_than_five_redirects_is_a_fetch_error() -> None:
    """A sixth redirect is refused with "too many redirects", without requesting its target."""
    with respx.mock(assert_all_called=False) as mock:
        routes = _chain(mock, MAX_REDIRECTS + 1)
        with pytest.raises(FetchError, match="too many redirects"):
            run_fetch()
    assert sum(route.call_count for route in routes) == MAX_REDIRECTS + 1
    assert not routes[-1].called


def test_redirect_loop_is_a_fetch_error() -> None:
    """Two URLs redirecting to each other end in "too many redirects", not a hang."""
    other = "https://feeds.example.test/b"
    with respx.mock(assert_all_called=True) as mock:
        a = mock.get(FEED).respond(302, headers={"Location": other})
        b = mock.get(other).respond(302, headers={"Location": FEED})
        with pytest.raises(FetchError, match="too many redirects"):
            run_fetch()
    assert a.call_count + b.call_count <= MAX_REDIRECTS + 1


def test_redirect_without_location_is_an_http_status_error() -> None:
    """A 301 with no Location is an error carrying the status, not a document to parse."""
    with respx.mock(assert_all_called=True) as mock:
        mock.get(FEED).respond(301, content=b"moved, but where?")
        with pytest.raises(HTTPStatusError) as caught:
            run_fetch()
    assert caught.value.status == 301


@pytest.mark.parametrize("location", [
    pytest.param("file:///etc/passwd", id="file"),
    pytest.param("gopher://127.0.0.1:70/_secret", id="gopher"),
    pytest.param("ftp://127.0.0.1/secret", id="ftp"),
])
def test_redirect_to_a_non_http_scheme_is_refused(location: str) -> None:
    """Only http and https redirect targets are followed; others are a named refusal."""
    with respx.mock(assert_all_called=True) as mock:
        mock.get(FEED).respond(302, headers={"Location": location})
        with pytest.raises(FetchError, match="non-HTTP"):
            run_fetch()


@pytest.mark.parametrize("location", [
    pytest.param("javascript:alert(1)", id="javascript"),
    pytest.param("data:application/rss+xml;base64,PHJzcy8+", id="data"),
])
def test_redirect_to_an_unbuildable_url_is_a_fetch_error(location: str) -> None:
    """A Location httpx cannot turn into a request is the feed's fetch error, not a crash."""
    with respx.mock(assert_all_called=True) as mock:
        mock.get(FEED).respond(302, headers={"Location": location})
        with pytest.raises(FetchError, match="invalid URL"):
            run_fetch()


def test_malformed_location_is_a_fetch_error() -> None:
    """A Location httpx cannot parse is the feed's fetch error, not an escaping httpx bug."""
    with respx.mock(assert_all_called=True) as mock:
        mock.get(FEED).respond(302, headers={"Location": "http://feeds.example.test:port/"})
        with pytest.raises(FetchError):
            run_fetch()


@pytest.mark.parametrize("status", [
    pytest.param(404, id="404"),
    pytest.param(410, id="410"),
    pytest.param(429, id="429"),
    pytest.param(500, id="500"),
    pytest.param(503, id="503"),
])
def test_error_status_raises_http_status_error(status: int) -> None:
    """A 4xx/5xx answer is an http_status error with the status kept for back-off and display."""
    with respx.mock(assert_all_called=True) as mock:
        mock.get(FEED).respond(status, content=b"<html>error</html>",
                               headers={"Content-Type": "text/html"})
        with pytest.raises(HTTPStatusError) as caught:
            run_fetch()
    assert caught.value.status == status
    assert caught.value.kind == "http_status"
    assert str(status) in str(caught.value)


def test_error_status_after_a_redirect_keeps_its_status() -> None:
    """A redirect that lands on a 404 reports the 404."""
    target = "https://new.example.test/feed.xml"
    with respx.mock(assert_all_called=True) as mock:
        mock.get(FEED).respond(301, headers={"Location": target})
        mock.get(target).respond(404)
        with pytest.raises(HTTPStatusError) as caught:
            run_fetch()
    assert caught.value.status == 404


def test_connection_error_names_the_host() -> None:
    """A refused connection is a FetchError whose message says which host could not be reached."""
    with respx.mock(assert_all_called=True) as mock:
        mock.get(FEED).mock(side_effect=httpx.ConnectError("connection refused"))
        with pytest.raises(FetchError) as caught:
            run_fetch()
    assert type(caught.value) is FetchError
    assert caught.value.kind == "fetch"
    assert "feeds.example.test" in str(caught.value)


def test_protocol_error_is_a_fetch_error() -> None:
    """A server that breaks the protocol is a FetchError, not an httpx exception."""
    with respx.mock(assert_all_called=True) as mock:
        mock.get(FEED).mock(side_effect=httpx.RemoteProtocolError("illegal status line"))
        with pytest.raises(FetchError, match="RemoteProtocolError"):
            run_fetch()


def test_user_agent_and_accept_headers_are_sent() -> None:
    """Every request names the project in its User-Agent and asks for feed types."""
    with respx.mock(assert_all_called=True) as mock:
        route = mock.get(FEED).respond(200, content=RSS)
        run_fetch()
    sent = route.calls.last.request.headers
    assert sent["User-Agent"] == Settings().user_agent
    assert "crawler" in sent["User-Agent"]
    assert "application/rss+xml" in sent["Accept"]
    assert "application/atom+xml" in sent["Accept"]


def test_user_agent_is_sent_on_every_redirect_hop() -> None:
    """The redirect target sees the same User-Agent as the first URL."""
    target = "https://new.example.test/feed.xml"
    with respx.mock(assert_all_called=True) as mock:
        mock.get(FEED).respond(301, headers={"Location": target})
        final = mock.get(target).respond(200, content=RSS)
        run_fetch(user_agent="crawler-test/9")
    assert final.calls.last.request.headers["User-Agent"] == "crawler-test/9"
