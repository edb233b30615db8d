"""Requests per key and UTC day, exact across workers and hosts, without a write per request.

Each process buffers its counts and adds them to the shared store (a Redis
hash per key, or the local-memory cache without REDIS_URL) at most once a
second, and before every read. Counts that cannot be written stay buffered
for the next flush.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import date, datetime, timedelta
from typing import TypedDict

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from lib.counters import log_unavailable
from lib.redis_client import redis_client

DAYS_KEPT = 35
FLUSH_SECONDS = 1.0

class DayCount(TypedDict):
    date: str  # ISO, a UTC day
    count: int


_usage_buffer: Counter[tuple[str, date]] = Counter()
_usage_lock = threading.Lock()
_usage_flushed_at = time.monotonic()


def _usage_name(key_id: str) -> str:
    return f"ks:usage:{key_id}"


def record_usage(key_id: str, now: datetime | None = None) -> None:
    """Count one authenticated request for today (UTC), without a write per request."""
    global _usage_flushed_at
    today = (now or timezone.now()).date()
    with _usage_lock:
        _usage_buffer[(key_id, today)] += 1
        if time.monotonic() - _usage_flushed_at < FLUSH_SECONDS:
            return
    flush_usage()


def flush_usage() -> None:
    global _usage_flushed_at
    with _usage_lock:
        pending = dict(_usage_buffer)
        _usage_buffer.clear()
        _usage_flushed_at = time.monotonic()
    if not pending:
        return
    if settings.REDIS_URL:
        try:
            pipe = redis_client().pipeline(transaction=False)
            for (key_id, day), count in pending.items():
                pipe.hincrby(_usage_name(key_id), day.isoformat(), count)
                pipe.expire(_usage_name(key_id), DAYS_KEPT * 86400)
            pipe.execute()
        except Exception as exc:
            log_unavailable(exc)
            with _usage_lock:  # keep the counts for the next flush
                _usage_buffer.update(pending)
        return
    for (key_id, day), count in pending.items():
        name = f"{_usage_name(key_id)}:{day.isoformat()}"
        cache.add(name, 0, DAYS_KEPT * 86400)
        cache.incr(name, count)


def usage_for(key_id: str, days: int = 30) -> list[DayCount]:
    """Requests per day for the last `days` days, oldest first, today included."""
    flush_usage()
    today = timezone.now().date()
    wanted = [today - timedelta(days=offset) for offset in range(days - 1, -1, -1)]
    counts: dict[str, int] = {}
    if settings.REDIS_URL:
        try:
            raw = redis_client().hgetall(_usage_name(key_id))
            counts = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}
        except Exception as exc:
            log_unavailable(exc)
    else:
        names = {f"{_usage_name(key_id)}:{day.isoformat()}": day.isoformat() for day in wanted}
        counts = {names[name]: value for name, value in cache.get_many(list(names)).items()}
    return [{"date": day.isoformat(), "count": counts.get(day.isoformat(), 0)} for day in wanted]

