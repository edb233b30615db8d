"""Content negotiation that cannot fail: the API answers JSON whatever `Accept` or `?format=` say."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.http import Http404
from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


class FallbackContentNegotiation(DefaultContentNegotiation):
    """DRF's choice where one matches; otherwise the view's first renderer, not a 406 or a 404.

    The API's views render JSON only, so they always answer JSON; the schema
    view still picks YAML or JSON by `?format=`.
    """

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except (exceptions.NotAcceptable, Http404):  # DRF's answers to an Accept, and a ?format=, it cannot meet
            renderer: Any = next(iter(renderers))
            return renderer, renderer.media_type
