"""The HTTP harness: gunicorn serving bench.settings, loaded by wrk (or a Python fallback), with the workers' CPU time."""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.variants import BASELINE, Variant, median_of_known, run_pairs

BASE_DIR = Path(__file__).resolve().parent.parent
LUA_SCRIPT = BASE_DIR / "bench" / "wrk" / "request.lua"
GUNICORN_WORKERS = 2
GUNICORN_WORKER_CLASS = "gthread"
GUNICORN_THREADS = 1


def worker_connections(connections: int) -> int:
    """gunicorn's --worker-connections for `connections` client connections: each worker's fair share of them.

    Left at gunicorn's 1,000, a gthread worker took every connection it could, and in a third or more of
    the bursts all of wrk's landed on one worker while the other sat idle, halving that burst's req/s. Plus the
    serving threads: gunicorn keeps alive at most worker_connections - threads idle connections a worker.
    """
    return -(-connections // GUNICORN_WORKERS) + GUNICORN_THREADS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """gunicorn serving bench.settings on 127.0.0.1."""

    def __init__(self, env: dict[str, str], log_path: Path, connections: int) -> None:
        self.port = free_port()
        self.log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "backend.wsgi:application",
                "--bind", f"127.0.0.1:{self.port}",
                "--workers", str(GUNICORN_WORKERS),
                "--worker-class", GUNICORN_WORKER_CLASS,
                "--threads", str(GUNICORN_THREADS),
                "--worker-connections", str(worker_connections(connections)),
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


def run_wrk(url: str, variant: Variant, seconds: float, connections: int) -> dict[str, Any]:
    env = {
        **os.environ,
        "BENCH_METHOD": variant.method,
        "BENCH_HEADER_NAME": next(iter(variant.headers), ""),
        "BENCH_HEADER_VALUE": next(iter(variant.headers.values()), ""),
        "BENCH_BODY": variant.body,
    }
    duration = max(1, round(seconds))
    result = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "5s", "-s", str(LUA_SCRIPT), url + variant.path],
        env=env,
        capture_output=True,
        text=True,
        timeout=duration + 30,
    )
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise SystemExit(f"wrk gave no figures for {variant.id}: {result.stdout} {result.stderr}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    return {
        "rps": data["requests"] / (data["duration_us"] / 1e6),
        "p50_ms": data["p50_us"] / 1000,
        "p99_ms": data["p99_us"] / 1000,
        "non_2xx": data["non_2xx"] + data["socket_errors"],
        "requests": data["requests"],
    }


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


def _cpu_ratio(base: dict[str, Any], measured: dict[str, Any]) -> float | None:
    """Baseline server CPU per request / the variant's; None where either is unknown."""
    if not (base["cpu_us"] and measured["cpu_us"]):
        return None
    return base["cpu_us"] / measured["cpu_us"]


def run_http(
    variants: list[Variant], servers: dict[str, Server], rounds: int, seconds: float, connections: int
) -> dict[str, dict[str, Any]]:
    load = run_wrk if shutil.which("wrk") else run_python_load
    clock_ticks = os.sysconf("SC_CLK_TCK")

    def server_for(v: Variant) -> Server:
        return servers["cold" if v.cold else "main"]

    # Warm both workers' caches and connections; the baseline on both servers, as it runs beside the cold rows too.
    baseline = next(v for v in variants if v.id == BASELINE)
    for v, server in [(v, server_for(v)) for v in variants] + [(baseline, servers["cold"])]:
        load(server.url, v, 1, connections)

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

    bursts, pairs = run_pairs(variants, rounds, burst)
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
        }
        for v in variants
    }
