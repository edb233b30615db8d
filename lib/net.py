"""The client's address, trusting X-Forwarded-For only from KEYSCOPE_TRUSTED_PROXIES."""

import ipaddress

from django.conf import settings
from django.http import HttpRequest

# What HTTP calls whitespace in a header value (RFC 9110 OWS): str.strip() would take NBSP, NEL and more too.
HTTP_WHITESPACE = " \t"


def _is_trusted(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for entry in settings.KEYSCOPE_TRUSTED_PROXIES:
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


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
