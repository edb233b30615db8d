"""Where a key may be used from: `allowed_ips`, its parsing, canonical form and matching.

Entries are IPv4/IPv6 addresses or CIDR networks, stored in canonical network
form (`203.0.113.7/32`) in the order given; `[]` allows any address. A network
with host bits set (`10.0.0.5/8`) is refused, naming the network it lies in:
it is a typo for either the host or the network, and guessing which would widen
or narrow a key's reach behind its owner's back.

The verification record carries the networks compiled to integers, so a request
costs one address parse and a few integer operations, never `ip_network()`.
No ORM imports.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Any

from django.core.exceptions import ValidationError

MAX_ENTRIES = 100

NOT_A_LIST = "Expected a list of IPv4/IPv6 addresses or networks."
TOO_MANY = f"At most {MAX_ENTRIES} addresses or networks."
NOT_A_STRING = "Each entry must be a string, not {value}."
NOT_AN_ADDRESS = "“{entry}” is not an IPv4 or IPv6 address or network."
HOST_BITS = "“{entry}” has host bits set: write the address alone, or the network {network}."
MAPPED = "“{entry}” is an IPv4-mapped IPv6 address, which is matched as IPv4: write {ipv4} instead."
ZONE = "“{entry}” has an IPv6 zone (%…), which a client address never has."

# (IP version, network as an integer, netmask as an integer): what a request is matched against.
CompiledNetwork = tuple[int, int, int]


def _shown(value: str) -> str:
    return value if len(value) <= 60 else value[:60] + "…"


def parse_network(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """One entry as a network; ValueError with a sentence when it is not a valid one."""
    shown = _shown(entry)
    if "%" in entry:
        raise ValueError(ZONE.format(entry=shown))
    try:
        network = ipaddress.ip_network(entry)
    except ValueError:
        try:
            loose = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(NOT_AN_ADDRESS.format(entry=shown)) from None
        raise ValueError(HOST_BITS.format(entry=shown, network=loose)) from None
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped is not None:
        ipv4 = network.network_address.ipv4_mapped
        written = str(ipv4) if network.prefixlen == 128 else f"{ipv4}/{max(network.prefixlen - 96, 0)}"
        raise ValueError(MAPPED.format(entry=shown, ipv4=written))
    return network


def clean_allowed_ips(value: Any) -> list[str]:
    """A list of at most 100 valid entries in canonical form, in the order given, repeats dropped."""
    if not isinstance(value, (list, tuple)):
        raise ValidationError(NOT_A_LIST)
    if len(value) > MAX_ENTRIES:
        raise ValidationError(TOO_MANY)
    errors: list[str] = []
    canonical: list[str] = []
    for entry in value:
        if not isinstance(entry, str):
            errors.append(NOT_A_STRING.format(value=_shown(repr(entry))))
            continue
        try:
            canonical.append(str(parse_network(entry)))
        except ValueError as exc:
            errors.append(str(exc))
    if errors:
        raise ValidationError(errors)
    return list(dict.fromkeys(canonical))


def clean_allowed_ips_lines(text: str) -> list[str]:
    """The admin's textarea: one entry per line, blank lines ignored; each error names its line."""
    lines = [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1)]
    entries = [(number, line) for number, line in lines if line]
    if len(entries) > MAX_ENTRIES:
        raise ValidationError(TOO_MANY)
    errors: list[str] = []
    for number, line in entries:
        try:
            parse_network(line)
        except ValueError as exc:
            errors.append(f"Line {number}: {exc}")
    if errors:
        raise ValidationError(errors)
    return clean_allowed_ips([line for _, line in entries])


def validate_allowed_ips(value: Any) -> None:
    """The model field's validator (full_clean)."""
    clean_allowed_ips(value)


def compile_networks(entries: Any) -> tuple[CompiledNetwork, ...]:
    """The stored entries, ready for matching. An entry that does not parse (written past the
    validation, by hand) matches nothing, so a damaged list still restricts the key."""
    compiled = []
    for entry in entries or ():
        try:
            network = ipaddress.ip_network(entry) if isinstance(entry, str) else None
        except ValueError:
            network = None
        if network is None:
            compiled.append((0, 0, 0))  # version 0: no address has it
        else:
            compiled.append((network.version, int(network.network_address), int(network.netmask)))
    return tuple(compiled)


@functools.lru_cache(maxsize=4096)
def _parsed_address(address: str) -> tuple[int, int]:
    """(IP version, integer) of a client address, remembered: a worker sees the same few addresses again and again.
    An IPv4-mapped IPv6 address is its IPv4; (0, 0) for what is not an address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return 0, 0
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.version, int(ip)


def address_allowed(address: str | None, networks: tuple[CompiledNetwork, ...]) -> bool:
    """Whether a client address is in one of the networks; an IPv4-mapped IPv6 address is matched as its IPv4."""
    if address is None:
        return False
    version, value = _parsed_address(address)
    if version == 0:
        return False
    for v, net, mask in networks:
        if v == version and value & mask == net:
            return True
    return False
