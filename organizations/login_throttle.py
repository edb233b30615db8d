"""Throttle password guessing on /admin/login/ and HTTP Basic, per username and per address."""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Callable
from typing import Any

from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse

from keys import ratelimit
from lib.net import client_ip


def _basic_username(request: HttpRequest) -> str | None:
    scheme, _, credentials = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return decoded.partition(":")[0]


@functools.cache
def _admin_login_path() -> str:
    return reverse("admin:login")


# The client API authenticates keys only: a Basic header there is ignored, never a login.
KEY_AUTHENTICATED_PATHS = ("/api/v1/deployments/", "/api/v1/key")


def _attempted_username(request: HttpRequest) -> str | None:
    if request.method == "POST" and request.path == _admin_login_path():
        return request.POST.get("username", "")
    if request.path.startswith(KEY_AUTHENTICATED_PATHS):
        return None
    return _basic_username(request)


class LoginThrottleMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        username = _attempted_username(request)
        if username is not None:
            wait = ratelimit.login_failures_exceeded(username, client_ip(request))
            if wait:
                return self._throttled(request, wait)
        return self.get_response(request)

    @staticmethod
    def _throttled(request: HttpRequest, wait: int) -> HttpResponse:
        detail = f"Too many failed logins. Try again in {wait} seconds."
        headers = {"Retry-After": str(wait)}
        if request.path.startswith("/api/"):
            return JsonResponse({"detail": detail, "code": "rate_limited"}, status=429, headers=headers)
        return HttpResponse(detail, status=429, content_type="text/plain; charset=utf-8", headers=headers)


@receiver(user_login_failed)
def count_login_failure(sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any) -> None:
    username = str(credentials.get("username", ""))
    ratelimit.record_login_failure(username, client_ip(request) if request is not None else None)
