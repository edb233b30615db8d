"""The key format: typed prefix, 32 random base62 characters, base62 CRC32.

Also the one other shape a key may have: an imported Unstract key, a UUID.
Pure functions, no ORM: everything here runs before (or instead
of) a query.
"""

import hashlib
import re
import secrets
import zlib
from dataclasses import dataclass
from typing import Literal

KeyKind = Literal["deployment", "global"]
KeyFormat = Literal["keyscope", "uuid"]
KEYSCOPE_FORMAT: KeyFormat = "keyscope"
UUID_FORMAT: KeyFormat = "uuid"

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

_BASE62_TAIL = re.compile(f"[0-9A-Za-z]{{{BODY_LENGTH + CHECKSUM_LENGTH}}}")

# An imported key: a UUID in its canonical 8-4-4-4-12 form, in any case (no braces, no urn:, no bare hex).
UUID_KEY_LENGTH = 36
UUID_MASK_PREFIX = "uuid"
_UUID_TEXT = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
_UUID_KEY = re.compile(_UUID_TEXT)

# Either shape of key inside a longer text (a log line, say), for redaction.
KEYSCOPE_KEY_IN_TEXT = re.compile(
    "(?:" + "|".join(re.escape(prefix) for prefix in KIND_BY_PREFIX) + ")" + _BASE62_TAIL.pattern
)
UUID_KEY_IN_TEXT = re.compile(rf"(?<![0-9A-Za-z-]){_UUID_TEXT}(?![0-9A-Za-z-])")


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


@dataclass(frozen=True, slots=True)
class Secret:
    """What a key row stores of its secret: never the secret itself."""

    digest: str
    last4: str
    format: KeyFormat


def new_secret(kind: KeyKind) -> tuple[str, Secret]:
    """A fresh keyscope key of this kind, and what is stored of it."""
    full_key = generate_key(kind)
    return full_key, Secret(digest=digest(full_key), last4=last4(full_key), format=KEYSCOPE_FORMAT)


def imported_secret(uuid_key: str) -> Secret | None:
    """What is stored of an imported UUID key (its canonical text hashed), or None when it is no UUID."""
    canonical = canonical_uuid_key(uuid_key)
    if canonical is None:
        return None
    return Secret(digest=digest(canonical), last4=last4(canonical), format=UUID_FORMAT)


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


def canonical_uuid_key(candidate: str) -> str | None:
    """The canonical text of a UUID-shaped key (lowercase, hyphenated), or None for any other string."""
    if len(candidate) != UUID_KEY_LENGTH or not _UUID_KEY.fullmatch(candidate):
        return None
    return candidate.lower()


@dataclass(frozen=True, slots=True)
class Candidate:
    """A well-formed key as presented: which shape, which kind (None for a UUID: either), and its digest."""

    format: KeyFormat
    kind: KeyKind | None
    digest: str


def presented_digest(candidate: str, *, accept_uuid_keys: bool) -> str | None:
    """The digest a presented key would be stored under, judged by its length alone (its shape is not checked).

    Cheap enough for every request: a verification cache holds only well-formed
    keys, so a digest found there needs no further check, and well_formed()
    decides before anything reaches the database.
    """
    if not candidate.isascii():
        return None
    if len(candidate) == KEY_LENGTH:
        return digest(candidate)
    if accept_uuid_keys and len(candidate) == UUID_KEY_LENGTH:
        return digest(candidate.lower())
    return None


def well_formed(candidate: str, *, accept_uuid_keys: bool) -> Candidate | None:
    """The one decision of whether a string may be a key at all, before any query.

    A keyscope key needs its prefix, alphabet and checksum. A UUID may be an
    imported key when the server accepts them
    (`KEYSCOPE_ACCEPT_UUID_KEYS`, which the caller reads); it is then hashed in
    its canonical lowercase form, so any case finds the same key.
    """
    kind = key_kind(candidate)
    if kind is not None:
        return Candidate(format=KEYSCOPE_FORMAT, kind=kind, digest=digest(candidate))
    if accept_uuid_keys:
        canonical = canonical_uuid_key(candidate)
        if canonical is not None:
            return Candidate(format=UUID_FORMAT, kind=None, digest=digest(canonical))
    return None


def digest(key: str) -> str:
    """What is stored instead of the key: its sha256, in hex (of the canonical text, for a UUID)."""
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def last4(key: str) -> str:
    return key[-4:]


def mask(kind: KeyKind, key_last4: str, key_format: str = KEYSCOPE_FORMAT) -> str:
    """`ksg_…abcd` (or `uuid…abcd` for an imported key): enough to recognise a key, never enough to use it."""
    prefix = UUID_MASK_PREFIX if key_format == UUID_FORMAT else PREFIX_BY_KIND[kind]
    return f"{prefix}{MASK_SEPARATOR}{key_last4}"


def lookup_digests(candidate: str, *, accept_uuid_keys: bool) -> tuple[tuple[KeyKind, str], ...]:
    """Where a presented secret may be stored: its (kind, digest) pairs, in the order to try them.

    Empty for anything that is not a well-formed key (well_formed() decides, without a database).
    A UUID may be an imported key of either kind: deployment keys first, then global keys.
    """
    found = well_formed(candidate, accept_uuid_keys=accept_uuid_keys)
    if found is None:
        return ()
    kinds = (found.kind,) if found.kind is not None else tuple(KIND_BY_PREFIX.values())
    return tuple((kind, found.digest) for kind in kinds)
