"""Two gunicorn processes over one PostgreSQL and one Redis, as production runs.

A limit of N a minute holds across both, and a revoked key is refused by
every process within 1 second, as is a key narrowed to one scope, and a
deployment added to a group opens to the group's keys on every process within
1 second (removed, it closes likewise): that bound is the feature, not a
performance target. The processes cache verified keys
for 30 seconds here, so only the Redis flush message, not the cache's TTL, can
meet it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection
from django.db.models import F
from django.urls import Resolver404, resolve

from backend.tests.subprocesses import clean_env, production_secret_key
from deployments.models import GroupDeployment
from deployments.services import group_create
from keys import crypto
from keys.models import DeploymentKey, VerificationStamp
from keys.services import key_revoke
from keys.tests.factories import issue_deployment_key, issue_global_key
from keys.tests.helpers import free_port, needs_redis
from keys.usage import FLUSH_SECONDS
from keys.verification_cache import flush
from organizations.tests.factories import TEST_PASSWORD

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LIMIT = 5
PROPAGATION_BOUND_SECONDS = 1.0
POLL_SECONDS = 0.02
START_TIMEOUT_SECONDS = 30.0


def needs_postgresql() -> None:
    if connection.vendor == "postgresql":
        return
    reason = "!!! MULTI-PROCESS TEST NOT RUN: needs PostgreSQL (run through scripts/with-services.sh) !!!"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def child_database_url() -> str:
    """The database pytest made for this run, as a URL a child process can use."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = db["HOST"] or "127.0.0.1"
    return f"postgres://{credentials}@{host}:{db['PORT'] or 5432}/{db['NAME']}"


def gunicorn_binary() -> str:
    beside_python = Path(sys.executable).with_name("gunicorn")
    found = str(beside_python) if beside_python.exists() else shutil.which("gunicorn")
    if not found:
        pytest.fail("gunicorn is not installed in the virtualenv")
    return found


class Server:
    def __init__(self, port: int, log_path: Path) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.http = httpx.Client(base_url=self.base, timeout=5.0)

    def start(self, env: dict[str, str]) -> None:
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [gunicorn_binary(), "backend.wsgi:application", "--bind", f"127.0.0.1:{self.port}", "--workers", "1"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_healthy(self) -> None:
        assert self.process is not None, "start() first"
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"gunicorn on {self.port} exited with {self.process.returncode}:\n{self.output()}")
            try:
                if self.http.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail(f"gunicorn on {self.port} was not healthy within {START_TIMEOUT_SECONDS} s:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        self.http.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if getattr(self, "log", None):
            self.log.close()

    def execute(self, full_key: str, deployment_slug: str = "a-one") -> httpx.Response:
        return self.http.post(
            f"/api/v1/deployments/org-a/{deployment_slug}/execute/", json={}, headers={"Authorization": f"Bearer {full_key}"}
        )


def start_pair(tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[Server, Server]]:
    pair = (Server(free_port(), tmp_path / "one.log"), Server(free_port(), tmp_path / "two.log"))
    try:
        for server in pair:
            server.start(env)
        for server in pair:
            server.wait_healthy()
        yield pair
    finally:
        for server in pair:
            server.stop()


def start_pair_with_redis(tmp_path: Path, log_level: str = "WARNING") -> Iterator[tuple[Server, Server]]:
    needs_redis("MULTI-PROCESS LIMITS AND INVALIDATION")
    needs_postgresql()
    env = clean_env(
        DATABASE_URL=child_database_url(),
        REDIS_URL=settings.REDIS_URL,
        SECRET_KEY=production_secret_key(),
        ALLOWED_HOSTS="127.0.0.1",
        KEYSCOPE_VERIFICATION_CACHE_SECONDS="30",
        LOG_LEVEL=log_level,
    )
    yield from start_pair(tmp_path, env)


@pytest.fixture
def servers(tmp_path) -> Iterator[tuple[Server, Server]]:
    yield from start_pair_with_redis(tmp_path)


@pytest.fixture
def servers_logging_builds(tmp_path) -> Iterator[tuple[Server, Server]]:
    """The same, logging at INFO, where each process says when its digest filter is built."""
    yield from start_pair_with_redis(tmp_path, log_level="INFO")


@pytest.fixture
def servers_without_redis(tmp_path) -> Iterator[tuple[Server, Server]]:
    needs_postgresql()
    env = clean_env(
        DATABASE_URL=child_database_url(), SECRET_KEY=production_secret_key(), ALLOWED_HOSTS="127.0.0.1", LOG_LEVEL="WARNING"
    )
    yield from start_pair(tmp_path, env)


def start_of_a_fresh_window(margin: float = 10.0) -> None:
    """Fixed one-minute windows: a burst must not straddle two of them."""
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.2)


