"""Which addresses the crawler may connect to, enforced where the socket is opened.

A feed, a redirect, a link in an item or a page listed by an index can all name any host;
a crawler that follows them blindly becomes a way into the local network (SSRF). So every
TCP connection goes through :class:`GuardedBackend`: the host name is resolved once, every
address it resolves to is checked, and the socket is opened to one of those checked
addresses. Checking a URL and then letting httpx resolve the name again would let a DNS
answer that changes in between (rebinding) through.

Allowed: public addresses; any address of a host the user wrote in feeds.yaml (a source
on 127.0.0.1 is the user's choice); the networks in ``settings.allowed_networks``; and
everything when ``settings.allow_private_networks`` is true.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import ipaddress
import socket
import ssl
from collections.abc import Iterable

import httpcore
import httpx

from crawler.errors import BlockedURL, FetchError

# httpcore imports anyio on the first connection: a few hundred milliseconds on the event
# loop, in the middle of a crawl, that made the first request to a host go out late (past
# its settings.host_delay turn) and stalled the HTTP server beside it. Loaded here instead.
for _module in ("anyio.abc", "anyio.streams.tls", "anyio.to_thread",
                "anyio._backends._asyncio"):
    with contextlib.suppress(ImportError):
        importlib.import_module(_module)


class AddressPolicy:
    def __init__(self, allowed_networks: Iterable[str] = (), trusted_hosts: Iterable[str] = (),
                 *, allow_private: bool = False) -> None:
        self.allowed = tuple(ipaddress.ip_network(n, strict=False) for n in allowed_networks)
        self.trusted_hosts = frozenset(h.lower().strip("[]") for h in trusted_hosts if h)
        self.allow_private = allow_private

    def trusts(self, host: str) -> bool:
        return self.allow_private or host.lower().strip("[]") in self.trusted_hosts

    def permits(self, address: str) -> bool:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback, whatever its spelling
        return ip.is_global or any(ip in network for network in self.allowed)

    def refusal(self, host: str, addresses: Iterable[str]) -> str | None:
        for address in addresses:
            if not self.permits(address):
                shown = host if host == address else f"{host} is {address}, which"
                return (f"{shown} is not a public address; only hosts written in feeds.yaml, "
                        "settings.allowed_networks or settings.allow_private_networks: true "
                        "reach such addresses")
        return None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's own backend, with the address check between the lookup and the connect."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if self.policy.trusts(host):
            return await self._inner.connect_tcp(host, port, timeout, local_address,
                                                 socket_options)
        addresses = await _resolve(host, port)
        refusal = self.policy.refusal(host, addresses)
        if refusal is not None:
            # One bad answer refuses the name: a host that resolves to a public and a
            # private address would otherwise reach the private one on some attempts.
            raise BlockedURL(refusal)
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address,
                                                     socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedURL("unix sockets are not fetched")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


async def _resolve(host: str, port: int) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]  # a literal needs no lookup
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port,
                                                             type=socket.SOCK_STREAM)
    except OSError as exc:
        raise FetchError(f"cannot resolve {host}: {exc}") from exc
    found: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if address not in found:
            found.append(address)
    if not found:
        raise FetchError(f"cannot resolve {host}: no address")
    return found


def guarded_transport(policy: AddressPolicy, limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """httpx's transport (its error mapping and streaming), over a pool that connects through
    :class:`GuardedBackend`. httpx has no public way to give its pool a network backend, so
    the pool it built is replaced by one built the same way; proxies from the environment
    are not used, since through a proxy the address check would see only the proxy."""
    transport = httpx.AsyncHTTPTransport(limits=limits)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedBackend(policy),
    )
    return transport


def _ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()
