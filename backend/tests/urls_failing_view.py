"""A URLconf for tests: a view that logs a line, then fails."""

import logging

from django.http import HttpRequest, HttpResponse
from django.urls import path

logger = logging.getLogger("keyscope.tests")


def failing_view(request: HttpRequest) -> HttpResponse:
    logger.info("about to fail")
    raise RuntimeError("boom")


urlpatterns = [path("fail/", failing_view)]
