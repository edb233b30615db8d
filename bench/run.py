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
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from bench.in_process import profile_variant, run_inprocess
from bench.over_http import Server, run_http
from bench.report import environment_lines, phase_lines, round_trip_lines, scale_table, targets_lines, traffic_lines
from bench.seed import GROUPS, create_database, drop_database, seed
from bench.traffic import memory_at, revocation_under_load
from bench.variants import BASELINE, SAME_AGAIN, build_variants

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = BASE_DIR / "bench" / "results" / "latest.md"

SIZES: dict[str, dict[str, Any]] = {
    # keys in the tables x deployments in the organization, one table per scale; many short bursts rather than
    # a few long ones, so each ratio pairs two bursts close in time
    "full": {
        "scales": [(100, 1), (1_000_000, 10_000)],
        "rounds": 9,
        "requests": 200,
        "http_rounds": 7,
        "http_seconds": 1.0,
        "mixed_keys": 10_000,
        "memory_keys": [10_000, 100_000],
    },
    # tiny: an odd number of in-process rounds, so one burst that caught a full garbage collection is not the median
    "tiny": {
        "scales": [(100, 1), (300, 20)],
        "rounds": 3,
        "requests": 20,
        "http_rounds": 1,
        "http_seconds": 0.5,
        "mixed_keys": 100,
        "memory_keys": [100, 150],
    },
}


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
    parser.add_argument(
        "--groups",
        type=int,
        default=int(os.environ.get("BENCH_GROUPS", GROUPS)),
        help=f"groups bound to the group rows' key (env BENCH_GROUPS; default {GROUPS})",
    )
    parser.add_argument("--no-http", action="store_true", default=os.environ.get("BENCH_HTTP", "1") == "0")
    parser.add_argument("--no-peer", action="store_true", default=os.environ.get("BENCH_PEER", "1") == "0")
    parser.add_argument(
        "--only",
        default=os.environ.get("BENCH_ONLY", ""),
        help="comma-separated row ids to run, beside the baseline (and execute-noauth for execute); no memory measurement",
    )
    parser.add_argument("--profile", default=os.environ.get("BENCH_PROFILE"), help="a variant id to profile with cProfile")
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE_NAME", "keyscope_bench"))
    parser.add_argument("--output", default=os.environ.get("BENCH_OUTPUT", str(DEFAULT_OUTPUT)))
    args = parser.parse_args(argv)
    preset = SIZES[args.size]
    args.http_rounds = args.http_rounds or args.rounds or preset["http_rounds"]  # --rounds alone sets both harnesses
    args.rounds = args.rounds or preset["rounds"]
    args.requests = args.requests or preset["requests"]
    args.http_seconds = args.http_seconds or preset["http_seconds"]
    args.mixed_keys = preset["mixed_keys"]
    args.memory_keys = preset["memory_keys"]
    if args.scales:
        args.scale_list = [tuple(int(n) for n in item.split("x")) for item in args.scales.split(",")]
    else:
        args.scale_list = preset["scales"]
    return args


def _logs_to_stderr() -> None:
    """This process logs at the servers' level, but its stdout is the report: log lines go to stderr, and the
    bench's own HTTP client (httpx, a line per request at INFO) only says what goes wrong."""
    import logging

    for logger in (logging.getLogger(), logging.getLogger("django")):
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
                handler.setStream(sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)


def only_rows(variants: list[Any], only: str) -> list[Any]:
    """The rows BENCH_ONLY names, with the baseline every ratio needs, its noise (`baseline-again`) and
    `execute`'s own baseline."""
    wanted = {name.strip() for name in only.split(",") if name.strip()} | {BASELINE, SAME_AGAIN}
    if "execute" in wanted:
        wanted.add("execute-noauth")
    unknown = wanted - {v.id for v in variants}
    if unknown:
        raise SystemExit(f"BENCH_ONLY names no such row: {', '.join(sorted(unknown))} (rows: {', '.join(v.id for v in variants)})")
    return [v for v in variants if v.id in wanted]


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
    os.environ.setdefault("LOG_LEVEL", "INFO")  # the product's default: what a refused key logs is part of its cost
    sys.path.insert(0, str(BASE_DIR))

    create_database(args.database)
    servers: dict[str, Server] = {}
    try:
        import django

        django.setup()
        _logs_to_stderr()
        from django.conf import settings
        from django.core.management import call_command
        from django.db import connections

        peer = getattr(settings, "BENCH_PEER_INSTALLED", False) and not args.no_peer
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
            fixtures = seed(
                keys_total, deployments_total, peer, groups=args.groups, population=max(args.mixed_keys, *args.memory_keys)
            )
            fixtures["mixed_keys"] = args.mixed_keys
            variants = build_variants(fixtures, peer)
            if args.only:
                variants = only_rows(variants, args.only)
            print(f"  seeded in {fixtures['seed_seconds']:.1f} s; in-process harness ...", file=sys.stderr, flush=True)
            inproc = run_inprocess(variants, args.rounds, args.requests)
            if args.profile:
                profiles.append(profile_variant(variants, args.profile, max(args.requests, 500)))
            http = None
            traffic: dict[str, Any] = {}
            if not args.no_http:
                print("  HTTP harness ...", file=sys.stderr, flush=True)
                connections.close_all()
                env = dict(os.environ)
                logs = Path(os.environ.get("TMPDIR", "/tmp"))
                for v in variants:  # one server per distinct settings: the main one, the cache-off one, ...
                    if v.server_name() not in servers:
                        servers[v.server_name()] = Server(
                            {**env, **v.server_env()}, logs / f"{args.database}-{len(servers)}.log", args.connections
                        )
                try:
                    # The round trips, the revocation and memory at the last (largest) scale only; tiny runs skip the warm-up.
                    last = (keys_total, deployments_total) == args.scale_list[-1]
                    http = run_http(
                        variants,
                        servers,
                        args.http_rounds,
                        args.http_seconds,
                        args.connections,
                        warm_up=args.size != "tiny",
                        count_at_servers=last,
                    )
                finally:
                    for server in servers.values():
                        server.stop()
                    servers.clear()
                mixed = next((v for v in variants if v.id == "mixed"), None)
                if mixed is not None and last:
                    print("  revocation under the mixed load ...", file=sys.stderr, flush=True)
                    traffic["revocation"] = revocation_under_load(env, logs / f"{args.database}-revoke.log", mixed, args.connections)
                if last and not args.only and len(fixtures["population"]) >= args.memory_keys[0]:
                    print("  memory as keys pile up ...", file=sys.stderr, flush=True)
                    traffic["memory"] = memory_at(
                        env, logs / f"{args.database}-memory.log", fixtures["population"], args.memory_keys, args.connections
                    )
                connections.close_all()
            d_filler, g_filler = fixtures["filler"]
            report += [
                f"## {keys_total:,} keys, {deployments_total:,} deployment{'s' if deployments_total != 1 else ''} in the organization",
                "",
                f"Seeded in {fixtures['seed_seconds']:.1f} s: {d_filler + 3:,} deployment keys and {g_filler + 4:,} global"
                f" keys (random digests){', and as many djangorestframework-api-key keys' if peer else ''}.",
                "",
                *scale_table(variants, inproc, http),
                "",
                *phase_lines(variants, inproc),
                *round_trip_lines(variants, http),
                *traffic_lines(traffic),
            ]
            measured.append((fixtures, inproc, http, traffic))
        report += ["## Targets", "", *targets_lines(measured), ""]
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
