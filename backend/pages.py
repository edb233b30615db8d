"""The pages around the admin and the API: the landing page at `/` and the favicon browsers ask for."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.templatetags.static import static

FAVICON = "keys/favicon.svg"


def home(request: HttpRequest) -> HttpResponse:
    """What "View site" and `/` lead to: where the admin, the API docs and the schema are."""
    return TemplateResponse(request, "home.html", {**admin.site.each_context(request), "title": "keyscope"})


def favicon(request: HttpRequest) -> HttpResponse:
    # Browsers ask for /favicon.ico whatever the page names; the icon's own URL changes with collectstatic.
    response = HttpResponseRedirect(static(FAVICON))
    response["Cache-Control"] = "max-age=86400"
    return response
