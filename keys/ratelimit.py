"""Per-key rate limits and the failed-authentication throttle.

All count in the shared per-minute counters of lib/counters.py. A key's
requests are reserved in its counter a lease at a time (see `check_key`), so
most limited requests make no round trip at all. Windows are fixed minutes:
`t` of the RateLimit field is the time to the next one. When Redis is down,
key verification goes on; limits fail open or closed per
KEYSCOPE_RATELIMIT_FAIL_OPEN, with one error log line a minute.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings

from keys.lookup import VerifiedKey
from lib import counters
from lib.counters import WINDOW_SECONDS, CountersUnavailable

logger = logging.getLogger("keyscope.auth")


@dataclass(frozen=True)
class RateLimit:
    limit: int
    remaining: int
    reset: int

    @property
    def exceeded(self) -> bool:
        return self.remaining < 0

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Policy": f'"key";q={self.limit};w={WINDOW_SECONDS}',
            "RateLimit": f'"key";r={max(self.remaining, 0)};t={self.reset}',
        }


def limit_for(key: VerifiedKey) -> int:
    """The key's own limit, else its organization's default, else the server's; 0 is unlimited."""
    if key.rate_limit_per_minute is not None:
        return key.rate_limit_per_minute
    if key.organization_rate_limit is not None:
        return key.organization_rate_limit
    return settings.KEYSCOPE_DEFAULT_RATE_LIMIT_PER_MINUTE


@dataclass(slots=True)
class _Lease:
    """Requests of one key that this worker has reserved in the shared counter and may let through."""

    window: int
    limit: int
    reserved: int  # the shared count (all workers' reservations) when last read, at most `limit`
    left: int  # reserved here and not used yet
    read_at: float  # when `reserved` was read

    def take(self, reset: int) -> RateLimit:
        """Let one request through from what is left here."""
        self.left -= 1
        return RateLimit(limit=self.limit, remaining=self.limit - self.reserved + self.left, reset=reset)


_leases: dict[str, _Lease] = {}
_lease_lock = threading.Lock()
MAX_LEASES_KEPT = 10_000
# How stale a lease's view of the shared count may get, once half the limit is reserved, before the
# next request reads it again (a round trip that reserves nothing), so the RateLimit field's `r`
# stays close to the truth where it matters. Below half, a lease is used up without reading again.
LEASE_FRESH_SECONDS = 1.0


def lease_size(limit: int) -> int:
    """How many requests a worker reserves in one round trip to the shared counter.

    KEYSCOPE_RATELIMIT_LEASE_PERCENT of the limit, at most KEYSCOPE_RATELIMIT_LEASE_MAX,
    at least 1 (exact counting, the case of every limit under 200 a minute by default).
    """
    share = limit * settings.KEYSCOPE_RATELIMIT_LEASE_PERCENT // 100
    return max(1, min(share, settings.KEYSCOPE_RATELIMIT_LEASE_MAX))


