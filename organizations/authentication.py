"""HTTP Basic for the management API, answering 429 while the login throttle refuses the name."""

from __future__ import annotations

from typing import Any

from drf_spectacular.authentication import BasicScheme
from rest_framework import authentication, exceptions

from lib.exceptions import RateLimited
from organizations import login_throttle


class BasicAuthentication(authentication.BasicAuthentication):
    def authenticate_credentials(self, userid: str, password: str, request: Any = None) -> Any:
        try:
            return super().authenticate_credentials(userid, password, request)
        except exceptions.AuthenticationFailed:
            wait = login_throttle.throttled_for(request)
            if wait:
                raise RateLimited(login_throttle.message(wait), wait=wait) from None
            raise


class BasicAuthenticationScheme(BasicScheme):
    """The OpenAPI scheme of DRF's Basic, for this subclass."""

    target_class = "organizations.authentication.BasicAuthentication"
    priority = 0
