"""Redis stopped mid-test: keys are still verified from the database; limits fail open or closed.

Each test starts a redis-server of its own, points the counters at it, warms up,
and kills it.
"""

import logging

import pytest
from django.test import override_settings

from keys import usage, verification_cache
from keys.services import key_revoke
from keys.tests.factories import issue_deployment_key
from keys.tests.helpers import assert_error, bearer, execute
from lib import counters
from lib.redis_client import reset_clients

pytestmark = pytest.mark.django_db

ERROR_LINE = "rate-limit counters unavailable"


@pytest.fixture
def counters_on_own_redis(own_redis, monkeypatch):
    """REDIS_URL points at a server this test may kill; one error line may be logged again."""
    monkeypatch.setattr(counters, "_last_error_logged", float("-inf"))
    with override_settings(REDIS_URL=own_redis.url):
        reset_clients()
        yield own_redis
    reset_clients()


@pytest.fixture
def limited_key(deployment_a1):
    return issue_deployment_key(deployment_a1, name="limited", rate_limit_per_minute=3)


def error_lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "keyscope.ratelimit" and r.levelno == logging.ERROR]


def test_keys_are_verified_from_the_database_when_redis_is_gone(
    client, counters_on_own_redis, limited_key, global_all_key_a, admin_a, django_assert_max_num_queries
):
    _, full_key = limited_key
    assert execute(client, "org-a", "a-one", full_key).status_code == 200

    counters_on_own_redis.stop()
    verification_cache.local_cache.clear()  # nothing cached to lean on: the database answers

    with django_assert_max_num_queries(4) as captured:
        response = execute(client, "org-a", "a-one", full_key)
    assert response.status_code == 200, response.content
    assert any('FROM "keys_deploymentkey"' in q["sql"] for q in captured.captured_queries)
    # Invalid and revoked keys are still refused.
    key_revoke(key=global_all_key_a[0], actor=admin_a)
    assert_error(execute(client, "org-a", "a-one", global_all_key_a[1], REMOTE_ADDR="203.0.113.5"), 401, "key_revoked")
    assert_error(execute(client, "org-a", "a-one", "not-a-key", REMOTE_ADDR="203.0.113.5"), 401, "invalid_key")


@override_settings(KEYSCOPE_RATELIMIT_FAIL_OPEN=True)
def test_fail_open_lets_requests_through_without_ratelimit_fields(client, counters_on_own_redis, limited_key):
    _, full_key = limited_key
    warm = execute(client, "org-a", "a-one", full_key)
    assert warm["RateLimit"] == '"key";r=2;t=59'

    counters_on_own_redis.stop()
    responses = [execute(client, "org-a", "a-one", full_key) for _ in range(6)]

    assert [r.status_code for r in responses] == [200] * 6  # twice the limit
    assert not any(r.has_header("RateLimit") or r.has_header("RateLimit-Policy") for r in responses)


@override_settings(KEYSCOPE_RATELIMIT_FAIL_OPEN=False)
def test_fail_closed_refuses_requests_of_limited_keys(client, counters_on_own_redis, limited_key, deployment_a1):
    _, full_key = limited_key
    _, unlimited = issue_deployment_key(deployment_a1, name="unlimited", rate_limit_per_minute=0)
    assert execute(client, "org-a", "a-one", full_key).status_code == 200

    counters_on_own_redis.stop()
    refused = execute(client, "org-a", "a-one", full_key)
    introspection = client.get("/api/v1/key/", **bearer(full_key))

    assert_error(refused, 429, "rate_limited")
    assert refused["Retry-After"] == "1"
    assert refused["RateLimit-Policy"] == '"key";q=3;w=60'
    assert introspection.status_code == 429
    # A key without a limit has nothing to count.
    assert execute(client, "org-a", "a-one", unlimited).status_code == 200


@pytest.mark.parametrize("fail_open", [True, False])
def test_one_error_line_a_minute_not_one_per_request(client, counters_on_own_redis, limited_key, clock, caplog, fail_open):
    _, full_key = limited_key
    execute(client, "org-a", "a-one", full_key)
    counters_on_own_redis.stop()

    with override_settings(KEYSCOPE_RATELIMIT_FAIL_OPEN=fail_open), caplog.at_level(logging.ERROR, "keyscope.ratelimit"):
        for _ in range(10):
            execute(client, "org-a", "a-one", full_key)
            execute(client, "org-a", "a-one", "not-a-key")
        usage.usage_for(str(limited_key[0].pk))
        assert len(error_lines(caplog)) == 1
        clock.advance(61)
        for _ in range(5):
            execute(client, "org-a", "a-one", full_key)

    lines = error_lines(caplog)
    assert len(lines) == 2
    assert ("open" if fail_open else "closed") in lines[0].getMessage()


def test_usage_counted_while_redis_is_down_is_exact(client, counters_on_own_redis, limited_key):
    """Usage lives in the database: Redis stopping (or restarting empty) loses no count."""
    key, full_key = limited_key
    execute(client, "org-a", "a-one", full_key)
    counters_on_own_redis.stop()

    for _ in range(2):
        execute(client, "org-a", "a-one", full_key)

    assert usage.usage_for(str(key.pk))[-1]["count"] == 3
