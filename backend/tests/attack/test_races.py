"""Races on PostgreSQL: threads, each with its own database connection, hit one thing at once.

Concurrent rotations are covered by keys/tests/test_rotation_race.py; this file
adds creates with one name, executes during a rotation, and executes during a
revocation.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from backend.tests.threads import in_threads
from deployments.models import Deployment
from keys.models import DeploymentKey, GlobalApiDeploymentKey
from keys.tests.helpers import ORG_A, basic, execute

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

THREADS = 8


@pytest.fixture(autouse=True)
def _postgresql_without_limits(settings):
    if connection.vendor != "postgresql":
        pytest.skip("row locks and unique indexes under concurrency are what is tested: PostgreSQL only")
    # Bursts of refused keys from one address would otherwise end in 429s, which are not the point here.
    settings.KEYSCOPE_FAILED_AUTH_PER_MINUTE = 0
    settings.KEYSCOPE_DEFAULT_RATE_LIMIT_PER_MINUTE = 0


@pytest.mark.parametrize(
    ("url", "body", "model"),
    [
        (f"{ORG_A}/deployments/a-one/keys/", {"name": "{name}"}, DeploymentKey),
        (f"{ORG_A}/global-keys/", {"name": "{name}", "allow_all_deployments": True}, GlobalApiDeploymentKey),
        (f"{ORG_A}/deployments/", {"slug": "raced", "name": "{name}"}, Deployment),
    ],
    ids=["deployment-key", "global-key", "deployment"],
)
def test_concurrent_creates_with_one_name_make_exactly_one(admin_a, deployment_a1, url, body, model):
    before = model.objects.count()
    # One name in several cases: names are unique regardless of case.
    names = ["Raced", "raced", "RACED", "rAcEd"]

    def create(index: int) -> int:
        data = {field: value.format(name=names[index % len(names)]) if isinstance(value, str) else value
                for field, value in body.items()}
        response = Client().post(url, data, content_type="application/json", HTTP_AUTHORIZATION=basic(admin_a.username))
        assert response.status_code in (201, 400), response.content
        if response.status_code == 400:
            assert set(response.json()) & {"name", "slug"}, response.json()
        return response.status_code

    statuses = in_threads(THREADS, create)

    assert sorted(statuses) == [201] + [400] * (THREADS - 1)
    assert model.objects.count() == before + 1


def test_a_burst_of_executes_during_a_rotation_gets_only_200_or_401(admin_a, deployment_a1, deployment_key_a1):
    row, old_key = deployment_key_a1
    rotate_url = f"{ORG_A}/deployments/a-one/keys/{row.pk}/rotate/"
    outcome: dict[str, Any] = {}

    def work(index: int) -> list[int]:
        if index == 0:
            response = Client().post(rotate_url, {}, content_type="application/json",
                                     HTTP_AUTHORIZATION=basic(admin_a.username))
            outcome["rotated"] = response
            return [response.status_code]
        client = Client()
        return [execute(client, "org-a", "a-one", old_key).status_code for _ in range(15)]

    results = in_threads(THREADS, work)

    assert outcome["rotated"].status_code == 200, outcome["rotated"].content
    executes = [status for statuses in results[1:] for status in statuses]
    assert set(executes) <= {200, 401}, executes
    new_key = outcome["rotated"].json()["key"]
    assert execute(Client(), "org-a", "a-one", new_key).status_code == 200
    assert execute(Client(), "org-a", "a-one", old_key).status_code == 401


def test_nothing_succeeds_once_the_revoke_has_returned(admin_a, deployment_a1, global_all_key_a):
    row, full_key = global_all_key_a
    revoke_url = f"{ORG_A}/global-keys/{row.pk}/revoke/"
    revoked_at: list[float] = []
    stop = threading.Event()

    def work(index: int) -> list[tuple[float, float, int]]:
        if index == 0:
            time.sleep(0.05)  # let the executes get going
            response = Client().post(revoke_url, {}, content_type="application/json",
                                     HTTP_AUTHORIZATION=basic(admin_a.username))
            assert response.status_code == 200, response.content
            revoked_at.append(time.monotonic())
            time.sleep(0.1)  # keep the others running a little after the revoke
            stop.set()
            return []
        client = Client()
        calls = []
        while not stop.is_set():
            started = time.monotonic()
            status = execute(client, "org-a", "a-one", full_key).status_code
            calls.append((started, time.monotonic(), status))
        return calls

    results = in_threads(THREADS, work)

    calls = [call for thread_calls in results[1:] for call in thread_calls]
    (returned,) = revoked_at
    assert {status for _, _, status in calls} <= {200, 401}
    after = [(started, status) for started, _, status in calls if started > returned]
    assert after, "no execute started after the revoke returned: the race was not exercised"
    # A request that began before the revoke returned may have been let in; none that began after.
    assert all(status == 401 for _, status in after), after
