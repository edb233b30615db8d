"""The one authentication class for API clients (CONTRACT §4).

`Authorization: Bearer <key>` or `X-Api-Key: <key>`. The typed prefix picks the
table, so deployment keys are looked up among deployment keys only and global
keys among global keys only; junk is refused before any query.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from keys import crypto
from keys.verification import VerifiedKey, lookup, touch_last_used

FAILURE_DETAILS = {
    "invalid_key": "The API key is malformed or unknown.",
    "key_revoked": "The API key has been revoked.",
    "key_expired": "The API key has expired.",
    "key_inactive": "The API key is deactivated.",
}


@dataclass(frozen=True)
class KeyAuth:
    """What `request.auth` holds for a key-authenticated request."""

    key: VerifiedKey

    @property
    def kind(self) -> str:
        return self.key.kind

    @property
    def key_id(self) -> str:
        return self.key.id

    @property
    def key_name(self) -> str:
        return self.key.name

    @property
    def organization_slug(self) -> str:
        return self.key.organization_slug


def offered_key(request: Request) -> str | None:
    """The key the client offered, "" for an empty `Bearer`, None when it offered none.

    A `Bearer` Authorization wins over X-Api-Key; another scheme is ignored.
    """
    authorization = request.META.get("HTTP_AUTHORIZATION", "")
    parts = authorization.split(None, 1)
    if parts and parts[0].lower() == "bearer":
        return parts[1].strip() if len(parts) > 1 else ""
    api_key = request.META.get("HTTP_X_API_KEY", "").strip()
    return api_key or None


def authentication_failed(code: str) -> exceptions.AuthenticationFailed:
    return exceptions.AuthenticationFailed(FAILURE_DETAILS[code], code=code)


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[AnonymousUser, KeyAuth] | None:
        candidate = offered_key(request)
        if candidate is None:
            return None
        kind = crypto.key_kind(candidate)
        if kind is None:
            raise authentication_failed("invalid_key")
        key = lookup(kind, crypto.digest(candidate))
        if key is None:
            raise authentication_failed("invalid_key")
        now = timezone.now()
        failure = key.failure_at(now)
        if failure is not None:
            raise authentication_failed(failure)
        touch_last_used(key, now)
        return AnonymousUser(), KeyAuth(key=key)

    def authenticate_header(self, request: Request) -> str:
        return "Bearer"


class HasApiKey(BasePermission):
    """Lets through requests that ApiKeyAuthentication accepted; others get not_authenticated."""

    def has_permission(self, request: Request, view: object) -> bool:
        return isinstance(request.auth, KeyAuth)
