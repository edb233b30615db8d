"""A per-worker cache of verification results, flushed on every key or deployment write.

Verified keys, unknown digests, deployments and scope answers are kept in each
worker's memory for at most `KEYSCOPE_VERIFICATION_CACHE_SECONDS`, so a warm
request makes no query and no network round trip. Any write that could change
an answer (keys/signals.py) flushes this worker's cache at once and publishes a
flush on Redis; every other worker subscribes and flushes within milliseconds.
A worker whose subscription is down does not cache at all, and the TTL bounds
what a missed message can leave behind.

Cache keys are digests and ids only, never a key.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from typing import Any

from django.conf import settings

from lib.redis_client import redis_client

logger = logging.getLogger("keyscope.cache")

CHANNEL = "keyscope:verification:flush"
MISSING = object()


class LocalCache:
    def __init__(self) -> None:
        self._entries: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()
        # Bumped by every flush: a value computed before a flush must not be stored after it.
        self.generation = 0

    def get(self, key: Any) -> Any:
        entry = self._entries.get(key)
        if entry is None:
            return MISSING
        expires, value = entry
        if expires < time.monotonic():
            self._entries.pop(key, None)
            return MISSING
        return value

    def set(self, key: Any, value: Any, generation: int) -> None:
        ttl = settings.KEYSCOPE_VERIFICATION_CACHE_SECONDS
        if ttl <= 0 or not _bus.healthy():
            return
        with self._lock:
            if generation != self.generation:
                return
            if len(self._entries) >= settings.KEYSCOPE_VERIFICATION_CACHE_MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (time.monotonic() + ttl, value)

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._entries.clear()


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

    def publish(self) -> None:
        if not settings.REDIS_URL:
            return
        try:
            redis_client().publish(CHANNEL, self.token())
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
                    elif message.get("type") == "message" and message.get("data") != own:
                        # Our own flushes cleared this cache before they were sent; clearing it
                        # again on their echo would only drop answers cached since.
                        local_cache.clear()
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


def flush() -> None:
    """Forget every cached verification answer here, and tell every other worker to."""
    local_cache.clear()
    _bus.publish()


def stats() -> dict[str, int]:
    """How many answers this worker holds (what the bench reports beside the worker's memory)."""
    return {"entries": len(local_cache._entries)}
