"""What a worker process remembers of keys between requests, and one way to forget all of it.

Tests and the bench start each run from nothing: no buffered usage or last use,
no cached lookup, no digest filter built, no rate-limit lease and no shared counter.
"""

from django.core.cache import cache

from keys import ratelimit, refusals, usage, verification_cache
from keys.digest_filter import digest_filter


def forget_worker_state() -> None:
    usage.forget_usage()  # counted against a database that is gone (a test's, rolled back)
    cache.clear()  # with Redis, a FLUSHDB of REDIS_URL's database: the counters
    verification_cache.local_cache.clear()
    verification_cache.local_cache.stamp, verification_cache.local_cache.stamp_read_at = None, float("-inf")
    digest_filter.forget()
    ratelimit.forget_leases()
    ratelimit.forget_throttled()
    refusals.forget_refusals()
