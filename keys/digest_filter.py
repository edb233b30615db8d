"""Every digest the key lookup could find, in each worker's memory: a key no one issued costs no query.

A credential-stuffing flood (a well-formed, checksummed key that no one issued, a new one each request)
would cost a lookup per request: the cache's unknown digests (keys/verification_cache.py) help only a
key that comes again. So each worker keeps the first 8 bytes of every digest that the lookup in
keys/lookup.py can find: every deployment key's and global key's (revoked, expired and inactive ones
too, which must still get their own codes) and every retired secret's (past its grace too: it answers
key_revoked). They are integers in a sorted array, searched by bisection, beside a small set of those
read since the array was built (merged into it at the next build): about 8 bytes a key, 8 MB per worker
for a million keys, twice that for the moment a build swaps in. keys/verification.py asks only where it
would otherwise look a key up (a warm key never pays for it): a digest the filter does not hold is
unknown, with no query; two digests that share their first 8 bytes only cost the lookup.

It answers "absent" only while it is current, in the very sense that the cache's unknown digests are,
and is told of every invalidation the cache is (LocalCache.watchers):

- A flush naming keys (an issue, a rotation or an import may have made a digest known) makes it
  untrusted until those keys' digests, theirs and their retired secrets', have been read again. A
  flush of everything (an organization's write, a flush message naming nothing), the stamp moving
  with no message announcing it, and a Redis subscription lost or (re)made, until it is built again.
- Each invalidation moves an epoch on, and a read retires only what was invalidated before it began:
  a build or a read that began before a later invalidation cannot make it trusted.
- While it is untrusted or being built, while this worker's Redis subscription is down, and with
  caching off (KEYSCOPE_VERIFICATION_CACHE_SECONDS <= 0), keys are looked up as without it. Like
  a cached answer it is never older than KEYSCOPE_VERIFICATION_CACHE_SECONDS: it is built again
  from three quarters of that age on.

Building (one streaming query over the three tables: seconds for a million keys) and reading keys
again happen in a daemon thread of each process, started on the process's first cold verification
(a forked worker starts its own), on its own database connection, closed whenever it goes idle.
Never in a request, and never in the Redis listener, which only moves the epoch on. So a worker
builds it as it starts, and again after every reconnection. Without Redis (one process) the
database's stamp, read at most every KEYSCOPE_VERIFICATION_STAMP_CHECK_SECONDS (0.5), bounds a
write by another process (`manage.py keys issue`, an import) as it bounds the cache.
KEYSCOPE_DIGEST_FILTER=false turns it off; tests (KEYSCOPE_DIGEST_FILTER_THREAD=false) build it
by hand with catch_up(), what the thread runs.

It holds digest prefixes and key ids only, never a key.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import threading
import time
import uuid
from array import array
from collections.abc import Iterable, Iterator
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models.functions import Substr

from keys.models import DeploymentKey, GlobalApiDeploymentKey, RetiredSecret
from keys.verification_cache import _bus, local_cache

logger = logging.getLogger("keyscope.digest_filter")

PREFIX_HEX = 16  # the first 8 bytes of a sha256 digest, in hex
REBUILD_AT = 0.75  # of KEYSCOPE_VERIFICATION_CACHE_SECONDS: a build then, before the last one is too old to trust
MAX_PENDING_KEYS = 1_000  # keys flushed and not read yet, past which one build reads them all
IDS_PER_QUERY = 500
ROWS_PER_FETCH = 10_000
UNHEALTHY_POLL_SECONDS = 0.1  # while the Redis subscription is down, or coming back
IDLE_WAKE_SECONDS = 60.0  # the longest the thread sleeps unwoken


def prefix_of(digest: str) -> int | None:
    """A digest's first 8 bytes as an integer; None for what no presented key's digest can be (`unset:...`)."""
    try:
        value = int(digest[:PREFIX_HEX], 16)
    except ValueError:
        return None
    return value if value >= 0 else None


def _digest_prefixes(key_ids: list[uuid.UUID] | None) -> Iterator[int]:
    """The prefixes of the digests the lookup could find: of every key and retired secret (None), or of these keys'.

    One statement over the three tables, so it reads one snapshot of them (a rotation moves a digest from one
    to another). On PostgreSQL its rows stream from a server-side cursor, in a transaction; on SQLite the
    statement streams as it is, and a transaction (IMMEDIATE there) would hold every writer off.
    """
    parts: list[Any] = []
    for model, key_field in ((DeploymentKey, "pk"), (GlobalApiDeploymentKey, "pk"), (RetiredSecret, "key_id")):
        rows = model.objects.order_by()
        if key_ids is not None:
            rows = rows.filter(**{f"{key_field}__in": key_ids})
        parts.append(rows.values_list(Substr("digest", 1, PREFIX_HEX), flat=True))
    query = parts[0].union(*parts[1:], all=True)
    with transaction.atomic() if connection.vendor == "postgresql" else contextlib.nullcontext():
        for text in query.iterator(chunk_size=ROWS_PER_FETCH):
            value = prefix_of(text or "")
            if value is not None:
                yield value


def _sorted_array(prefixes: Iterable[int]) -> array[int]:
    """The prefixes in a sorted array('Q'), sorted a 256th at a time: never a list of them all in memory."""
    buckets = [array("Q") for _ in range(256)]
    for value in prefixes:
        buckets[value >> 56].append(value)
    ordered = array("Q")
    for n, bucket in enumerate(buckets):
        ordered.extend(sorted(bucket))
        buckets[n] = array("Q")
    return ordered


def _key_ids(names: Iterable[str]) -> list[uuid.UUID]:
    """The key ids among flushed tags' names: a name that is no UUID (a message can say anything) names no key."""
    ids = []
    for name in names:
        try:
            ids.append(uuid.UUID(name))
        except ValueError:
            continue
    return ids


