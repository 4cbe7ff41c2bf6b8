"""Which links feedhub may fetch on a feed's say-so (full text).

A feed names the links its entries point to, so fetching them lets whoever
writes the feed choose what feedhub requests, from inside the network it runs
in. :func:`link_guard` refuses a link whose host resolves to a loopback,
private, link-local, multicast or otherwise non-public address, unless it is
the source's own host (an intranet feed linking to its own pages) or the
operator allows it (``fetch.private_links: allow``). It is asked again before
every redirect hop.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from feedhub.fetch import Guard


def link_guard(source_url: str, *, allow_private: bool) -> Guard:
    """A fetch guard for the links of ``source_url``'s entries."""
    own_host = (urlsplit(source_url).hostname or "").lower()

    async def guard(url: str) -> str | None:
        if allow_private:
            return None
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not host or host == own_host:
            return None
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, parts.port or (443 if parts.scheme == "https" else 80),
                type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return None  # unresolvable: the fetch itself reports it
        for info in infos:
            address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
            if not address.is_global or address.is_multicast:
                return (f"{host} resolves to the non-public address {address} "
                        "(set fetch.private_links: allow to fetch such links)")
        return None

    return guard
