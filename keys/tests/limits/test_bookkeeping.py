"""Usage counts and last_used_at without a row write per request."""

from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from keys.models import DeploymentKey
from keys.services import key_revoke
from keys.tests.factories import issue_deployment_key
from keys.tests.helpers import execute
from keys.usage import flush_usage, usage_for

pytestmark = pytest.mark.django_db


def updates_of_keys(captured: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if q["sql"].startswith('UPDATE "keys_')]


def test_n_requests_show_as_n_for_today(client, deployment_key_a1, global_all_key_a):
    key, full_key = deployment_key_a1
    for _ in range(7):
        execute(client, "org-a", "a-one", full_key)
    execute(client, "org-a", "a-one", global_all_key_a[1])

    usage = usage_for(str(key.pk))

    assert len(usage) == 30
    assert usage[-1] == {"date": timezone.now().date().isoformat(), "count": 7}
    assert {day["count"] for day in usage[:-1]} == {0}
    assert usage[0]["date"] == (timezone.now().date() - timedelta(days=29)).isoformat()
    assert usage_for(str(global_all_key_a[0].pk))[-1]["count"] == 1


def test_refused_requests_of_a_key_count_as_usage(client, deployment_a1):
    key, full_key = issue_deployment_key(deployment_a1, rate_limit_per_minute=2)
    statuses = [execute(client, "org-a", "a-one", full_key).status_code for _ in range(4)]

    assert statuses == [200, 200, 429, 429]
    assert usage_for(str(key.pk))[-1]["count"] == 4


def test_usage_is_not_a_database_write(client, deployment_key_a1):
    key, full_key = deployment_key_a1
    execute(client, "org-a", "a-one", full_key)

    with CaptureQueriesContext(connection) as captured:
        for _ in range(5):
            execute(client, "org-a", "a-one", full_key)
        usage_for(str(key.pk))

    assert updates_of_keys(captured) == []
    assert all(q["sql"].startswith('INSERT INTO "deployments_execution"') for q in captured.captured_queries)


def test_usage_is_kept_per_day(client, deployment_key_a1):
    key, full_key = deployment_key_a1
    yesterday = timezone.now() - timedelta(days=1)
    with mock.patch("django.utils.timezone.now", return_value=yesterday):
        for _ in range(3):
            execute(client, "org-a", "a-one", full_key)
        flush_usage()
    execute(client, "org-a", "a-one", full_key)

    usage = usage_for(str(key.pk))

    assert [day["count"] for day in usage[-2:]] == [3, 1]


def test_last_used_at_is_written_at_most_once_a_minute(client, deployment_key_a1):
    key, full_key = deployment_key_a1
    start = timezone.now()

    with CaptureQueriesContext(connection) as first_minute:
        for _ in range(10):
            execute(client, "org-a", "a-one", full_key)
    with mock.patch("django.utils.timezone.now", return_value=start + timedelta(seconds=61)):
        with CaptureQueriesContext(connection) as next_minute:
            for _ in range(10):
                execute(client, "org-a", "a-one", full_key)
        written = DeploymentKey.objects.get(pk=key.pk).last_used_at

    assert len(updates_of_keys(first_minute)) == 1
    assert len(updates_of_keys(next_minute)) == 1
    assert written >= start + timedelta(seconds=61)


def test_a_recent_last_used_at_from_another_worker_is_not_written_again(client, deployment_key_a1):
    key, full_key = deployment_key_a1
    DeploymentKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now() - timedelta(seconds=30))

    with CaptureQueriesContext(connection) as captured:
        for _ in range(5):
            execute(client, "org-a", "a-one", full_key)

    assert updates_of_keys(captured) == []


def test_last_used_at_of_a_refused_key_is_not_written(client, deployment_key_a1, admin_a):
    key, full_key = deployment_key_a1
    key_revoke(key=key, actor=admin_a)

    with CaptureQueriesContext(connection) as captured:
        execute(client, "org-a", "a-one", full_key)

    assert updates_of_keys(captured) == []
    assert DeploymentKey.objects.get(pk=key.pk).last_used_at is None
