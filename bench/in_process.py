"""The in-process harness: Django's test client, µs per request and the queries each one makes."""

from __future__ import annotations

import contextlib
import cProfile
import io
import itertools
import pstats
import random
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

from bench.phases import run_phases
from bench.seed import PopulationKey
from bench.variants import THROTTLED_FAILED_AUTH_PER_MINUTE, Variant, run_pairs


def _wait_for_invalidation_channel() -> None:
    """The verification cache stores nothing until this process has subscribed to flushes."""
    from keys import verification_cache

    deadline = time.monotonic() + 10
    while not verification_cache._bus.healthy():
        if time.monotonic() > deadline:
            raise SystemExit("the verification cache's Redis subscription did not come up in 10 s")
        time.sleep(0.05)


def _wait_for_digest_filter() -> None:
    """This process's digest filter built (keys/digest_filter.py), as a serving worker has it moments after it starts:
    until then a key no one issued is looked up."""
    from django.conf import settings

    from keys.digest_filter import digest_filter

    if not settings.KEYSCOPE_DIGEST_FILTER:
        return
    if not settings.KEYSCOPE_DIGEST_FILTER_THREAD:
        digest_filter.catch_up()  # no thread to build it: built here
    digest_filter.might_hold("0" * 64)  # starts its thread, as a worker's first cold request does
    deadline = time.monotonic() + 300
    while not digest_filter.trusted():
        if time.monotonic() > deadline:
            raise SystemExit("the digest filter was not built in 300 s")
        time.sleep(0.05)


def draws(variant: Variant, count: int) -> Iterator[PopulationKey] | None:
    """The keys a pooled row's requests take, one per request, endlessly; None for a row of one key."""
    if variant.fresh is not None:
        return itertools.cycle(variant.fresh(count))
    if variant.pool is None:
        return None
    if variant.zipf is None:
        return itertools.cycle(variant.pool)
    weights = list(itertools.accumulate(rank**-variant.zipf for rank in range(1, len(variant.pool) + 1)))
    return itertools.cycle(random.Random(1).choices(variant.pool, cum_weights=weights, k=100_000))


@contextlib.contextmanager
def cache_aside() -> Iterator[None]:
    """A cold request: this process's verification cache empty for it, and as it was afterwards, so the rows
    that leave it warm (`mixed`, whose 10,000 keys take a while to warm) are not emptied by the cold rows."""
    from keys.verification_cache import local_cache

    kept = local_cache._entries, local_cache._negative
    local_cache._entries, local_cache._negative = type(kept[0])(), type(kept[1])()
    try:
        # A new generation: nothing computed before is stored. Not clear(), which would also set the digest
        # filter rebuilding, as a write no one announced does: the filter stays as a serving worker keeps it.
        with local_cache._lock:
            local_cache.generation += 1
        yield
    finally:
        local_cache._entries, local_cache._negative = kept


def settings_of(variant: Variant) -> Any:
    """The row's own settings for the burst (override_settings), or nothing to change."""
    from django.test import override_settings

    return override_settings(**variant.settings) if variant.settings else contextlib.nullcontext()


def _caller(client: Any, variant: Variant, count: int = 0) -> Callable[[], Any]:

    send = getattr(client, variant.method.lower())
    kwargs: dict[str, Any] = {"headers": variant.headers}
    if variant.address:
        kwargs["REMOTE_ADDR"] = variant.address
    if variant.body:
        kwargs.update(data=variant.body, content_type="application/json")
    keys = draws(variant, count)
    if keys is not None:

        def call_next() -> Any:
            chosen = next(keys)
            return send(chosen.path, **{**kwargs, "headers": {"Authorization": f"Bearer {chosen.key}"}})

        return call_next
    if variant.cold:

        def call() -> Any:
            with cache_aside():
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
    _wait_for_digest_filter()
    samples = max(20, min(requests, 200))
    phase_rounds = max(3, rounds // 2)
    # Enough fresh keys that no request of a burst repeats one (warm-up, bursts as itself and as a baseline, samples,
    # the phases' bursts).
    fresh_needed = 20 + (2 * rounds + phase_rounds) * (requests + 1) + samples
    calls = {v.id: _caller(client, v, fresh_needed) for v in variants}
    for v in variants:  # a pooled row's steady state: every key it will draw seen once
        for entry in (v.pool or []) if v.warm_passes else []:
            client.get(entry.path, headers={"Authorization": f"Bearer {entry.key}"})
    for v in variants:  # warm up, and refuse to measure a wrong answer
        # A throttled row first spends the address's failed authentications.
        warm_ups = 20 + (THROTTLED_FAILED_AUTH_PER_MINUTE if v.expected_status == 429 else 0)
        with settings_of(v):
            statuses = [calls[v.id]().status_code for _ in range(warm_ups)]
        # A pooled row must pass with every key it draws; the others once warm.
        if statuses[-1] != v.expected_status or (v.pool is not None and set(statuses) != {v.expected_status}):
            raise SystemExit(f"{v.id}: expected {v.expected_status}, got {sorted(set(statuses))}")

    def timed(v: Variant, beside: Variant) -> float:
        """Mean µs per request over one burst."""
        call = calls[v.id]
        with settings_of(v):
            # Untimed: the other variants ran for longer than the cache's 1 s TTL since this one last did, so its
            # first request would refresh the entry, a cost a serving worker spreads over a second of requests.
            call()
            started = time.perf_counter_ns()
            for _ in range(requests):
                call()
            return (time.perf_counter_ns() - started) / requests / 1000

    timings, pairs = run_pairs(variants, rounds, timed)
    phases = run_phases(variants, calls, settings_of, phase_rounds, requests)

    results: dict[str, dict[str, Any]] = {}
    for v in variants:
        with CaptureQueriesContext(connection) as captured, settings_of(v):
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
            "phases": phases[v.id],
        }
    return results


def profile_variant(variants: list[Variant], variant_id: str, requests: int) -> str:
    """cProfile of `requests` in-process requests of one variant: where its time goes."""
    from django.test import Client

    variant = next(v for v in variants if v.id == variant_id)
    call = _caller(Client(), variant, requests + 50)
    with settings_of(variant):
        for _ in range(50):
            call()
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(requests):
            call()
        profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(40)
    stats.sort_stats("tottime").print_stats(30)  # where the time is spent, not only what it is spent under
    return out.getvalue()
