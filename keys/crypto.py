"""The key format (CONTRACT §3): typed prefix, 32 random base62 characters, base62 CRC32.

Pure functions, no ORM: everything here runs before (or instead of) a query.
"""

import hashlib
import re
import secrets
import zlib
from typing import Literal

KeyKind = Literal["deployment", "global"]

BASE62_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
DEPLOYMENT_PREFIX = "ksd_"
GLOBAL_PREFIX = "ksg_"
PREFIX_LENGTH = 4
BODY_LENGTH = 32
CHECKSUM_LENGTH = 6
KEY_LENGTH = PREFIX_LENGTH + BODY_LENGTH + CHECKSUM_LENGTH  # 42
MASK_SEPARATOR = "\u2026"

KIND_BY_PREFIX: dict[str, KeyKind] = {DEPLOYMENT_PREFIX: "deployment", GLOBAL_PREFIX: "global"}
PREFIX_BY_KIND: dict[KeyKind, str] = {kind: prefix for prefix, kind in KIND_BY_PREFIX.items()}

_BASE62_TAIL = re.compile(r"[0-9A-Za-z]{%d}" % (BODY_LENGTH + CHECKSUM_LENGTH))


def base62_encode(number: int, width: int) -> str:
    """`number` in base62, most significant digit first, left-padded with "0" to `width`."""
    digits = []
    while number:
        number, remainder = divmod(number, 62)
        digits.append(BASE62_ALPHABET[remainder])
    return "".join(reversed(digits)).rjust(width, "0")


def checksum(body: str) -> str:
    """CRC32 of the 32 ASCII body characters, as 6 base62 characters."""
    return base62_encode(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def generate_key(kind: KeyKind) -> str:
    body = "".join(secrets.choice(BASE62_ALPHABET) for _ in range(BODY_LENGTH))
    return PREFIX_BY_KIND[kind] + body + checksum(body)


def key_kind(candidate: str) -> KeyKind | None:
    """The kind of a well-formed key, or None for anything malformed (no database involved)."""
    if len(candidate) != KEY_LENGTH:
        return None
    kind = KIND_BY_PREFIX.get(candidate[:PREFIX_LENGTH])
    if kind is None or not _BASE62_TAIL.fullmatch(candidate, PREFIX_LENGTH):
        return None
    body = candidate[PREFIX_LENGTH : PREFIX_LENGTH + BODY_LENGTH]
    if checksum(body) != candidate[PREFIX_LENGTH + BODY_LENGTH :]:
        return None
    return kind


# A key prefix in any case, anywhere: what a well-formed key or a mangled one holds.
_KEY_LIKE = re.compile("|".join(re.escape(prefix) for prefix in KIND_BY_PREFIX), re.IGNORECASE)


def looks_like_key(text: str) -> bool:
    """Whether `text` is or holds something key-like, well-formed or not: what must not be passed on."""
    return key_kind(text) is not None or _KEY_LIKE.search(text) is not None


def digest(key: str) -> str:
    """What is stored instead of the key: its sha256, in hex."""
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def last4(key: str) -> str:
    return key[-4:]


def mask(kind: KeyKind, key_last4: str) -> str:
    """`ksg_…abcd`: enough to recognise a key, never enough to use it."""
    return f"{PREFIX_BY_KIND[kind]}{MASK_SEPARATOR}{key_last4}"
