"""The HTTP harness: gunicorn serving bench.settings, loaded by wrk (or a Python fallback), with the workers' CPU time."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.seed import PopulationKey
from bench.variants import Variant, median_of_known, run_pairs

BASE_DIR = Path(__file__).resolve().parent.parent
LUA_SCRIPT = BASE_DIR / "bench" / "wrk" / "request.lua"
GUNICORN_WORKERS = 2
GUNICORN_WORKER_CLASS = "gthread"
GUNICORN_THREADS = 1


def worker_connections(connections: int, workers: int = GUNICORN_WORKERS) -> int:
    """gunicorn's --worker-connections for `connections` client connections: each worker's fair share of them.

    Left at gunicorn's 1,000, a gthread worker took every connection it could, and in a third or more of
    the bursts all of wrk's landed on one worker while the other sat idle, halving that burst's req/s. Plus the
    serving threads: gunicorn keeps alive at most worker_connections - threads idle connections a worker.
    """
    return -(-connections // workers) + GUNICORN_THREADS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """gunicorn serving bench.settings on 127.0.0.1."""

    def __init__(self, env: dict[str, str], log_path: Path, connections: int, workers: int = GUNICORN_WORKERS) -> None:
        self.port = free_port()
        self.log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "backend.wsgi:application",
                "--bind", f"127.0.0.1:{self.port}",
                "--workers", str(workers),
                "--worker-class", GUNICORN_WORKER_CLASS,
                "--threads", str(GUNICORN_THREADS),
                "--worker-connections", str(worker_connections(connections, workers)),
                "--keep-alive", "30",
                "--log-level", "warning",
            ],  # fmt: skip
            cwd=BASE_DIR,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(self.url + "/healthz/", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"gunicorn did not start; see {log_path}")
            time.sleep(0.2)

    def worker_ticks(self) -> dict[int, int] | None:
        """utime + stime, in clock ticks, of each gunicorn worker (the master's children) by pid; None without /proc."""
        try:
            pids = [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]
        except OSError:
            return None
        ticks: dict[int, int] = {}
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    # Fields from the 3rd on: the command name before them may hold spaces and parentheses.
                    fields = f.read().rpartition(")")[2].split()
            except OSError:  # gone since the listing
                continue
            if int(fields[1]) == self.process.pid:  # field 4, the parent
                ticks[pid] = int(fields[11]) + int(fields[12])  # fields 14 and 15, utime and stime
        return ticks

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


# A fresh-key row's pool per second of a burst: more than a cold request rate on two cores, so no key repeats.
FRESH_KEYS_PER_SECOND = 6_000


def pool_for(variant: Variant, seconds: float) -> list[PopulationKey] | None:
    if variant.fresh is not None:
        return variant.fresh(int(FRESH_KEYS_PER_SECOND * max(1, round(seconds))))
    return variant.pool


def start_wrk(url: str, variant: Variant, seconds: float, connections: int) -> tuple[subprocess.Popen, threading.Thread | None]:
    """wrk on one variant; a pooled row's keys go through a pipe (never a file), written by a thread as wrk reads."""
    env = {
        **os.environ,
        "BENCH_METHOD": variant.method,
        "BENCH_HEADER_NAME": next(iter(variant.headers), ""),
        "BENCH_HEADER_VALUE": next(iter(variant.headers.values()), ""),
        "BENCH_BODY": variant.body,
        "BENCH_POOL_PATH": "",
        "BENCH_ZIPF_S": "" if variant.zipf is None else str(variant.zipf),
        "BENCH_SEED": str(secrets.randbelow(2**31)),
    }
    pool = pool_for(variant, seconds)
    read_end = write_end = None
    if pool:
        read_end, write_end = os.pipe()
        env["BENCH_POOL_PATH"] = f"/dev/fd/{read_end}"
    duration = max(1, round(seconds))
    process = subprocess.Popen(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "5s", "-s", str(LUA_SCRIPT), url + variant.path],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        pass_fds=(read_end,) if read_end is not None else (),
    )
    writer = None
    if read_end is not None and write_end is not None and pool:
        os.close(read_end)
        lines = "".join(f"{entry.path} {entry.key}\n" for entry in pool).encode()

        def write() -> None:
            with os.fdopen(write_end, "wb") as pipe:
                try:
                    pipe.write(lines)
                except BrokenPipeError:
                    pass

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
    return process, writer


