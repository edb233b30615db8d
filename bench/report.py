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
from bench.variants import BASELINE, SAME_AGAIN, Variant


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
    wrk_version = subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.splitlines()[0].split(" [")[0] if wrk else None
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


def _kinds(kinds: dict[str, float], top: int = 4) -> str:
    shown = [f"{name} {count:.2f}" for name, count in list(kinds.items())[:top] if count >= 0.005]
    return f" ({', '.join(shown)})" if shown else ""


def scale_table(variants: list[Variant], inproc: dict, http: dict | None) -> list[str]:
    lines = [
        "| variant | in-process µs/req | +µs vs baseline | × baseline (in-process) | queries/req | HTTP req/s"
        " | × baseline (HTTP) | server CPU µs/req | × baseline (CPU) | p50 ms | p99 ms | non-2xx"
        " | PostgreSQL statements/req (server) | Redis commands/req |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for v in variants:
        i = inproc[v.id]
        kinds = ", ".join(f"{kind} {count:g}" for kind, count in i["query_kinds"].items())
        queries = f"{i['queries']:.2f}" + (f" ({kinds})" if kinds else "")
        h = (http or {}).get(v.id)
        label = v.label + ("" if v.paired_with == BASELINE else f" [× against `{v.paired_with}`]")
        lines.append(
            f"| `{v.id}` {label} | {i['us']:.0f} | {i['us'] - inproc[v.paired_with]['us']:+.0f} | {i['ratio']:.2f} | {queries} | "
            f"{_fmt(h and h['rps'], '.0f')} | {_fmt(h and h['ratio'], '.2f')} | {_fmt(h and h['cpu_us'], '.0f')} | "
            f"{_fmt(h and h['cpu_ratio'], '.2f')} | {_fmt(h and h['p50_ms'], '.2f')} | "
            f"{_fmt(h and h['p99_ms'], '.2f')} | {h['non_2xx'] if h else 'n/a'}"
            f"{' (of ' + str(h['requests']) + ')' if h and h['non_2xx'] else ''} | "
            f"{_fmt(h and h['pg_per_request'], '.2f')} | {_fmt(h and h['redis_per_request'], '.2f')} |"
        )
    return lines


def phase_lines(variants: list[Variant], inproc: dict) -> list[str]:
    """Where each row's in-process time goes (bench/phases.py): the key check's phases, and what is in none."""
    from bench.phases import PHASES

    lines = [
        "Where the time goes, in-process (bench/phases.py: perf_counter around each phase, separate bursts;"
        " µs per request, medians over rounds). `+µs` is the row's cost over its baseline in these bursts;"
        " `database` is part of `authenticate`; `other` is the part of `+µs` in no phase (the framework's"
        " work outside them, and noise):",
        "",
        "| variant | µs/req | +µs | " + " | ".join(PHASES) + " | other |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in PHASES) + " | ---: |",
    ]
    for v in variants:
        p = inproc[v.id]["phases"]
        cells = " | ".join(f"{p[name]:.0f}" if p[name] >= 0.5 else "" for name in PHASES)
        lines.append(f"| `{v.id}` | {p['whole']:.0f} | {p['over']:+.0f} | {cells} | {p['other']:+.0f} |")
    return [*lines, ""]


def round_trip_lines(variants: list[Variant], http: dict | None) -> list[str]:
    """What each row's requests cost PostgreSQL and Redis, counted at the servers over one more burst."""
    if not http or all(h["redis_per_request"] is None for h in http.values()):
        return []
    lines = [
        "Round trips counted at the servers over one more burst of each row, per request: PostgreSQL statements"
        " (pg_stat_statements in the bench database, which also sees the connection health check that"
        " CaptureQueriesContext misses) and Redis commands (INFO commandstats):",
        "",
    ]
    for v in variants:
        h = http[v.id]
        pg = "n/a (pg_stat_statements not loaded)" if h["pg_per_request"] is None else f"{h['pg_per_request']:.2f}{_kinds(h['pg_kinds'])}"
        lines.append(f"- `{v.id}`: PostgreSQL {pg}; Redis {_fmt(h['redis_per_request'], '.2f')}{_kinds(h['redis_kinds'])}")
    return [*lines, ""]


def traffic_lines(traffic: dict) -> list[str]:
    lines: list[str] = []
    revocation = traffic.get("revocation")
    if revocation:
        each = []
        for r in revocation["results"]:
            times = ", ".join(f"{t * 1000:.0f} ms" for t in sorted(r["refused"].values()))
            each.append(f"{len(r['refused'])} of {r['workers']} workers refused it after {times or 'never'}")
        worst = revocation["worst_seconds"]
        lines += [
            f"Revocation under the mixed load (wrk at {revocation['rps']:.0f} req/s on a 2-worker server of its own; the"
            f" {len(revocation['results'])} hottest keys revoked one after the other by the bench process, through"
            " `key_revoke`, while every worker had them cached; probes on new connections until each worker refused):"
            f" worst {'not every worker refused within 5 s' if worst is None else f'{worst * 1000:.0f} ms'}"
            f" ({'; '.join(each)}).",
            "",
        ]
    memory = traffic.get("memory")
    if memory:
        empty = memory[0]
        lines += [
            "Memory: one worker (its own server) serves each of the first N keys of the known population once;"
            " then its verification cache's entries and its resident memory:",
            "",
            "| active keys served | cache entries | worker RSS | RSS over the empty cache | per key |",
            "| ---: | ---: | ---: | ---: | ---: |",
        ]
        for m in memory:
            grown = m["rss_kb"] - empty["rss_kb"]
            per_key = f"{grown * 1024 / m['keys']:.0f} B" if m["keys"] else ""
            lines.append(f"| {m['keys']:,} | {m['entries']:,} | {m['rss_kb'] / 1024:.1f} MiB | {grown / 1024:+.1f} MiB | {per_key} |")
        lines.append("")
    return lines


# (row, goal): throughput ratios, the worse of the two harnesses'; the CPU ratio is shown to cross-check the HTTP one.
THROUGHPUT_TARGETS = (
    ("dep-warm", 0.90),
    ("global-all-warm", 0.90),
    ("global-scope-warm", 0.90),
    ("scoped-warm", 0.90),
    ("group-warm", 0.90),
    ("dep-warm-limit", 0.75),
    ("mixed", 0.85),
    ("junk", 0.85),
    ("unknown", 0.85),
    ("junk-throttled", 0.90),
    ("dep-cold", 0.60),
    ("global-scope-cold", 0.60),
    ("global-wide-cold", 0.60),
    ("group-cold", 0.60),
    ("execute", 0.90),
)
ZERO_QUERY_ROWS = ("dep-warm", "global-scope-warm", "scoped-warm", "group-warm", "junk", "junk-throttled", "unknown")
COLD_ROWS = ("dep-cold", "global-scope-cold", "global-wide-cold", "group-cold")


def targets_lines(scales: list[tuple[dict, dict, dict | None, dict]]) -> list[str]:
    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    lines = [
        "| target | scale | in-process | HTTP | HTTP CPU | verdict |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for fixtures, inproc, http, traffic in scales:
        count = fixtures["deployments_total"]
        scale = f"{fixtures['keys_total']:,} keys, {count:,} deployment{'s' if count != 1 else ''}"
        for vid, goal in THROUGHPUT_TARGETS:
            if vid not in inproc:
                continue
            against = " (against `execute-noauth`)" if vid == "execute" else ""
            measured = [inproc[vid]["ratio"]] + ([http[vid]["ratio"]] if http else [])
            lines.append(
                f"| `{vid}` ≥ {goal:.2f}×{against} | {scale} | {inproc[vid]['ratio']:.2f} | "
                f"{_fmt(http[vid]['ratio'] if http else None, '.2f')} | {_fmt(http[vid]['cpu_ratio'] if http else None, '.2f')} | "
                f"{verdict(min(measured) >= goal)} |"
            )
        for vid in ZERO_QUERY_ROWS:
            if vid not in inproc:
                continue
            q = inproc[vid]["queries"]
            server = http[vid]["pg_per_request"] if http else None
            ok = round(q) == 0 and (server is None or round(server) == 0)
            lines.append(
                f"| `{vid}` 0 queries (in-process; HTTP: statements at the server) | {scale} | {q:.2f} |"
                f" {_fmt(server, '.2f')} | | {verdict(ok)} |"
            )
        for vid in COLD_ROWS:
            if vid not in inproc:
                continue
            q = inproc[vid]["queries"]
            lookups = inproc[vid]["query_kinds"].get("key", 0)
            server = http[vid]["pg_per_request"] if http else None
            # At the server: the lookup once per request; the workers' own bookkeeping (stamp reads, usage
            # flushes, a health check after an idle second) is per worker and second, a few hundredths here.
            at_server = http[vid]["pg_kinds"].get("key lookup") if http else None
            ok = round(q, 2) == round(lookups, 2) == 1 and (server is None or (round(at_server or 0, 1) == 1 and server < 1.15))
            lines.append(
                f"| `{vid}` 1 query, the key lookup (in-process); 1 lookup at the server, < 1.15 statements in all (HTTP)"
                f" | {scale} | {q:.2f} | {_fmt(server, '.2f')} | | {verdict(ok)} |"
            )
        if SAME_AGAIN in inproc:
            noise = [abs(inproc[SAME_AGAIN]["ratio"] - 1)] + ([abs(http[SAME_AGAIN]["ratio"] - 1)] if http else [])
            lines.append(
                f"| `{SAME_AGAIN}` (no target: identical requests, so how far a ratio strays by noise; worst"
                f" {max(noise):.2f}) | {scale} | {inproc[SAME_AGAIN]['ratio']:.2f} |"
                f" {_fmt(http[SAME_AGAIN]['ratio'] if http else None, '.2f')} |"
                f" {_fmt(http[SAME_AGAIN]['cpu_ratio'] if http else None, '.2f')} | |"
            )
        revocation = traffic.get("revocation")
        if revocation:
            worst = revocation["worst_seconds"]
            lines.append(
                f"| revocation refused by every worker within 1 s, under the mixed load (worst of {len(revocation['results'])}) | {scale} |"
                f" | {'never' if worst is None else f'{worst * 1000:.0f} ms'} | | {verdict(worst is not None and worst <= 1.0)} |"
            )
    return lines
