"""The per-worker verification cache: a warm request makes no query of its own.

Measured queries per request (PostgreSQL; the execute view of an echo deployment):

| key                 | cold                                                  | warm |
| ------------------- | ----------------------------------------------------- | ---- |
| deployment key      | 2: key SELECT (with the deployment), Execution INSERT  | 1 (the INSERT) |
| global, allow-all   | 2: same as above                                      | 1 (the INSERT) |
| global, selected    | 2: same, the scope link read in the key SELECT        | 1 (the INSERT) |

(`last_used_at` and usage are written by each worker's flush once a second, never by the request: keys/usage.py.)

GET /api/v1/key/ warm: 0 for an allow-all key; 1 for the others, which list their scope.
"""

import time
from datetime import timedelta
from unittest import mock

import pytest
from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deployments.models import Deployment
from keys import crypto, verification_cache
from keys.models import VerificationStamp
from keys.services import key_revoke, key_rotate, key_update
from keys.tests.factories import import_deployment_key, issue_deployment_key, issue_global_key
from keys.tests.helpers import Clock, assert_error, bearer, execute, needs_redis
from lib.redis_client import redis_client

pytestmark = pytest.mark.django_db

KEY_SELECT = "SELECT key"
KEY_TOUCH = "UPDATE key"
DEPLOYMENT_SELECT = "SELECT deployment"
SCOPE_EXISTS = "SELECT scope"
EXECUTION_INSERT = "INSERT execution"


def kinds(captured: CaptureQueriesContext) -> list[str]:
    """Each query named by what it does, so a failure says which query appeared."""
    named = []
    for query in captured.captured_queries:
        sql = query["sql"]
        table = sql.split(" FROM ", 1)[-1] if sql.startswith("SELECT") else sql
        if sql.startswith("INSERT INTO \"deployments_execution\""):
            named.append(EXECUTION_INSERT)
        elif sql.startswith("UPDATE \"keys_"):
            named.append(KEY_TOUCH)
        elif sql.startswith("SELECT") and '"digest" = ' in sql:  # the key lookup, whatever it joins
            named.append(KEY_SELECT)
        elif table.startswith("\"keys_globalkeydeployment\"") or "EXISTS(SELECT 1 AS \"a\" FROM \"keys_globalkeydeployment\"" in sql:
            named.append(SCOPE_EXISTS)  # the key's list, alone or beside its groups
        elif table.startswith("\"keys_"):
            named.append(KEY_SELECT)
        elif table.startswith("\"deployments_deployment\""):
            named.append(DEPLOYMENT_SELECT)
        else:
            named.append(sql[:120])
    return named


def timed_execute(client, full_key: str, slug: str = "a-one"):
    with CaptureQueriesContext(connection) as captured:
        response = execute(client, "org-a", slug, full_key)
    assert response.status_code == 200, response.content
    return kinds(captured)


PERSONAS = {
    "deployment_key_a1": [KEY_SELECT, EXECUTION_INSERT],
    "global_all_key_a": [KEY_SELECT, EXECUTION_INSERT],
    "global_selected_key_a": [KEY_SELECT, EXECUTION_INSERT],
}


@pytest.mark.parametrize("persona", PERSONAS)
def test_queries_per_cold_and_warm_execute(client, request, persona, deployment_a1):
    _, full_key = request.getfixturevalue(persona)

    cold = timed_execute(client, full_key)
    warm = [timed_execute(client, full_key) for _ in range(3)]

    assert cold == PERSONAS[persona]
    # Warm: nothing but the Execution row the request exists to write.
    assert warm == [[EXECUTION_INSERT]] * 3


@pytest.mark.parametrize("persona", PERSONAS)
def test_a_cold_request_writes_no_last_used_at_of_its_own(client, request, persona, deployment_a1):
    _, full_key = request.getfixturevalue(persona)
    timed_execute(client, full_key)
    verification_cache.local_cache.clear()  # another worker, say

    cold = timed_execute(client, full_key)

    assert KEY_TOUCH not in cold
    assert cold == PERSONAS[persona]


def test_a_warm_introspection_of_an_allow_all_key_makes_no_query(client, global_all_key_a, django_assert_num_queries):
    _, full_key = global_all_key_a
    assert client.get("/api/v1/key/", **bearer(full_key)).status_code == 200

    with django_assert_num_queries(0):
        response = client.get("/api/v1/key/", **bearer(full_key))

    assert response.status_code == 200
    assert response.json()["allow_all_deployments"] is True


