import logging
import re
import uuid
from collections.abc import Callable

from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

from lib.request_id import request_id_var

logger = logging.getLogger("keyscope.request")

# What a proxy or client may hand us as a request id: short and log-safe.
# Used with fullmatch: `$` alone would let a trailing newline into the logs.
VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")


class RequestIdMiddleware:
    """Keep a valid incoming X-Request-Id (or make one) and return it on every response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-Id", "")
        request_id = incoming if VALID_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]  # read by the log filter after the response
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
            response["X-Request-Id"] = request_id
            return response
        finally:
            request_id_var.reset(token)


NOT_FOUND_BODY = {"detail": "Not found.", "code": "not_found"}


def not_found() -> JsonResponse:
    return JsonResponse(NOT_FOUND_BODY, status=404)


class RejectNulPathMiddleware:
    """A NUL character in the path names nothing that can exist: 404 before any query.

    PostgreSQL refuses NUL in text parameters, so a lookup by such a slug would be a 500.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path_info:
            return not_found()
        return self.get_response(request)


SERVICE_UNAVAILABLE_BODY = {
    "detail": "The service is temporarily unavailable. Try again shortly.",
    "code": "service_unavailable",
}
SERVICE_UNAVAILABLE_HEADERS = {"Retry-After": "5"}


def service_unavailable() -> JsonResponse:
    return JsonResponse(SERVICE_UNAVAILABLE_BODY, status=503, headers=SERVICE_UNAVAILABLE_HEADERS)


class ServiceUnavailableMiddleware:
    """Answer an unreachable database with a 503 in the contract's error shape.

    DRF's exception handler never sees errors raised outside a view (sessions,
    auth middleware), so the catch lives here.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, (OperationalError, InterfaceError)) or (
            isinstance(exception, DatabaseError) and "connection" in str(exception).lower()
        ):
            logger.error("database unavailable: %s", type(exception).__name__)
            return service_unavailable()
        return None
