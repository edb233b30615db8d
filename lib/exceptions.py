"""API errors the apps raise beside DRF's own; backend/exceptions.py turns every one into the error shape."""

from rest_framework import exceptions, status


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state of the resource."
    default_code = "conflict"


class RateLimited(exceptions.Throttled):
    """429 `rate_limited` with `Retry-After`, and our sentence alone as its detail."""

    default_code = "rate_limited"

    def __init__(self, detail: str, wait: int) -> None:
        super().__init__(wait=wait, detail=detail, code="rate_limited")
        # DRF's Throttled appends "Expected available in N seconds." to the detail.
        self.detail = exceptions.ErrorDetail(detail, code="rate_limited")
