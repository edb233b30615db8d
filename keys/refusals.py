"""Refusals of known keys (revoked, out of scope, not allowed from this address), kept a week for the admin.

Counted where the usage counts are (a Redis hash per organization, or the local-memory cache
without REDIS_URL), never in the database: a refused request costs no query, and a client
hammering with a revoked key costs a dictionary update per request and one flush a second.
The admin's key-hygiene panel reads them; counts are recent, not an audit.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from keys.lookup import VerifiedKey
from lib.counters import log_unavailable
from lib.redis_client import redis_client

KEPT = timedelta(days=7)
FLUSH_SECONDS = 1.0
MAX_PENDING = 10_000  # distinct keys and reasons one worker buffers between flushes

# What each code reads as in the admin.
REASONS = {
    "key_revoked": "revoked",
    "deployment_not_in_scope": "deployment out of scope",
    "insufficient_scope": "action out of scope",
    "ip_not_allowed": "not allowed from this address",
}


@dataclass(frozen=True)
class Refusal:
    organization_id: int
    key_kind: str
    key_id: str
    code: str
    count: int
    last_at: datetime
    last_client_ip: str | None

    @property
    def reason(self) -> str:
        return REASONS.get(self.code, self.code)


# (organization id, "kind:key id:code") → [count, last time (ISO), last address]
_pending: dict[tuple[int, str], list] = {}
_lock = threading.Lock()
_flushed_at = 0.0


def forget_refusals() -> None:
    global _flushed_at
    with _lock:
        _pending.clear()
        _flushed_at = 0.0


def _name(organization_id: int) -> str:
    return f"ks:refusals:{organization_id}"


def record_refusal(key: VerifiedKey, code: str, client_ip: str | None) -> None:
    """Count one refused request of `key`; flush this worker's counts when a second has passed."""
    if code not in REASONS:
        return
    field = f"{key.kind}:{key.id}:{code}"
    with _lock:
        if len(_pending) >= MAX_PENDING:
            _pending.clear()  # a flood of distinct keys: forget counts rather than grow
        entry = _pending.setdefault((key.organization_id, field), [0, "", None])
        entry[0] += 1
        entry[1], entry[2] = timezone.now().isoformat(), client_ip
        due = time.monotonic() - _flushed_at >= FLUSH_SECONDS
    if due:
        flush_refusals()


def flush_refusals() -> None:
    global _flushed_at
    with _lock:
        pending = dict(_pending)
        _pending.clear()
        _flushed_at = time.monotonic()
    if not pending:
        return
    try:
        if settings.REDIS_URL:
            pipe = redis_client().pipeline(transaction=False)
            for (organization_id, field), (count, at, ip) in pending.items():
                pipe.hincrby(_name(organization_id) + ":count", field, count)
                pipe.hset(_name(organization_id) + ":last", field, json.dumps([at, ip]))
                for suffix in (":count", ":last"):
                    pipe.expire(_name(organization_id) + suffix, int(KEPT.total_seconds()))
            pipe.execute()
            return
        for organization_id in {organization_id for organization_id, _ in pending}:
            stored = cache.get(_name(organization_id)) or {}
            for (owner, field), (count, at, ip) in pending.items():
                if owner == organization_id:
                    stored[field] = [stored.get(field, [0])[0] + count, at, ip]
            cache.set(_name(organization_id), stored, int(KEPT.total_seconds()))
    except Exception as exc:
        log_unavailable(exc)
        with _lock:  # kept for the next flush
            for name, (count, at, ip) in pending.items():
                entry = _pending.setdefault(name, [0, at, ip])
                entry[0] += count


def recent_refusals(organization_ids: Iterable[int], now: datetime | None = None) -> list[Refusal]:
    """The refusals of the last week in these organizations, newest first."""
    flush_refusals()
    since = (now or timezone.now()) - KEPT
    found: list[Refusal] = []
    for organization_id in organization_ids:
        rows: dict[str, list] = {}
        try:
            if settings.REDIS_URL:
                counts = redis_client().hgetall(_name(organization_id) + ":count")
                lasts = redis_client().hgetall(_name(organization_id) + ":last")
                for raw_field, raw_count in counts.items():
                    field = raw_field.decode() if isinstance(raw_field, bytes) else raw_field
                    at, ip = json.loads(lasts.get(raw_field) or lasts.get(field) or '["", null]')
                    rows[field] = [int(raw_count), at, ip]
            else:
                rows = cache.get(_name(organization_id)) or {}
        except Exception as exc:
            log_unavailable(exc)
            continue
        for field, (count, at, ip) in rows.items():
            kind, key_id, code = field.split(":", 2)
            last_at = parse_datetime(at) if at else None
            if last_at is not None and last_at >= since:
                found.append(Refusal(organization_id, kind, key_id, code, count, last_at, ip))
    return sorted(found, key=lambda refusal: refusal.last_at, reverse=True)
