"""The only network code: one conditional GET under a byte cap and a total deadline.

In: a URL and the stored :class:`CachingInfo`. Out: :class:`Fetched` (the raw bytes; decoding
is the parser's job, since servers lie about charsets) or :class:`NotModified`.
Raises :class:`FetchError` and its subclasses, never an httpx exception.

Why a total deadline: httpx's timeouts are per read, so a server that drips one byte a
second never times out (measured: 135 s for a 5 s timeout; see RELIABILITY.md §2.2).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from crawler.errors import FetchError, FetchTimeout, HTTPStatusError, TooLarge
from crawler.netguard import AddressPolicy, guarded_transport
from crawler.types import CachingInfo, Fetched, NotModified

MAX_REDIRECTS = 5
MAX_RETRY_AFTER = 7 * 24 * 3600.0
# The statuses that redirect. Not httpx's ``Response.is_redirect``, which is true for every 3xx,
# 304 included: that turned each "not modified" into a "without a Location header" error.
REDIRECTS = frozenset({301, 302, 303, 307, 308})
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/json;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.8"
)


def make_client(*, user_agent: str, concurrency: int, timeout: float,
                policy: AddressPolicy | None = None) -> httpx.AsyncClient:
    """One client for a whole crawl, so connections to the same host are reused.

    The pool is kept at the fetch concurrency: httpcore scans every pooled connection per
    request, so a bigger pool is slower (PERF.md, finding 4). ``policy`` None connects
    anywhere (tests, tools); the crawler always passes one, checked on every connection.
    """
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(
        headers={"User-Agent": user_agent, "Accept": ACCEPT},
        timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
        limits=limits,
        transport=guarded_transport(policy, limits) if policy is not None else None,
        follow_redirects=False,
    )


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    caching: CachingInfo,
    *,
    max_bytes: int,
    deadline: float,
    headers: dict[str, str] | None = None,
) -> Fetched | NotModified:
    try:
        async with asyncio.timeout(deadline):
            return await _fetch(client, url, caching, max_bytes, headers or {})
    except TimeoutError as exc:
        raise FetchTimeout(f"no complete answer within {deadline:g} s") from exc
    except httpx.TimeoutException as exc:
        raise FetchTimeout(f"{type(exc).__name__} after the per-read timeout") from exc
    except httpx.DecodingError as exc:
        raise FetchError(f"bad content encoding: {exc}") from exc
    except httpx.ConnectError as exc:
        host = httpx.URL(url).host
        raise FetchError(f"cannot connect to {host}: {exc or 'connection refused'}") from exc
    except httpx.HTTPError as exc:
        raise FetchError(f"{type(exc).__name__}: {exc or 'connection failed'}") from exc
    except httpx.InvalidURL as exc:
        # Not an HTTPError: httpx raises it from send() for a Location such as
        # "javascript:alert(1)" or "data:...", before the redirect response reaches us.
        raise FetchError(f"invalid URL (a bad redirect Location?): {exc}") from exc


async def _fetch(
    client: httpx.AsyncClient, url: str, caching: CachingInfo, max_bytes: int,
    extra: dict[str, str],
) -> Fetched | NotModified:
    headers: dict[str, str] = dict(extra)
    if caching.etag:
        headers["If-None-Match"] = caching.etag
    if caching.last_modified:
        headers["If-Modified-Since"] = caching.last_modified
    current = url
    permanent: str | None = None
    # Redirects are followed by hand so the hop count is ours and a 301/308 can be reported.
    for _hop in range(MAX_REDIRECTS + 1):
        request = client.build_request("GET", current, headers=headers)
        response = await client.send(request, stream=True)
        try:
            if response.status_code == 304:
                # Read the (empty) body so the connection goes back to the pool: closing an
                # unread streamed response closes the connection, and every poll would pay
                # for a new one.
                await response.aread()
                return NotModified(url=url, caching=_caching(response, caching),
                                   fresh_for=fresh_for(response.headers))
            if response.status_code in REDIRECTS:
                location = response.headers.get("Location")
                if not location:
                    raise HTTPStatusError(
                        f"HTTP {response.status_code} without a Location header",
                        status=response.status_code,
                    )
                target = str(response.url.join(location))
                if not target.startswith(("http://", "https://")):
                    raise FetchError(f"redirect to a non-HTTP URL refused: {target!r}")
                if response.status_code in (301, 308) and permanent is None:
                    permanent = target
                current = target
                continue
            if response.status_code >= 400:
                wait = None
                if response.status_code in (429, 503):
                    wait = retry_after(response.headers.get("Retry-After"))
                raise HTTPStatusError(
                    f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
                    + (f" (retry after {wait:g} s)" if wait else ""),
                    status=response.status_code,
                    retry_after=wait,
                )
            body = await _read_capped(response, max_bytes)
            return Fetched(
                url=url,
                final_url=str(response.url),
                status=response.status_code,
                body=body,
                content_type=response.headers.get("Content-Type"),
                caching=_caching(response, CachingInfo()),
                permanent_redirect=permanent,
                fresh_for=fresh_for(response.headers),
            )
        finally:
            await response.aclose()
    raise FetchError(f"too many redirects (more than {MAX_REDIRECTS})")


def host_of(url: str) -> str:
    """The host a URL names, lower-cased, as requests to it are counted; "" if none."""
    try:
        return httpx.URL(url).host.lower()
    except httpx.InvalidURL:
        return ""


def retry_after(value: str | None) -> float | None:
    """Retry-After as seconds from now (delta-seconds or an HTTP-date, RFC 9110 §10.2.3);
    None when absent, invalid or already past; at most a week, whatever the server says."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds <= 0:
        return None
    return min(seconds, MAX_RETRY_AFTER)


def fresh_for(headers: httpx.Headers) -> float | None:
    """How long the answer stays fresh, as the server says (RFC 9111 §4.2.1): max-age beats
    Expires; no-cache, no-store and an Expires already past say nothing about polling."""
    directives = {}
    for part in headers.get("Cache-Control", "").split(","):
        name, _, value = part.strip().partition("=")
        directives[name.strip().lower()] = value.strip().strip('"')
    if "no-store" in directives or "no-cache" in directives:
        return None
    if "max-age" in directives:
        age = directives["max-age"]
        return float(age) if age.isdigit() and int(age) > 0 else None
    expires = headers.get("Expires")
    if not expires:
        return None
    try:
        when = parsedate_to_datetime(expires)
    except (TypeError, ValueError, IndexError):
        return None  # "Expires: 0" and other junk mean already stale
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    date = headers.get("Date")
    try:
        base = parsedate_to_datetime(date) if date else datetime.now(UTC)
    except (TypeError, ValueError, IndexError):
        base = datetime.now(UTC)
    if base.tzinfo is None:
        base = base.replace(tzinfo=UTC)
    seconds = (when - base).total_seconds()
    return seconds if seconds > 0 else None


def _caching(response: httpx.Response, previous: CachingInfo) -> CachingInfo:
    # A 304 may carry fresher validators; keep the old ones where it carries none (RFC 9111 §4.3.4).
    return CachingInfo(
        etag=response.headers.get("ETag") or previous.etag,
        last_modified=response.headers.get("Last-Modified") or previous.last_modified,
    )


async def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("Content-Length")
    # Compressed or not, a body announced as larger than the cap only grows when decoded.
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(f"Content-Length {declared} is over the {max_bytes}-byte cap")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge(f"body is over the {max_bytes}-byte cap")
        chunks.append(chunk)
    return b"".join(chunks)
