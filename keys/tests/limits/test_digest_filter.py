"""The digest filter: a well-formed key that no one issued is refused with no query, and never a key that exists.

The suite runs without the filter's thread (KEYSCOPE_DIGEST_FILTER_THREAD is off under pytest): each test builds
the filter by hand with `digest_filter.catch_up()`, what the thread runs, on the test's own connection, which sees
the test's rows. Until then, and whenever a write leaves it behind, keys are looked up as without it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from keys import crypto, verification_cache
from keys import digest_filter as digest_filter_module
from keys.digest_filter import digest_filter
from keys.models import DeploymentKey, VerificationStamp
from keys.services import key_deactivate, key_revoke, key_rotate
from keys.tests.factories import import_deployment_key, import_global_key, issue_deployment_key, issue_global_key
from keys.tests.helpers import Clock, assert_error, execute, needs_redis
from lib.redis_client import redis_client

pytestmark = pytest.mark.django_db

ADDRESS = "203.0.113.7"


def built() -> None:
    """The filter as the thread leaves it once nothing is due: built, current, trusted."""
    digest_filter.catch_up()
    assert digest_filter.trusted()


def unknown_key(n: int = 0) -> str:
    """Well formed, checksummed, never issued (a new one each call)."""
    return crypto.generate_key("deployment" if n % 2 else "global")


def lookups(captured: CaptureQueriesContext) -> int:
    return sum('"digest" = ' in query["sql"] for query in captured.captured_queries)


def refused_unknown(client, full_key: str, **extra) -> None:
    assert_error(execute(client, "org-a", "a-one", full_key, **extra), 401, "invalid_key")


def test_an_unknown_key_is_refused_with_no_query_once_the_filter_is_built(client, deployment_key_a1, django_assert_num_queries):
    with django_assert_num_queries(1):  # not built yet: looked up, as without the filter
        refused_unknown(client, unknown_key())
    built()

    with django_assert_num_queries(0):
        for n in range(4):
            refused_unknown(client, unknown_key(n))
        refused_unknown(client, str(uuid.uuid4()))  # an imported key no one imported: the same

    assert verification_cache.stats()["negative_entries"] == 1  # the first one's; the filter's answers need none
    _, full_key = deployment_key_a1
    assert execute(client, "org-a", "a-one", full_key).status_code == 200  # a key it holds: looked up


def test_a_warm_key_does_not_ask_the_filter(client, deployment_key_a1, monkeypatch):
    _, full_key = deployment_key_a1
    built()
    assert execute(client, "org-a", "a-one", full_key).status_code == 200
    asked = []
    monkeypatch.setattr(digest_filter, "might_hold", lambda key_digest: asked.append(key_digest) or True)

    assert execute(client, "org-a", "a-one", full_key).status_code == 200

    assert asked == []


def issue(org, deployment, admin) -> str:
    return issue_global_key(org, name="new", allow_all_deployments=True)[1]


def rotate(org, deployment, admin) -> str:
    return key_rotate(key=issue_deployment_key(deployment, name="rotated")[0], actor=admin)[1]


def import_uuid(org, deployment, admin) -> str:
    return import_deployment_key(deployment, name="moved in")[1]


def import_global_uuid(org, deployment, admin) -> str:
    return import_global_key(org, name="moved in", allow_all_deployments=True)[1]


WRITES_THAT_MAKE_A_DIGEST_KNOWN: dict[str, Callable[..., str]] = {
    "issue": issue,
    "rotate": rotate,
    "import": import_uuid,
    "import-global": import_global_uuid,
}


@pytest.mark.parametrize("write", WRITES_THAT_MAKE_A_DIGEST_KNOWN)
def test_a_key_written_after_the_build_is_accepted_on_its_very_next_request(
    client, org_a, deployment_a1, admin_a, write, django_assert_num_queries
):
    built()

    full_key = WRITES_THAT_MAKE_A_DIGEST_KNOWN[write](org_a, deployment_a1, admin_a)

    assert not digest_filter.trusted()  # the write's flush: until its key is read again
    assert execute(client, "org-a", "a-one", full_key).status_code == 200
    digest_filter.catch_up()  # the key's digests read again, by key id
    assert digest_filter.trusted()
    assert digest_filter.might_hold(crypto.presented_digest(full_key, accept_uuid_keys=True) or "")
    with django_assert_num_queries(0):
        refused_unknown(client, unknown_key())


def unannounced_key(deployment) -> tuple[DeploymentKey, str]:
    """A key as another process writes it, seen from here before its flush arrives: no signal, no message."""
    full_key = crypto.generate_key("deployment")
    (row,) = DeploymentKey.objects.bulk_create(
        [DeploymentKey(deployment=deployment, name="from elsewhere", digest=crypto.digest(full_key), last4=crypto.last4(full_key))]
    )
    return row, full_key


def another_process_moves_the_stamp() -> int:
    """What that process's write does to the stamp, in its own transaction (the fixtures' writes made the row)."""
    assert VerificationStamp.objects.filter(pk=1).update(version=F("version") + 1) == 1
    return VerificationStamp.objects.get(pk=1).version


def test_a_key_another_process_issued_is_accepted_once_its_flush_arrives(client, deployment_a1, django_assert_num_queries):
    refused_unknown(client, unknown_key())  # this worker reads the stamp
    built()
    row, full_key = unannounced_key(deployment_a1)
    # Its flush has not come: unknown here, as a cached unknown digest would be (the bound is the message's).
    with django_assert_num_queries(0):
        refused_unknown(client, full_key)

    stamp = another_process_moves_the_stamp()
    verification_cache._receive(f"another-worker|{stamp}|key:{row.pk}")

    assert not digest_filter.trusted()
    with CaptureQueriesContext(connection) as captured:  # the filter is behind: it stands aside, the database answers
        assert execute(client, "org-a", "a-one", full_key).status_code == 200
    assert lookups(captured) == 1
    assert verification_cache.local_cache.stamp == stamp  # the message's stamp taken: no flush of everything due
    digest_filter.catch_up()
    assert digest_filter.trusted()
    assert digest_filter.might_hold(crypto.digest(full_key))


def test_a_key_another_process_issued_unannounced_is_accepted_once_the_stamp_is_read(
    client, deployment_a1, monkeypatch, django_assert_num_queries
):
    clock = Clock()
    monkeypatch.setattr(verification_cache, "time", clock)
    refused_unknown(client, unknown_key())  # this worker reads the stamp
    built()
    _, full_key = unannounced_key(deployment_a1)
    another_process_moves_the_stamp()  # and no message at all
    with django_assert_num_queries(0):  # the stamp is not read again yet
        refused_unknown(client, full_key)

    clock.advance(settings.KEYSCOPE_VERIFICATION_STAMP_CHECK_SECONDS)

    assert execute(client, "org-a", "a-one", full_key).status_code == 200  # the stamp moved: everything flushed
    assert not digest_filter.trusted()  # until it is built again
    digest_filter.catch_up()
    assert digest_filter.trusted()
    assert digest_filter.might_hold(crypto.digest(full_key))


def written(name: str, write: Callable[[DeploymentKey, Any], object]) -> Callable[..., str]:
    """A deployment key issued, then `write(key, admin)`: its first full key."""

    def make(deployment, admin) -> str:
        row, full_key = issue_deployment_key(deployment, name=name)
        write(row, admin)
        return full_key

    return make


def expire(key: DeploymentKey, admin: Any) -> None:
    DeploymentKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(minutes=1))


KEYS_THE_FILTER_MUST_HOLD = {
    "revoked": (written("revoked", lambda key, admin: key_revoke(key=key, actor=admin)), 401, "key_revoked"),
    "expired": (written("expired", expire), 401, "key_expired"),
    "inactive": (written("inactive", lambda key, admin: key_deactivate(key=key, actor=admin)), 401, "key_inactive"),
    "rotated out, past its grace": (
        written("rotated out", lambda key, admin: key_rotate(key=key, actor=admin, grace_period_seconds=0)),
        401,
        "key_revoked",
    ),
    "rotated out, in its grace": (
        written("in grace", lambda key, admin: key_rotate(key=key, actor=admin, grace_period_seconds=3600)),
        200,
        None,
    ),
}


@pytest.mark.parametrize("case", KEYS_THE_FILTER_MUST_HOLD)
def test_keys_that_fail_get_their_own_code_never_invalid_key(client, deployment_a1, admin_a, case):
    make, status, code = KEYS_THE_FILTER_MUST_HOLD[case]
    full_key = make(deployment_a1, admin_a)
    built()

    response = execute(client, "org-a", "a-one", full_key)

    if code is None:
        assert response.status_code == status, response.content
    else:
        assert_error(response, status, code)


def flushed_while_reading(monkeypatch, flush: Callable[[], None]) -> None:
    """The next read of the digests ends with `flush` coming in, as a write's flush can at any moment."""
    read = digest_filter_module._digest_prefixes

    def reading(key_ids):
        yield from read(key_ids)
        monkeypatch.setattr(digest_filter_module, "_digest_prefixes", read)
        flush()

    monkeypatch.setattr(digest_filter_module, "_digest_prefixes", reading)


