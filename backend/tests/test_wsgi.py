"""The WSGI application serves the admin over plain HTTP with DEBUG=false."""

import pytest
from django.test import override_settings

from backend.tests.subprocesses import clean_env, manage, production_secret_key, run
from backend.tests.wsgi_client import call_wsgi

pytestmark = pytest.mark.django_db


@override_settings(DEBUG=False)
def test_test_client_gets_the_admin_login_page_over_plain_http(client):
    response = client.get("/admin/login/")

    assert response.status_code == 200
    assert b'name="username"' in response.content
    assert not response.has_header("Strict-Transport-Security")


@override_settings(DEBUG=False)
def test_backend_wsgi_application_answers_admin_login():
    from backend.wsgi import application

    status, headers, body = call_wsgi(application, "/admin/login/")

    assert status == "200 OK"
    assert headers["Content-Type"].startswith("text/html")
    assert headers["X-Request-Id"]
    assert b'name="username"' in body


@pytest.mark.slow
def test_production_mode_serves_the_admin_and_its_static_files_after_collectstatic(tmp_path):
    """DEBUG=false with the manifest storage of production, as gunicorn would run it."""
    env = clean_env(
        DEBUG="false",
        SECRET_KEY=production_secret_key(),
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        STATIC_ROOT=str(tmp_path / "static"),
        ALLOWED_HOSTS="127.0.0.1",
    )
    collected = manage("collectstatic", "--noinput", env=env)
    assert collected.returncode == 0, collected.stderr

    script = """
import re
from backend.tests.wsgi_client import call_wsgi  # imports no pytest: TESTING stays off
from backend.wsgi import application
status, headers, body = call_wsgi(application, "/admin/login/")
print(status)
css = re.search(rb'href="(/static/admin/css/base[.][0-9a-f]+[.]css)"', body).group(1).decode()
status, headers, _ = call_wsgi(application, css, HTTP_ACCEPT_ENCODING="gzip")
print(status, headers["Content-Type"], headers.get("Content-Encoding"), headers.get("Cache-Control"))
from django.conf import settings
print(settings.TESTING, settings.DEBUG)
"""
    result = run(["-c", script], env=env)

    assert result.returncode == 0, result.stderr
    login_status, css_line, modes = result.stdout.strip().splitlines()[-3:]
    assert modes == "False False"
    assert login_status == "200 OK"
    assert css_line.startswith("200 OK text/css")
    # Compressed, and cached for good under its hashed name.
    assert css_line.endswith("gzip max-age=315360000, public, immutable")