def test_a_limit_of_n_a_minute_holds_across_two_processes(servers, deployment_a1):
    one, two = servers
    _, full_key = issue_deployment_key(deployment_a1, rate_limit_per_minute=LIMIT)
    start_of_a_fresh_window()

    responses = [(one if n % 2 == 0 else two).execute(full_key) for n in range(2 * LIMIT)]

    statuses = [r.status_code for r in responses]
    assert statuses.count(200) <= LIMIT, statuses
    assert statuses == [200] * LIMIT + [429] * LIMIT, statuses
    assert [r.headers["RateLimit"].split(";")[1] for r in responses[:LIMIT]] == [f"r={LIMIT - 1 - n}" for n in range(LIMIT)]
    assert all(r.headers["RateLimit-Policy"] == f'"key";q={LIMIT};w=60' for r in responses)
    assert all(r.json()["code"] == "rate_limited" and int(r.headers["Retry-After"]) >= 1 for r in responses[LIMIT:])


def management_route(key: DeploymentKey, action: str = "") -> str | None:
    """The key's URL in the management API (or one of its actions), when the project has it."""
    path = f"/api/v1/orgs/org-a/deployments/a-one/keys/{key.pk}/" + (f"{action}/" if action else "")
    try:
        resolve(path)
    except Resolver404:
        return None
    return path


def warm_both(servers: tuple[Server, Server], key: DeploymentKey, full_key: str) -> None:
    """Both processes answer the key from their caches, proven so: a change that bypasses the model
    signals (a queryset update) goes unnoticed by a process that answers from its cache."""
    one, two = servers
    warm_deadline = time.monotonic() + 5.0
    while True:
        assert [one.execute(full_key).status_code, two.execute(full_key).status_code] == [200, 200]
        DeploymentKey.objects.filter(pk=key.pk).update(is_active=False)
        cached = [one.execute(full_key).status_code, two.execute(full_key).status_code]
        DeploymentKey.objects.filter(pk=key.pk).update(is_active=True)
        if cached == [200, 200]:
            return
        # Not cached yet (a process caches only once subscribed): it may now hold the
        # inactive answer, so flush every process and try again.
        flush()
        assert time.monotonic() < warm_deadline, f"the processes never cached the key: {cached}"
        time.sleep(0.05)


def as_production_user(user) -> None:
    """The suite hashes passwords with MD5, which a production process does not accept."""
    hasher = PBKDF2PasswordHasher()
    user.password = hasher.encode(TEST_PASSWORD, hasher.salt())
    user.save(update_fields=["password"])


def answered_after(
    servers: tuple[Server, Server], full_key: str, status: int, code: str | None, since: float, slug: str = "a-one"
) -> dict[int, float]:
    """How long after `since` each process first answered `full_key` on `slug` with `status` and `code` (polled for 3 s)."""
    seen: dict[int, float] = {}
    while len(seen) < len(servers) and time.monotonic() - since < 3 * PROPAGATION_BOUND_SECONDS:
        for server in servers:
            if server.port not in seen:
                response = server.execute(full_key, slug)
                if response.status_code == status:
                    assert code is None or response.json()["code"] == code, response.text
                    seen[server.port] = time.monotonic() - since
        time.sleep(POLL_SECONDS)
    return seen


