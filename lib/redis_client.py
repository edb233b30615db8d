"""One Redis client per process, with timeouts, for counters and the invalidation channel.

Django's cache backend has neither TTL reads nor timeouts, so a dead Redis
would hang requests; this client fails fast instead.
"""

from __future__ import annotations

import functools

import redis
from django.conf import settings


@functools.lru_cache(maxsize=4)
def _client(url: str, socket_timeout: float | None) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=settings.KEYSCOPE_REDIS_TIMEOUT_SECONDS,
        socket_timeout=socket_timeout,
        health_check_interval=10,
        retry_on_timeout=False,
    )


def redis_client(socket_timeout: float | None | bool = False) -> redis.Redis:
    """The process's client for REDIS_URL. `socket_timeout=None` blocks (pub/sub listeners)."""
    timeout = settings.KEYSCOPE_REDIS_TIMEOUT_SECONDS if socket_timeout is False else socket_timeout
    return _client(settings.REDIS_URL, timeout)


def reset_clients() -> None:
    """Drop cached clients (tests that point REDIS_URL elsewhere)."""
    _client.cache_clear()
