"""Limits, caches and several workers: the fixtures these tests share.

Each test starts with empty counters (in Redis, or the local-memory cache),
an empty verification cache and no buffered usage, and with the rate-limit
clock frozen at the start of a window, so a burst never straddles two windows.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

from keys import ratelimit, usage
from keys.tests.helpers import Clock, RedisServer, free_port, needs_redis, redis_answers, wait_for_subscription
from keys.worker_state import forget_worker_state
from lib import counters
from lib.redis_client import reset_clients


@pytest.fixture(autouse=True)
def limits_state(db) -> Iterator[None]:
    forget_worker_state()
    wait_for_subscription()
    yield
    forget_worker_state()


@pytest.fixture(autouse=True)
def clock(monkeypatch) -> Clock:
    fake = Clock()
    for module in (ratelimit, counters, usage):
        monkeypatch.setattr(module, "time", fake)
    return fake


# A server of our own, to stop in the middle of a test -------------------------


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
            if redis_answers(port):
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
