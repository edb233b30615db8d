"""The failed-authentication throttle per client address, and which address that is."""




import logging

import pytest
from django.test import RequestFactory, override_settings

from keys import crypto
from keys.services import key_deactivate, key_revoke
from keys.tests.factories import issue_deployment_key
from keys.tests.helpers import assert_error, execute
from lib.net import client_ip

pytestmark = pytest.mark.django_db

JUNK = "not-a-key"  # refused before any query: no prefix, no checksum
LIMIT = 60  # KEYSCOPE_FAILED_AUTH_PER_MINUTE's default


def fail_from(client, address: str, times: int, **extra) -> list[int]:
    return [execute(client, "org-a", "a-one", JUNK, REMOTE_ADDR=address, **extra).status_code for _ in range(times)]


def test_the_61st_junk_key_from_one_address_gets_429_before_any_query(client, deployment_a1, django_assert_num_queries):
    with django_assert_num_queries(0):
        statuses = fail_from(client, "203.0.113.5", LIMIT)
        throttled = execute(client, "org-a", "a-one", JUNK, REMOTE_ADDR="203.0.113.5")

    assert statuses == [401] * LIMIT
    assert_error(throttled, 429, "rate_limited")
    assert throttled["Retry-After"] == "59"
    assert not throttled.has_header("RateLimit")  # no key, no key policy


def test_a_key_known_to_be_invalid_is_throttled_from_the_negative_cache(client, deployment_a1, django_assert_num_queries):
    unknown = crypto.generate_key("deployment")  # well formed, never issued
    assert_error(execute(client, "org-a", "a-one", unknown, REMOTE_ADDR="203.0.113.5"), 401, "invalid_key")
    fail_from(client, "203.0.113.5", LIMIT - 1)

    with django_assert_num_queries(0):
        throttled = execute(client, "org-a", "a-one", unknown, REMOTE_ADDR="203.0.113.5")

    assert_error(throttled, 429, "rate_limited")


@pytest.mark.parametrize("status", ["revoked", "inactive"])
def test_known_keys_that_fail_count_too(client, deployment_a1, admin_a, status):
    key, full_key = issue_deployment_key(deployment_a1)
    (key_revoke if status == "revoked" else key_deactivate)(key=key, actor=admin_a)
    fail_from(client, "203.0.113.5", LIMIT)

    assert_error(execute(client, "org-a", "a-one", full_key, REMOTE_ADDR="203.0.113.5"), 429, "rate_limited")


def test_a_valid_key_from_a_throttled_address_still_works(client, deployment_key_a1, global_all_key_a):
    fail_from(client, "203.0.113.5", LIMIT + 5)
    assert_error(execute(client, "org-a", "a-one", JUNK, REMOTE_ADDR="203.0.113.5"), 429, "rate_limited")

    for _, full_key in (deployment_key_a1, global_all_key_a):
        response = execute(client, "org-a", "a-one", full_key, REMOTE_ADDR="203.0.113.5")
        assert response.status_code == 200, response.content
    introspection = client.get("/api/v1/key/", HTTP_AUTHORIZATION=f"Bearer {global_all_key_a[1]}", REMOTE_ADDR="203.0.113.5")
    assert introspection.status_code == 200


def unknown_keys(count: int) -> list[str]:
    """Well-formed keys with good checksums that no one was ever issued: each needs a lookup."""
    return [crypto.generate_key("deployment" if n % 2 else "global") for n in range(count)]


def test_a_throttled_address_gets_at_most_its_lookups_a_minute(client, deployment_a1, django_assert_max_num_queries):
    lookups = 60  # KEYSCOPE_THROTTLED_LOOKUPS_PER_MINUTE's default
    fail_from(client, "203.0.113.5", LIMIT + 1)

    with django_assert_max_num_queries(lookups):
        answers = [execute(client, "org-a", "a-one", key, REMOTE_ADDR="203.0.113.5") for key in unknown_keys(2 * lookups)]

    for answer in answers:
        assert_error(answer, 429, "rate_limited")