class DigestFilter:
    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self.epoch = 0  # moved on by every invalidation, never back (not even by forget)
        self._reset_locks()
        self._reset_data()

    def _reset_locks(self) -> None:
        self._lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._wake = threading.Event()

    def _reset_data(self) -> None:
        # (sorted prefixes of the last build, prefixes read since, when that build began to read: time.monotonic).
        self._data: tuple[array[int], set[int], float] | None = None
        # The same while it is trusted, else None: what a request reads, in one step and without the lock.
        self._current: tuple[array[int], set[int], float] | None = None
        self._rebuild_epoch: int | None = 0  # the last invalidation that needs a build, until one retires it
        self._pending: dict[str, int] = {}  # key id -> the epoch of its last flush, until a read retires it

    # The request path ---------------------------------------------------------------------------

    def might_hold(self, key_digest: str) -> bool:
        """False only when no key the lookup could find has this digest, and the filter is current; True: look it up."""
        if not settings.KEYSCOPE_DIGEST_FILTER or settings.KEYSCOPE_VERIFICATION_CACHE_SECONDS <= 0:
            return True
        self._ensure_worker()  # before the subscription is up too: the thread waits for it, then builds
        if not _bus.healthy():
            return True
        current = self._current
        if current is None:
            return True
        prefixes, added, built_at = current
        if time.monotonic() - built_at >= settings.KEYSCOPE_VERIFICATION_CACHE_SECONDS:
            return True  # as old as a cached answer may be: looked up until the next build
        value = int(key_digest[:PREFIX_HEX], 16)
        if value in added:
            return True
        at = bisect.bisect_left(prefixes, value)
        return at < len(prefixes) and prefixes[at] == value

    def trusted(self) -> bool:
        """Whether it answers "absent" now (what might_hold() asks of it before the digest)."""
        current = self._current
        return self._usable() and current is not None and time.monotonic() - current[2] < settings.KEYSCOPE_VERIFICATION_CACHE_SECONDS

    @staticmethod
    def _usable() -> bool:
        return bool(settings.KEYSCOPE_DIGEST_FILTER) and settings.KEYSCOPE_VERIFICATION_CACHE_SECONDS > 0 and _bus.healthy()

    # Invalidation: from the cache's drops and clears, in whatever thread makes them (the Redis listener's too) --

    def invalidate(self, tags: frozenset[str] | None) -> None:
        """A write with these tags may have made digests known (None: any): untrusted until they are read again."""
        keys = None if tags is None else [tag[4:] for tag in tags if tag.startswith("key:")]
        if keys == []:
            return  # a scope, group or deployment write: no digest comes or goes
        with self._lock:
            self.epoch += 1
            self._current = None
            if keys is None or len(self._pending) + len(keys) > MAX_PENDING_KEYS:
                self._rebuild_epoch = self.epoch
                self._pending.clear()
            else:
                for key_id in keys:
                    self._pending[key_id] = self.epoch
        self._wake.set()

    def forget(self) -> None:
        """As a new process would start: nothing read, a build due (tests, the bench's seeding)."""
        with self._lock:
            self.epoch += 1
            self._reset_data()
            self._rebuild_epoch = self.epoch

    def _after_fork(self) -> None:
        """In a forked child: its own locks (another thread may have held the parent's), no thread yet, nothing
        read, since the child hears of writes only once its own subscription is up."""
        self._reset_locks()
        self._thread = None
        self.forget()

    # Reading: in the thread, or in a test's own thread by hand -------------------------------------

    def refresh(self) -> bool:
        """Read what is due, once: a build, or the digests of the keys flushed since the last read. False: nothing was."""
        if not self._usable():
            return False
        ttl = settings.KEYSCOPE_VERIFICATION_CACHE_SECONDS
        with self._lock:
            began, started = time.monotonic(), self.epoch
            build = self._data is None or self._rebuild_epoch is not None or began - self._data[2] >= REBUILD_AT * ttl
            flushed = dict(self._pending)
        if not build and not flushed:
            return False
        if build:
            prefixes = _sorted_array(_digest_prefixes(None))
            with self._lock:
                self._data = (prefixes, set(), began)
                if self._rebuild_epoch is not None and self._rebuild_epoch <= started:
                    self._rebuild_epoch = None
                self._retire({key_id: epoch for key_id, epoch in self._pending.items() if epoch <= started})
            logger.info("digest filter built: %d digests in %.2f s", len(prefixes), time.monotonic() - began)
            return True
        ids = _key_ids(flushed)
        found = [value for start in range(0, len(ids), IDS_PER_QUERY) for value in _digest_prefixes(ids[start : start + IDS_PER_QUERY])]
        with self._lock:
            if self._data is not None:
                self._data[1].update(found)
            self._retire(flushed)
        return True

    def _retire(self, read: dict[str, int]) -> None:
        """Under the lock: the flushes a read covered (a key flushed again since stays pending), then trust if none is left."""
        for key_id, epoch in read.items():
            if self._pending.get(key_id) == epoch:
                del self._pending[key_id]
        self._current = self._data if self._rebuild_epoch is None and not self._pending else None

    def catch_up(self) -> None:
        """Read until nothing is due: what the thread does when woken, and what tests do by hand."""
        while self.refresh():
            pass

    # The thread -------------------------------------------------------------------------------------

    def _ensure_worker(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive() or not settings.KEYSCOPE_DIGEST_FILTER_THREAD:
            return
        with self._start_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            # A forked worker inherits no thread (is_alive() is False there): it starts its own.
            self._thread = threading.Thread(target=self._work_forever, name="keyscope-digest-filter", daemon=True)
            self._thread.start()

    def _next_wake(self) -> float:
        """Seconds until the thread looks again unwoken: soon while the subscription is down, else when a build is due."""
        if not self._usable():
            return UNHEALTHY_POLL_SECONDS if settings.REDIS_URL else IDLE_WAKE_SECONDS
        data = self._data
        if data is None:
            return UNHEALTHY_POLL_SECONDS  # the first build failed: tried again soon
        due = data[2] + REBUILD_AT * settings.KEYSCOPE_VERIFICATION_CACHE_SECONDS - time.monotonic()
        return min(IDLE_WAKE_SECONDS, max(UNHEALTHY_POLL_SECONDS, due))

    def _work_forever(self) -> None:
        failures = 0
        while self._thread is threading.current_thread():
            self._wake.wait(timeout=self._next_wake())
            self._wake.clear()
            try:
                self.catch_up()
                failures = 0
            except Exception as exc:  # the database, say: keys are looked up meanwhile
                failures += 1
                logger.warning("digest filter not read, keys are looked up until it is: %s", type(exc).__name__)
                time.sleep(min(5.0, 0.1 * 2**failures))
                self._wake.set()
            finally:
                connection.close()  # this thread's own; idle, it holds none

    def stop(self) -> None:
        """End the thread (a test that ran it); a request starts another."""
        with self._start_lock:
            thread, self._thread = self._thread, None
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)


digest_filter = DigestFilter()
local_cache.watchers.append(digest_filter.invalidate)
os.register_at_fork(after_in_child=digest_filter._after_fork)
