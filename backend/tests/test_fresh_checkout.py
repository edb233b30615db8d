"""A fresh checkout serves the admin and the API with `runserver`, no `collectstatic`."""

from __future__ import annotations

import re
import sys

import httpx
import pytest

from backend.tests.subprocesses import BASE_DIR, clean_env, manage, production_secret_key, serving
from keys.tests.helpers import free_port

pytestmark = pytest.mark.slow


def test_runserver_serves_the_admin_and_its_static_files_without_collectstatic(tmp_path):
    # `pip install -r requirements.txt && manage.py migrate && manage.py runserver`, SECRET_KEY set, DEBUG unset.
    env = clean_env(
        SECRET_KEY=production_secret_key(),
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        STATIC_ROOT=str(tmp_path / "static"),  # empty: nothing was collected
    )
    migrated = manage("migrate", "--noinput", env=env)
    assert migrated.returncode == 0, migrated.stderr
    port = free_port()
    runserver = [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]

    with serving(runserver, cwd=BASE_DIR, env=env, port=port, log=tmp_path / "runserver.log") as base:
        login = httpx.get(f"{base}/admin/login/")
        assert login.status_code == 200, login.text[:500]
        stylesheets = re.findall(r'<link rel="stylesheet" href="([^"]+)"', login.text)
        assert "/static/admin/css/base.css" in stylesheets
        for href in stylesheets:
            css = httpx.get(f"{base}{href}")
            assert (css.status_code, css.headers["Content-Type"].split(";")[0]) == (200, "text/css"), href
        docs = httpx.get(f"{base}/api/docs/")
        assert docs.status_code == 200
        for src in re.findall(r'src="(/static/[^"]+)"', docs.text):
            assert httpx.get(f"{base}{src}").status_code == 200, src
        api = httpx.get(f"{base}/api/v1/key/")
        assert (api.status_code, api.json()["code"]) == (401, "not_authenticated")

    assert "Traceback" not in (tmp_path / "runserver.log").read_text()
