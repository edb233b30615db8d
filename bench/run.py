"""`make bench`: what a key check costs, against a no-auth baseline and djangorestframework-api-key.

    python -m bench.run [--size tiny|full] [--rounds N] [--requests N] [--http-seconds S] ...

Needs DATABASE_URL (PostgreSQL) and REDIS_URL, as scripts/with-services.sh
exports them. Creates its own database on that server, migrates and seeds it,
runs every variant in rounds, each burst right after a baseline burst of its
own, in two harnesses (in-process with Django's test client; over HTTP with
gunicorn and wrk, recording the workers' CPU time too), prints a Markdown
report and writes it to bench/results/latest.md, then drops the database.
No key is ever written to a file: wrk reads its header from the environment.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

BASE_DIR = Path(__file__).resolve().parent.parent
LUA_SCRIPT = BASE_DIR / "bench" / "wrk" / "request.lua"
DEFAULT_OUTPUT = BASE_DIR / "bench" / "results" / "latest.md"

RATE_LIMIT_ON = 1_000_000_000  # high enough never to answer 429: we measure the counting, not the refusal
SCOPE_SIZE = 1_000
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


SIZES: dict[str, dict[str, Any]] = {
    # keys in the tables x deployments in the organization, one table per scale; many short bursts rather than
    # a few long ones, so each ratio pairs two bursts close in time
    "full": {
        "scales": [(100, 1), (1_000_000, 10_000)],
        "rounds": 9,
        "requests": 200,
        "http_rounds": 7,
        "http_seconds": 1.0,
    },
    # tiny: an odd number of in-process rounds, so one burst that caught a full garbage collection is not the median
    "tiny": {"scales": [(100, 1), (300, 20)], "rounds": 3, "requests": 20, "http_rounds": 1, "http_seconds": 0.5},
}


# Variants --------------------------------------------------------------------


@dataclass
class Variant:
    id: str
    label: str
    method: str = "GET"
    path: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    cold: bool = False  # in-process: flush the verification cache before every request; HTTP: the cache-off server
    expected_status: int = 200
    peer: bool = False


BASELINE = "baseline"
VARIANT_IDS = [
    BASELINE,
    "dep-warm",
    "dep-warm-limit",
    "global-all-warm",
    "global-scope-warm",
    "dep-cold",
    "global-scope-cold",
    "global-wide-cold",
    "junk",
    "drf-api-key",
    "execute",
]


def build_variants(fixtures: dict[str, Any], peer: bool) -> list[Variant]:
    org, dep = fixtures["org_slug"], fixtures["deployment_slug"]
    scoped, wide = fixtures["scope_size"], fixtures["deployments_total"]
    guarded = f"/bench/keyscope/{org}/{dep}/"

    def bearer(name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {fixtures['keys'][name]}"}

    variants = [
        Variant(BASELINE, "no auth (baseline)", path=f"/bench/noauth/{org}/{dep}/"),
        Variant("dep-warm", "deployment key, warm, limit off", path=guarded, headers=bearer("dep")),
        Variant("dep-warm-limit", "deployment key, warm, Redis limit on", path=guarded, headers=bearer("dep_limit")),
        Variant("global-all-warm", "global allow_all key, warm, limit off", path=guarded, headers=bearer("global_all")),
        Variant(
            "global-scope-warm",
            f"global key, scope of {scoped:,} deployments, warm, limit off",
            path=guarded,
            headers=bearer("global_scope"),
        ),
        Variant("dep-cold", "deployment key, cache cold, limit off", path=guarded, headers=bearer("dep"), cold=True),
        Variant(
            "global-scope-cold",
            f"global key, scope of {scoped:,} deployments, cache cold, limit off",
            path=guarded,
            headers=bearer("global_scope"),
            cold=True,
        ),
        Variant(
            "global-wide-cold",
            f"global key, scope of all {wide:,} deployments, cache cold, limit off",
            path=guarded,
            headers=bearer("global_wide"),
            cold=True,
        ),
        Variant("junk", "junk key (bad checksum), 401", path=guarded, headers=bearer("junk"), expected_status=401),
    ]
    if peer:
        variants.append(
            Variant(
                "drf-api-key",
                "djangorestframework-api-key HasAPIKey",
                path="/bench/drf-api-key/",
                headers={"Authorization": f"Api-Key {fixtures['keys']['peer']}"},
                peer=True,
            )
        )
    variants.append(
        Variant(
            "execute",
            "POST execute, end to end (deployment key, warm, Execution insert)",
            method="POST",
            path=f"/api/v1/deployments/{org}/{dep}/execute/",
            headers=bearer("dep"),
            body="{}",
        )
    )
    return variants


T = TypeVar("T")


def run_pairs(
    variants: list[Variant], rounds: int, burst: Callable[[Variant, Variant], T]
) -> tuple[dict[str, list[T]], dict[str, list[tuple[T, T]]]]:
    """Each round, every variant but the baseline (order rotated per round) right after a baseline burst of its own.

    A ratio then compares two bursts a moment apart rather than a variant with a baseline up to a round
    away, so load from elsewhere on the machine, which comes and goes, hits both sides of it alike.
    `burst(variant, beside)` measures `variant` once; `beside` is the non-baseline variant of the pair.
    Returns each variant's bursts (the baseline's: all of them) and its (baseline, variant) pairs; the
    baseline is paired with itself, so its ratios come out 1.
    """
    baseline = next(v for v in variants if v.id == BASELINE)
    others = [v for v in variants if v is not baseline]
    bursts: dict[str, list[T]] = {v.id: [] for v in variants}
    pairs: dict[str, list[tuple[T, T]]] = {v.id: [] for v in variants}
    for r in range(rounds):
        shift = r % len(others)
        for v in others[shift:] + others[:shift]:
            base = burst(baseline, v)
            measured = burst(v, v)
            bursts[BASELINE].append(base)
            bursts[v.id].append(measured)
            pairs[BASELINE].append((base, base))
            pairs[v.id].append((base, measured))
    return bursts, pairs


def _median(values: Iterable[float | None]) -> float | None:
    """The median of the values there are; None when there are none (no CPU figures without /proc)."""
    known = [x for x in values if x is not None]
    return statistics.median(known) if known else None


# Database --------------------------------------------------------------------


def admin_connection():
    import psycopg

    return psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)


def create_database(name: str) -> None:
    with admin_connection() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    with admin_connection() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _expect_columns(model: Any, expected: list[str]) -> None:
    columns = [f.column for f in model._meta.concrete_fields]
    if sorted(columns) != sorted(expected):
        raise SystemExit(
            f"bench/run.py seeds {model._meta.db_table} with raw SQL and knows the columns {sorted(expected)}, "
            f"but the model now has {sorted(columns)}: update the seeding SQL."
        )


KEY_COMMON_COLUMNS = [
    "id", "name", "description", "digest", "last4", "is_active", "expires_at", "revoked_at", "last_used_at",
    "rate_limit_per_minute", "created_by_id", "modified_by_id", "created_at", "modified_at",
]  # fmt: skip


def seed(keys_total: int, deployments_total: int, peer: bool) -> dict[str, Any]:
    """Empty the app tables, then seed one organization, its deployments, the bench keys and filler keys."""
    from django.apps import apps
    from django.db import connection

    from deployments.models import Deployment
    from keys import crypto, verification_cache
    from keys.models import DeploymentKey, GlobalApiDeploymentKey
    from organizations.models import Organization

    labels = ["organizations", "deployments", "keys"] + (["rest_framework_api_key"] if peer else [])
    tables = [m._meta.db_table for label in labels for m in apps.get_app_config(label).get_models()]
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")

    started = time.perf_counter()
    org = Organization.objects.create(slug="bench", name="Bench")
    Deployment.objects.bulk_create(
        Deployment(organization=org, slug=f"d{i:05d}", name=f"Deployment {i}") for i in range(deployments_total)
    )
    deployments = list(Deployment.objects.filter(organization=org).order_by("slug"))
    target = deployments[0]
    phases = {"deployments": time.perf_counter() - started}
    scope = deployments[: min(SCOPE_SIZE, len(deployments))]

    keys: dict[str, str] = {}
    _, keys["dep"] = DeploymentKey.objects.issue(deployment=target, name="bench", rate_limit_per_minute=0)
    _, keys["dep_limit"] = DeploymentKey.objects.issue(
        deployment=target, name="bench-limit", rate_limit_per_minute=RATE_LIMIT_ON
    )
    _, keys["global_all"] = GlobalApiDeploymentKey.objects.issue(
        organization=org, name="bench-all", allow_all_deployments=True, rate_limit_per_minute=0
    )
    _, keys["global_scope"] = GlobalApiDeploymentKey.objects.issue(
        organization=org, name="bench-scope", deployments=scope, rate_limit_per_minute=0
    )
    _, keys["global_wide"] = GlobalApiDeploymentKey.objects.issue(
        organization=org, name="bench-wide", deployments=deployments, rate_limit_per_minute=0
    )
    # Well formed but for its checksum: refused before any query.
    valid = keys["dep"]
    keys["junk"] = valid[:-1] + ("0" if valid[-1] != "0" else "1")
    assert crypto.key_kind(keys["junk"]) is None

    phases["bench keys"] = time.perf_counter() - started - sum(phases.values())
    filler = max(0, keys_total - 5)
    filler_deployment_keys = filler // 2
    filler_global_keys = filler - filler_deployment_keys
    salt = secrets.token_hex(8)
    _expect_columns(DeploymentKey, [*KEY_COMMON_COLUMNS, "deployment_id"])
    _expect_columns(GlobalApiDeploymentKey, [*KEY_COMMON_COLUMNS, "organization_id", "allow_all_deployments"])
    common = ", ".join(KEY_COMMON_COLUMNS)
    # Random digests made by the server, inserted in digest order with ids and names in the same order:
    # every index grows at its end, so a million rows take seconds, with no round trip per row.
    filler_sql = (
        "INSERT INTO {table} ({common}, {extra_columns})"
        " SELECT (%(id_prefix)s || lpad(to_hex(rn), 20, '0'))::uuid, 'filler-' || lpad(rn::text, 9, '0'), '', digest,"
        " 'xxxx', true, NULL, NULL, NULL, NULL, NULL, NULL, now(), now(), {extra_values}"
        " FROM (SELECT row_number() OVER (ORDER BY digest) AS rn, digest FROM ("
        "   SELECT encode(sha256(convert_to(%(salt)s || '-' || i, 'UTF8')), 'hex') AS digest"
        "   FROM generate_series(1, %(n)s) AS i) AS raw) AS sorted"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            filler_sql.format(
                table=DeploymentKey._meta.db_table,
                common=common,
                extra_columns="deployment_id",
                extra_values="(%(ids)s::bigint[])[1 + rn %% %(count)s]",
            ),
            {
                "salt": salt + "d",
                "id_prefix": secrets.token_hex(6),
                "ids": [d.id for d in deployments],
                "count": len(deployments),
                "n": filler_deployment_keys,
            },
        )
        cursor.execute(
            filler_sql.format(
                table=GlobalApiDeploymentKey._meta.db_table,
                common=common,
                extra_columns="organization_id, allow_all_deployments",
                extra_values="%(org)s, true",
            ),
            {"salt": salt + "g", "id_prefix": secrets.token_hex(6), "org": org.id, "n": filler_global_keys},
        )
        phases["filler keys"] = time.perf_counter() - started - sum(phases.values())
        if peer:
            from rest_framework_api_key.models import APIKey

            _expect_columns(APIKey, ["id", "prefix", "hashed_key", "created", "name", "revoked", "expiry_date"])
            # Prefixes "~" + 7 hex digits, in order: never one the package makes (letters and digits only),
            # and the indexes grow at their end. The package looks keys up by prefix only, so the filler's
            # hash (never verified) is a short md5 to keep the seeding fast.
            cursor.execute(
                f"INSERT INTO {APIKey._meta.db_table} (id, prefix, hashed_key, created, name, revoked, expiry_date)"
                " SELECT p || '.' || h, p, h, now(), 'filler-' || i, false, NULL FROM ("
                "   SELECT i, '~' || lpad(to_hex(i), 7, '0') AS p, md5(%(salt)s || i) AS h"
                "   FROM generate_series(1, %(n)s) AS i) AS filler",
                {"salt": salt + "p", "n": max(0, keys_total - 1)},
            )
            _, keys["peer"] = APIKey.objects.create_key(name="bench")
            phases["peer keys"] = time.perf_counter() - started - sum(phases.values())
        cursor.execute("ANALYZE")
    seconds = time.perf_counter() - started
    phases["analyze"] = seconds - sum(phases.values())
    print("  seeding: " + ", ".join(f"{name} {t:.1f} s" for name, t in phases.items()), file=sys.stderr)
    verification_cache.flush()
    return {
        "org_slug": org.slug,
        "deployment_slug": target.slug,
        "scope_size": len(scope),
        "keys": keys,
        "keys_total": keys_total,
        "deployments_total": deployments_total,
        "seed_seconds": seconds,
        "filler": (filler_deployment_keys, filler_global_keys),
    }


# In-process harness ----------------------------------------------------------


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
    ("scope", ("keys_globalkeydeployment",)),
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
    out = __import__("io").StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(40)
    return out.getvalue()


# HTTP harness ----------------------------------------------------------------


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


def run_wrk(url: str, variant: Variant, seconds: float, connections: int) -> dict[str, float]:
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


def run_python_load(url: str, variant: Variant, seconds: float, connections: int) -> dict[str, float]:
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
            "cpu_us": _median(x["cpu_us"] for x in bursts[v.id]),
            "ratio": statistics.median(measured["rps"] / base["rps"] for base, measured in pairs[v.id]),
            "cpu_ratio": _median(_cpu_ratio(base, measured) for base, measured in pairs[v.id]),
        }
        for v in variants
    }


# Report ----------------------------------------------------------------------


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment_lines(args: argparse.Namespace, peer: bool) -> list[str]:
    from django.conf import settings
    from django.db import connection

    from keys import ratelimit

    cpu = "unknown"
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0]
    from lib.redis_client import redis_client

    redis_version = redis_client().info("server").get("redis_version", "?") if settings.REDIS_URL else "none"
    wrk = shutil.which("wrk")
    wrk_version = (
        subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.splitlines()[0].split(" [")[0] if wrk else None
    )
    db = settings.DATABASES["default"]
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"- Machine: {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()};"
        f" load average at start {load} (other work on the machine makes every figure noisy).",
        f"- Versions: Python {platform.python_version()}, Django {_version('Django')}, DRF {_version('djangorestframework')},"
        f" psycopg {_version('psycopg')}, gunicorn {_version('gunicorn')}, redis-py {_version('redis')},"
        f" PostgreSQL {pg_version}, Redis {redis_version}, djangorestframework-api-key {_version('djangorestframework-api-key')}"
        + ("" if peer else " (its row is left out)")
        + f", load generator {wrk_version or 'Python fallback (wrk not found)'}.",
        f"- Settings: CONN_MAX_AGE={db['CONN_MAX_AGE']}, CONN_HEALTH_CHECKS={db['CONN_HEALTH_CHECKS']}, DEBUG={settings.DEBUG},"
        f" KEYSCOPE_PREPARED_KEY_LOOKUP={settings.KEYSCOPE_PREPARED_KEY_LOOKUP} (the key lookup a prepared statement),"
        f" KEYSCOPE_VERIFICATION_CACHE_SECONDS={settings.KEYSCOPE_VERIFICATION_CACHE_SECONDS} (cold rows: flushed before"
        f" every request in-process, a second server with 0 over HTTP), KEYSCOPE_FAILED_AUTH_PER_MINUTE="
        f"{settings.KEYSCOPE_FAILED_AUTH_PER_MINUTE} (so junk keys measure the 401, not the 429), LOG_LEVEL={settings.LOG_LEVEL},"
        f" key rate limit on = {RATE_LIMIT_ON:,}/min (a Redis INCRBY+EXPIRE pipeline per lease of"
        f" {ratelimit.lease_size(RATE_LIMIT_ON)} requests: KEYSCOPE_RATELIMIT_LEASE_PERCENT="
        f"{settings.KEYSCOPE_RATELIMIT_LEASE_PERCENT}, KEYSCOPE_RATELIMIT_LEASE_MAX={settings.KEYSCOPE_RATELIMIT_LEASE_MAX}),"
        " off = 0 (unlimited, no Redis call).",
        "- Pairs: each round, every variant but the baseline (order rotated each round) runs one burst right after"
        " a baseline burst of its own, and its ratios are medians over rounds of the ratio to that adjacent baseline"
        " burst; the baseline's own figures are medians over all its bursts.",
        f"- In-process: django.test.Client, {args.rounds} rounds x {args.requests} requests a burst; µs = median over"
        " rounds of the burst's mean; ratio = adjacent baseline µs / variant µs; queries counted with"
        " CaptureQueriesContext over separate requests.",
        f"- HTTP: gunicorn, {GUNICORN_WORKERS} workers, {GUNICORN_WORKER_CLASS} with {GUNICORN_THREADS} thread and at most"
        f" {worker_connections(args.connections)} connections each (so the workers share the client's), keep-alive,"
        f" on 127.0.0.1; {'wrk -t1' if wrk else 'Python load generator'} with {args.connections} connections,"
        f" {args.http_rounds} rounds x {max(1, round(args.http_seconds)) if wrk else args.http_seconds} s a burst;"
        " req/s, p50 and p99 are medians over rounds; ratio = variant req/s / adjacent baseline req/s. Server CPU ="
        " utime + stime of the gunicorn workers (/proc) over the burst / requests served (not PostgreSQL's, Redis'"
        " or the load generator's); its ratio = adjacent baseline CPU/req / variant CPU/req.",
    ]


def _fmt(value: float | None, pattern: str) -> str:
    return "n/a" if value is None else format(value, pattern)


def scale_table(variants: list[Variant], inproc: dict, http: dict | None) -> list[str]:
    lines = [
        "| variant | in-process µs/req | +µs vs baseline | × baseline (in-process) | queries/req | HTTP req/s"
        " | × baseline (HTTP) | server CPU µs/req | × baseline (CPU) | p50 ms | p99 ms | non-2xx |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    base_us = inproc[BASELINE]["us"]
    for v in variants:
        i = inproc[v.id]
        kinds = ", ".join(f"{kind} {count:g}" for kind, count in i["query_kinds"].items())
        queries = f"{i['queries']:.2f}" + (f" ({kinds})" if kinds else "")
        h = (http or {}).get(v.id)
        lines.append(
            f"| `{v.id}` {v.label} | {i['us']:.0f} | {i['us'] - base_us:+.0f} | {i['ratio']:.2f} | {queries} | "
            f"{_fmt(h and h['rps'], '.0f')} | {_fmt(h and h['ratio'], '.2f')} | {_fmt(h and h['cpu_us'], '.0f')} | "
            f"{_fmt(h and h['cpu_ratio'], '.2f')} | {_fmt(h and h['p50_ms'], '.2f')} | "
            f"{_fmt(h and h['p99_ms'], '.2f')} | {h['non_2xx'] if h else 'n/a'}"
            f"{' (of ' + str(h['requests']) + ')' if h and h['non_2xx'] else ''} |"
        )
    return lines


def targets_lines(scales: list[tuple[dict, dict, dict | None]]) -> list[str]:
    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    lines = [
        "| target | scale | in-process | HTTP | HTTP CPU | verdict |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for fixtures, inproc, http in scales:
        count = fixtures["deployments_total"]
        scale = f"{fixtures['keys_total']:,} keys, {count:,} deployment{'s' if count != 1 else ''}"
        for vid, goal in (
            ("dep-warm", 0.90),
            ("global-all-warm", 0.90),
            ("global-scope-warm", 0.90),
            ("dep-warm-limit", 0.75),
        ):
            # The verdict takes the throughput ratios only; the CPU ratio is there to cross-check the HTTP one.
            measured = [inproc[vid]["ratio"]] + ([http[vid]["ratio"]] if http else [])
            lines.append(
                f"| `{vid}` ≥ {goal:.2f}× | {scale} | {inproc[vid]['ratio']:.2f} | "
                f"{_fmt(http and http[vid]['ratio'], '.2f')} | {_fmt(http and http[vid]['cpu_ratio'], '.2f')} | "
                f"{verdict(min(measured) >= goal)} |"
            )
        for vid, goal in (("dep-warm", 0), ("global-scope-warm", 0), ("junk", 0)):
            q = inproc[vid]["queries"]
            lines.append(f"| `{vid}` {goal} queries | {scale} | {q:.2f} | | | {verdict(round(q) == goal)} |")
        for vid in ("dep-cold", "global-scope-cold", "global-wide-cold"):
            q = inproc[vid]["queries"]
            lookups = inproc[vid]["query_kinds"].get("key", 0)
            lines.append(
                f"| `{vid}` 1 query (the key lookup) | {scale} | {q:.2f} | | | {verdict(round(q, 2) == round(lookups, 2) == 1)} |"
            )
    return lines


# Main ------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = os.environ.get("BENCH_SIZE", "full")
    parser.add_argument("--size", choices=sorted(SIZES), default=size, help="preset (env BENCH_SIZE; default full)")
    parser.add_argument("--scales", default=os.environ.get("BENCH_SCALES"), help='"KEYSxDEPLOYMENTS,..." (env BENCH_SCALES)')
    parser.add_argument(
        "--rounds", type=int, default=os.environ.get("BENCH_ROUNDS"), help="in-process, and HTTP unless --http-rounds"
    )
    parser.add_argument("--requests", type=int, default=os.environ.get("BENCH_REQUESTS"), help="in-process, per burst")
    parser.add_argument("--http-rounds", type=int, default=os.environ.get("BENCH_HTTP_ROUNDS"))
    parser.add_argument("--http-seconds", type=float, default=os.environ.get("BENCH_HTTP_SECONDS"), help="per burst")
    parser.add_argument("--connections", type=int, default=int(os.environ.get("BENCH_CONNECTIONS", "4")))
    parser.add_argument("--no-http", action="store_true", default=os.environ.get("BENCH_HTTP", "1") == "0")
    parser.add_argument("--no-peer", action="store_true", default=os.environ.get("BENCH_PEER", "1") == "0")
    parser.add_argument("--profile", default=os.environ.get("BENCH_PROFILE"), help="a variant id to profile with cProfile")
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE_NAME", "keyscope_bench"))
    parser.add_argument("--output", default=os.environ.get("BENCH_OUTPUT", str(DEFAULT_OUTPUT)))
    args = parser.parse_args(argv)
    preset = SIZES[args.size]
    args.http_rounds = args.http_rounds or args.rounds or preset["http_rounds"]  # --rounds alone sets both harnesses
    args.rounds = args.rounds or preset["rounds"]
    args.requests = args.requests or preset["requests"]
    args.http_seconds = args.http_seconds or preset["http_seconds"]
    if args.scales:
        args.scale_list = [tuple(int(n) for n in item.split("x")) for item in args.scales.split(",")]
    else:
        args.scale_list = preset["scales"]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        print("make bench needs PostgreSQL: run it as `make bench` (scripts/with-services.sh), or set DATABASE_URL.", file=sys.stderr)
        return 2
    # Settings for this process and the gunicorn servers; a throwaway secret, never written anywhere.
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    os.environ["BENCH_DATABASE_NAME"] = args.database
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    os.environ.setdefault("KEYSCOPE_FAILED_AUTH_PER_MINUTE", "1000000000")
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    sys.path.insert(0, str(BASE_DIR))

    create_database(args.database)
    servers: dict[str, Server] = {}
    try:
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command
        from django.db import connections

        peer = settings.BENCH_PEER_INSTALLED and not args.no_peer
        call_command("migrate", verbosity=0)
        report = ["# keyscope: the cost of a key check", ""]
        notes = []
        if not peer:
            notes.append("djangorestframework-api-key is not installed (or BENCH_PEER=0): its row is left out.")
            print("note: " + notes[-1], file=sys.stderr)
        report += environment_lines(args, peer) + [f"- Note: {n}" for n in notes] + [""]
        measured = []
        profiles = []
        for keys_total, deployments_total in args.scale_list:
            print(f"seeding {keys_total:,} keys and {deployments_total:,} deployments ...", file=sys.stderr, flush=True)
            fixtures = seed(keys_total, deployments_total, peer)
            variants = build_variants(fixtures, peer)
            print(f"  seeded in {fixtures['seed_seconds']:.1f} s; in-process harness ...", file=sys.stderr, flush=True)
            inproc = run_inprocess(variants, args.rounds, args.requests)
            if args.profile:
                profiles.append(profile_variant(variants, args.profile, max(args.requests, 500)))
            http = None
            if not args.no_http:
                print("  HTTP harness ...", file=sys.stderr, flush=True)
                connections.close_all()
                env = dict(os.environ)
                servers["main"] = Server(
                    env, Path(os.environ.get("TMPDIR", "/tmp")) / f"{args.database}-main.log", args.connections
                )
                servers["cold"] = Server(
                    {**env, "KEYSCOPE_VERIFICATION_CACHE_SECONDS": "0"},
                    Path(os.environ.get("TMPDIR", "/tmp")) / f"{args.database}-cold.log",
                    args.connections,
                )
                try:
                    http = run_http(variants, servers, args.http_rounds, args.http_seconds, args.connections)
                finally:
                    for server in servers.values():
                        server.stop()
                    servers.clear()
            d_filler, g_filler = fixtures["filler"]
            report += [
                f"## {keys_total:,} keys, {deployments_total:,} deployment{'s' if deployments_total != 1 else ''} in the organization",
                "",
                f"Seeded in {fixtures['seed_seconds']:.1f} s: {d_filler + 2:,} deployment keys and {g_filler + 2:,} global"
                f" keys (random digests){', and as many djangorestframework-api-key keys' if peer else ''}.",
                "",
                *scale_table(variants, inproc, http),
                "",
            ]
            measured.append((fixtures, inproc, http))
        report += ["## Targets (issue 8)", "", *targets_lines(measured), ""]
        text = "\n".join(report)
        print(text)
        for profile in profiles:
            print(profile, file=sys.stderr)
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
        print(f"written to {output}", file=sys.stderr)
        connections.close_all()
        return 0
    finally:
        for server in servers.values():
            server.stop()
        try:
            from django.db import connections as _connections

            _connections.close_all()
        except Exception:
            pass
        drop_database(args.database)


if __name__ == "__main__":
    sys.exit(main())
