"""What real traffic shows beyond the ratios: a revocation under the mixed load, and worker memory as keys pile up.

Both run on gunicorn servers of their own, so their writes and their caches touch no measured burst.
"""

from __future__ import annotations

import http.client
import time
from pathlib import Path
from typing import Any

from bench.over_http import Server, run_wrk, start_wrk, warm_pool, wrk_figures
from bench.seed import PopulationKey
from bench.variants import Variant

REVOCATIONS = 3  # the hottest keys of the mixed row, revoked one after the other under its load
PROBE_GIVE_UP_SECONDS = 5.0


def _key_row(entry: PopulationKey) -> Any:
    from keys import crypto
    from keys.models import MODEL_BY_KIND

    kind = crypto.key_kind(entry.key)
    assert kind is not None
    return MODEL_BY_KIND[kind].objects.get(digest=crypto.digest(entry.key))


def _probe(server: Server, entry: PopulationKey) -> tuple[str, int, float]:
    """One request with the key on a new connection (so any worker may take it): (worker pid, status, when)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        connection.request("GET", entry.path, headers={"Authorization": f"Bearer {entry.key}"})
        response = connection.getresponse()
        response.read()
        return response.getheader("X-Bench-Worker") or "?", response.status, time.perf_counter()
    finally:
        connection.close()


def _revoke_and_probe(server: Server, entry: PopulationKey) -> dict[str, Any]:
    """Seconds from the start of the revocation (the service call, in this process: another writer than the
    workers) to each worker's first refusal of the key, which every worker had cached."""
    from keys.services import key_revoke

    workers = {str(pid) for pid in (server.worker_ticks() or {})}
    accepted = {pid for pid, status, _ in (_probe(server, entry) for _ in range(20)) if status == 200}
    row = _key_row(entry)
    started = time.perf_counter()
    key_revoke(key=row, actor=None)
    refused: dict[str, float] = {}
    stale = 0
    while set(refused) < workers and time.perf_counter() - started < PROBE_GIVE_UP_SECONDS:
        pid, status, at = _probe(server, entry)
        if status == 401:
            refused.setdefault(pid, at - started)
        elif status == 200:
            stale += 1
    return {"workers": len(workers), "warm_on": len(accepted), "refused": refused, "stale_answers": stale}


def revocation_under_load(env: dict[str, str], log_path: Path, mixed: Variant, connections: int) -> dict[str, Any]:
    """Revoke the mixed row's hottest keys while wrk plays the mixed traffic; the worst case over workers and keys."""
    assert mixed.pool is not None
    # Room beside wrk's connections for the probes on every worker, however wrk's land.
    server = Server(env, log_path, connections + 2 * connections)
    try:
        run_wrk(server.url, mixed, 2, connections)
        process, writer = start_wrk(server.url, mixed, 2 * REVOCATIONS + 3, connections)
        time.sleep(1.0)
        results = []
        for entry in mixed.pool[:REVOCATIONS]:
            results.append(_revoke_and_probe(server, entry))
            time.sleep(0.5)
        load = wrk_figures(mixed, process, writer, timeout=2 * REVOCATIONS + 40)
    finally:
        server.stop()
    every = [max(r["refused"].values()) if len(r["refused"]) == r["workers"] else None for r in results]
    return {
        "results": results,
        "worst_seconds": None if None in every else max(every),  # type: ignore[type-var]
        "rps": load["rps"],
    }


def memory_at(
    env: dict[str, str], log_path: Path, population: list[PopulationKey], sizes: list[int], connections: int
) -> list[dict[str, Any]]:
    """One worker serves each of the first N keys at least once (N growing); its cache's entries and RSS after each.

    One worker, so that it holds every key; its figures before the first key are after a warm-up on 200 other
    keys (the last of the population), so what grows is the cache and not the loaded code. wrk
    runs for a fixed time, so keys go to it a slice at a time, the next slice starting where it got to.
    """
    import httpx

    server = Server(env, log_path, connections, workers=1)
    figures = []
    try:
        client = httpx.Client(base_url=server.url, timeout=10)
        # Every code path loaded and warm first (keys beyond the ones measured), so the growth is the cache's.
        run_wrk(server.url, Variant("warm-up", "warm-up", path=population[-1].path, pool=population[-200:]), 1, connections)
        figures.append({"keys": 0, **client.get("/bench/cache-stats/").json()})
        served = 0
        for size in sizes:
            if size > len(population):
                break
            pool = population[served:size]
            warm_pool(server.url, Variant("memory", "memory", path=pool[0].path, pool=pool), connections)
            served = size
            figures.append({"keys": size, **client.get("/bench/cache-stats/").json()})
        client.close()
    finally:
        server.stop()
    return figures
