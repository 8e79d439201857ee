"""Who is on the other end of a request: the client's address and the scheme it used.

`client_address(request)` is the one answer the server uses wherever it needs a client's address
(the sign-up limit, per-client download counting): a client must never be able to pick it.

Invariants, in the order they are applied:
1. The socket peer is the client unless the peer is one of the proxies the operator named
   (`ServerSettings.trusted_proxies`, `AGENTFACTORY_TRUSTED_PROXIES`; none by default). From
   any other peer, `X-Forwarded-For`, `Forwarded` and `X-Real-IP` are ignored whatever they say.
2. From a trusted peer, each forwarding header present is read as a chain of hops (client first,
   nearest proxy last, the peer after them) and walked from the right: trusted hops are skipped
   and the first untrusted address is the client. A hop that is not an address ("unknown", an
   obfuscated name, garbage) ends the walk at the trusted hop that reported it. A chain whose
   every hop is trusted names its left-most hop.
3. When two headers name different clients, one of them was written by the client, not by the
   proxy (which header a proxy sets or appends is its own choice); none is believed and the peer
   is the client.
Addresses are normalized (`::ffff:1.2.3.4` is `1.2.3.4`, IPv6 in its compressed form), so one
client has one spelling. `rate_key` groups an IPv6 client by its /64, the block one subscriber
is usually given, so a host cannot walk through its own 2^64 addresses to reset a budget.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection

from marketplace.server.settings import Network

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")
# A forwarding chain longer than this is cut to its right-most hops: proxies add one hop each.
MAX_HOPS = 64


def parse_address(text: str) -> Address | None:
    """An IP address from a header value or a peer host: bare, `"quoted"`, `[v6]:port` or
    `v4:port`; None for anything else."""
    value = text.strip().strip('"').strip()
    if value.startswith("["):
        value = value[1:].partition("]")[0]
    elif value.count(":") == 1:  # an IPv4 address with a port (IPv6 has at least two colons)
        value = value.partition(":")[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.scope_id:  # fe80::1%eth0: the zone names our interface, not the client
            return ipaddress.IPv6Address(value.partition("%")[0])
    return address


def is_trusted(address: Address | None, trusted: Sequence[Network]) -> bool:
    return address is not None and any(address in network for network in trusted)


def _forwarded_for(values: Iterable[str]) -> list[str]:
    """The `for=` node of every element of RFC 7239 `Forwarded` headers ("" when absent)."""
    nodes: list[str] = []
    for value in values:
        for element in value.split(","):
            node = ""
            for pair in element.split(";"):
                key, _, text = pair.partition("=")
                if key.strip().lower() == "for":
                    node = text
            nodes.append(node)
    return nodes


def _chain(headers: Headers, name: str) -> list[str]:
    values = headers.getlist(name)
    if name == "forwarded":
        hops = _forwarded_for(values)
    else:
        hops = [hop for value in values for hop in value.split(",")]
    return hops[-MAX_HOPS:]


def _client_of(chain: Sequence[str], peer: Address, trusted: Sequence[Network]) -> Address:
    hop = peer
    for text in reversed(chain):
        address = parse_address(text)
        if address is None:
            return hop
        if not is_trusted(address, trusted):
            return address
        hop = address
    return hop


def resolve_client(peer: str | None, headers: Headers, trusted: Sequence[Network]) -> str:
    """The client's address, as the invariants above define it (pure: no request needed)."""
    peer_address = parse_address(peer) if peer else None
    if peer_address is None or not is_trusted(peer_address, trusted):
        return str(peer_address) if peer_address is not None else (peer or "unknown")
    named = {
        _client_of(_chain(headers, name), peer_address, trusted)
        for name in FORWARDING_HEADERS
        if name in headers
    }
    return str(named.pop()) if len(named) == 1 else str(peer_address)


def _trusted_proxies(connection: HTTPConnection) -> Sequence[Network]:
    settings = getattr(connection.app.state, "settings", None)
    return tuple(getattr(settings, "trusted_proxies", ()))


def client_address(connection: HTTPConnection) -> str:
    """The address of the client behind `connection` (a request), under the app's settings."""
    peer = connection.client.host if connection.client else None
    return resolve_client(peer, connection.headers, _trusted_proxies(connection))


def is_https(connection: HTTPConnection) -> bool:
    """Whether the client reached us over https: the socket's scheme, or what a trusted proxy
    reports (`X-Forwarded-Proto`, `Forwarded: proto=`); from any other peer those headers count
    for nothing."""
    if connection.url.scheme in ("https", "wss"):
        return True
    peer = parse_address(connection.client.host) if connection.client else None
    if not is_trusted(peer, _trusted_proxies(connection)):
        return False
    headers = connection.headers
    # The right-most value of each header is the one the nearest (trusted) proxy wrote.
    claims = [",".join(headers.getlist("x-forwarded-proto")).rpartition(",")[2]]
    last_forwarded = ",".join(headers.getlist("forwarded")).rpartition(",")[2]
    for pair in last_forwarded.split(";"):
        key, _, text = pair.partition("=")
        if key.strip().lower() == "proto":
            claims.append(text)
    return any(claim.strip().strip('"').lower() == "https" for claim in claims)


def rate_key(address: str) -> str:
    """The budget key of a client address: an IPv4 address as is, an IPv6 one by its /64."""
    parsed = parse_address(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return address
