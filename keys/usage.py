"""Requests per key and UTC day, and each key's `last_used_at`, in the database, without a write per request.

Each process counts in memory, and a background thread of its own writes what
it counted once a second (never the request itself; a read of usage, and the
process's exit, flush too): one statement for the day counts
of every key it saw, `INSERT ... ON CONFLICT DO UPDATE` adding to the stored
count, and in the same flush the `last_used_at` of the keys due for it (at most
once a minute per key and worker). On PostgreSQL the whole flush is one
statement; on SQLite one per table it touches, in one transaction. Counts are
exact across workers and hosts, with or without Redis, and survive a Redis
restart; a flush the database refuses stays buffered for the next one.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
import time
from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any, TypedDict

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.utils import timezone

from keys.lookup import VerifiedKey
from keys.models import MODEL_BY_KIND, KeyUsageDay

logger = logging.getLogger("keyscope.usage")

FLUSH_SECONDS = 1.0
LAST_USED_RESOLUTION = timedelta(seconds=60)
# Rows per statement: SQLite allows 32,766 parameters; a busy worker sees far fewer keys a second.
ROWS_PER_STATEMENT = 5_000


class DayCount(TypedDict):
    date: str  # ISO, a UTC day
    count: int


class _Buffer:
    """What this process counted and has not written yet."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, date]] = Counter()
        self.last_used: dict[tuple[str, str], datetime] = {}  # (kind, key id) -> when, due for a write
        self.last_written: dict[str, datetime] = {}  # key id -> the last_used_at this process last wrote
        self.lock = threading.Lock()
        self.flusher_pid: int | None = None

    def take(self) -> tuple[dict[tuple[str, date], int], dict[tuple[str, str], datetime]]:
        with self.lock:
            counts, last_used = dict(self.counts), dict(self.last_used)
            self.counts.clear()
            self.last_used.clear()
        return counts, last_used

    def give_back(self, counts: dict[tuple[str, date], int], last_used: dict[tuple[str, str], datetime]) -> None:
        with self.lock:
            self.counts.update(counts)
            for name, when in last_used.items():
                if name not in self.last_used or self.last_used[name] < when:
                    self.last_used[name] = when


_buffer = _Buffer()
_flush_lock = threading.Lock()  # one flush at a time per process: counts are taken once


def record_usage(key: VerifiedKey, now: datetime | None = None) -> None:
    """Count one authenticated request of `key` today (UTC), and note its use for `last_used_at`.

    `last_used_at` is due when neither the key as it was read nor this process's
    last write of it is less than a minute old, so a key is written at most once a
    minute per worker, in the next flush.
    """
    now = now or timezone.now()
    with _buffer.lock:
        _buffer.counts[(key.id, now.date())] += 1
        seen = _buffer.last_written.get(key.id) or key.last_used_at
        if seen is None or now - seen >= LAST_USED_RESOLUTION:
            if len(_buffer.last_written) >= 100_000:
                _buffer.last_written.clear()
            _buffer.last_written[key.id] = now
            _buffer.last_used[(key.kind, key.id)] = now
    _ensure_flusher()


def flush_usage() -> None:
    """Write this process's buffered counts and last uses now; keep them for the next flush if the database refuses."""
    with _flush_lock:
        counts, last_used = _buffer.take()
        if not counts and not last_used:
            return
        try:
            _write(counts, last_used)
        except DatabaseError as exc:
            logger.warning("usage not written, kept for the next flush: %s", type(exc).__name__)
            _buffer.give_back(counts, last_used)


def forget_usage() -> None:
    """Drop what this process buffered and remembers of last uses (a fresh start for tests and the bench)."""
    with _buffer.lock:
        _buffer.counts.clear()
        _buffer.last_used.clear()
        _buffer.last_written.clear()


def _write(counts: dict[tuple[str, date], int], last_used: dict[tuple[str, str], datetime]) -> None:
    statements = [*_last_used_statements(last_used), *_usage_statements(counts)]
    postgresql = connection.vendor == "postgresql"
    if postgresql and len(statements) > 1:
        # Data-modifying CTEs: every table of the flush in one statement, one round trip.
        *before, (sql, params) = statements
        sql = "WITH " + ", ".join(f"w{n} AS ({s} RETURNING 1)" for n, (s, _) in enumerate(before)) + " " + sql
        statements = [(sql, [p for _, ps in before for p in ps] + params)]
    # A savepoint inside a caller's transaction, so a refused flush does not break it; several statements together.
    atomic = connection.in_atomic_block or len(statements) > 1
    with transaction.atomic() if atomic else contextlib.nullcontext(), connection.cursor() as cursor:
        for sql, params in statements:
            cursor.execute(sql, params)