def check_key(key: VerifiedKey, now: float | None = None) -> RateLimit | None:
    """Count a request of `key`. None when the key is unlimited, or counters are down and we fail open.

    Workers reserve requests in the shared counter a lease at a time (see `lease_size`)
    and count them down locally, so most requests make no round trip to Redis. A
    request is let through only from a reservation, so all workers together never
    let more than the limit through in a window; the price is that requests another
    worker reserved and has not used yet are not available here. Once the window's
    whole limit is reserved, this worker refuses without asking again until the next
    window.
    """
    limit = limit_for(key)
    if limit == 0:
        return None
    now = time.time() if now is None else now
    window, reset = counters.window(now)
    with _lease_lock:
        lease = _leases.get(key.id)
        if lease is not None and lease.window == window and lease.limit == limit:
            # Far from the limit a stale view costs nothing but an `r` a little high: a key that calls
            # rarely spends its lease with no round trip, instead of one per request once a second passed.
            if lease.left > 0 and (now - lease.read_at < LEASE_FRESH_SECONDS or lease.reserved * 2 < limit):
                return lease.take(reset)
            if lease.left == 0 and lease.reserved >= limit:
                return RateLimit(limit=limit, remaining=-1, reset=reset)
            # A lease with requests left only needs the count read again (a reservation of 0).
            size = 0 if lease.left > 0 else lease_size(limit)
        else:
            size = lease_size(limit)
    try:
        count, reset = counters.hit(f"key:{key.id}", now, amount=size)
    except CountersUnavailable:
        if size == 0:  # what this worker already reserved is still its own to use
            count, granted = -1, 0
        elif settings.KEYSCOPE_RATELIMIT_FAIL_OPEN:
            return None
        else:
            return RateLimit(limit=limit, remaining=-1, reset=1)
    else:
        granted = max(0, min(size, limit - (count - size)))
    with _lease_lock:
        lease = _leases.get(key.id)
        if lease is None or lease.window != window or lease.limit != limit:
            if len(_leases) >= MAX_LEASES_KEPT:
                _leases.clear()
            lease = _leases[key.id] = _Lease(window=window, limit=limit, reserved=0, left=0, read_at=now)
        # Other threads of this worker may have reserved at the same time: add up, never replace.
        lease.left += granted
        if count >= 0:
            lease.reserved, lease.read_at = max(lease.reserved, min(count, limit)), now
        if lease.left == 0:
            if count < 0 and settings.KEYSCOPE_RATELIMIT_FAIL_OPEN:
                return None  # another thread took the last reserved request while Redis was down
            return RateLimit(limit=limit, remaining=-1, reset=reset)
        return lease.take(reset)


def forget_leases() -> None:
    """Drop this worker's reservations (tests that empty the counters under it)."""
    with _lease_lock:
        _leases.clear()


# Addresses this worker saw throttled, and until when it meters their cold key lookups.
_throttled_until: dict[str, float] = {}
MAX_THROTTLED_KEPT = 10_000
# While an address is throttled here, its failures go to the shared count at most this often (a batch each).
THROTTLED_FLUSH_SECONDS = 1.0


@dataclass(slots=True)
class _Failures:
    """One address's failed authentications as this worker knows them: the shared count when last read, and its
    own failures since, not yet added to it."""

    window: int
    shared: int
    pending: int
    read_at: float


_failures: dict[str, _Failures] = {}
_failures_lock = threading.Lock()


def failure_batch(limit: int) -> int:
    """How many failures of one address a worker counts in memory before adding them to the shared count.

    KEYSCOPE_FAILED_AUTH_BATCH_PERCENT of the limit, at most KEYSCOPE_RATELIMIT_LEASE_MAX, at least 1. It bounds
    the throttle's error: another worker sees at most batch - 1 of this worker's failures late, so with W
    workers the throttle trips at most W x (batch - 1) failures after the limit (5 per worker at 60 a minute).
    """
    share = limit * settings.KEYSCOPE_FAILED_AUTH_BATCH_PERCENT // 100
    return max(1, min(share, settings.KEYSCOPE_RATELIMIT_LEASE_MAX))