@override_settings(KEYSCOPE_THROTTLED_LOOKUPS_PER_MINUTE=3)
def test_past_its_lookups_a_throttled_address_makes_no_query(client, deployment_a1, django_assert_num_queries):
    fail_from(client, "203.0.113.5", LIMIT + 1)
    for key in unknown_keys(3):
        execute(client, "org-a", "a-one", key, REMOTE_ADDR="203.0.113.5")

    with django_assert_num_queries(0):
        answers = [execute(client, "org-a", "a-one", key, REMOTE_ADDR="203.0.113.5") for key in unknown_keys(20)]

    for answer in answers:
        assert_error(answer, 429, "rate_limited")
        assert answer["Retry-After"] == "59"


@override_settings(KEYSCOPE_THROTTLED_LOOKUPS_PER_MINUTE=3)
def test_a_key_verified_before_keeps_working_once_the_lookups_are_spent(client, deployment_key_a1, django_assert_num_queries):
    _, full_key = deployment_key_a1
    assert execute(client, "org-a", "a-one", full_key, REMOTE_ADDR="203.0.113.5").status_code == 200  # now cached
    fail_from(client, "203.0.113.5", LIMIT + 1)
    for key in unknown_keys(5):
        execute(client, "org-a", "a-one", key, REMOTE_ADDR="203.0.113.5")

    response = execute(client, "org-a", "a-one", full_key, REMOTE_ADDR="203.0.113.5")

    assert response.status_code == 200, response.content


@override_settings(KEYSCOPE_THROTTLED_LOOKUPS_PER_MINUTE=3)
def test_a_key_not_verified_yet_works_while_the_lookups_last_then_waits(client, deployment_a1, clock):
    fail_from(client, "203.0.113.5", LIMIT + 1)
    keys = [issue_deployment_key(deployment_a1, name=f"k{n}")[1] for n in range(4)]

    answers = [execute(client, "org-a", "a-one", key, REMOTE_ADDR="203.0.113.5") for key in keys]

    assert [answer.status_code for answer in answers[:3]] == [200, 200, 200]
    assert_error(answers[3], 429, "rate_limited")
    # The budget is per minute, and the address is no longer throttled once its failures are old.
    clock.advance(120)
    assert execute(client, "org-a", "a-one", keys[3], REMOTE_ADDR="203.0.113.5").status_code == 200


@override_settings(KEYSCOPE_THROTTLED_LOOKUPS_PER_MINUTE=3)
def test_the_lookups_of_a_throttled_address_leave_other_addresses_alone(client, deployment_a1, django_assert_num_queries):
    fail_from(client, "203.0.113.5", LIMIT + 1)
    for key in unknown_keys(5):
        execute(client, "org-a", "a-one", key, REMOTE_ADDR="203.0.113.5")

    assert_error(execute(client, "org-a", "a-one", unknown_keys(1)[0], REMOTE_ADDR="203.0.113.6"), 401, "invalid_key")


def test_another_address_is_unaffected(client, deployment_a1):
    fail_from(client, "203.0.113.5", LIMIT + 1)

    assert_error(execute(client, "org-a", "a-one", JUNK, REMOTE_ADDR="203.0.113.6"), 401, "invalid_key")


def test_missing_credentials_do_not_count(client, deployment_a1):
    for _ in range(LIMIT + 5):
        assert_error(execute(client, "org-a", "a-one", REMOTE_ADDR="203.0.113.5"), 401, "not_authenticated")

    assert_error(execute(client, "org-a", "a-one", JUNK, REMOTE_ADDR="203.0.113.5"), 401, "invalid_key")


def test_the_throttle_lifts_once_the_failures_are_older_than_a_minute(client, deployment_a1, clock):
    fail_from(client, "203.0.113.5", LIMIT + 1)

    # The count slides over the last minute: the previous window still weighs in
    # until it is wholly more than a minute old.
    clock.advance(120)

    assert_error(execute(client, "org-a", "a-one", JUNK, REMOTE_ADDR="203.0.113.5"), 401, "invalid_key")


# Trusted proxies: X-Forwarded-For only from KEYSCOPE_TRUSTED_PROXIES

PROXIES = ["10.0.0.0/8", "192.0.2.10"]


