"""Counters per fixed minute, shared by every worker and host.

They live in Redis (INCRBY and EXPIRE in one pipeline) or, without REDIS_URL,
in the process's local-memory cache. When Redis does not answer in time the
call raises CountersUnavailable, with one error log line a minute, and the
caller decides whether to fail open (KEYSCOPE_RATELIMIT_FAIL_OPEN).
`reserve` counts and checks several counters in one atomic step (the login
throttle's), where `hit` counts first and leaves the check to the caller.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from lib.redis_client import redis_client

logger = logging.getLogger("keyscope.ratelimit")

WINDOW_SECONDS = 60


class CountersUnavailable(Exception):
    """Redis did not answer in time."""


_last_error_logged = 0.0


def log_unavailable(exc: Exception) -> None:
    """One error line a minute, not one per request."""
    global _last_error_logged
    now = time.monotonic()
    if now - _last_error_logged >= 60:
        _last_error_logged = now
        logger.error(
            "rate-limit counters unavailable (%s); failing %s",
            type(exc).__name__,
            "open" if settings.KEYSCOPE_RATELIMIT_FAIL_OPEN else "closed",
        )


def window(now: float) -> tuple[int, int]:
    """The current window's number and the seconds left in it (at least 1)."""
    number = int(now // WINDOW_SECONDS)
    return number, max(1, int((number + 1) * WINDOW_SECONDS - now + 0.999))


def hit(name: str, now: float, *, sliding: bool = False, amount: int = 1) -> tuple[int, int]:
    """Count `amount` hits on `name` in the current window; return (count, seconds to reset).

    `sliding` estimates the count over the last 60 seconds instead of since the
    window began: the previous window's count, weighted by how much of it is
    still inside the last minute, plus the current one. Same round trip.
    """
    number, reset = window(now)
    counter = f"ks:rl:{name}:{number}"
    previous_counter = f"ks:rl:{name}:{number - 1}"
    if settings.REDIS_URL:
        try:
            pipe = redis_client().pipeline(transaction=False)
            pipe.incrby(counter, amount)
            pipe.expire(counter, WINDOW_SECONDS * 2)
            if sliding:
                pipe.get(previous_counter)
            count, _, *previous = pipe.execute()
        except Exception as exc:
            log_unavailable(exc)
            raise CountersUnavailable from exc
        count = int(count)
        previous_count = int(previous[0] or 0) if previous else 0
    else:
        cache.add(counter, 0, WINDOW_SECONDS * 2)
        try:
            count = cache.incr(counter, amount)
        except ValueError:  # expired between add and incr
            cache.set(counter, amount, WINDOW_SECONDS * 2)
            count = amount
        previous_count = int(cache.get(previous_counter, 0)) if sliding else 0
    if sliding and previous_count:
        still_inside = 1 - (now % WINDOW_SECONDS) / WINDOW_SECONDS
        count += math.ceil(previous_count * still_inside)
    return count, reset


_RESERVE_SCRIPT = """
local over = 0
for i, name in ipairs(KEYS) do
  if redis.call('INCR', name) > tonumber(ARGV[i + 1]) then over = 1 end
  redis.call('EXPIRE', name, ARGV[1])
end
if over == 1 then
  for _, name in ipairs(KEYS) do redis.call('DECR', name) end
end
return over
"""
_reserve_lock = threading.Lock()


@dataclass(frozen=True)
class Reservation:
    granted: bool
    reset: int  # seconds to the next window
    counters: tuple[str, ...] = ()  # what `release` gives back


def reserve(limits: dict[str, int], now: float | None = None) -> Reservation:
    """One hit on each named counter, unless that takes any of them past its limit: all or none, atomically.

    Counting and checking are one step (a script in Redis, a lock without it), so
    however many requests race, no more than a limit's worth are granted in a
    window. A refused hit is not counted.
    """
    now = time.time() if now is None else now
    number, reset = window(now)
    names = tuple(f"ks:rl:{name}:{number}" for name in limits)
    if settings.REDIS_URL:
        try:
            over = redis_client().register_script(_RESERVE_SCRIPT)(
                keys=list(names), args=[WINDOW_SECONDS * 2, *limits.values()]
            )
        except Exception as exc:
            log_unavailable(exc)
            raise CountersUnavailable from exc
    else:
        with _reserve_lock:
            counts = [1 if cache.add(name, 1, WINDOW_SECONDS * 2) else cache.incr(name) for name in names]
            over = any(count > limit for count, limit in zip(counts, limits.values(), strict=True))
            if over:
                for name in names:
                    cache.decr(name)
    return Reservation(granted=False, reset=reset) if over else Reservation(granted=True, reset=reset, counters=names)


def release(reservation: Reservation) -> None:
    """Give back a granted hit that turned out not to count."""
    if not reservation.counters:
        return
    if settings.REDIS_URL:
        try:
            pipe = redis_client().pipeline(transaction=False)
            for name in reservation.counters:
                pipe.decr(name)
            pipe.execute()
        except Exception as exc:
            log_unavailable(exc)
        return
    with _reserve_lock:
        for name in reservation.counters:
            try:
                cache.decr(name)
            except ValueError:  # expired meanwhile
                pass