def test_the_scope_check_stays_flat_as_the_scope_grows(client, org_a, deployment_a1):
    _, small = issue_global_key(org_a, name="small", deployments=[deployment_a1])
    many = Deployment.objects.bulk_create(
        Deployment(organization=org_a, slug=f"bulk-{n}", name=f"Bulk {n}") for n in range(500)
    )
    _, large = issue_global_key(org_a, name="large", deployments=[deployment_a1, *many])

    small_queries = timed_execute(client, small)
    verification_cache.local_cache.clear()
    large_queries = timed_execute(client, large)

    assert small_queries == large_queries == PERSONAS["global_selected_key_a"]
    assert timed_execute(client, large, slug="bulk-499") == [DEPLOYMENT_SELECT, SCOPE_EXISTS, EXECUTION_INSERT]


def test_an_unknown_key_is_cached_as_a_negative_entry(client, deployment_a1, django_assert_num_queries):
    unknown = crypto.generate_key("global")  # well formed, never issued
    with django_assert_num_queries(1):  # the keys and the retired secrets, in one query
        assert_error(execute(client, "org-a", "a-one", unknown), 401, "invalid_key")

    with django_assert_num_queries(0):
        assert_error(execute(client, "org-a", "a-one", unknown), 401, "invalid_key")


def test_a_negative_entry_is_dropped_by_the_next_write(client, org_a, deployment_a1, django_assert_num_queries):
    unknown = crypto.generate_key("global")
    execute(client, "org-a", "a-one", unknown)

    issue_global_key(org_a, allow_all_deployments=True)

    with django_assert_num_queries(1):
        assert_error(execute(client, "org-a", "a-one", unknown), 401, "invalid_key")


def test_expiry_is_checked_on_every_request_cached_or_not(client, org_a, deployment_a1, django_assert_num_queries):
    _, full_key = issue_global_key(org_a, allow_all_deployments=True, expires_at=timezone.now() + timedelta(minutes=5))
    assert client.get("/api/v1/key/", **bearer(full_key)).status_code == 200

    with mock.patch("django.utils.timezone.now", return_value=timezone.now() + timedelta(minutes=6)):
        with django_assert_num_queries(0):
            response = client.get("/api/v1/key/", **bearer(full_key))

    assert_error(response, 401, "key_expired")


def test_cache_entries_hold_digests_and_ids_never_a_key(client, deployment_key_a1, global_selected_key_a):
    for _, full_key in (deployment_key_a1, global_selected_key_a):
        execute(client, "org-a", "a-one", full_key)
    entries = repr(verification_cache.local_cache._entries)

    assert verification_cache.local_cache._entries
    for _, full_key in (deployment_key_a1, global_selected_key_a):
        assert full_key not in entries
        assert full_key[4:] not in entries
        assert crypto.digest(full_key) in entries
    if settings.REDIS_URL:
        stored = b" ".join(redis_client().keys("*")).decode()
        assert "ksd_" not in stored and "ksg_" not in stored


def test_nothing_is_cached_while_the_invalidation_channel_is_down(client, global_all_key_a, monkeypatch, django_assert_num_queries):
    _, full_key = global_all_key_a
    monkeypatch.setattr(verification_cache._bus, "healthy", lambda: False)
    client.get("/api/v1/key/", **bearer(full_key))

    with django_assert_num_queries(1):
        assert client.get("/api/v1/key/", **bearer(full_key)).status_code == 200


def test_an_entry_lives_no_longer_than_the_ttl(client, global_all_key_a, monkeypatch, django_assert_num_queries):
    _, full_key = global_all_key_a
    clock = Clock()
    monkeypatch.setattr(verification_cache, "time", clock)
    client.get("/api/v1/key/", **bearer(full_key))

    clock.advance(settings.KEYSCOPE_VERIFICATION_CACHE_SECONDS + 0.01)

    with django_assert_num_queries(1):
        assert client.get("/api/v1/key/", **bearer(full_key)).status_code == 200


def test_an_entry_outlives_a_second_while_nothing_is_written(client, global_all_key_a, monkeypatch, django_assert_num_queries):
    _, full_key = global_all_key_a
    clock = Clock()
    monkeypatch.setattr(verification_cache, "time", clock)
    client.get("/api/v1/key/", **bearer(full_key))

    clock.advance(60)  # the stamp is read again, and has not moved

    with django_assert_num_queries(0):
        assert client.get("/api/v1/key/", **bearer(full_key)).status_code == 200


def another_process_revokes(key) -> None:
    """What a write by another process leaves here when its flush message never arrives: the row, and the stamp."""
    type(key).objects.filter(pk=key.pk).update(revoked_at=timezone.now())  # no signal: no flush, no message
    VerificationStamp.objects.filter(pk=1).update(version=F("version") + 1)