@override_settings(KEYSCOPE_TRUSTED_PROXIES=PROXIES, KEYSCOPE_FAILED_AUTH_PER_MINUTE=3)
def test_behind_a_trusted_proxy_the_forwarded_address_is_throttled(client, deployment_a1):
    via_proxy = {"REMOTE_ADDR": "10.1.2.3", "HTTP_X_FORWARDED_FOR": "203.0.113.5"}
    statuses = [execute(client, "org-a", "a-one", JUNK, **via_proxy).status_code for _ in range(4)]

    assert statuses == [401, 401, 401, 429]
    # The proxy itself is not blamed: another client behind it is fine.
    other_client = {"REMOTE_ADDR": "10.1.2.3", "HTTP_X_FORWARDED_FOR": "203.0.113.6"}
    assert_error(execute(client, "org-a", "a-one", JUNK, **other_client), 401, "invalid_key")
    # The same client reaching us through another trusted proxy is still throttled.
    other_proxy = {"REMOTE_ADDR": "192.0.2.10", "HTTP_X_FORWARDED_FOR": "203.0.113.5"}
    assert_error(execute(client, "org-a", "a-one", JUNK, **other_proxy), 429, "rate_limited")


@override_settings(KEYSCOPE_TRUSTED_PROXIES=PROXIES, KEYSCOPE_FAILED_AUTH_PER_MINUTE=3)
def test_x_forwarded_for_from_an_untrusted_address_is_ignored(client, deployment_a1):
    # An attacker rotating X-Forwarded-For is still counted by its own address.
    statuses = [
        execute(client, "org-a", "a-one", JUNK, REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}").status_code
        for n in range(4)
    ]

    assert statuses == [401, 401, 401, 429]
    # ...and cannot get another client throttled by naming it.
    victim = {"REMOTE_ADDR": "10.1.2.3", "HTTP_X_FORWARDED_FOR": "203.0.113.0"}
    assert_error(execute(client, "org-a", "a-one", JUNK, **victim), 401, "invalid_key")


@pytest.mark.parametrize(
    "remote, forwarded, expected",
    [
        pytest.param("198.51.100.7", "203.0.113.5", "198.51.100.7", id="untrusted-peer-header-ignored"),
        pytest.param("10.1.2.3", "203.0.113.5", "203.0.113.5", id="trusted-cidr"),
        pytest.param("192.0.2.10", "203.0.113.5", "203.0.113.5", id="trusted-single-ip"),
        pytest.param("192.0.2.11", "203.0.113.5", "192.0.2.11", id="neighbour-of-trusted-ip"),
        pytest.param("10.1.2.3", "", "10.1.2.3", id="trusted-without-header"),
        pytest.param("10.1.2.3", "198.51.100.1, 203.0.113.5, 10.9.9.9", "203.0.113.5", id="rightmost-untrusted-hop"),
        pytest.param("10.1.2.3", "203.0.113.5, not-an-ip", "10.1.2.3", id="garbage-hop"),
        pytest.param("10.1.2.3", "10.4.4.4", "10.4.4.4", id="only-trusted-hops"),
        pytest.param("10.1.2.3", " 198.51.100.1 ,\t203.0.113.5\t", "203.0.113.5", id="http-whitespace-around-hops"),
        pytest.param("10.1.2.3", "203.0.113.5\u00a0", "10.1.2.3", id="nbsp-is-not-http-whitespace"),
    ],
)
@override_settings(KEYSCOPE_TRUSTED_PROXIES=PROXIES)
def test_client_ip(remote, forwarded, expected):
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)

    assert client_ip(request) == expected


@override_settings(KEYSCOPE_TRUSTED_PROXIES=[])
def test_without_trusted_proxies_the_header_is_never_read():
    request = RequestFactory().get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.5")

    assert client_ip(request) == "127.0.0.1"


