"""Which destinations a webhook may reach: addresses, host names and ports (no I/O).

A callback URL is chosen by a client, and the server connects to it from inside the operator's
network: without these checks any account could make the server reach its loopback, private
networks or a cloud metadata service (SSRF). IPv6 has several forms that carry an IPv4 address
inside (NAT64, 6to4, Teredo, IPv4-compatible, IPv4-mapped and -translated); a gateway on the way
turns them into that IPv4 address, so the IPv4 inside is what must be checked.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Host names that always mean this machine or a cloud metadata service.
_FORBIDDEN_HOSTS: Final = frozenset({"localhost", "metadata.google.internal", "metadata", "instance-data"})
_FORBIDDEN_SUFFIXES: Final = (".localhost", ".internal")

# The IPv6 ranges whose last 32 bits (or a field of them) are an IPv4 address.
_NAT64_WELL_KNOWN: Final = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052
#: Local-use NAT64 (RFC 8215): the operator's own translator, so the prefix says nothing about
#: where it leads (the IPv4 may sit at any of several offsets): refused as a whole.
_NAT64_LOCAL: Final = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE: Final = ipaddress.IPv6Network("::/96")  # RFC 4291, deprecated
_IPV4_TRANSLATED: Final = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765 (SIIT)
#: Site-local (RFC 3879, deprecated): still routed inside some networks, never global.
_SITE_LOCAL: Final = ipaddress.IPv6Network("fec0::/10")

#: The ports callbacks may use unless the operator allows more: the web's standard ones, so that
#: a client cannot make the server talk to mail, database or admin ports of hosts it can reach.
DEFAULT_ALLOWED_PORTS: Final = frozenset({80, 443})


def _low_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address an IPv6 address carries (empty for a plain IPv6 address)."""
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip in _NAT64_WELL_KNOWN or ip in _IPV4_COMPATIBLE or ip in _IPV4_TRANSLATED:
        found.append(_low_ipv4(ip))
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)  # (server, client): the client's address is where packets go
    return found


def forbidden_ip(ip: IPAddress) -> bool:
    """Loopback, private, link-local (cloud metadata lives at 169.254.169.254), multicast, reserved,
    site-local, local-use NAT64, or an IPv6 form whose embedded IPv4 address is any of those."""
    if not ip.is_global or ip.is_multicast:
        return True
    if isinstance(ip, ipaddress.IPv4Address):
        return False
    if ip in _SITE_LOCAL or ip in _NAT64_LOCAL:
        return True
    return any(forbidden_ip(inner) for inner in embedded_ipv4(ip))


def forbidden_address(address: str) -> bool:
    """``forbidden_ip`` for an address as text (a zone id is ignored); anything unparseable is refused."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True
    return forbidden_ip(ip)


def forbidden_host(host: str) -> bool:
    """A host refused before any lookup: a forbidden IP literal or a name for this machine."""
    host = host.strip("[]").rstrip(".").lower()
    if host in _FORBIDDEN_HOSTS or host.endswith(_FORBIDDEN_SUFFIXES):
        return True
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False  # a name: its addresses are checked when it is resolved, at delivery
    return forbidden_address(host)


def effective_port(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


@dataclass(frozen=True, slots=True)
class CallbackPolicy:
    """The operator's choice: private destinations (tests, labs) and which ports callbacks may use."""

    allow_private: bool = False
    #: None: any port.
    allowed_ports: frozenset[int] | None = DEFAULT_ALLOWED_PORTS

    def port_allowed(self, port: int) -> bool:
        return self.allowed_ports is None or port in self.allowed_ports

    def address_allowed(self, address: str) -> bool:
        return self.allow_private or not forbidden_address(address)

    def url_problem(self, url: str) -> str | None:
        """Why a callback URL is refused at creation, or None (names are checked again at delivery)."""
        host = urlsplit(url).hostname or ""
        if not self.allow_private and forbidden_host(host):
            return f"Callbacks to {host!r} (loopback, private, link-local or metadata) are refused"
        port = effective_port(url)
        if not self.port_allowed(port):
            allowed = ", ".join(str(p) for p in sorted(self.allowed_ports or ()))
            return f"Callbacks to port {port} are refused; this server allows ports {allowed}"
        return None
