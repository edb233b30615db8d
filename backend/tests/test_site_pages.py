"""The pages around the admin: `/` says where to go, the favicon exists, the admin is called keyscope."""

from __future__ import annotations

import pytest
from django.test import Client

from keys.tests.helpers import logged_in

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/", ""])
def test_the_root_is_a_landing_page_with_links_to_the_admin_and_the_api_docs(path):
    response = Client().get(path or "/")

    assert response.status_code == 200
    page = response.content.decode()
    assert 'href="/admin/"' in page and 'href="/api/docs"' in page and 'href="/api/schema"' in page
    assert "<title>keyscope</title>" in page


def test_favicon_ico_leads_to_an_icon_that_is_served():
    response = Client().get("/favicon.ico")

    assert response.status_code == 302
    icon = Client().get(response["Location"])
    assert icon.status_code == 200 and icon["Content-Type"].startswith("image/svg+xml")
    assert b"<svg" in b"".join(icon.streaming_content)


def test_the_admin_is_called_keyscope_names_its_icon_and_view_site_leads_to_the_landing_page(admin_a):
    page = logged_in(admin_a).get("/admin/").content.decode()

    assert '<div id="site-name"><a href="/admin/">keyscope</a></div>' in page
    assert "| keyscope</title>" in page and "Django" not in page
    assert 'rel="icon"' in page and "keys/favicon.svg" in page
    assert '<a href="/">View site</a>' in page
