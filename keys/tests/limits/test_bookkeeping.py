"""Usage counts and last_used_at in the database, written once a second per worker, never once per request."""

from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from keys import usage
from keys.models import DeploymentKey, KeyUsageDay
from keys.services import key_revoke
from keys.tests.factories import issue_deployment_key, issue_global_key
from keys.tests.helpers import execute
from keys.usage import flush_usage, usage_for

pytestmark = pytest.mark.django_db


def usage_writes(captured: CaptureQueriesContext) -> list[str]:
    """The statements that wrote usage or a last use (not the key lookup, which reads last_used_at)."""
    return [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].startswith(("INSERT", "UPDATE", "WITH"))
        and (KeyUsageDay._meta.db_table in q["sql"] or "last_used_at" in q["sql"])
    ]


def test_n_requests_show_as_n_for_today(client, deployment_key_a1, global_all_key_a):
    key, full_key = deployment_key_a1
    for _ in range(7):
        execute(client, "org-a", "a-one", full_key)
    execute(client, "org-a", "a-one", global_all_key_a[1])

    days = usage_for(str(key.pk))

    assert len(days) == 30
    assert days[-1] == {"date": timezone.now().date().isoformat(), "count": 7}
    assert {day["count"] for day in days[:-1]} == {0}
    assert days[0]["date"] == (timezone.now().date() - timedelta(days=29)).isoformat()
    assert usage_for(str(global_all_key_a[0].pk))[-1]["count"] == 1
    assert KeyUsageDay.objects.get(key_id=key.pk, day=timezone.now().date()).count == 7


def test_refused_requests_of_a_key_count_as_usage(client, deployment_a1):
    key, full_key = issue_deployment_key(deployment_a1, rate_limit_per_minute=2)
    statuses = [execute(client, "org-a", "a-one", full_key).status_code for _ in range(4)]

    assert statuses == [200, 200, 429, 429]
    assert usage_for(str(key.pk))[-1]["count"] == 4


def test_a_request_writes_no_usage_the_flush_does(client, deployment_key_a1):
    key, full_key = deployment_key_a1

    with CaptureQueriesContext(connection) as requests:
        for _ in range(5):
            execute(client, "org-a", "a-one", full_key)
    with CaptureQueriesContext(connection) as flush:
        flush_usage()

    assert usage_writes(requests) == []
    # Usage and the key's last use: one statement on PostgreSQL, one per table on SQLite.
    assert len(usage_writes(flush)) == (1 if connection.vendor == "postgresql" else 2)
    assert KeyUsageDay.objects.get(key_id=key.pk).count == 5


def test_one_flush_writes_every_key_and_its_last_use_in_one_statement(client, deployment_a1, org_a):
    keys = [issue_deployment_key(deployment_a1, name=f"k{n}") for n in range(3)]
    keys.append(issue_global_key(org_a, name="g", allow_all_deployments=True))
    for _, full_key in keys:
        execute(client, "org-a", "a-one", full_key)
        execute(client, "org-a", "a-one", full_key)

    with CaptureQueriesContext(connection) as captured:
        flush_usage()

    # PostgreSQL: usage and both kinds' last_used_at in one statement; SQLite: one per table.
    assert len(usage_writes(captured)) == (1 if connection.vendor == "postgresql" else 3)
    for key, _ in keys:
        assert usage_for(str(key.pk))[-1]["count"] == 2
        key.refresh_from_db()
        assert key.last_used_at is not None


def test_counts_of_one_key_from_several_flushes_add_up(client, deployment_key_a1):
    key, full_key = deployment_key_a1
    for _ in range(3):
        execute(client, "org-a", "a-one", full_key)
        flush_usage()

    assert KeyUsageDay.objects.get(key_id=key.pk).count == 3


def test_a_flush_the_database_refuses_is_kept_for_the_next(client, deployment_key_a1):
    key, full_key = deployment_key_a1
    execute(client, "org-a", "a-one", full_key)
    with mock.patch.object(usage, "_write", side_effect=usage.DatabaseError("refused")):
        flush_usage()
    execute(client, "org-a", "a-one", full_key)

    assert usage_for(str(key.pk))[-1]["count"] == 2


def test_usage_is_kept_per_day(client, deployment_key_a1):
    key, full_key = deployment_key_a1
    yesterday = timezone.now() - timedelta(days=1)
    with mock.patch("django.utils.timezone.now", return_value=yesterday):
        for _ in range(3):
            execute(client, "org-a", "a-one", full_key)
        flush_usage()
    execute(client, "org-a", "a-one", full_key)

    days = usage_for(str(key.pk))

    assert [day["count"] for day in days[-2:]] == [3, 1]


def test_last_used_at_is_written_at_most_once_a_minute(client, deployment_key_a1):
    key, full_key = deployment_key_a1
    start = timezone.now()

    with CaptureQueriesContext(connection) as first_minute:
        for _ in range(10):
            execute(client, "org-a", "a-one", full_key)
            flush_usage()
    with mock.patch("django.utils.timezone.now", return_value=start + timedelta(seconds=61)):
        with CaptureQueriesContext(connection) as next_minute:
            for _ in range(10):
                execute(client, "org-a", "a-one", full_key)
                flush_usage()
        written = DeploymentKey.objects.get(pk=key.pk).last_used_at

    assert sum("last_used_at" in sql for sql in usage_writes(first_minute)) == 1
    assert sum("last_used_at" in sql for sql in usage_writes(next_minute)) == 1
    assert written >= start + timedelta(seconds=61)


def test_a_recent_last_used_at_from_another_worker_is_not_written_again(client, deployment_key_a1):
    key, full_key = deployment_key_a1
    DeploymentKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now() - timedelta(seconds=30))

    with CaptureQueriesContext(connection) as captured:
        for _ in range(5):
            execute(client, "org-a", "a-one", full_key)
        flush_usage()

    assert not any("last_used_at" in sql for sql in usage_writes(captured))


def test_last_used_at_never_moves_back(client, deployment_key_a1):
    key, full_key = deployment_key_a1
    later = timezone.now() + timedelta(minutes=5)
    execute(client, "org-a", "a-one", full_key)
    DeploymentKey.objects.filter(pk=key.pk).update(last_used_at=later)  # another host wrote a later use meanwhile

    flush_usage()

    assert DeploymentKey.objects.get(pk=key.pk).last_used_at == later


def test_last_used_at_of_a_refused_key_is_not_written(client, deployment_key_a1, admin_a):
    key, full_key = deployment_key_a1
    key_revoke(key=key, actor=admin_a)

    execute(client, "org-a", "a-one", full_key)
    flush_usage()

    assert DeploymentKey.objects.get(pk=key.pk).last_used_at is None
    assert usage_for(str(key.pk))[-1]["count"] == 0
