"""GitHub secret scanning partner alerts: is this body signed by GitHub?

GitHub signs the raw body of each alert with ECDSA on P-256 over SHA-256 (a
base64 DER signature in `Github-Public-Key-Signature`) and names the key in
`Github-Public-Key-Identifier`. Its public keys are in a file the operator keeps
(KEYSCOPE_GITHUB_SECRET_SCANNING_KEYS), a copy of
https://api.github.com/meta/public_keys/secret_scanning: `{"public_keys":
[{"key_identifier", "key" (PEM), "is_current"}]}`. Every key listed there is
accepted, current or not, since GitHub keeps signing with a key for a while after
it names a new one. The file is read again whenever it changes on disk.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from lib.parsers import check_body_size

logger = logging.getLogger("keyscope.secret_scanning")

IDENTIFIER_HEADER = "HTTP_GITHUB_PUBLIC_KEY_IDENTIFIER"
SIGNATURE_HEADER = "HTTP_GITHUB_PUBLIC_KEY_SIGNATURE"
REFUSED = "The alert does not carry a valid GitHub secret scanning signature."


class SignatureRefused(Exception):
    """Why a body is not accepted as GitHub's (for the log; the client is told only that it is refused)."""

    def __init__(self, reason: str, *, misconfigured: bool = False) -> None:
        super().__init__(reason)
        self.misconfigured = misconfigured  # the operator's to fix, not the sender's


@dataclass(frozen=True)
class GitHubAlertAuth:
    """What `request.auth` holds for a signed alert."""

    key_identifier: str


def _file_state(path: str) -> tuple[str, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return path, stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int, size: int) -> dict[str, ec.EllipticCurvePublicKey]:
    """The P-256 keys of the file, by identifier (cached per version of the file)."""
    with open(path, "rb") as handle:
        document = json.load(handle)
    keys: dict[str, ec.EllipticCurvePublicKey] = {}
    for entry in document.get("public_keys", []) if isinstance(document, dict) else []:
        try:
            identifier, pem = entry["key_identifier"], entry["key"]
            public_key = serialization.load_pem_public_key(pem.encode("ascii"))
        except (KeyError, TypeError, ValueError, AttributeError):
            logger.warning("skipped an unreadable entry of the secret scanning keys file %s", path)
            continue
        if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(public_key.curve, ec.SECP256R1):
            keys[str(identifier)] = public_key
        else:
            logger.warning("skipped a key of the secret scanning keys file %s that is not ECDSA P-256", path)
    return keys


def public_keys() -> dict[str, ec.EllipticCurvePublicKey]:
    path = settings.KEYSCOPE_GITHUB_SECRET_SCANNING_KEYS
    if not path:
        raise SignatureRefused("KEYSCOPE_GITHUB_SECRET_SCANNING_KEYS is not set")
    state = _file_state(path)
    if state is None:
        raise SignatureRefused(f"the secret scanning keys file {path} cannot be read", misconfigured=True)
    try:
        return _load(*state)
    except (OSError, ValueError) as exc:  # ValueError: not JSON
        raise SignatureRefused(
            f"the secret scanning keys file {path} is not GitHub's format ({type(exc).__name__})", misconfigured=True
        ) from exc


def verify(body: bytes, key_identifier: str, signature: str) -> None:
    """Raise SignatureRefused unless `signature` is GitHub's, by the key `key_identifier`, over `body`."""
    public_key = public_keys().get(key_identifier)
    if public_key is None:
        raise SignatureRefused("unknown key identifier")
    try:
        der = base64.b64decode(signature.strip(), validate=True)
        public_key.verify(der, body, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature):
        raise SignatureRefused("bad signature") from None


class GitHubSignatureAuthentication(BaseAuthentication):
    """Accepts a request whose raw body GitHub signed; None when neither signature header is there."""

    def authenticate(self, request: Request) -> tuple[AnonymousUser, GitHubAlertAuth] | None:
        meta = request._request.META
        identifier, signature = meta.get(IDENTIFIER_HEADER), meta.get(SIGNATURE_HEADER)
        if identifier is None and signature is None:
            return None
        # Before the body is read, by its declared length; then by what arrived.
        check_body_size(meta.get("CONTENT_LENGTH"))
        body = request._request.body
        check_body_size(None, body)
        try:
            if not identifier or not signature:
                raise SignatureRefused("a signature header is missing")
            verify(body, identifier, signature)
        except SignatureRefused as exc:
            logger.log(
                logging.ERROR if exc.misconfigured else logging.WARNING, "secret scanning alert refused: %s", exc
            )
            raise exceptions.AuthenticationFailed(REFUSED, code="invalid_signature") from None
        return AnonymousUser(), GitHubAlertAuth(key_identifier=identifier)

    def authenticate_header(self, request: Request) -> str:
        return 'Signature realm="github-secret-scanning"'


class HasGitHubSignature(BasePermission):
    def has_permission(self, request: Request, view: object) -> bool:
        return isinstance(request.auth, GitHubAlertAuth)
