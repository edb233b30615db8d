"""Limits, caches and several workers: the fixtures these tests share.

Each test starts with empty counters (in Redis, or the local-memory cache),
an empty verification cache and no buffered usage, and with the rate-limit
clock frozen at the start of a window, so a burst never straddles two windows.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.conf import settings
from django.core.cache import cache

from keys import ratelimit, usage, verification, verification_cache
from lib import counters
from lib.redis_client import redis_client, reset_clients

SUBSCRIBE_WAIT_SECONDS = 5.0


def needs_redis(what: str) -> None:
    """Skip loudly without REDIS_URL; under CI=true that is a failure, not a skip."""
    if settings.REDIS_URL and shutil.which("redis-server"):
        return
    reason = (
        f"!!! {what} NOT TESTED: needs REDIS_URL and redis-server "
        "(run through scripts/with-services.sh, or install redis-server) !!!"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def _reset_state() -> None:
    usage.flush_usage()  # drain the process's buffer before the store is emptied
    if settings.REDIS_URL:
        redis_client().flushdb()
    cache.clear()
    verification_cache.local_cache.clear()
    verification._last_touched.clear()
    ratelimit.forget_leases()
    ratelimit.forget_throttled()


def _wait_for_subscription() -> None:
    """The invalidation listener of this process is up, so answers get cached."""
    if not settings.REDIS_URL:
        return
    deadline = time.monotonic() + SUBSCRIBE_WAIT_SECONDS
    while not verification_cache._bus.healthy():
        if time.monotonic() > deadline:
            pytest.fail("the cache invalidation listener did not subscribe within 5 seconds")
        time.sleep(0.01)


class Clock:
    """Stands in for the `time` module inside the counters, rate limits and usage: frozen, moved on by hand."""

    def __init__(self) -> None:
        real = time.time()
        # One second into the current window: `t` of the RateLimit field is then 59.
        self.now = (real // counters.WINDOW_SECONDS) * counters.WINDOW_SECONDS + 1.0
        self._monotonic_offset = 0.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return time.monotonic() + self._monotonic_offset

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self._monotonic_offset += seconds


@pytest.fixture(autouse=True)
def limits_state(db) -> Iterator[None]:
    _reset_state()
    _wait_for_subscription()
    yield
    _reset_state()


@pytest.fixture(autouse=True)
def clock(monkeypatch) -> Clock:
    fake = Clock()
    for module in (ratelimit, counters, usage):
        monkeypatch.setattr(module, "time", fake)
    return fake


# A server of our own, to stop in the middle of a test -------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RedisServer:
    url: str
    process: subprocess.Popen

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture
def own_redis(tmp_path) -> Iterator[RedisServer]:
    """A redis-server started for this test alone; always killed at the end."""
    needs_redis("REDIS FAILURE HANDLING")
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = RedisServer(url=f"redis://127.0.0.1:{port}/0", process=process)
    try:
        for _ in range(100):
            if _redis_answers(port):
                break
            if process.poll() is not None:
                pytest.fail(f"redis-server exited with {process.returncode}")
            time.sleep(0.05)
        else:
            pytest.fail("redis-server did not answer PING within 5 seconds")
        yield server
    finally:
        server.stop()
        reset_clients()