def test_a_revoked_key_is_refused_under_a_long_lived_cache_though_no_message_came(client, global_all_key_a, monkeypatch):
    key, full_key = global_all_key_a
    clock = Clock()
    monkeypatch.setattr(verification_cache, "time", clock)
    assert client.get("/api/v1/key/", **bearer(full_key)).status_code == 200

    another_process_revokes(key)
    clock.advance(settings.KEYSCOPE_VERIFICATION_STAMP_CHECK_SECONDS)

    assert_error(client.get("/api/v1/key/", **bearer(full_key)), 401, "key_revoked")


def test_a_stamp_that_cannot_be_read_empties_the_cache(client, global_all_key_a, monkeypatch, django_assert_num_queries):
    key, full_key = global_all_key_a
    clock = Clock()
    monkeypatch.setattr(verification_cache, "time", clock)
    client.get("/api/v1/key/", **bearer(full_key))

    def unreadable(sql: str) -> None:
        raise DatabaseError("gone")

    monkeypatch.setattr(verification_cache, "_raw", unreadable)
    clock.advance(settings.KEYSCOPE_VERIFICATION_STAMP_CHECK_SECONDS)

    with django_assert_num_queries(1):  # looked up again, not answered from what may be stale
        assert client.get("/api/v1/key/", **bearer(full_key)).status_code == 200


def test_a_flood_of_unknown_keys_cannot_push_a_valid_key_out(client, deployment_key_a1, settings):
    settings.KEYSCOPE_VERIFICATION_CACHE_MAX_NEGATIVE = 5
    _, full_key = deployment_key_a1
    timed_execute(client, full_key)

    for _ in range(50):
        assert_error(execute(client, "org-a", "a-one", crypto.generate_key("deployment")), 401, "invalid_key")

    assert timed_execute(client, full_key) == [EXECUTION_INSERT]  # still warm
    assert verification_cache.stats()["negative_entries"] == 5


def test_the_oldest_answers_go_first_when_the_cache_is_full(client, org_a, deployment_a1, settings):
    keys = [issue_global_key(org_a, name=f"k{n}", allow_all_deployments=True)[1] for n in range(3)]
    settings.KEYSCOPE_VERIFICATION_CACHE_MAX_ENTRIES = 3  # each key's answer, and one deployment
    for full_key in keys:
        timed_execute(client, full_key)

    assert timed_execute(client, keys[-1]) == [EXECUTION_INSERT]  # the newest stays
    assert timed_execute(client, keys[1]) == [EXECUTION_INSERT]  # and the one before: not the whole cache emptied
    assert KEY_SELECT in timed_execute(client, keys[0])  # the oldest went


def test_a_flush_published_by_another_worker_empties_this_cache(client, global_all_key_a, django_assert_num_queries):
    needs_redis("CROSS-WORKER INVALIDATION")
    _, full_key = global_all_key_a
    client.get("/api/v1/key/", **bearer(full_key))
    assert verification_cache.local_cache._entries

    redis_client().publish(verification_cache.CHANNEL, "another-worker")
    deadline = time.monotonic() + 1.0
    while verification_cache.local_cache._entries and time.monotonic() < deadline:
        time.sleep(0.005)

    assert not verification_cache.local_cache._entries
    with django_assert_num_queries(1):
        client.get("/api/v1/key/", **bearer(full_key))


def test_this_workers_own_flush_echo_does_not_empty_its_cache_again(client, global_all_key_a, admin_a):
    needs_redis("CROSS-WORKER INVALIDATION")
    key, full_key = global_all_key_a
    key_update(key=key, actor=admin_a, name="renamed")  # publishes this worker's flush
    client.get("/api/v1/key/", **bearer(full_key))
    # One more message in this worker's name, watched by a probe of our own: once the
    # probe has it, so (give or take a scheduler slice) has the listener.
    seen = []
    probe = redis_client(socket_timeout=None).pubsub()
    probe.subscribe(verification_cache.CHANNEL)
    redis_client().publish(verification_cache.CHANNEL, verification_cache._bus.token())
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and not seen:
        message = probe.get_message(timeout=0.05)
        if message and message["type"] == "message":
            seen.append(message)
    probe.close()
    time.sleep(0.05)  # the listener has had the marker's turn too

    assert seen
    assert verification_cache.local_cache._entries