def record_failed_auth(address: str | None, now: float | None = None) -> tuple[bool, int]:
    """Count a failed authentication from `address`; return (throttled, seconds to reset).

    Throttled once this one makes more than KEYSCOPE_FAILED_AUTH_PER_MINUTE failures in the
    last minute (a sliding estimate, so a burst across a window boundary counts whole):
    with 60, the 61st invalid attempt gets 429.

    Failures are counted in memory and added to the shared count in batches (`failure_batch`),
    so a flood makes a round trip per batch, not per request: when the batch is full, when this
    worker's view of the shared count is a second old or from another window, or when its own
    estimate (the shared count plus its pending failures) passes the limit, which the shared
    count then confirms. An address this worker has seen throttled is refused from memory, its
    failures still added to the shared count, at most once a second.
    """
    limit = settings.KEYSCOPE_FAILED_AUTH_PER_MINUTE
    if limit <= 0:
        return False, 0
    now = time.time() if now is None else now
    name = address or "unknown"
    window, reset = counters.window(now)
    throttled_here = _throttled_until.get(name, 0.0) > now
    with _failures_lock:
        tally = _failures.get(name)
        if tally is None or tally.window != window:
            if len(_failures) >= MAX_THROTTLED_KEPT:
                _failures.clear()
            # Failures of the last window not sent yet count in this one: late, never lost.
            carried = tally.pending if tally is not None else 0
            tally = _failures[name] = _Failures(window=window, shared=0, pending=carried, read_at=float("-inf"))
        tally.pending += 1
        fresh = now - tally.read_at < (THROTTLED_FLUSH_SECONDS if throttled_here else LEASE_FRESH_SECONDS)
        if throttled_here and fresh:
            return True, reset
        if not throttled_here and fresh and tally.pending < failure_batch(limit) and tally.shared + tally.pending <= limit:
            return False, reset
        amount, tally.pending = tally.pending, 0
    try:
        count, reset = counters.hit(f"fail:{name}", now, sliding=True, amount=amount)
    except CountersUnavailable:
        return (not settings.KEYSCOPE_RATELIMIT_FAIL_OPEN), 1
    with _failures_lock:
        tally.shared, tally.read_at = count, now
    throttled = count > limit
    if throttled:
        if not throttled_here:  # once as this worker finds the address throttled, not per refusal
            logger.warning("address %s throttled: %d failed authentications in the last minute (limit %d)", name, count, limit)
        if len(_throttled_until) >= MAX_THROTTLED_KEPT:
            _throttled_until.clear()
        _throttled_until[name] = now + counters.WINDOW_SECONDS
    else:
        _throttled_until.pop(name, None)
    return throttled, reset


def record_credential_report(address: str | None, now: float | None = None) -> tuple[bool, int]:
    """Count a call of the anonymous leak report endpoint from `address`; return (throttled, seconds to reset).

    KEYSCOPE_CREDENTIAL_REPORTS_PER_MINUTE calls in any minute (sliding, as failed authentications)
    are allowed; with 10, the 11th gets 429 before its body is even read.
    """
    now = time.time() if now is None else now
    try:
        return _over_sliding_limit(
            f"report:{address or 'unknown'}", settings.KEYSCOPE_CREDENTIAL_REPORTS_PER_MINUTE, now
        )
    except CountersUnavailable:
        return (not settings.KEYSCOPE_RATELIMIT_FAIL_OPEN), 1


def _over_sliding_limit(name: str, limit: int, now: float) -> tuple[bool, int]:
    """Count one hit on `name`: whether it makes more than `limit` in the last minute (0: no limit).

    Raises CountersUnavailable when Redis does not answer: the caller fails open or closed.
    """
    if limit <= 0:
        return False, 0
    count, reset = counters.hit(name, now, sliding=True)
    return count > limit, reset


def lookup_allowed(address: str | None, now: float | None = None) -> tuple[bool, int]:
    """Whether a key not verified yet may be looked up for `address`; else (False, seconds to wait).

    Free for an address this worker has not seen throttled in the last minute. For a
    throttled one, each lookup counts, and past KEYSCOPE_THROTTLED_LOOKUPS_PER_MINUTE
    in this window the key is refused without a query. A worker learns that an address
    is throttled from its own first refusal of it, so each worker may make one lookup
    more when the throttle starts.
    """
    now = time.time() if now is None else now
    until = _throttled_until.get(address or "unknown")
    if until is None or until <= now:
        return True, 0
    try:
        count, reset = counters.hit(f"lookups:{address or 'unknown'}", now)
    except CountersUnavailable:
        return settings.KEYSCOPE_RATELIMIT_FAIL_OPEN, 1
    return count <= settings.KEYSCOPE_THROTTLED_LOOKUPS_PER_MINUTE, reset


def forget_throttled() -> None:
    """Forget which addresses this worker saw throttled and its unsent failures (tests that empty the counters)."""
    _throttled_until.clear()
    with _failures_lock:
        _failures.clear()
