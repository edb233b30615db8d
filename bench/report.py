"""The Markdown report: the machine and settings, one table per scale, and the targets."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
from importlib import metadata

from bench.over_http import GUNICORN_THREADS, GUNICORN_WORKER_CLASS, GUNICORN_WORKERS, worker_connections
from bench.seed import RATE_LIMIT_ON
from bench.variants import BASELINE, Variant


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
            ("scoped-warm", 0.90),
            ("group-warm", 0.90),
            ("dep-warm-limit", 0.75),
        ):
            # The verdict takes the throughput ratios only; the CPU ratio is there to cross-check the HTTP one.
            measured = [inproc[vid]["ratio"]] + ([http[vid]["ratio"]] if http else [])
            lines.append(
                f"| `{vid}` ≥ {goal:.2f}× | {scale} | {inproc[vid]['ratio']:.2f} | "
                f"{_fmt(http[vid]['ratio'] if http else None, '.2f')} | {_fmt(http[vid]['cpu_ratio'] if http else None, '.2f')} | "
                f"{verdict(min(measured) >= goal)} |"
            )
        for vid, goal in (("dep-warm", 0), ("global-scope-warm", 0), ("scoped-warm", 0), ("group-warm", 0), ("junk", 0)):
            q = inproc[vid]["queries"]
            lines.append(f"| `{vid}` {goal} queries | {scale} | {q:.2f} | | | {verdict(round(q) == goal)} |")
        for vid in ("dep-cold", "global-scope-cold", "global-wide-cold", "group-cold"):
            q = inproc[vid]["queries"]
            lookups = inproc[vid]["query_kinds"].get("key", 0)
            lines.append(
                f"| `{vid}` 1 query (the key lookup) | {scale} | {q:.2f} | | | {verdict(round(q, 2) == round(lookups, 2) == 1)} |"
            )
    return lines