def test_a_revoked_key_is_refused_by_every_process_within_one_second(servers, deployment_a1, admin_a):
    one, two = servers
    key, full_key = issue_deployment_key(deployment_a1, rate_limit_per_minute=0)
    warm_both(servers, key, full_key)

    route = management_route(key, "revoke")
    if route is not None:  # revoked through process one's management API
        as_production_user(admin_a)
        response = one.http.post(route, auth=("admin-a", TEST_PASSWORD))
        assert response.status_code == 200, response.text
        revoked_at = time.monotonic()
        assert one.execute(full_key).status_code == 401  # the process that made the change: at once
    else:  # revoked by this process, which commits and publishes as every other would
        key_revoke(key=key, actor=admin_a)
        revoked_at = time.monotonic()

    refused = answered_after(servers, full_key, 401, "key_revoked", revoked_at)
    print(f"revocation seen after {sorted(round(s * 1000) for s in refused.values())} ms")
    assert set(refused) == {one.port, two.port}, f"still accepted after 3 s: {refused}"
    assert max(refused.values()) < PROPAGATION_BOUND_SECONDS, refused


def test_a_key_narrowed_to_one_scope_is_refused_the_other_by_every_process_within_one_second(
    servers, deployment_a1, admin_a
):
    one, two = servers
    key, full_key = issue_deployment_key(deployment_a1, rate_limit_per_minute=0)
    warm_both(servers, key, full_key)

    as_production_user(admin_a)
    response = one.http.patch(management_route(key), json={"scopes": ["executions:read"]}, auth=("admin-a", TEST_PASSWORD))
    assert response.status_code == 200, response.text
    assert response.json()["scopes"] == ["executions:read"]
    changed_at = time.monotonic()

    refused = answered_after(servers, full_key, 403, "insufficient_scope", changed_at)
    print(f"scope change seen after {sorted(round(s * 1000) for s in refused.values())} ms")
    assert set(refused) == {one.port, two.port}, f"still executing after 3 s: {refused}"
    assert max(refused.values()) < PROPAGATION_BOUND_SECONDS, refused
    # What the key kept, it may still do, on both.
    introspection = [server.http.get("/api/v1/key/", headers={"Authorization": f"Bearer {full_key}"}) for server in servers]
    assert [r.json()["scopes"] for r in introspection] == [["executions:read"], ["executions:read"]]


def test_a_deployment_added_to_a_group_opens_to_its_keys_on_every_process_within_one_second(
    servers, org_a, deployment_a1, deployment_a2, admin_a
):
    one, two = servers
    group = group_create(organization=org_a, slug="production", name="Production", deployments=[deployment_a1], actor=None)
    _, full_key = issue_global_key(org_a, name="follows production", groups=[group], rate_limit_per_minute=0)

    # Warm both caches with "a-two is not in scope", and prove they are warm: a membership
    # written without the model signals (a bulk insert) goes unnoticed by a process that
    # answers from its cache.
    warm_deadline = time.monotonic() + 10.0
    while True:
        # After a flush below, each process answers from the database again once the message reached it.
        while [one.execute(full_key, "a-two").status_code, two.execute(full_key, "a-two").status_code] != [403, 403]:
            assert time.monotonic() < warm_deadline, "a process kept an answer from before the flush"
            time.sleep(POLL_SECONDS)
        (unsignalled,) = GroupDeployment.objects.bulk_create([GroupDeployment(group=group, deployment=deployment_a2)])
        cached = [one.execute(full_key, "a-two").status_code, two.execute(full_key, "a-two").status_code]
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {GroupDeployment._meta.db_table} WHERE id = %s", [unsignalled.pk])
        if cached == [403, 403]:
            break
        flush()
        assert time.monotonic() < warm_deadline, f"the processes never cached the scope: {cached}"
        time.sleep(0.05)

    # Added through process one's management API: process two hears of it over Redis only.
    as_production_user(admin_a)
    url = "/api/v1/orgs/org-a/groups/production/"
    response = one.http.patch(url, json={"deployments": ["a-one", "a-two"]}, auth=("admin-a", TEST_PASSWORD))
    assert response.status_code == 200, response.text
    added_at = time.monotonic()
    assert one.execute(full_key, "a-two").status_code == 200  # the process that made the change: at once
    opened = answered_after(servers, full_key, 200, None, added_at, slug="a-two")

    response = one.http.patch(url, json={"deployments": ["a-one"]}, auth=("admin-a", TEST_PASSWORD))
    assert response.status_code == 200, response.text
    removed_at = time.monotonic()
    closed = answered_after(servers, full_key, 403, "deployment_not_in_scope", removed_at, slug="a-two")

    print(
        f"group membership seen after {sorted(round(s * 1000) for s in opened.values())} ms (added), "
        f"{sorted(round(s * 1000) for s in closed.values())} ms (removed)"
    )
    assert set(opened) == set(closed) == {one.port, two.port}, f"not every process heard of it in 3 s: {opened}, {closed}"
    assert max(opened.values()) < PROPAGATION_BOUND_SECONDS, opened
    assert max(closed.values()) < PROPAGATION_BOUND_SECONDS, closed


