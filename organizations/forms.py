"""The admin's login form, saying so when the login throttle refuses the name or address."""

from __future__ import annotations

from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from organizations import login_throttle


class AdminLoginForm(AdminAuthenticationForm):
    def get_invalid_login_error(self) -> ValidationError:
        wait = login_throttle.throttled_for(self.request)
        if wait:
            return ValidationError(login_throttle.message(wait), code="rate_limited")
        return super().get_invalid_login_error()
