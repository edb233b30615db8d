"""The in-process harness: Django's test client, µs per request and the queries each one makes."""

from __future__ import annotations

import cProfile
import io
import pstats
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.variants import Variant, run_pairs


def _wait_for_invalidation_channel() -> None:
    """The verification cache stores nothing until this process has subscribed to flushes."""
    from keys import verification_cache

    deadline = time.monotonic() + 10
    while not verification_cache._bus.healthy():
        if time.monotonic() > deadline:
            raise SystemExit("the verification cache's Redis subscription did not come up in 10 s")
        time.sleep(0.05)


def _caller(client: Any, variant: Variant) -> Callable[[], Any]:
    from keys.verification_cache import local_cache

    send = getattr(client, variant.method.lower())
    kwargs: dict[str, Any] = {"headers": variant.headers}
    if variant.body:
        kwargs.update(data=variant.body, content_type="application/json")
    if variant.cold:

        def call() -> Any:
            local_cache.clear()
            return send(variant.path, **kwargs)

        return call
    return lambda: send(variant.path, **kwargs)


QUERY_KINDS = (
    ("key", ("keys_deploymentkey", "keys_globalapideploymentkey", "keys_retiredsecret", "rest_framework_api_key_apikey")),
    ("scope", ("keys_globalkeydeployment", "keys_globalkeygroup", "deployments_groupdeployment")),
    ("deployment", ("deployments_deployment",)),
)


def _classify(sql: str) -> str:
    head = sql.split(" WHERE ")[0].lower()
    if sql.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
        return "write"
    if '"digest" = ' in sql:  # keyscope's key lookup, whatever else it reads beside the key
        return "key"
    for kind, tables in QUERY_KINDS:
        if any(table in head for table in tables):
            return kind
    return "other"


def run_inprocess(variants: list[Variant], rounds: int, requests: int) -> dict[str, dict[str, Any]]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    _wait_for_invalidation_channel()
    calls = {v.id: _caller(client, v) for v in variants}
    for v in variants:  # warm up, and refuse to measure a wrong answer
        for _ in range(20):
            response = calls[v.id]()
        if response.status_code != v.expected_status:
            raise SystemExit(f"{v.id}: expected {v.expected_status}, got {response.status_code}: {response.content[:200]!r}")

    def timed(v: Variant, beside: Variant) -> float:
        """Mean µs per request over one burst."""
        call = calls[v.id]
        # Untimed: the other variants ran for longer than the cache's 1 s TTL since this one last did, so its
        # first request would refresh the entry, a cost a serving worker spreads over a second of requests.
        call()
        started = time.perf_counter_ns()
        for _ in range(requests):
            call()
        return (time.perf_counter_ns() - started) / requests / 1000

    timings, pairs = run_pairs(variants, rounds, timed)

    results: dict[str, dict[str, Any]] = {}
    samples = max(20, min(requests, 200))
    for v in variants:
        with CaptureQueriesContext(connection) as captured:
            for _ in range(samples):
                calls[v.id]()
        kinds: dict[str, int] = {}
        for query in captured.captured_queries:
            kind = _classify(query["sql"])
            kinds[kind] = kinds.get(kind, 0) + 1
        results[v.id] = {
            "us": statistics.median(timings[v.id]),
            "ratio": statistics.median(base / measured for base, measured in pairs[v.id]),
            "queries": len(captured.captured_queries) / samples,
            "query_kinds": {kind: count / samples for kind, count in sorted(kinds.items())},
        }
    return results


def profile_variant(variants: list[Variant], variant_id: str, requests: int) -> str:
    """cProfile of `requests` in-process requests of one variant: where its time goes."""
    from django.test import Client

    variant = next(v for v in variants if v.id == variant_id)
    call = _caller(Client(), variant)
    for _ in range(50):
        call()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(requests):
        call()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
    return out.getvalue()
