"""Upstream credentials at rest: Fernet under KEYSCOPE_ENCRYPTION_KEYS.

The first key encrypts; every key decrypts, so a new key is put first, the
`reencrypt_upstream_credentials` command moves every row onto it, and the old
key can then be dropped. Settings are read on each call, not at import: a
server without keys starts and serves deployments without credentials, and
fails with a CredentialsError only when credentials are saved or used.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

GENERATE_HINT = (
    "Generate one with `python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`."
)


class CredentialsError(Exception):
    """Upstream credentials cannot be encrypted or decrypted with the configured keys."""


class EncryptionKeyMissing(CredentialsError):
    def __init__(self) -> None:
        super().__init__(f"KEYSCOPE_ENCRYPTION_KEYS is not set, so upstream credentials cannot be stored or read. {GENERATE_HINT}")


class EncryptionKeyInvalid(CredentialsError):
    def __init__(self, position: int) -> None:
        super().__init__(
            f"KEYSCOPE_ENCRYPTION_KEYS entry {position + 1} is not a Fernet key (32 url-safe base64-encoded bytes). {GENERATE_HINT}"
        )


class DecryptionFailed(CredentialsError):
    def __init__(self) -> None:
        super().__init__(
            "Stored upstream credentials cannot be decrypted with any key in KEYSCOPE_ENCRYPTION_KEYS "
            "(was the key that encrypted them removed?)."
        )


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


@lru_cache(maxsize=8)
def _multi_fernet(keys: tuple[str, ...]) -> MultiFernet:
    fernets = []
    for position, key in enumerate(keys):
        try:
            fernets.append(Fernet(key.encode("ascii")))
        except (ValueError, UnicodeEncodeError):
            raise EncryptionKeyInvalid(position) from None
    return MultiFernet(fernets)


def _keyring() -> MultiFernet:
    keys = tuple(key.strip() for key in settings.KEYSCOPE_ENCRYPTION_KEYS if key.strip())
    if not keys:
        raise EncryptionKeyMissing()
    return _multi_fernet(keys)


def encrypt(plaintext: str) -> str:
    """A Fernet token (ASCII) for `plaintext`, under the first key."""
    return _keyring().encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    try:
        return _keyring().decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError):
        raise DecryptionFailed() from None


def reencrypt(token: str) -> str:
    """The same plaintext under the first key (MultiFernet.rotate keeps the original timestamp)."""
    try:
        return _keyring().rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError):
        raise DecryptionFailed() from None