WRITES_THAT_MAKE_A_DIGEST_KNOWN = {
    "issue": lambda org, deployment, admin: issue_global_key(org, name="new", allow_all_deployments=True),
    "rotate": lambda org, deployment, admin: key_rotate(key=issue_deployment_key(deployment, name="r")[0], actor=admin),
    "import": lambda org, deployment, admin: import_deployment_key(deployment, name="moved in"),
}


@pytest.mark.parametrize("write", WRITES_THAT_MAKE_A_DIGEST_KNOWN)
def test_negative_entries_are_dropped_by_every_write_that_makes_a_digest_known(client, org_a, deployment_a1, admin_a, write):
    for _ in range(3):
        execute(client, "org-a", "a-one", crypto.generate_key("deployment"))
    assert verification_cache.stats()["negative_entries"] == 3

    WRITES_THAT_MAKE_A_DIGEST_KNOWN[write](org_a, deployment_a1, admin_a)

    assert verification_cache.stats()["negative_entries"] == 0


def test_a_subscriber_that_lost_its_connection_starts_empty(client, global_all_key_a, django_assert_num_queries):
    """What was published while it was away is lost to it: it forgets everything, and caches again once back."""
    needs_redis("THE INVALIDATION LISTENER'S RECONNECTION")
    _, full_key = global_all_key_a
    client.get("/api/v1/key/", **bearer(full_key))
    assert verification_cache.stats()["entries"] > 0

    assert redis_client().client_kill_filter(_type="pubsub") >= 1
    deadline = time.monotonic() + 10.0
    while verification_cache.stats()["entries"] or not verification_cache._bus.healthy():
        assert time.monotonic() < deadline, "the listener neither flushed nor subscribed again"
        time.sleep(0.01)

    with django_assert_num_queries(1):  # looked up again, then cached again
        assert client.get("/api/v1/key/", **bearer(full_key)).status_code == 200
    with django_assert_num_queries(0):
        assert client.get("/api/v1/key/", **bearer(full_key)).status_code == 200


def test_a_key_write_drops_that_keys_answers_only(client, org_a, deployment_a1, admin_a, django_assert_num_queries):
    revoked, revoked_key = issue_global_key(org_a, name="revoked", allow_all_deployments=True)
    _, hot_key = issue_global_key(org_a, name="hot", allow_all_deployments=True)
    for full_key in (revoked_key, hot_key):
        client.get("/api/v1/key/", **bearer(full_key))

    key_revoke(key=revoked, actor=admin_a)

    with django_assert_num_queries(0):  # every other key stays warm
        assert client.get("/api/v1/key/", **bearer(hot_key)).status_code == 200
    assert_error(client.get("/api/v1/key/", **bearer(revoked_key)), 401, "key_revoked")


def test_a_deployment_write_keeps_keys_warm_and_drops_deployments(client, global_all_key_a, deployment_a1):
    _, full_key = global_all_key_a
    timed_execute(client, full_key)

    deployment_a1.is_active = False
    deployment_a1.save()

    with CaptureQueriesContext(connection) as captured:
        response = execute(client, "org-a", "a-one", full_key)
    assert_error(response, 403, "deployment_inactive")
    assert kinds(captured) == [DEPLOYMENT_SELECT]  # the key from the cache, the deployment read again


def test_an_organization_write_drops_everything(client, global_all_key_a, org_a, deployment_a1):
    _, full_key = global_all_key_a
    timed_execute(client, full_key)

    org_a.name = "Renamed"  # the organization's fields travel in every key's answer
    org_a.save()

    assert KEY_SELECT in timed_execute(client, full_key)


def test_another_workers_targeted_flush_drops_what_it_names_and_takes_its_stamp(client, org_a, django_assert_num_queries):
    needs_redis("CROSS-WORKER INVALIDATION")
    named, named_key = issue_global_key(org_a, name="named", allow_all_deployments=True)
    _, other_key = issue_global_key(org_a, name="other", allow_all_deployments=True)
    for full_key in (named_key, other_key):
        client.get("/api/v1/key/", **bearer(full_key))
    stamp = verification_cache.local_cache.stamp or 0

    redis_client().publish(verification_cache.CHANNEL, f"another-worker|{stamp + 1}|key:{named.pk}")
    deadline = time.monotonic() + 5.0
    while verification_cache.local_cache.stamp != stamp + 1:
        assert time.monotonic() < deadline, "the listener never took the message"
        time.sleep(0.005)

    with django_assert_num_queries(0):
        assert client.get("/api/v1/key/", **bearer(other_key)).status_code == 200
    with django_assert_num_queries(1):
        assert client.get("/api/v1/key/", **bearer(named_key)).status_code == 200
