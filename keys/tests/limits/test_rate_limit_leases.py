"""Rate-limit leases: a worker reserves part of a key's limit per Redis round trip (keys/ratelimit.py).

The limit is never exceeded across workers; what a worker reserved and did not use
is the only slack, and limits under 200 a minute are counted exactly.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import pytest
from django.test import override_settings

from keys import ratelimit
from keys.lookup import LOOKUPS, VerifiedKey
from keys.tests.factories import issue_deployment_key
from keys.tests.helpers import assert_error, execute
from lib import counters

pytestmark = pytest.mark.django_db


def verified(row) -> VerifiedKey:
    key = LOOKUPS["deployment"].run(row.digest)[0]
    assert key is not None
    return key


@contextmanager
def counting_round_trips() -> Iterator[list[int]]:
    """Each call of the shared counter, with the amount it reserved."""
    calls: list[int] = []
    real_hit = counters.hit

    def hit(name: str, now: float, **kwargs):
        calls.append(kwargs.get("amount", 1))
        return real_hit(name, now, **kwargs)

    with mock.patch.object(counters, "hit", hit):
        yield calls


class Workers:
    """Several workers of one host, each with its own leases, over the one shared counter."""

    def __init__(self, count: int) -> None:
        self.leases: list[dict[str, ratelimit._Lease]] = [{} for _ in range(count)]

    def check(self, worker: int, key: VerifiedKey) -> ratelimit.RateLimit:
        with mock.patch.object(ratelimit, "_leases", self.leases[worker]):
            result = ratelimit.check_key(key)
        assert result is not None
        return result


@pytest.mark.parametrize(
    "limit, expected",
    [(1, 1), (199, 1), (200, 2), (600, 6), (10_000, 100), (10**9, 100)],
)
def test_a_lease_is_one_percent_of_the_limit_capped_at_a_hundred(limit, expected):
    assert ratelimit.lease_size(limit) == expected


@override_settings(KEYSCOPE_RATELIMIT_LEASE_PERCENT=0)
def test_a_lease_percent_of_zero_counts_every_request_in_redis():
    assert ratelimit.lease_size(10**9) == 1


def test_a_worker_asks_the_counter_once_per_lease_and_counts_down_locally(client, deployment_a1):
    _, full_key = issue_deployment_key(deployment_a1, rate_limit_per_minute=1000)  # leases of 10

    with counting_round_trips() as calls:
        responses = [execute(client, "org-a", "a-one", full_key) for _ in range(25)]

    assert {r.status_code for r in responses} == {200}
    assert calls == [10, 10, 10]
    assert [r["RateLimit"] for r in responses[:3]] == ['"key";r=999;t=59', '"key";r=998;t=59', '"key";r=997;t=59']
    assert responses[-1]["RateLimit"] == '"key";r=975;t=59'


def test_two_workers_taking_turns_let_exactly_the_limit_through(deployment_a1):
    row, _ = issue_deployment_key(deployment_a1, rate_limit_per_minute=300)  # leases of 3
    key = verified(row)
    workers = Workers(2)

    passed = [not workers.check(n % 2, key).exceeded for n in range(320)]

    assert sum(passed) == 300
    assert passed[:300] == [True] * 300


def test_one_worker_never_gets_more_than_the_limit_and_misses_at_most_the_others_unused_leases(deployment_a1):
    row, _ = issue_deployment_key(deployment_a1, rate_limit_per_minute=500)  # leases of 5
    key = verified(row)
    workers = Workers(3)
    workers.check(1, key)  # reserves 5, uses 1
    workers.check(2, key)  # the same

    passed_on_worker_0 = sum(not workers.check(0, key).exceeded for _ in range(600))

    assert passed_on_worker_0 == 500 - 2 * 5
    assert workers.check(1, key).exceeded is False  # its own lease still holds 4
    assert sum(not workers.check(1, key).exceeded for _ in range(10)) == 3


def test_once_the_window_is_reserved_refusals_need_no_round_trip_and_the_next_window_starts_afresh(
    client, deployment_a1, clock
):
    _, full_key = issue_deployment_key(deployment_a1, rate_limit_per_minute=2)
    assert [execute(client, "org-a", "a-one", full_key).status_code for _ in range(2)] == [200, 200]

    with counting_round_trips() as calls:
        refused = [execute(client, "org-a", "a-one", full_key) for _ in range(5)]
    clock.advance(60)
    with counting_round_trips() as next_window_calls:
        next_window = execute(client, "org-a", "a-one", full_key)

    assert calls == []
    for response in refused:
        assert_error(response, 429, "rate_limited")
        assert response["RateLimit"] == '"key";r=0;t=59'
    assert next_window_calls == [1]
    assert next_window.status_code == 200


def test_a_changed_limit_drops_the_lease_taken_under_the_old_one(deployment_a1):
    row, _ = issue_deployment_key(deployment_a1, rate_limit_per_minute=10_000)  # leases of 100
    key = verified(row)
    assert ratelimit.check_key(key).remaining == 9_999

    lowered = dataclasses.replace(key, rate_limit_per_minute=150)

    with counting_round_trips() as calls:
        result = ratelimit.check_key(lowered)

    # The 100 reserved under the old limit still count: 101 of 150 are gone.
    assert calls == [1]
    assert (result.limit, result.remaining) == (150, 49)


def test_threads_of_one_worker_reserving_at_once_keep_every_request_they_reserved(deployment_a1):
    row, _ = issue_deployment_key(deployment_a1, rate_limit_per_minute=1000)  # leases of 10
    key = verified(row)
    both_inside = threading.Barrier(2, timeout=5)
    real_hit = counters.hit

    def hit(name: str, now: float, **kwargs):
        both_inside.wait()  # neither thread has stored its lease yet
        return real_hit(name, now, **kwargs)

    with mock.patch.object(counters, "hit", hit):
        threads = [threading.Thread(target=ratelimit.check_key, args=(key,)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    # Two leases of 10, one request of each used: 18 are left here, none was thrown away.
    with counting_round_trips() as calls:
        passed = [not ratelimit.check_key(key).exceeded for _ in range(18)]
    assert passed == [True] * 18
    assert calls == []


def test_remaining_catches_up_with_the_other_workers_within_a_second_past_half_the_limit(deployment_a1, clock):
    row, _ = issue_deployment_key(deployment_a1, rate_limit_per_minute=1000)  # leases of 10
    key = verified(row)
    workers = Workers(2)
    for _ in range(501):  # past half the limit, here: 51 leases of 10 reserved, 9 left
        workers.check(0, key)
    for _ in range(50):
        workers.check(1, key)

    soon = workers.check(0, key)
    clock.advance(ratelimit.LEASE_FRESH_SECONDS)
    with counting_round_trips() as calls:
        later = workers.check(0, key)

    assert soon.remaining == 1000 - 510 + 8  # the lease's own view, a moment old
    assert calls == [0]  # a read of the count, reserving nothing
    # 510 reserved here (503 used) and 50 by the other worker: 1000 - 560 + 7 left here.
    assert later.remaining == 447


def test_a_key_that_calls_rarely_spends_its_lease_without_a_round_trip_per_request(deployment_a1, clock):
    row, _ = issue_deployment_key(deployment_a1, rate_limit_per_minute=1000)  # leases of 10
    key = verified(row)

    with counting_round_trips() as calls:
        for _ in range(10):  # one request every five seconds, all in one window
            assert not ratelimit.check_key(key).exceeded
            clock.advance(5)

    assert calls == [10]  # one lease, reserved once


@pytest.mark.parametrize("fail_open", [True, False])
def test_a_worker_keeps_using_what_it_reserved_when_redis_goes_away(deployment_a1, clock, settings, fail_open):
    settings.KEYSCOPE_RATELIMIT_FAIL_OPEN = fail_open
    row, _ = issue_deployment_key(deployment_a1, rate_limit_per_minute=1000)  # leases of 10
    key = verified(row)
    assert ratelimit.check_key(key).remaining == 999
    clock.advance(ratelimit.LEASE_FRESH_SECONDS)

    with mock.patch.object(counters, "hit", side_effect=counters.CountersUnavailable):
        from_the_lease = [ratelimit.check_key(key) for _ in range(9)]
        after_it = ratelimit.check_key(key)

    assert [r.remaining for r in from_the_lease] == list(range(998, 989, -1))
    if fail_open:
        assert after_it is None
    else:
        assert after_it.exceeded
