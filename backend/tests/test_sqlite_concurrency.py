"""The embedded SQLite default takes concurrent writers without "database is locked"."""

import pytest

from backend.tests.subprocesses import clean_env, production_secret_key, run

pytestmark = pytest.mark.slow

# Each transaction reads, then writes: with SQLite's default DEFERRED
# transactions the read-to-write upgrade fails at once under contention,
# whatever the busy timeout. IMMEDIATE transactions queue instead.
CONCURRENT_WRITERS = """
import os, threading
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backend.settings")
import django
django.setup()
from django.db import connection, connections, transaction

with connection.cursor() as cursor:
    cursor.execute("CREATE TABLE counter (n integer)")
connection.close()
errors = []
start = threading.Barrier({threads})

def writer():
    start.wait()
    try:
        for _ in range({rounds}):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT COUNT(*) FROM counter")
                (count,) = cursor.fetchone()
                cursor.execute("INSERT INTO counter (n) VALUES (%s)", [count + 1])
    except Exception as exc:
        errors.append(repr(exc))
    finally:
        connections.close_all()

threads = [threading.Thread(target=writer) for _ in range({threads})]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
with connection.cursor() as cursor:
    cursor.execute("SELECT COUNT(*), COUNT(DISTINCT n) FROM counter")
    print(*cursor.fetchone(), len(errors), errors[:1])
"""


def test_concurrent_read_then_write_transactions_all_succeed(tmp_path):
    threads, rounds = 6, 40
    env = clean_env(SECRET_KEY=production_secret_key(), DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")

    result = run(["-c", CONCURRENT_WRITERS.format(threads=threads, rounds=rounds)], env=env)

    assert result.returncode == 0, result.stderr
    rows, distinct, errors, first_error = result.stdout.split(maxsplit=3)
    assert int(errors) == 0, first_error
    # Serialised transactions: every read saw every earlier write.
    assert int(rows) == int(distinct) == threads * rounds
