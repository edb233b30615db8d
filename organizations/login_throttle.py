"""Throttle password guessing per username and per address, where Django checks passwords.

The check sits in the authentication backend, so it sees exactly the username that
reaches `authenticate()`: the one Django's login form cleaned, or the one DRF's
Basic parser decoded, however the header spelled it. Names are counted as the user
model normalizes them (NFKC), trimmed and case-folded, so look-alikes share a counter.
Past a limit the backend refuses before the password is checked, and marks the
request: DRF answers 429 (organizations/authentication.py), the login page says so
(organizations/forms.py) and LoginThrottleMiddleware gives it status 429.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

from keys import ratelimit
from lib.net import client_ip

_THROTTLED = "_keyscope_login_throttled"  # on the HttpRequest: seconds to wait


def throttle_name(username: str) -> str:
    """The counter a username falls in: look-alikes of one name share it."""
    return str(get_user_model().normalize_username(username)).strip().casefold()


def _http_request(request: Any) -> HttpRequest:
    return getattr(request, "_request", request)  # DRF's Request wraps Django's


def throttled_for(request: Any) -> int:
    """Seconds to wait when the login throttle refused this request's credentials, else 0."""
    return 0 if request is None else getattr(_http_request(request), _THROTTLED, 0)


def message(wait: int) -> str:
    return f"Too many failed logins. Try again in {wait} seconds."


class ThrottledModelBackend(ModelBackend):
    """Django's ModelBackend, refusing names and addresses that failed to log in too often."""

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if request is not None and username is not None and password is not None:
            wait = ratelimit.login_failures_exceeded(throttle_name(username), client_ip(_http_request(request)))
            if wait:
                setattr(_http_request(request), _THROTTLED, wait)
                raise PermissionDenied  # authenticate() stops here: no password is checked
        return super().authenticate(request, username=username, password=password, **kwargs)


@receiver(user_login_failed)
def count_login_failure(sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any) -> None:
    if request is None or throttled_for(request):
        return  # a refused attempt checked no password
    username = str(credentials.get(get_user_model().USERNAME_FIELD, ""))
    ratelimit.record_login_failure(throttle_name(username), client_ip(_http_request(request)))


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
