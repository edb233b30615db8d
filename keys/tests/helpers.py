"""Helpers the tests share: plain functions and constants, imported by name (fixtures live in fixtures.py).

Full keys are made at run time by the services; nothing here holds one.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from keys.scopes import ALL_SCOPES
from lib import counters
from organizations.tests.factories import TEST_PASSWORD

# Client API -------------------------------------------------------------------


def bad_checksum(full_key: str) -> str:
    """The key with its last character changed, always to another one: the right shape, a wrong checksum.

    Appending a fixed character instead fails one time in the alphabet's size, when the key already ends in it.
    """
    return full_key[:-1] + ("0" if full_key[-1] != "0" else "1")


def bearer(full_key: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {full_key}"}


def x_api_key(full_key: str) -> dict[str, str]:
    return {"HTTP_X_API_KEY": full_key}


def execute_url(org_slug: str, deployment_slug: str, trailing_slash: bool = True) -> str:
    return f"/api/v1/deployments/{org_slug}/{deployment_slug}/execute" + ("/" if trailing_slash else "")


def execution_url(org_slug: str, deployment_slug: str, execution_id: str) -> str:
    return f"/api/v1/deployments/{org_slug}/{deployment_slug}/executions/{execution_id}/"


def execute(client, org_slug: str, deployment_slug: str, full_key: str | None = None, body=None, **extra):
    """POST a JSON body to a deployment's execute endpoint, with the key as a Bearer token."""
    headers = bearer(full_key) if full_key is not None else {}
    headers.update(extra)
    return client.post(
        execute_url(org_slug, deployment_slug), data=body if body is not None else {}, content_type="application/json", **headers
    )


def assert_error(response, status: int, code: str) -> None:
    """The contract's error shape: exactly {"detail", "code"}; every 401 challenges for Bearer."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"detail", "code"}, body
    assert body["code"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    if status == 401:
        assert response["WWW-Authenticate"] == "Bearer"


# Management API ---------------------------------------------------------------

ORG_A = "/api/v1/orgs/org-a"


def basic(username: str, password: str = TEST_PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


# Admin ------------------------------------------------------------------------

# The shape of a full key, to find one in a page; never a key itself.
FULL_KEY = re.compile(r"ks[dg]_[0-9A-Za-z]{38}")

GLOBAL = "globalapideploymentkey"
DEPLOYMENT = "deploymentkey"


def admin_url(model: str, view: str, *args: object, app: str = "keys") -> str:
    return reverse(f"admin:{app}_{model}_{view}", args=args)


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def full_keys_in(response) -> list[str]:
    return FULL_KEY.findall(response.content.decode())


def global_key_form(organization, name: str, deployments=(), *, scope: str = "selected", **extra) -> dict:
    """The add/change form's POST data for a global key."""
    return key_form(
        name, organization=organization.pk, scope=scope, deployments=[deployment.pk for deployment in deployments], **extra
    )


def deployment_key_form(deployment, name: str, **extra) -> dict:
    """The add/change form's POST data for a deployment key."""
    return key_form(name, deployment=deployment.pk, **extra)


def key_form(name: str, **fields) -> dict:
    """What both kinds' forms post: an active key with no expiry or limit of its own, every scope, any address."""
    return {
        "name": name,
        "description": "",
        "is_active": "on",
        "expires_at_0": "",
        "expires_at_1": "",
        "rate_limit_per_minute": "",
        "scopes": list(ALL_SCOPES),
        "allowed_ips": "",
        **fields,
    }


# Limits, clocks and servers of our own ---------------------------------------


def needs_redis(what: str) -> None:
    """Skip loudly without REDIS_URL; under CI=true that is a failure, not a skip.

    Except in make test's second pass (KEYSCOPE_TEST_PASS=sqlite), which runs without Redis on
    purpose after the first pass has run these tests against Redis.
    """
    if settings.REDIS_URL and shutil.which("redis-server"):
        return
    if os.environ.get("KEYSCOPE_TEST_PASS") == "sqlite":
        pytest.skip(f"{what}: tested with Redis in make test's first pass; this pass runs without it")
    reason = (
        f"!!! {what} NOT TESTED: needs REDIS_URL and redis-server "
        "(run through scripts/with-services.sh, or install redis-server) !!!"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


SUBSCRIBE_WAIT_SECONDS = 5.0


def wait_for_subscription() -> None:
    """The invalidation listener of this process is up, so answers get cached (and the digest filter is used)."""
    from keys import verification_cache

    if not settings.REDIS_URL:
        return
    deadline = time.monotonic() + SUBSCRIBE_WAIT_SECONDS
    while not verification_cache._bus.healthy():
        if time.monotonic() > deadline:
            pytest.fail("the cache invalidation listener did not subscribe within 5 seconds")
        time.sleep(0.01)


class Clock:
    """Stands in for the `time` module inside the counters, rate limits and usage: frozen, moved on by hand."""

    def __init__(self) -> None:
        real = time.time()
        # One second into the current window: `t` of the RateLimit field is then 59.
        self.now = (real // counters.WINDOW_SECONDS) * counters.WINDOW_SECONDS + 1.0
        self._monotonic_offset = 0.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return time.monotonic() + self._monotonic_offset

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self._monotonic_offset += seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RedisServer:
    url: str
    process: subprocess.Popen

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def pg_binary(name: str) -> Path | None:
    """`name` from KEYSCOPE_TEST_PG_BINDIR (scripts/with-services.sh), the PATH or /usr/lib/postgresql."""
    bindir = os.environ.get("KEYSCOPE_TEST_PG_BINDIR")
    if bindir and (Path(bindir) / name).is_file():
        return Path(bindir) / name
    found = shutil.which(name)
    if found:
        return Path(found)
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    return candidates[-1] if candidates else None


def needs(what: str, condition: bool, hint: str) -> None:
    """Skip loudly when a tool is missing; under CI=true that is a failure, not a skip."""
    if condition:
        return
    reason = f"!!! {what} NOT TESTED: {hint} !!!"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)
