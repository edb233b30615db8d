"""Credential stuffing: a flood of well-formed, checksummed keys that no one issued, a new one each request.

Spread over many addresses, so the failed-authentication throttle does not stop it. Each worker's digest
filter (keys/digest_filter.py) refuses every one of them with no query and keeps no answer for them, so the
flood neither reaches the database nor pushes a valid key's cached answer out; the keys that exist and fail
keep their own codes through it. Each refusal is answered before DRF wraps the request (ClientAPIView.dispatch),
so the flood costs each worker less than the traffic it would block.
"""

from __future__ import annotations

import uuid

import pytest

from keys import crypto, verification_cache
from keys.digest_filter import digest_filter
from keys.tests.helpers import assert_error, execute, wait_for_subscription

pytestmark = pytest.mark.django_db

FLOOD = 300


def stuffed(n: int) -> str:
    """The n-th key of the flood: of either kind, or a UUID (an imported key's shape)."""
    if n % 3 == 2:
        return str(uuid.uuid4())
    return crypto.generate_key("deployment" if n % 3 else "global")


def test_a_flood_of_distinct_unknown_keys_makes_no_query_and_pushes_no_valid_key_out(
    client,
    settings,
    deployment_a1,
    deployment_key_a1,
    global_all_key_a,
    revoked_key_a,
    expired_key_a,
    inactive_key_a,
    rotated_out_key_a,
    django_assert_num_queries,
    drf_requests,
):
    wait_for_subscription()
    valid = [deployment_key_a1[1], global_all_key_a[1]]
    for full_key in valid:
        assert execute(client, "org-a", "a-one", full_key).status_code == 200  # now cached
    digest_filter.catch_up()  # what each worker's thread does as it starts
    cached = set(verification_cache.local_cache._entries)
    # Full: one more answer kept would push the oldest valid one out.
    settings.KEYSCOPE_VERIFICATION_CACHE_MAX_ENTRIES = len(cached)
    settings.KEYSCOPE_VERIFICATION_CACHE_MAX_NEGATIVE = 5
    drf_requests.clear()  # the valid keys' requests above

    with django_assert_num_queries(0):
        for n in range(FLOOD):
            response = execute(client, "org-a", "a-one", stuffed(n), REMOTE_ADDR=f"198.51.100.{n % 200 + 1}")
            assert_error(response, 401, "invalid_key")

    assert drf_requests == []  # no DRF Request, negotiation or exception handling for any of them
    assert set(verification_cache.local_cache._entries) == cached
    assert verification_cache.stats()["negative_entries"] == 0
    with django_assert_num_queries(len(valid)):  # warm: each makes only its Execution INSERT
        for full_key in valid:
            assert execute(client, "org-a", "a-one", full_key).status_code == 200
    for (_, full_key), code in (
        (revoked_key_a, "key_revoked"),
        (expired_key_a, "key_expired"),
        (inactive_key_a, "key_inactive"),
        (rotated_out_key_a, "key_revoked"),
    ):
        assert_error(execute(client, "org-a", "a-one", full_key), 401, code)
