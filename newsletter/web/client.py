"""Who is asking: the address the rate limits count, behind reverse proxies the settings trust."""

from __future__ import annotations

import ipaddress

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(proxies: list[str]) -> list[Network]:
    return [ipaddress.ip_network(proxy, strict=False) for proxy in proxies]


def client_address(peer: str | None, forwarded_for: list[str], trusted: list[Network]) -> str:
    """The connection's address, unless it is a trusted proxy: then X-Forwarded-For read from the
    right, each trusted hop skipped, the first other address being the client. Entries left of it
    were written by the client itself and are never believed; a malformed entry stops the walk at
    the last hop that could be checked.

    `forwarded_for` holds every X-Forwarded-For line in the order received, joined as one list:
    a proxy that adds a line of its own (HAProxy's `option forwardfor`) leaves the client's
    forged line first, and reading that one alone would believe the client."""
    client = peer or "unknown"
    if not forwarded_for or not _trusted(client, trusted):
        return client
    for hop in reversed(",".join(forwarded_for).split(",")):
        try:
            address = ipaddress.ip_address(hop.strip())
        except ValueError:
            return client
        client = str(address)
        if not _trusted(client, trusted):
            return client
    return client


def limit_key(client: str) -> str:
    """What one client is counted as: an IPv6 address by its /64, which one subscriber line
    usually holds whole."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _trusted(address: str, trusted: list[Network]) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in trusted)
