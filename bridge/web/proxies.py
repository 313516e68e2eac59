"""The address a request comes from, for the sign-in limits.

``X-Forwarded-For`` is anyone's to write, so it is believed only when the connection
comes from an address listed in ``web.trusted_proxies`` (empty by default: the header is
ignored), and then only as far back as the chain of trusted proxies goes: the rightmost
address that is not itself a trusted proxy is the client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Sequence[str]) -> list[Network]:
    """``["10.0.0.1", "192.168.0.0/24", "::1"]`` as networks; ValueError names a bad one."""
    nets = []
    for value in values:
        try:
            nets.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or network: {value!r}") from None
    return nets


def _trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def client_address(peer: str, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The client's address: ``peer`` unless ``peer`` is a trusted proxy and says whom it
    forwards for. A hop that is not an IP address stops the walk at the last trusted hop."""
    if not forwarded_for or not _trusted(peer, trusted):
        return peer
    current = peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return current
        if not _trusted(hop, trusted):
            return hop
        current = hop
    return current