def test_failed_authentications_are_counted_over_the_last_minute_not_since_the_window_began(settings):
    from keys import ratelimit

    settings.KEYSCOPE_FAILED_AUTH_PER_MINUTE = 60
    window_end = (int(1_800_000_000 // 60) + 1) * 60
    for _ in range(60):  # all in the last second of a window
        throttled, _ = ratelimit.record_failed_auth("198.51.100.7", now=window_end - 0.5)
        assert not throttled
    # One second later a new window has begun, but those 60 were within the last minute.
    throttled, _ = ratelimit.record_failed_auth("198.51.100.7", now=window_end + 0.5)
    assert throttled


def counted_round_trips(monkeypatch) -> list[str]:
    """The names of the shared counters the throttle adds to, one entry per round trip."""
    from keys import ratelimit

    calls: list[str] = []
    real = ratelimit.counters.hit

    def hit(name: str, *args, **kwargs):
        calls.append(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(ratelimit.counters, "hit", hit)
    return calls


def test_failures_are_added_to_the_shared_count_a_batch_at_a_time(client, deployment_a1, monkeypatch):
    from keys import ratelimit

    round_trips = counted_round_trips(monkeypatch)
    batch = ratelimit.failure_batch(LIMIT)

    statuses = fail_from(client, "203.0.113.5", 4 * batch)

    assert statuses == [401] * (4 * batch)
    # The first failure reads the shared count; then one round trip per batch.
    assert len(round_trips) == 1 + (4 * batch - 1) // batch


def test_a_throttled_address_is_refused_from_memory(client, deployment_a1, monkeypatch):
    fail_from(client, "203.0.113.5", LIMIT + 1)
    round_trips = counted_round_trips(monkeypatch)

    statuses = fail_from(client, "203.0.113.5", 20)

    assert statuses == [429] * 20
    assert round_trips == []  # the clock stands still: the batch goes out once a second


def test_another_workers_failures_trip_the_throttle_within_one_batch(client, deployment_a1):
    """The documented error: a worker learns of other workers' failures a batch (of its own) late at most."""
    from keys import ratelimit
    from lib import counters

    batch = ratelimit.failure_batch(LIMIT)
    assert fail_from(client, "203.0.113.5", 1) == [401]
    # Another worker adds its failures: the shared count is now one short of throttling the next.
    counters.hit("fail:203.0.113.5", ratelimit.time.time(), sliding=True, amount=LIMIT - 1)

    statuses = fail_from(client, "203.0.113.5", batch + 1)

    first_refused = statuses.index(429)  # counted exactly, the first of these would be refused
    assert first_refused <= batch - 1, statuses
    assert statuses[first_refused:] == [429] * (len(statuses) - first_refused)


def test_failures_not_sent_when_a_window_ends_count_in_the_next(client, deployment_a1, clock):
    from keys import ratelimit

    batch = ratelimit.failure_batch(LIMIT)
    assert batch == 6  # the figures below are worked out for it
    fail_from(client, "203.0.113.5", LIMIT - batch + 2)  # 56: 55 sent in batches, 1 still in this worker's memory
    clock.advance(60 - clock.now % 60 + 1)  # the next window, early on: the last one still weighs almost whole

    statuses = fail_from(client, "203.0.113.5", batch)

    # 55 sent, 1 unsent, then these: the 5th makes 61. Had the unsent one been lost, it would be the 6th.
    assert statuses.index(429) == 4, statuses


def test_a_junk_flood_writes_no_warning_per_refusal_and_one_when_the_address_is_throttled(client, deployment_a1, caplog):
    """Django would log each 401 and 429 as a WARNING line: a flood of junk keys would be a flood of lines
    (and cost a refused request as much again). Refusals log at DEBUG; the throttle's trip once, at WARNING."""
    caplog.set_level(logging.DEBUG)
    statuses = fail_from(client, "203.0.113.9", LIMIT + 20)

    assert statuses == [401] * LIMIT + [429] * 20
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        f"address 203.0.113.9 throttled: {LIMIT + 1} failed authentications in the last minute (limit {LIMIT})"
    ]
    refusals = [r.getMessage() for r in caplog.records if r.name == "keyscope.auth" and r.levelno == logging.DEBUG]
    assert refusals.count("refused invalid_key from 203.0.113.9") == LIMIT
    assert refusals.count("refused rate_limited from 203.0.113.9") == 20
    assert JUNK not in caplog.text


def test_other_errors_are_still_logged_by_django(client, admin_a, caplog):
    caplog.set_level(logging.WARNING)
    response = client.get("/api/v1/orgs/org-a/deployments/no-such-deployment/", HTTP_AUTHORIZATION="Basic eA==")
    assert response.status_code in (401, 403, 404)
    assert any(r.name == "django.request" for r in caplog.records)
