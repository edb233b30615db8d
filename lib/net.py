"""The client's address, trusting X-Forwarded-For only from KEYSCOPE_TRUSTED_PROXIES."""

import functools
import ipaddress

from django.conf import settings
from django.http import HttpRequest

# What HTTP calls whitespace in a header value (RFC 9110 OWS): str.strip() would take NBSP, NEL and more too.
HTTP_WHITESPACE = " \t"


@functools.lru_cache(maxsize=8)
def _trusted_networks(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """KEYSCOPE_TRUSTED_PROXIES parsed once per value of the setting (it is read at call time); bad entries dropped."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue
    return tuple(networks)


def _is_trusted(address: str) -> bool:
    proxies = settings.KEYSCOPE_TRUSTED_PROXIES
    if not proxies:  # the common case, on every request of a key with allowed addresses: no parsing
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in _trusted_networks(tuple(proxies)))


def client_ip(request: HttpRequest) -> str | None:
    """The nearest untrusted hop: walk X-Forwarded-For from the right past trusted proxies."""
    remote = request.META.get("REMOTE_ADDR") or None
    if remote is None or not _is_trusted(remote):
        return remote
    hops = (hop.strip(HTTP_WHITESPACE) for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(","))
    forwarded = [hop for hop in hops if hop]
    for hop in reversed(forwarded):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return remote
        if not _is_trusted(hop):
            return hop
        remote = hop
    return remote
