"""Refusals of known keys are counted for the admin's hygiene panel, without a query per refused request."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from keys import refusals
from keys.services import key_revoke, key_update
from keys.tests.helpers import bad_checksum, execute, execution_url

pytestmark = pytest.mark.django_db


def refusal_of(key, code: str) -> refusals.Refusal:
    [found] = [r for r in refusals.recent_refusals([key.organization.pk]) if r.key_id == str(key.pk) and r.code == code]
    return found


@pytest.fixture(params=["redis", "cache"])
def store(request, settings):
    """Where the counts go: a Redis hash per organization, or (without REDIS_URL) Django's cache."""
    if request.param == "cache":
        settings.REDIS_URL = ""
    elif not settings.REDIS_URL:
        pytest.skip("no REDIS_URL: the Redis store is not tested")
    return request.param


def test_a_revoked_key_in_use_is_counted_without_a_query(deployment_key_a1, store):
    key, full_key = deployment_key_a1
    key_revoke(key=key, actor=None)
    api = Client()
    execute(api, "org-a", "a-one", full_key)  # the key's lookup is cached from here on

    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            assert execute(api, "org-a", "a-one", full_key, REMOTE_ADDR="203.0.113.9").json()["code"] == "key_revoked"

    assert not [query for query in queries.captured_queries if "INSERT" in query["sql"] or "UPDATE" in query["sql"]]
    refusal = refusal_of(key, "key_revoked")
    assert (refusal.count, refusal.last_client_ip, refusal.reason) == (4, "203.0.113.9", "revoked")


def test_a_worker_flushes_its_counts_at_most_once_a_second(deployment_key_a1, monkeypatch):
    key, full_key = deployment_key_a1
    key_revoke(key=key, actor=None)
    clock = [1000.0]
    monkeypatch.setattr(refusals.time, "monotonic", lambda: clock[0])
    flushes = []
    real_flush = refusals.flush_refusals
    monkeypatch.setattr(refusals, "flush_refusals", lambda: (flushes.append(clock[0]), real_flush()))

    for _ in range(5):
        execute(Client(), "org-a", "a-one", full_key)
    clock[0] += refusals.FLUSH_SECONDS
    execute(Client(), "org-a", "a-one", full_key)

    assert flushes == [1000.0, 1000.0 + refusals.FLUSH_SECONDS]


def test_out_of_scope_and_wrong_address_refusals_are_counted(global_selected_key_a, deployment_key_a1):
    key, full_key = global_selected_key_a
    api = Client()
    assert execute(api, "org-a", "a-three", full_key).json()["code"] == "deployment_not_in_scope"
    assert refusal_of(key, "deployment_not_in_scope").reason == "deployment out of scope"

    narrow, narrow_key = deployment_key_a1
    key_update(key=narrow, actor=None, allowed_ips=["198.51.100.0/24"], scopes=["deployments:execute"])
    assert execute(api, "org-a", "a-one", narrow_key, REMOTE_ADDR="203.0.113.9").json()["code"] == "ip_not_allowed"
    assert refusal_of(narrow, "ip_not_allowed").last_client_ip == "203.0.113.9"
    reading = api.get(execution_url("org-a", "a-one", "x"), HTTP_AUTHORIZATION=f"Bearer {narrow_key}", REMOTE_ADDR="198.51.100.4")
    assert reading.json()["code"] == "insufficient_scope"
    assert refusal_of(narrow, "insufficient_scope").count == 1


def test_unknown_and_working_keys_count_nothing(deployment_key_a1, org_a):
    _, full_key = deployment_key_a1
    api = Client()
    assert execute(api, "org-a", "a-one", full_key).status_code == 200
    assert execute(api, "org-a", "a-one", bad_checksum(full_key)).status_code == 401

    assert refusals.recent_refusals([org_a.pk]) == []


def test_another_organizations_refusals_stay_its_own(global_all_key_b, deployment_b1, org_a):
    key, full_key = global_all_key_b
    key_revoke(key=key, actor=None)
    execute(Client(), "org-b", "b-one", full_key)

    assert refusals.recent_refusals([org_a.pk]) == []
    assert refusal_of(key, "key_revoked").count == 1
