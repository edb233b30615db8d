"""The one authentication class for API clients.

`Authorization: Bearer <key>` or `X-Api-Key: <key>`. The typed prefix picks the
table, so deployment keys are looked up among deployment keys only and global
keys among global keys only; junk is refused before any query. Checks run in
the contract's order: failed-auth throttle, key status, the key's allowed
addresses, its rate limit, then (in the permission) the scope the view needs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import cast

from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

import lib.exceptions
from keys import ratelimit, refusals, usage
from keys.allowed_ips import address_allowed
from keys.lookup import VerifiedKey
from keys.verification import Screened, Target, screen, verify
from lib.net import HTTP_WHITESPACE, client_ip

FAILURE_DETAILS = {
    "invalid_key": "The API key is malformed or unknown.",
    "key_revoked": "The API key has been revoked.",
    "key_expired": "The API key has expired.",
    "key_inactive": "The API key is deactivated.",
}

logger = logging.getLogger("keyscope.auth")


class IpNotAllowed(exceptions.PermissionDenied):
    default_detail = "This key may not be used from this address."
    default_code = "ip_not_allowed"


class InsufficientScope(exceptions.PermissionDenied):
    """RFC 6750 §3.1: a 403 that names the scope the request needed."""

    default_code = "insufficient_scope"

    def __init__(self, scope: str) -> None:
        super().__init__(f"This key lacks the scope {scope}.")
        self.auth_header = f'Bearer error="insufficient_scope", scope="{scope}"'


@dataclass(slots=True)
class KeyAuth:
    """What `request.auth` holds for a key-authenticated request (made once per request, so kept light)."""

    key: VerifiedKey
    rate_limit: ratelimit.RateLimit | None = None
    target: Target | None = None  # the deployment the URL names, when a cold lookup read it


class RateLimited(lib.exceptions.RateLimited):
    def __init__(self, detail: str, wait: int, rate_limit: ratelimit.RateLimit | None = None) -> None:
        super().__init__(detail, wait)
        self.rate_limit = rate_limit


def offered_key(request: HttpRequest) -> str | None:
    """The key the client offered, "" for an empty `Bearer`, None when it offered none.

    A `Bearer` Authorization wins over X-Api-Key; another scheme is ignored.
    """
    meta = request.META
    # Only HTTP's whitespace separates and surrounds: a key followed by an NBSP is not that key.
    authorization = meta.get("HTTP_AUTHORIZATION", "").strip(HTTP_WHITESPACE).replace("\t", " ")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return credentials.lstrip(" ")
    api_key = meta.get("HTTP_X_API_KEY", "").strip(HTTP_WHITESPACE)
    return api_key or None


THROTTLED_DETAIL = "Too many failed authentications from this address. Try again later."


def refuse(request: HttpRequest | Request, code: str, address: str | None = None) -> exceptions.APIException:
    """A failed authentication: counted against the client address, 429 once it is over its limit.

    Quiet (lib.exceptions.quiet): no WARNING line per refusal from Django, which would turn a junk
    flood into a log flood and cost a refused request as much again as the check; a DEBUG line
    here instead, and one WARNING when an address gets throttled (keys/ratelimit.py).
    """
    address = address or client_ip(request)
    throttled, reset = ratelimit.record_failed_auth(address)
    if throttled or code != IpNotAllowed.default_code:  # ip_not_allowed has its own WARNING, naming the key
        logger.debug("refused %s from %s", "rate_limited" if throttled else code, address)
    if throttled:
        return lib.exceptions.quiet(RateLimited(THROTTLED_DETAIL, wait=reset))
    if code == IpNotAllowed.default_code:
        return lib.exceptions.quiet(IpNotAllowed())
    return lib.exceptions.quiet(exceptions.AuthenticationFailed(FAILURE_DETAILS[code], code=code))


SCREENED = "keyscope_screened"  # the HttpRequest's attribute: (candidate, what screen() answered for it)


def screen_request(request: HttpRequest) -> exceptions.APIException | None:
    """The refusal of a request whose key this worker refuses without a query (junk, a key no one has), else None.

    Asked before DRF wraps the request (ClientAPIView.dispatch), so a flood of
    such keys costs less than the traffic it would block. The refusal is
    counted against the address like any other (refuse()); what was learnt of a
    key that passes is kept on the request, for authenticate() not to ask again.
    """
    candidate = offered_key(request)
    if candidate is None:
        return None  # DRF's not_authenticated, in its own time
    screened = screen(candidate)
    setattr(request, SCREENED, (candidate, screened))
    return refuse(request, "invalid_key") if screened.refused else None


def _screened(request: Request, candidate: str) -> Screened | None:
    """What screen_request() learnt of this candidate, when it ran for this request."""
    early = request._request.__dict__.get(SCREENED)
    return early[1] if early is not None and early[0] == candidate else None


def meter_lookup(request: Request) -> None:
    """Before a key not verified yet costs a query: refuse it once a throttled address spent its lookups."""
    address = client_ip(request)
    allowed, reset = ratelimit.lookup_allowed(address)
    if not allowed:
        ratelimit.record_failed_auth(address)  # a refusal, so the address stays throttled
        raise lib.exceptions.quiet(RateLimited(THROTTLED_DETAIL, wait=reset))


class ApiKeyAuthentication(BaseAuthentication):
    def __init__(self, *, enforce_rate_limit: bool = True) -> None:
        # Off for a key revoking itself: a leaked key that someone else drives to its limit must still be revocable.
        self.enforce_rate_limit = enforce_rate_limit

    def authenticate(self, request: Request) -> tuple[AnonymousUser, KeyAuth] | None:
        candidate = offered_key(request._request)  # not through Request.__getattr__: this runs on every call
        if candidate is None:
            return None
        # The deployment the URL names is fetched in the same query as a cold key (never before it).
        key, target = verify(
            candidate,
            request.parser_context.get("kwargs", {}).get("deployment_slug"),
            before_lookup=lambda: meter_lookup(request),
            screened=_screened(request, candidate),
        )
        if key is None:
            raise refuse(request, "invalid_key")
        now = timezone.now()
        failure = key.failure_at(now)
        if failure is not None:
            refusals.record_refusal(key, failure, client_ip(request))  # a revoked key still in use: the admin shows it
            raise refuse(request, failure)
        if key.allowed_networks:
            address = client_ip(request)
            if not address_allowed(address, key.allowed_networks):
                # Not authenticated: it counts against the address, never against the key's limit.
                logger.warning("key %s refused from %s: ip_not_allowed", key.id, address)
                refusals.record_refusal(key, IpNotAllowed.default_code, address)
                raise refuse(request, IpNotAllowed.default_code, address)
        limit = ratelimit.check_key(key)
        usage.record_usage(key, now)
        if self.enforce_rate_limit and limit is not None and limit.exceeded:
            raise RateLimited("This key is over its rate limit. Try again later.", wait=limit.reset, rate_limit=limit)
        return AnonymousUser(), KeyAuth(key=key, rate_limit=limit, target=target)

    def authenticate_header(self, request: Request) -> str:
        return "Bearer"


def key_auth(request: Request) -> KeyAuth:
    """What a view guarded by HasApiKey learns of the calling key."""
    return cast(KeyAuth, request.auth)


class HasApiKey(BasePermission):
    """Lets through requests that ApiKeyAuthentication accepted (others get not_authenticated)
    whose key holds the view's `required_scope` (None: any key)."""

    def has_permission(self, request: Request, view: object) -> bool:
        auth = request.auth
        if not isinstance(auth, KeyAuth):
            return False
        scope = getattr(view, "required_scope", None)
        if scope is not None and scope not in auth.key.scopes:
            refusals.record_refusal(auth.key, InsufficientScope.default_code, client_ip(request))
            raise InsufficientScope(scope)
        return True


def rate_limit_headers(request: Request, exc: Exception | None = None) -> dict[str, str]:
    """The IETF RateLimit fields for a response to a limited key, 429s included.

    Only from what authentication has learnt: reading `request.auth` would run it
    again, or first, for an error raised before it, and a refusal then is a 500.
    """
    authenticated = request.__dict__.get("_auth")  # DRF's store behind request.auth
    limit = getattr(exc, "rate_limit", None) or getattr(authenticated, "rate_limit", None)
    return limit.headers() if limit is not None else {}
