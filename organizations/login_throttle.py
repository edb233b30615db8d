"""Throttle password guessing per username and per address, where Django checks passwords.

The check sits in the authentication backend, so it sees exactly the username that
reaches `authenticate()`: the one Django's login form cleaned, or the one DRF's
Basic parser decoded, however the header spelled it. Names are counted as the user
model normalizes them (NFKC), trimmed and case-folded, so look-alikes share a counter.
Each attempt is counted before its password is checked, in one atomic step with
the check against the limits, so parallel guesses cannot slip past them; a login
that succeeds gives its count back. Past a limit the backend refuses before the
password is checked and marks the request: DRF answers 429
(organizations/authentication.py), the login page says so (organizations/forms.py)
and LoginThrottleMiddleware gives it status 429.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from lib import counters
from lib.net import client_ip

_THROTTLED = "_keyscope_login_throttled"  # on the HttpRequest: seconds to wait


def throttle_name(username: str) -> str:
    """The counter a username falls in: look-alikes of one name share it (invisible characters dropped)."""
    normalized = str(get_user_model().normalize_username(username))
    return "".join(c for c in normalized if c.isprintable()).strip().casefold()


def _http_request(request: Any) -> HttpRequest:
    return getattr(request, "_request", request)  # DRF's Request wraps Django's


def throttled_for(request: Any) -> int:
    """Seconds to wait when the login throttle refused this request's credentials, else 0."""
    return 0 if request is None else getattr(_http_request(request), _THROTTLED, 0)


def message(wait: int) -> str:
    return f"Too many failed logins. Try again in {wait} seconds."


def _limits(username: str, address: str | None) -> dict[str, int]:
    """The counters a login attempt hits, with their limits (0 turns one off)."""
    # A digest: the name is the client's to choose, as long as a header allows.
    name = hashlib.sha256(throttle_name(username).encode("utf-8", "surrogatepass")).hexdigest()[:32]
    limits = {
        f"login-user:{name}": settings.KEYSCOPE_LOGIN_FAILURES_PER_MINUTE,
        f"login-address:{address or 'unknown'}": settings.KEYSCOPE_LOGIN_FAILURES_PER_ADDRESS_PER_MINUTE,
    }
    return {counter: limit for counter, limit in limits.items() if limit > 0}


def _reserve_attempt(request: HttpRequest, username: str) -> counters.Reservation:
    """Count the attempt as a failure before its password is checked; refused past a limit."""
    try:
        return counters.reserve(_limits(username, client_ip(request)))
    except counters.CountersUnavailable:
        return counters.Reservation(granted=True, reset=0)  # Redis down: passwords are still checked


class ThrottledModelBackend(ModelBackend):
    """Django's ModelBackend, refusing names and addresses that failed to log in too often."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if request is None or username is None or password is None:
            return super().authenticate(request, username=username, password=password, **kwargs)
        http_request = _http_request(request)
        attempt = _reserve_attempt(http_request, username)
        if not attempt.granted:
            setattr(http_request, _THROTTLED, attempt.reset)
            raise PermissionDenied  # authenticate() stops here: no password is checked
        if "\x00" in username or "\x00" in password:
            return None  # a failed login, counted: no user has it, and PostgreSQL refuses NUL in a query
        try:
            user = super().authenticate(request, username=username, password=password, **kwargs)
        except Exception:
            counters.release(attempt)  # no password was checked
            raise
        if user is not None:
            counters.release(attempt)
        return user


class LoginThrottleMiddleware:
    """Gives the answer to a refused login status 429 and `Retry-After`."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        wait = throttled_for(request)
        if wait:
            response.status_code = 429
            response["Retry-After"] = str(wait)
        return response
