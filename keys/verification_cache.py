"""A per-worker cache of verification results, kept until a write invalidates them.

Verified keys, unknown digests, deployments and scope answers are kept in each
worker's memory, so a warm request makes no query and no network round trip.
Any write that could change an answer (keys/signals.py) flushes this worker's
cache at once, publishes a flush on Redis (every other worker subscribes and
flushes within milliseconds) and moves the database's verification stamp on,
in the write's own transaction. Every worker reads that stamp at most every
KEYSCOPE_VERIFICATION_STAMP_CHECK_SECONDS (0.5) and empties its cache when it
moved: so a write is honoured within that bound by every worker and host even
when its flush message was lost or never sent (a writer without Redis, a
subscriber that missed a message), and with or without Redis. With Redis, a
worker whose subscription is down does not cache at all, and one that
(re)subscribes starts empty. KEYSCOPE_VERIFICATION_CACHE_SECONDS caps an
entry's age whatever happens (0: no caching).

Unknown digests (negative entries) live apart, at most
KEYSCOPE_VERIFICATION_CACHE_MAX_NEGATIVE of them, the oldest dropped first, so
a flood of distinct unknown keys cannot push valid keys out; valid answers are
bounded by KEYSCOPE_VERIFICATION_CACHE_MAX_ENTRIES, the oldest dropped first.

Beside the cache, each worker holds a filter of every digest a key lookup could
find (keys/digest_filter.py), told of every drop and clear of this cache, so
that a flood of keys no one issued costs no query; it follows the same rules.

Cache keys are digests and ids only, never a key.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection

from lib.redis_client import redis_client

logger = logging.getLogger("keyscope.cache")

CHANNEL = "keyscope:verification:flush"
MISSING = object()


class LocalCache:
    def __init__(self) -> None:
        self._entries: OrderedDict[Any, tuple[float, Any]] = OrderedDict()
        self._negative: OrderedDict[Any, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        # Bumped by every flush: a value computed before a flush must not be stored after it.
        self.generation = 0
        self.stamp: int | None = None  # the database's verification stamp when last read
        self.stamp_read_at = float("-inf")
        # Told the tags of every drop (None: everything) after it: what else a worker keeps that they may change
        # (keys/digest_filter.py, the digests it holds). Called in whatever thread drops, the Redis listener's too.
        self.watchers: list[Callable[[frozenset[str] | None], None]] = []

    def get(self, key: Any) -> Any:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._negative.get(key)
            if entry is None:
                return MISSING
        expires, value = entry
        if expires < time.monotonic():
            with self._lock:
                self._entries.pop(key, None)
                self._negative.pop(key, None)
            return MISSING
        return value

    def set(self, key: Any, value: Any, generation: int, *, negative: bool = False) -> None:
        """Keep `value` (computed at `generation`); `negative`: an answer for an unknown digest, kept apart."""
        ttl = settings.KEYSCOPE_VERIFICATION_CACHE_SECONDS
        if ttl <= 0 or not _bus.healthy():
            return
        entries, most = (
            (self._negative, settings.KEYSCOPE_VERIFICATION_CACHE_MAX_NEGATIVE)
            if negative
            else (self._entries, settings.KEYSCOPE_VERIFICATION_CACHE_MAX_ENTRIES)
        )
        with self._lock:
            if generation != self.generation:
                return
            while len(entries) >= max(1, most):
                entries.popitem(last=False)
            entries[key] = (time.monotonic() + ttl, value)

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._entries.clear()
            self._negative.clear()
        self._tell_watchers(None)

    def drop(self, tags: frozenset[str] | None) -> None:
        """Forget the answers a write with these tags could have changed (None: every answer).

        "key:<id>": that key's answers (its secrets, its scope answers), and every unknown digest, as
        the write may have made one known; "scope": every scope answer (links, groups and their
        memberships); "deployment": every deployment and scope answer. Keys' own answers hold no
        deployment or group state, so those writes leave them warm.
        """
        if tags is None:
            self.clear()
            return
        keys = {tag[4:] for tag in tags if tag.startswith("key:")}
        scopes = "scope" in tags or "deployment" in tags
        with self._lock:
            self.generation += 1
            if keys:
                self._negative.clear()
            for name in [name for name, (_, value) in self._entries.items() if _touched(name, value, keys, scopes, tags)]:
                del self._entries[name]
        self._tell_watchers(tags)

    def _tell_watchers(self, tags: frozenset[str] | None) -> None:
        for watcher in self.watchers:
            watcher(tags)

    def __len__(self) -> int:
        return len(self._entries) + len(self._negative)


def _touched(name: tuple[Any, ...], value: Any, keys: set[str], scopes: bool, tags: frozenset[str]) -> bool:
    kind = name[0]
    if kind == "key":
        return value.id in keys
    if kind in ("scope", "scope-slugs"):
        return scopes or name[1] in keys
    if kind == "deployment":
        return "deployment" in tags
    return True  # an answer of a kind this does not know: not worth the risk


local_cache = LocalCache()


class InvalidationBus:
    """Redis pub/sub between workers and hosts; without Redis, one process is the whole world."""

    def __init__(self) -> None:
        self._pid: int | None = None
        self._token = ""
        self._token_pid: int | None = None
        self._subscribed = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def healthy(self) -> bool:
        if not settings.REDIS_URL:
            return True
        self._ensure_listener()
        return self._subscribed.is_set()

    def token(self) -> str:
        """Names this process on the channel; a pid alone can repeat across hosts and forks."""
        pid = os.getpid()
        if self._token_pid != pid:
            self._token, self._token_pid = f"{pid}-{uuid.uuid4().hex}", pid
        return self._token

    def publish(self, tags: frozenset[str] | None = None, stamp: int | None = None) -> None:
        """`token` alone flushes everything; `token|stamp|tag,tag` what the tags name, the stamp the write left."""
        if not settings.REDIS_URL:
            return
        message = self.token() if tags is None else f"{self.token()}|{stamp if stamp is not None else ''}|{','.join(sorted(tags))}"
        try:
            redis_client().publish(CHANNEL, message)
        except Exception as exc:  # Redis down: other workers stop caching on their own.
            logger.warning("could not publish a cache flush: %s", type(exc).__name__)

    def _ensure_listener(self) -> None:
        if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
                return
            # A forked worker inherits no threads: start its own listener.
            self._pid = os.getpid()
            self._subscribed.clear()
            self._thread = threading.Thread(target=self._listen, name="keyscope-cache-listener", daemon=True)
            self._thread.start()

    def _listen(self) -> None:
        backoff = 0.1
        while True:
            pubsub = None
            try:
                pubsub = redis_client(socket_timeout=None).pubsub()
                pubsub.subscribe(CHANNEL)
                own = self.token().encode()
                for message in pubsub.listen():
                    if message.get("type") == "subscribe":
                        # Only once Redis confirms is no flush missed. Anything published
                        # while we were away is lost: start empty.
                        local_cache.clear()
                        self._subscribed.set()
                        backoff = 0.1
                    elif message.get("type") == "message" and message.get("data").split(b"|", 1)[0] != own:
                        # Our own flushes cleared this cache before they were sent; clearing it
                        # again on their echo would only drop answers cached since.
                        _receive(message["data"].decode(errors="replace"))
            except Exception as exc:
                logger.warning("cache invalidation channel down, caching off until it returns: %s", type(exc).__name__)
            finally:
                self._subscribed.clear()
                local_cache.clear()
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:
                        pass
            time.sleep(backoff)
            backoff = min(backoff * 2, 5.0)


_bus = InvalidationBus()


def _receive(message: str) -> None:
    """Another process's flush: what its tags name, or everything; the stamp it left, when this cache saw the one
    before it (else the next stamp check flushes everything, in case a write went by unannounced)."""
    _, _, rest = message.partition("|")
    if not rest:
        local_cache.clear()
        return
    stamp, _, tags = rest.partition("|")
    local_cache.drop(frozenset(tag for tag in tags.split(",") if tag) or None)
    if stamp.isdigit() and local_cache.stamp == int(stamp) - 1:
        local_cache.stamp = int(stamp)


def flush(tags: frozenset[str] | None = None, stamp: int | None = None) -> None:
    """Forget the cached answers a write with these tags could change (None: all) here, and tell every other
    worker to; `stamp`: the verification stamp the committed write left, so they need not flush everything."""
    local_cache.drop(tags)
    _bus.publish(tags, stamp)


def stats() -> dict[str, int]:
    """How many answers this worker holds (what the bench reports beside the worker's memory)."""
    return {"entries": len(local_cache), "negative_entries": len(local_cache._negative)}


_STAMP_TABLE = "keys_verificationstamp"  # keys.models.VerificationStamp, one row (id 1)


def _raw(sql: str) -> Any:
    """Run `sql` on this thread's connection, in its transaction if any, outside Django's query log: this is
    the cache's own bookkeeping (as Django's health check is), not a query of the request it rides on."""
    connection.ensure_connection()
    with connection.wrap_database_errors:
        cursor = connection.connection.cursor()
        try:
            cursor.execute(sql)
            row = cursor.fetchone()
        finally:
            cursor.close()
    return None if row is None else row[0]


def move_stamp() -> int:
    """Move the database's verification stamp on (in the caller's transaction) and return it: every worker
    flushes within KEYSCOPE_VERIFICATION_STAMP_CHECK_SECONDS of the commit, whether or not a message reaches it."""
    version = _raw(
        f"INSERT INTO {_STAMP_TABLE} (id, version) VALUES (1, 1) "
        f"ON CONFLICT (id) DO UPDATE SET version = {_STAMP_TABLE}.version + 1 RETURNING version"
    )
    local_cache.stamp = version  # our own move: this cache is flushed by the writer already
    return int(version)


def check_stamp() -> None:
    """Empty this worker's cache if the database's stamp moved since it was last read (at most every
    KEYSCOPE_VERIFICATION_STAMP_CHECK_SECONDS); a stamp that cannot be read empties it too."""
    now = time.monotonic()
    if now - local_cache.stamp_read_at < settings.KEYSCOPE_VERIFICATION_STAMP_CHECK_SECONDS:
        return
    local_cache.stamp_read_at = now
    try:
        stamp = _raw(f"SELECT version FROM {_STAMP_TABLE} WHERE id = 1") or 0
    except DatabaseError:
        local_cache.clear()
        local_cache.stamp = None
        return
    if local_cache.stamp is not None and stamp != local_cache.stamp:
        local_cache.clear()
    local_cache.stamp = stamp
