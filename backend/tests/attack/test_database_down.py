"""The database goes away and comes back: 503 in the error shape everywhere, then recovery.

A PostgreSQL of its own (initdb into a temporary folder, as an unprivileged
user when run as root, like scripts/with-services.sh) serves a gunicorn
worker; stopping it leaves the suite's database alone. Redis going away is
covered by keys/tests/limits/test_redis_down.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from backend.middleware import SERVICE_UNAVAILABLE_BODY
from backend.tests.subprocesses import BASE_DIR, clean_env, manage, production_secret_key
from keys.tests.helpers import basic, free_port, needs, pg_binary

pytestmark = pytest.mark.slow

SETUP = """
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from deployments.models import Deployment
from keys.models import DeploymentKey
from organizations.models import Membership, Organization
import json, secrets
password = secrets.token_urlsafe(16)
org = Organization.objects.create(slug="org-a", name="A")
user = get_user_model().objects.create_user("admin-a", password=password, is_staff=True)
Membership.objects.create(organization=org, user=user, role="admin")
deployment = Deployment.objects.create(organization=org, slug="a-one", name="A one")
_, key = DeploymentKey.objects.issue(deployment=deployment, name="k")
session = SessionStore()
session["_auth_user_id"] = str(user.pk)
session["_auth_user_backend"] = settings.AUTHENTICATION_BACKENDS[0]
session["_auth_user_hash"] = user.get_session_auth_hash()
session.create()
print(json.dumps({"password": password, "key": key, "session": session.session_key}))
"""


@dataclass
class OwnPostgres:
    data: Path
    port: int
    as_owner: list[str]
    pg_ctl: Path

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def ctl(self, *args: str) -> None:
        subprocess.run([*self.as_owner, str(self.pg_ctl), "-D", str(self.data), *args],
                       check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.ctl("-l", str(self.data / "server.log"), "-w", "-t", "30", "-o", options, "start")

    def stop(self) -> None:
        self.ctl("-m", "fast", "-w", "stop")


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    initdb, pg_ctl = pg_binary("initdb"), pg_binary("pg_ctl")
    needs("DATABASE OUTAGE", bool(initdb and pg_ctl), "needs PostgreSQL's initdb and pg_ctl (apt-get install postgresql)")
    assert initdb is not None and pg_ctl is not None
    # Not tmp_path: pytest's base folder is private to root, and the server may run as nobody.
    root = Path(tempfile.mkdtemp(prefix="keyscope-db-down-"))
    root.chmod(0o755)
    as_owner: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root.
        as_owner = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]
        shutil.chown(root, "nobody")
    server = OwnPostgres(data=root / "pg", port=free_port(), as_owner=as_owner, pg_ctl=pg_ctl)
    try:
        subprocess.run([*as_owner, str(initdb), "-D", str(server.data), "-U", "postgres", "--auth=trust",
                        "--no-sync", "-E", "UTF8"], check=True, capture_output=True, timeout=120)
        server.start()
        yield server
    finally:
        subprocess.run([*as_owner, str(pg_ctl), "-D", str(server.data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Server:
    base: str
    secrets: dict[str, str]


@pytest.fixture
def app_on_own_postgres(own_postgres) -> Iterator[Server]:
    """gunicorn, one sync worker, production settings, on the private database."""
    env = clean_env(
        DATABASE_URL=own_postgres.url, SECRET_KEY=production_secret_key(), ALLOWED_HOSTS="127.0.0.1",
        KEYSCOPE_FAILED_AUTH_PER_MINUTE="0",
    )
    migrated = manage("migrate", "--noinput", env=env)
    assert migrated.returncode == 0, migrated.stderr
    setup = manage("shell", "-c", SETUP, env=env)
    assert setup.returncode == 0, setup.stderr
    secrets = json.loads(setup.stdout.strip().splitlines()[-1])
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "backend.wsgi", "-b", f"127.0.0.1:{port}", "--workers", "1",
         "--timeout", "60"],
        cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "gunicorn exited"
            time.sleep(0.05)
        else:
            pytest.fail("gunicorn did not answer /healthz within 10 seconds")
        yield Server(base=base, secrets=secrets)
    finally:
        process.terminate()
        process.wait(timeout=30)


def requests_of_every_kind(server: Server) -> dict[str, httpx.Request]:
    key, session = server.secrets["key"], server.secrets["session"]
    return {
        "client API": httpx.Request("POST", f"{server.base}/api/v1/deployments/org-a/a-one/execute/", json={},
                                    headers={"Authorization": f"Bearer {key}"}),
        "management API": httpx.Request("GET", f"{server.base}/api/v1/orgs/org-a/deployments/",
                                        headers={"Authorization": basic("admin-a", server.secrets["password"])}),
        # An admin page that needs the session (the database) but no static files.
        "admin": httpx.Request("GET", f"{server.base}/admin/jsi18n/", headers={"Cookie": f"sessionid={session}"}),
        "healthz": httpx.Request("GET", f"{server.base}/healthz"),
    }


def test_an_unreachable_database_is_a_503_everywhere_and_the_service_recovers(own_postgres, app_on_own_postgres):
    with httpx.Client(timeout=30) as http:
        for name, request in requests_of_every_kind(app_on_own_postgres).items():
            assert http.send(request).status_code == 200, name

        own_postgres.stop()
        for name, request in requests_of_every_kind(app_on_own_postgres).items():
            response = http.send(request)
            assert response.status_code == 503, (name, response.text[:300])
            assert response.headers["Content-Type"] == "application/json", name
            assert response.json() == SERVICE_UNAVAILABLE_BODY, name
            assert "Traceback" not in response.text and "<html" not in response.text.lower()
            assert response.headers["Retry-After"] and response.headers["X-Request-Id"]

        own_postgres.start()
        # The worker's persistent connection is dead; the next request of each kind works at once.
        for name, request in requests_of_every_kind(app_on_own_postgres).items():
            response = http.send(request)
            assert response.status_code == 200, (name, response.status_code, response.text[:300])
