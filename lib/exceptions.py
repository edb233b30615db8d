"""API errors the apps raise beside DRF's own; backend/exceptions.py turns every one into the error shape."""

from typing import TypeVar

from rest_framework import exceptions, status

E = TypeVar("E", bound=exceptions.APIException)


def quiet(exc: E) -> E:
    """Mark an error that Django should not log as a WARNING line per response (backend/exceptions.py):
    refusals an attacker can repeat at will, which their own module logs as it sees fit."""
    exc.quiet = True  # type: ignore[attr-defined]
    return exc


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the resource."
    default_code = "conflict"


class RateLimited(exceptions.Throttled):
    """429 `rate_limited` with `Retry-After`, and our sentence alone as its detail."""

    default_code = "rate_limited"

    def __init__(self, detail: str, wait: int) -> None:
        # Not Throttled.__init__: it appends "Expected available in N seconds." to the detail, through
        # the translation machinery (a tenth of a throttled request's cost), only for us to drop it.
        exceptions.APIException.__init__(self, detail, "rate_limited")
        self.wait = wait