def _usage_statements(counts: dict[tuple[str, date], int]) -> list[tuple[str, list[Any]]]:
    """INSERT ... ON CONFLICT DO UPDATE adding each count to the stored one (PostgreSQL and SQLite alike)."""
    qn = connection.ops.quote_name
    meta = KeyUsageDay._meta
    table, key_id, day, count = (qn(meta.db_table), qn("key_id"), qn("day"), qn("count"))
    key_field, day_field = meta.get_field("key_id"), meta.get_field("day")
    rows = list(counts.items())
    statements = []
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start : start + ROWS_PER_STATEMENT]
        values = ", ".join(["(%s, %s, %s)"] * len(chunk))
        params: list[Any] = []
        for (kid, when), n in chunk:
            params += [key_field.get_db_prep_value(kid, connection), day_field.get_db_prep_value(when, connection), n]
        statements.append(
            (
                f"INSERT INTO {table} ({key_id}, {day}, {count}) VALUES {values} "
                f"ON CONFLICT ({key_id}, {day}) DO UPDATE SET {count} = {table}.{count} + excluded.{count}",
                params,
            )
        )
    return statements


def _last_used_statements(last_used: dict[tuple[str, str], datetime]) -> list[tuple[str, list[Any]]]:
    """One UPDATE per kind of key, joined to the flush's (id, when) pairs: each key's `last_used_at` moved
    forward to when it was used, never back. A join, not a CASE per key, so a flush of 10,000 keys is one
    indexed pass (UPDATE ... FROM, PostgreSQL and SQLite 3.33+ alike)."""
    qn = connection.ops.quote_name
    statements = []
    for kind, model in MODEL_BY_KIND.items():
        used = [(kid, when) for (k, kid), when in last_used.items() if k == kind]
        if not used:
            continue
        meta = model._meta
        id_field, at_field = meta.get_field("id"), meta.get_field("last_used_at")
        table, column = qn(meta.db_table), qn(at_field.column)
        # PostgreSQL types a VALUES list from its literals (text): the first row says what they are.
        if connection.vendor == "postgresql":
            first = f"(CAST(%s AS {id_field.db_type(connection)}), CAST(%s AS {at_field.db_type(connection)}))"
        else:
            first = "(%s, %s)"
        values = ", ".join([first] + ["(%s, %s)"] * (len(used) - 1))
        params: list[Any] = []
        for kid, when in used:
            params += [id_field.get_db_prep_value(kid, connection), at_field.get_db_prep_value(when, connection)]
        statements.append(
            (
                f"UPDATE {table} SET {column} = used.column2 FROM (VALUES {values}) AS used"
                f" WHERE {table}.{qn('id')} = used.column1 AND ({table}.{column} IS NULL OR {table}.{column} < used.column2)",
                params,
            )
        )
    return statements


def _ensure_flusher() -> None:
    """A daemon thread per process that flushes once a second, the idle worker's counts too (off in tests, which
    flush by hand: no write of theirs lands at a time the test does not choose)."""
    if not settings.KEYSCOPE_USAGE_FLUSH_THREAD or _buffer.flusher_pid == os.getpid():
        return
    with _buffer.lock:
        if _buffer.flusher_pid == os.getpid():
            return
        _buffer.flusher_pid = os.getpid()  # a forked worker inherits no thread: it starts its own
    threading.Thread(target=_flush_forever, name="keyscope-usage-flusher", daemon=True).start()


def _flush_forever() -> None:
    while True:
        time.sleep(FLUSH_SECONDS)
        try:
            close_old_connections()  # this thread's connection, as a request would: a dead one is replaced
            flush_usage()
        except Exception as exc:  # the next second tries again
            logger.warning("usage flush failed: %s", type(exc).__name__)


@atexit.register
def _flush_at_exit() -> None:
    if _buffer.counts or _buffer.last_used:
        flush_usage()


def usage_for(key_id: str, days: int = 30) -> list[DayCount]:
    """Requests per day for the last `days` days, oldest first, today included."""
    flush_usage()
    today = timezone.now().date()
    first = today - timedelta(days=days - 1)
    counts = dict(KeyUsageDay.objects.filter(key_id=key_id, day__gte=first, day__lte=today).values_list("day", "count"))
    return [
        {"date": day.isoformat(), "count": counts.get(day, 0)}
        for day in (first + timedelta(days=offset) for offset in range(days))
    ]