def test_a_build_that_began_before_a_key_was_issued_is_not_trusted(client, org_a, deployment_a1, monkeypatch, django_assert_num_queries):
    issued = []
    flushed_while_reading(monkeypatch, lambda: issued.append(issue_global_key(org_a, allow_all_deployments=True)[1]))

    assert digest_filter.refresh()  # the build, which the issue's flush overtook

    assert not digest_filter.trusted()
    (full_key,) = issued
    assert execute(client, "org-a", "a-one", full_key).status_code == 200
    with django_assert_num_queries(1):
        refused_unknown(client, unknown_key())
    assert digest_filter.refresh()  # the key read again, this time from after its flush
    assert digest_filter.trusted()


@pytest.mark.parametrize("flush", ["a key's flush", "a flush of everything"])
@pytest.mark.parametrize("reading", ["a build", "a read of flushed keys"])
def test_a_read_that_a_later_flush_overtook_is_not_trusted(org_a, deployment_a1, monkeypatch, reading, flush):
    key, _ = issue_deployment_key(deployment_a1, name="written twice")
    if reading == "a read of flushed keys":
        built()
        verification_cache.flush(frozenset({f"key:{key.pk}"}))
    if flush == "a key's flush":
        flushed_while_reading(monkeypatch, lambda: verification_cache.local_cache.drop(frozenset({f"key:{key.pk}"})))
    else:
        flushed_while_reading(monkeypatch, verification_cache.local_cache.clear)

    assert digest_filter.refresh()

    assert not digest_filter.trusted()
    digest_filter.catch_up()
    assert digest_filter.trusted()


