"""What one cold key lookup costs against how long the process was busy before it.

    scripts/with-services.sh .venv/bin/python -m bench.round_trip_gap

The cold rows' misses are explained by it: on a virtual machine, a database
server that sat idle while the worker computed wakes up slowly, so the same
prepared lookup that takes a few hundred microseconds back to back takes
several times that after a millisecond or two of the worker's own work (a
request's), and no code in the worker can shorten that. The script migrates
the throwaway database it is given, then times the lookup of a digest no key
has (the statement and plan a cold request runs), after busy gaps of 0 to
1,500 microseconds, and `SELECT 1` beside it. It prints medians over 2,000
lookups per gap; compare gaps within one run only.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable


def _spin(microseconds: float) -> None:
    end = time.perf_counter() + microseconds / 1e6
    while time.perf_counter() < end:
        pass


def _median_us(run: Callable[[], object], gap: float, times: int = 2000) -> float:
    samples = []
    for _ in range(times):
        _spin(gap)
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e6


def main() -> int:
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        print("run it under scripts/with-services.sh (it needs PostgreSQL)", file=sys.stderr)
        return 2
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")
    os.environ.setdefault("SECRET_KEY", "round-trip-gap-only")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from keys.lookup import LOOKUPS

    call_command("migrate", verbosity=0)
    lookup = LOOKUPS["deployment"]
    absent = "0" * 64
    connection.ensure_connection()
    cursor = connection.connection.cursor()

    def select_one() -> object:
        cursor.execute("SELECT 1")
        return cursor.fetchone()

    print("| busy gap before it (µs) | cold key lookup (µs, median) | SELECT 1 (µs, median) |")
    print("| ---: | ---: | ---: |")
    for gap in (0, 100, 300, 700, 1500):
        looked = _median_us(lambda: lookup.run(absent, "bench-deployment"), gap)
        print(f"| {gap} | {looked:.0f} | {_median_us(select_one, gap):.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