def wrk_figures(variant: Variant, process: subprocess.Popen, writer: threading.Thread | None, timeout: float) -> dict[str, Any]:
    stdout, stderr = process.communicate(timeout=timeout)
    if writer is not None:
        writer.join(timeout=5)
    line = next((ln for ln in stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise SystemExit(f"wrk gave no figures for {variant.id}: {stdout} {stderr}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    return {
        "rps": data["requests"] / (data["duration_us"] / 1e6),
        "p50_ms": data["p50_us"] / 1000,
        "p99_ms": data["p99_us"] / 1000,
        "non_2xx": data["non_2xx"] + data["socket_errors"],
        "requests": data["requests"],
    }


def run_wrk(url: str, variant: Variant, seconds: float, connections: int) -> dict[str, Any]:
    process, writer = start_wrk(url, variant, seconds, connections)
    return wrk_figures(variant, process, writer, timeout=max(1, round(seconds)) + 30)


def run_python_load(url: str, variant: Variant, seconds: float, connections: int) -> dict[str, Any]:
    """The bounded fallback when wrk is missing: keep-alive connections in threads, for `seconds`."""
    import http.client

    latencies: list[float] = []
    non_2xx = 0
    lock = threading.Lock()
    host, port = url.removeprefix("http://").split(":")
    deadline = time.perf_counter() + seconds

    def worker() -> None:
        nonlocal non_2xx
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        mine: list[float] = []
        bad = 0
        headers = dict(variant.headers)
        if variant.body:
            headers["Content-Type"] = "application/json"
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            conn.request(variant.method, variant.path, body=variant.body or None, headers=headers)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            bad += not (200 <= response.status < 300)
        conn.close()
        with lock:
            latencies.extend(mine)
            non_2xx += bad

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else 0.0  # noqa: E731
    return {"rps": len(latencies) / elapsed, "p50_ms": pick(0.50), "p99_ms": pick(0.99), "non_2xx": non_2xx, "requests": len(latencies)}


WARM_SLICE = 8_000  # keys handed to one wrk run of WARM_BURST_SECONDS (more than it serves cold)
WARM_BURST_SECONDS = 2


def warm_pool(url: str, variant: Variant, connections: int) -> None:
    """Serve every key of a pool once, in order: wrk runs for a fixed time, so a slice at a time, each starting
    where the last one got to."""
    assert variant.pool is not None
    served = 0
    while served < len(variant.pool):
        pool = variant.pool[served : served + WARM_SLICE]
        result = run_wrk(url, Variant(variant.id, variant.label, path=pool[0].path, pool=pool), WARM_BURST_SECONDS, connections)
        served += min(len(pool), max(1, result["requests"] - connections))  # the last few may still be in flight


def _cpu_ratio(base: dict[str, Any], measured: dict[str, Any]) -> float | None:
    """Baseline server CPU per request / the variant's; None where either is unknown."""
    if not (base["cpu_us"] and measured["cpu_us"]):
        return None
    return base["cpu_us"] / measured["cpu_us"]


def run_http(
    variants: list[Variant],
    servers: dict[str, Server],
    rounds: int,
    seconds: float,
    connections: int,
    *,
    warm_up: bool = True,
    count_at_servers: bool = True,
) -> dict[str, dict[str, Any]]:
    load = run_wrk if shutil.which("wrk") else run_python_load
    clock_ticks = os.sysconf("SC_CLK_TCK")
    by_id = {v.id: v for v in variants}

    def server_for(v: Variant) -> Server:
        return servers[v.server_name()]

    # Warm every worker's cache and connections: each row on its server, after the rows it is paired with there.
    warmed: set[tuple[str, str]] = set()
    for v in variants if warm_up else []:
        for row in (by_id[v.paired_with], v):
            if (v.server_name(), row.id) not in warmed:
                warmed.add((v.server_name(), row.id))
                load(server_for(v).url, row, 1, connections)

    def burst(v: Variant, beside: Variant) -> dict[str, Any]:
        # The baseline runs on its partner's server: the two bursts of a pair share the same worker processes.
        server = server_for(beside)
        before = server.worker_ticks()
        result = load(server.url, v, seconds, connections)
        after = server.worker_ticks()
        result["cpu_us"] = None
        if before is not None and after is not None and result["requests"]:
            # Workers in both snapshots only: one respawned mid-burst would bring its start-up with it.
            ticks = sum(after[pid] - before[pid] for pid in after.keys() & before.keys())
            result["cpu_us"] = ticks / clock_ticks / result["requests"] * 1e6
        return result

    for v in variants:  # the traffic's steady state for a pooled row (only once: entries live until a write)
        if v.pool and v.warm_passes and shutil.which("wrk"):
            passes = Variant(f"{v.id}-passes", "warm-up", path=v.pool[0].path, pool=v.pool * v.warm_passes)
            warm_pool(server_for(v).url, passes, connections)

    bursts, pairs = run_pairs(variants, rounds, burst)
    nothing_counted: dict[str, Any] = {"pg_per_request": None, "pg_kinds": {}, "redis_per_request": None, "redis_kinds": {}}
    counted = {
        v.id: count_round_trips(server_for(v), v, seconds, connections, load) if count_at_servers else nothing_counted
        for v in variants
    }
    return {
        v.id: {
            "rps": statistics.median(x["rps"] for x in bursts[v.id]),
            "p50_ms": statistics.median(x["p50_ms"] for x in bursts[v.id]),
            "p99_ms": statistics.median(x["p99_ms"] for x in bursts[v.id]),
            "non_2xx": sum(x["non_2xx"] for x in bursts[v.id]),
            "requests": sum(x["requests"] for x in bursts[v.id]),
            "cpu_us": median_of_known(x["cpu_us"] for x in bursts[v.id]),
            "ratio": statistics.median(measured["rps"] / base["rps"] for base, measured in pairs[v.id]),
            "cpu_ratio": median_of_known(_cpu_ratio(base, measured) for base, measured in pairs[v.id]),
            **counted[v.id],
        }
        for v in variants
    }


def _pg_statements(database: str) -> dict[str, int] | None:
    """Calls per statement text in the bench database, from pg_stat_statements; None where it is not loaded."""
    from bench.seed import admin_connection

    try:
        with admin_connection() as conn:
            rows = conn.execute(
                "SELECT query, calls FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s",
                [database],
            ).fetchall()
    except Exception:
        return None
    return {query: calls for query, calls in rows}


def _pg_reset() -> bool:
    from bench.seed import admin_connection

    try:
        with admin_connection() as conn:
            conn.execute("SELECT pg_stat_statements_reset()")
        return True
    except Exception:
        return False


def _redis_commands() -> dict[str, int]:
    from lib.redis_client import redis_client

    return {name.removeprefix("cmdstat_"): stats["calls"] for name, stats in redis_client().info("commandstats").items()}


def _short(statement: str) -> str:
    """A statement's first words, enough to tell the key lookup from the health check and a write."""
    text = " ".join(statement.split())
    if '"digest" = ' in text:
        return "key lookup"
    return text if len(text) <= 40 else text[:37] + "..."


def count_round_trips(server: Server, v: Variant, seconds: float, connections: int, load: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """One more burst, counted at the servers: PostgreSQL statements (pg_stat_statements, which also sees the
    connection health check that CaptureQueriesContext misses) and Redis commands (INFO commandstats), per request."""
    from django.conf import settings

    database = settings.DATABASES["default"]["NAME"]
    pg_on = _pg_reset()
    redis_before = _redis_commands()
    result = load(server.url, v, seconds, connections)
    redis_after = _redis_commands()
    statements = _pg_statements(database) if pg_on else None
    served = max(1, result["requests"])
    redis_calls = {name: calls - redis_before.get(name, 0) for name, calls in redis_after.items()}
    redis_calls["info"] = redis_calls.get("info", 1) - 1  # the second INFO above is ours
    redis_calls = {name: calls for name, calls in redis_calls.items() if calls > 0}
    figures: dict[str, Any] = {
        "redis_per_request": sum(redis_calls.values()) / served,
        "redis_kinds": {name: calls / served for name, calls in sorted(redis_calls.items(), key=lambda item: -item[1])},
        "pg_per_request": None,
        "pg_kinds": {},
    }
    if statements is not None:
        kinds: dict[str, int] = {}
        for statement, calls in statements.items():
            # Ours, and PostgreSQL's own foreign-key check inside an INSERT (no round trip of the client's).
            if "pg_stat_statements" in statement or statement.startswith("SELECT 1 FROM ONLY"):
                continue
            kinds[_short(statement)] = kinds.get(_short(statement), 0) + calls
        figures["pg_per_request"] = sum(kinds.values()) / served
        figures["pg_kinds"] = {name: calls / served for name, calls in sorted(kinds.items(), key=lambda item: -item[1])}
    return figures