def test_scope_and_deployment_writes_leave_the_filter_trusted(deployment_a1, deployment_a2):
    built()

    deployment_a2.is_active = False
    deployment_a2.save()
    verification_cache.flush(frozenset({"scope"}))

    assert digest_filter.trusted()


def test_while_the_subscription_is_down_the_filter_is_not_used(client, deployment_a1, monkeypatch, django_assert_num_queries):
    built()
    monkeypatch.setattr(verification_cache._bus, "healthy", lambda: False)

    with django_assert_num_queries(1):
        refused_unknown(client, unknown_key())
    assert not digest_filter.refresh()  # nor built or read


@pytest.mark.parametrize("setting", [{"KEYSCOPE_VERIFICATION_CACHE_SECONDS": 0}, {"KEYSCOPE_DIGEST_FILTER": False}])
def test_with_the_cache_or_the_filter_off_unknown_keys_are_looked_up(client, deployment_a1, settings, setting, django_assert_num_queries):
    built()
    for name, value in setting.items():
        setattr(settings, name, value)

    with django_assert_num_queries(1):
        refused_unknown(client, unknown_key())


def test_a_filter_as_old_as_a_cached_answer_may_be_is_not_trusted(client, deployment_a1, monkeypatch, django_assert_num_queries):
    clock = Clock()
    monkeypatch.setattr(digest_filter_module, "time", clock)
    built()

    clock.advance(settings.KEYSCOPE_VERIFICATION_CACHE_SECONDS)

    assert not digest_filter.trusted()
    with django_assert_num_queries(1):
        refused_unknown(client, unknown_key())


def test_a_subscriber_that_lost_its_connection_builds_its_filter_again(client, deployment_a1, django_assert_num_queries):
    needs_redis("THE DIGEST FILTER ACROSS A RECONNECTION")
    built()

    assert redis_client().client_kill_filter(_type="pubsub") >= 1
    deadline = time.monotonic() + 10.0
    while digest_filter.trusted() or not verification_cache._bus.healthy():
        assert time.monotonic() < deadline, "the listener neither flushed nor subscribed again"
        time.sleep(0.01)

    with django_assert_num_queries(1):  # what was published meanwhile is lost to it: looked up until built again
        refused_unknown(client, unknown_key())
    built()
    with django_assert_num_queries(0):
        refused_unknown(client, unknown_key())


def test_unknown_keys_it_refuses_count_as_failed_authentications_and_spend_no_lookups(
    client, deployment_key_a1, django_assert_num_queries
):
    _, valid_key = deployment_key_a1  # held by the filter, not verified yet
    built()
    limit = settings.KEYSCOPE_FAILED_AUTH_PER_MINUTE

    with django_assert_num_queries(0):
        statuses = [execute(client, "org-a", "a-one", unknown_key(n), REMOTE_ADDR=ADDRESS).status_code for n in range(limit)]
        throttled = [execute(client, "org-a", "a-one", unknown_key(n), REMOTE_ADDR=ADDRESS) for n in range(2 * limit)]

    assert statuses == [401] * limit
    for response in throttled:
        assert_error(response, 429, "rate_limited")
    # The throttled address's lookups are all left: its valid key, never verified here, is looked up.
    assert execute(client, "org-a", "a-one", valid_key, REMOTE_ADDR=ADDRESS).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_the_thread_builds_it_and_reads_a_new_key_again(client, org_a, deployment_a1, settings, django_assert_num_queries):
    """The real thread, on its own connection: the rows here are committed, as a worker's are."""
    settings.KEYSCOPE_DIGEST_FILTER_THREAD = True
    try:
        refused_unknown(client, unknown_key())  # the first cold request starts the thread
        wait_until_trusted()
        with django_assert_num_queries(0):
            refused_unknown(client, unknown_key())

        _, full_key = issue_global_key(org_a, allow_all_deployments=True)  # committed, flushed
        assert execute(client, "org-a", "a-one", full_key).status_code == 200
        wait_until_trusted()
        assert digest_filter.might_hold(crypto.digest(full_key))
    finally:
        digest_filter.stop()


def wait_until_trusted() -> None:
    deadline = time.monotonic() + 10.0
    while not digest_filter.trusted():
        assert time.monotonic() < deadline, "the thread did not build the filter within 10 s"
        time.sleep(0.01)
