"""One exception handler, one error shape.

Validation errors keep DRF's `{"<field>": ["<message>", ...]}` form; every
other error is `{"detail": "<sentence>", "code": "<code>"}`.
"""

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from backend.middleware import SERVICE_UNAVAILABLE_BODY, SERVICE_UNAVAILABLE_HEADERS, not_found

SERVER_ERROR_BODY = {"detail": "The server failed to answer this request.", "code": "server_error"}


def is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith("/api/")


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: an unknown URL under /api/ is answered in the error shape, not with a page."""
    return not_found() if is_api(request) else defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: the error shape under /api/, Django's page elsewhere."""
    return JsonResponse(SERVER_ERROR_BODY, status=500) if is_api(request) else defaults.server_error(request)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, (OperationalError, InterfaceError)):
        return Response(SERVICE_UNAVAILABLE_BODY, status=503, headers=SERVICE_UNAVAILABLE_HEADERS)
    if isinstance(exc, Http404):  # Django's, raised in a view: the contract's code, not a generic one
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, DjangoValidationError):
        # Business rules raised by services and models keep the field -> messages form.
        messages = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(messages)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        if isinstance(response.data, list):
            response.data = {"non_field_errors": response.data}
        return response
    if getattr(exc, "quiet", False):  # lib.exceptions.quiet
        response._has_been_logged = True  # type: ignore[attr-defined]  # what django.utils.log.log_response checks
    detail = getattr(exc, "detail", None)
    if isinstance(exc, exceptions.APIException) and not isinstance(detail, (dict, list)):
        code = getattr(detail, "code", None) or exc.default_code
        if isinstance(exc, exceptions.Throttled):
            code = "rate_limited"
        response.data = {"detail": str(detail), "code": code}
    elif isinstance(response.data, dict) and "detail" in response.data:
        response.data.setdefault("code", "error")
    return response
