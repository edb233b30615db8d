"""Which upstreams a deployment may call.

Only http and https. The host is resolved and every address it resolves to
must be public: loopback, private, link-local (cloud metadata), unspecified,
multicast and reserved addresses are refused unless
KEYSCOPE_UPSTREAM_ALLOWED_HOSTS lists them, so no tenant reaches keyscope's
own network. The check runs when a deployment is saved (`validate_upstream_url`,
a field validator the model, the API serializer and the admin form share) and
again at call time (`resolve_upstream`), whose addresses the runner then
connects to, so a DNS answer that changes in between cannot slip through.

KEYSCOPE_UPSTREAM_ALLOWED_HOSTS entries: a host name (`models.internal`), an
IP or a CIDR (`10.0.0.0/8`), optionally with a port (`127.0.0.1:8001`,
`[::1]:8001`, `models.internal:443`) to allow only that port.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

ALLOWED_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UpstreamError(Exception):
    """The upstream URL may not be called."""


class UpstreamNotAllowed(UpstreamError):
    """The URL is malformed, not http(s), or reaches an address that is refused."""


class UpstreamUnresolvable(UpstreamError):
    """The host name does not resolve (DNS failure)."""


@dataclass(frozen=True)
class Upstream:
    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class _AllowEntry:
    host: str | None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None
    port: int | None

    def allows(self, host: str, address: IPAddress, port: int) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.host is not None:
            return self.host == host
        return self.network is not None and address in self.network


def _parse_allow_entry(entry: str) -> _AllowEntry | None:
    entry = entry.strip().lower()
    if not entry:
        return None
    port: int | None = None
    if entry.startswith("["):  # [v6]:port or [v6]
        inside, _, rest = entry[1:].partition("]")
        entry = inside
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif entry.count(":") == 1:  # host:port or v4:port (a bare v6 has several colons)
        name, _, port_text = entry.partition(":")
        if port_text.isdigit():
            entry, port = name, int(port_text)
    try:
        return _AllowEntry(host=None, network=ipaddress.ip_network(entry, strict=False), port=port)
    except ValueError:
        return _AllowEntry(host=entry.rstrip("."), network=None, port=port)


def _allow_list() -> list[_AllowEntry]:
    entries = (_parse_allow_entry(entry) for entry in settings.KEYSCOPE_UPSTREAM_ALLOWED_HOSTS)
    return [entry for entry in entries if entry is not None]


# NAT64's well-known prefix (RFC 6052): the last 32 bits are the IPv4 address it translates to.
NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")


def embedded_ipv4(address: IPAddress) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address leads to: IPv4-mapped and -compatible, 6to4, Teredo, NAT64."""
    if isinstance(address, ipaddress.IPv4Address):
        return ()
    if address.ipv4_mapped is not None:
        return (address.ipv4_mapped,)
    if address.sixtofour is not None:
        return (address.sixtofour,)
    if address.teredo is not None:
        return address.teredo  # the relay server and the client behind it
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in NAT64_PREFIX or (int(address) >> 32 == 0 and int(address) > 1):  # ::a.b.c.d, not :: or ::1
        return (low32,)
    return ()


def is_internal(address: IPAddress) -> bool:
    """Judged by the IPv4 address an IPv6 address embeds, where it embeds one."""
    embedded = embedded_ipv4(address)
    if embedded:
        return any(is_internal(ipv4) for ipv4 in embedded)
    return (
        not address.is_global
        or address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_unspecified
        or address.is_multicast
        or address.is_reserved
    )


def _split(url: str) -> tuple[str, str, int]:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise UpstreamNotAllowed("Enter a valid URL.") from None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise UpstreamNotAllowed("Only http and https upstream URLs are allowed.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UpstreamNotAllowed("The upstream URL has no host.")
    if parts.username is not None or parts.password is not None:
        raise UpstreamNotAllowed("Put upstream credentials in the upstream headers, not in the URL.")
    return scheme, host, port or DEFAULT_PORTS[scheme]


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        raise UpstreamUnresolvable(f"The upstream host {host!r} could not be resolved.") from None
    addresses: list[IPAddress] = []
    for info in infos:
        # Drop an IPv6 scope id ("fe80::1%eth0") before parsing.
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UpstreamUnresolvable(f"The upstream host {host!r} could not be resolved.")
    return addresses


def resolve_upstream(url: str) -> Upstream:
    """The URL's parts and the addresses to connect to; raises UpstreamError when it may not be called."""
    scheme, host, port = _split(url)
    addresses = _resolve(host, port)
    allow_list = _allow_list()
    for address in addresses:
        if is_internal(address) and not any(entry.allows(host, address, port) for entry in allow_list):
            # Not naming the address: a tenant must not learn what internal names resolve to.
            raise UpstreamNotAllowed(
                f"The upstream host {host!r} resolves to an internal address; "
                "only public addresses, or those listed in KEYSCOPE_UPSTREAM_ALLOWED_HOSTS, may be called."
            )
    return Upstream(url=url.strip(), scheme=scheme, host=host, port=port, addresses=tuple(str(a) for a in addresses))


def validate_upstream_url(url: str) -> None:
    """Field validator (model, API serializer, admin form): a ValidationError when `url` may not be called."""
    if not url:
        return
    try:
        resolve_upstream(url)
    except UpstreamError as error:
        raise ValidationError(str(error), code="upstream_not_allowed") from None


# Header names are RFC 9110 tokens; values are visible ASCII, spaces and tabs, which any HTTP client can send.
_TOKEN_CHARACTERS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Set by keyscope itself on every upstream call, so a deployment cannot override them.
RESERVED_HEADERS = frozenset({"host", "content-length", "content-type", "transfer-encoding", "connection"})
RESERVED_HEADER_PREFIX = "x-keyscope-"
MAX_UPSTREAM_HEADERS = 50
MAX_HEADER_VALUE_LENGTH = 8192
_HEADER_VALUE = re.compile(rf"[\t\x20-\x7e]{{0,{MAX_HEADER_VALUE_LENGTH}}}")


def validate_upstream_headers(headers: object) -> dict[str, str]:
    """The header map a deployment adds to its upstream calls, checked; a ValidationError naming `upstream_headers`."""
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        raise ValidationError({"upstream_headers": "Enter a JSON object of header name to value."})
    if len(headers) > MAX_UPSTREAM_HEADERS:
        raise ValidationError({"upstream_headers": f"At most {MAX_UPSTREAM_HEADERS} headers are allowed."})
    errors: list[str] = []
    seen: set[str] = set()
    for name, value in headers.items():
        if not isinstance(name, str) or not name or not set(name) <= _TOKEN_CHARACTERS:
            errors.append(f"{name!r} is not a valid header name.")
            continue
        lowered = name.lower()
        if lowered in RESERVED_HEADERS or lowered.startswith(RESERVED_HEADER_PREFIX):
            errors.append(f"{name} is set by keyscope and cannot be configured.")
        elif lowered in seen:
            errors.append(f"{name} is given more than once.")
        # The value is a secret: never echo it in a message.
        elif not isinstance(value, str):
            errors.append(f"The value of {name} must be a string.")
        elif not _HEADER_VALUE.fullmatch(value):
            errors.append(
                f"The value of {name} must be one line of at most {MAX_HEADER_VALUE_LENGTH} visible ASCII "
                "characters, spaces or tabs."
            )
        seen.add(lowered)
    if errors:
        raise ValidationError({"upstream_headers": errors})
    return dict(headers)
