"""What a worker process remembers of keys between requests, and one way to forget all of it.

Tests and the bench start each run from nothing: no buffered usage, no cached
lookup, no rate-limit lease, no last-used memo and no shared counter.
"""

from django.core.cache import cache

from keys import ratelimit, usage, verification, verification_cache


def forget_worker_state() -> None:
    usage.flush_usage()  # drain this process's buffer before the store is emptied
    cache.clear()  # with Redis, a FLUSHDB of REDIS_URL's database: counters and usage too
    verification_cache.local_cache.clear()
    verification.forget_last_used()
    ratelimit.forget_leases()
    ratelimit.forget_throttled()