FILTER_BUILT = "digest filter built"


def test_a_key_issued_while_every_process_holds_its_digest_filter_is_accepted_by_every_process_within_one_second(
    servers_logging_builds, deployment_a1
):
    """Each process refuses keys no one issued from its digest filter; a new key, announced or not, is not one of them
    for longer than the cache's bounds: its flush message, or the stamp read twice a second."""
    one, two = servers = servers_logging_builds
    for server in servers:  # a first cold request starts the process's filter thread
        assert server.execute(crypto.generate_key("deployment")).status_code == 401
    deadline = time.monotonic() + 10.0
    while not all(FILTER_BUILT in server.output() for server in servers):
        assert time.monotonic() < deadline, f"not every process built its filter in 10 s:\n{one.output()}\n{two.output()}"
        time.sleep(POLL_SECONDS)

    _, announced = issue_deployment_key(deployment_a1, name="announced", rate_limit_per_minute=0)  # committed, flushed
    announced_at = time.monotonic()
    accepted = answered_after(servers, announced, 200, None, announced_at)

    unannounced = crypto.generate_key("deployment")  # as a process without Redis writes one: the stamp alone tells
    DeploymentKey.objects.bulk_create(
        [DeploymentKey(deployment=deployment_a1, name="unannounced", digest=crypto.digest(unannounced), last4=unannounced[-4:])]
    )
    VerificationStamp.objects.filter(pk=1).update(version=F("version") + 1)
    unannounced_at = time.monotonic()
    accepted_unannounced = answered_after(servers, unannounced, 200, None, unannounced_at)

    print(
        f"new key accepted after {sorted(round(s * 1000) for s in accepted.values())} ms (announced), "
        f"{sorted(round(s * 1000) for s in accepted_unannounced.values())} ms (the stamp alone)"
    )
    assert set(accepted) == set(accepted_unannounced) == {one.port, two.port}, (accepted, accepted_unannounced)
    assert max(accepted.values()) < PROPAGATION_BOUND_SECONDS, accepted
    assert max(accepted_unannounced.values()) < PROPAGATION_BOUND_SECONDS, accepted_unannounced


def test_usage_is_exact_across_two_processes_without_redis(servers_without_redis, deployment_a1, admin_a):
    """Each process writes its counts to the database within a second, the idle one too: the endpoint adds them up."""
    one, two = servers_without_redis
    key, full_key = issue_deployment_key(deployment_a1, rate_limit_per_minute=0)
    sent = 25
    statuses = [(one if n % 3 else two).execute(full_key).status_code for n in range(sent)]
    assert statuses == [200] * sent
    as_production_user(admin_a)

    route = f"/api/v1/orgs/org-a/deployments/a-one/keys/{key.pk}/usage/"
    deadline = time.monotonic() + 5 * FLUSH_SECONDS
    totals = []
    while not totals or (totals[-1] != sent and time.monotonic() < deadline):
        response = one.http.get(route, auth=("admin-a", TEST_PASSWORD))
        assert response.status_code == 200, response.text
        totals.append(response.json()["total"])
        time.sleep(POLL_SECONDS)

    assert totals[-1] == sent, totals
    assert max(totals) == sent  # never more than were made
    assert response.json()["days"][-1]["count"] == sent
