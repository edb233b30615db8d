"""Concurrent rotations of one key are serialized: each returns a key, only the last one works."""

import threading

import pytest
from django.db import connection, connections

from keys import crypto
from keys.models import AuditEvent, RetiredSecret
from keys.services import key_rotate
from keys.tests.factories import issue_deployment_key, issue_global_key
from keys.tests.helpers import assert_error, execute

ROTATIONS = 8


def rotate_concurrently(row, count: int) -> list[str]:
    """`count` threads, each with its own database connection, rotate `row` at the same moment."""
    barrier = threading.Barrier(count)
    results: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def rotate() -> None:
        try:
            key = type(row).objects.get(pk=row.pk)  # each thread's own stale copy
            barrier.wait(timeout=30)
            _, full_key = key_rotate(key=key, actor=None)
            with lock:
                results.append(full_key)
        except BaseException as exc:  # noqa: BLE001 - reported in the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=rotate) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads)
    return results


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", ["deployment", "global"])
def test_concurrent_rotations_leave_exactly_one_working_new_key(client, org_a, deployment_a1, kind):
    if connection.vendor != "postgresql":
        pytest.skip("row locks (select_for_update) are PostgreSQL's; SQLite serializes writers on its own")
    if kind == "deployment":
        row, original = issue_deployment_key(deployment_a1, name="raced")
    else:
        row, original = issue_global_key(org_a, name="raced", allow_all_deployments=True)

    new_keys = rotate_concurrently(row, ROTATIONS)

    assert len(new_keys) == ROTATIONS
    assert len(set(new_keys)) == ROTATIONS
    assert all(crypto.key_kind(key) == kind for key in new_keys)
    stored = type(row).objects.get(pk=row.pk)
    (winner,) = [key for key in new_keys if crypto.digest(key) == stored.digest]
    # Serialized: every rotation retired the secret the one before it made.
    assert RetiredSecret.objects.filter(key_id=row.pk).count() == ROTATIONS
    assert AuditEvent.objects.filter(key_id=row.pk, action="rotated").count() == ROTATIONS

    responses = {key: execute(client, "org-a", "a-one", key) for key in [original, *new_keys]}
    working = [key for key, response in responses.items() if response.status_code == 200]
    assert working == [winner]
    for key, response in responses.items():
        if key != winner:
            assert_error(response, 401, "key_revoked")
    assert type(row).objects.count() == 1
