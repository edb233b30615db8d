"""Executions are kept for KEYSCOPE_EXECUTION_RETENTION_DAYS; purge_executions removes older ones."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from deployments.models import Execution
from deployments.tests.factories import ExecutionFactory


def aged(days: float) -> Execution:
    execution = ExecutionFactory.create()
    Execution.objects.filter(pk=execution.pk).update(created_at=timezone.now() - timedelta(days=days))
    return execution


def purge(*args: str) -> str:
    out = StringIO()
    call_command("purge_executions", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def executions(db):
    return {"fresh": aged(0), "29 days": aged(29), "31 days": aged(31), "90 days": aged(90)}


def remaining() -> set:
    return set(Execution.objects.values_list("pk", flat=True))


def test_purge_removes_executions_older_than_the_retention(executions, settings):
    settings.KEYSCOPE_EXECUTION_RETENTION_DAYS = 30

    output = purge()

    assert output.startswith("Deleted 2 executions older than 30 days")
    assert remaining() == {executions["fresh"].pk, executions["29 days"].pk}


def test_days_overrides_the_setting(executions):
    assert purge("--days", "7").startswith("Deleted 3 executions older than 7 days")
    assert remaining() == {executions["fresh"].pk}


def test_dry_run_counts_and_deletes_nothing(executions):
    assert purge("--dry-run").startswith("Would delete 2 executions older than 30 days")
    assert len(remaining()) == 4


def test_nothing_to_purge_says_zero(db):
    assert purge().startswith("Deleted 0 executions")


def test_negative_days_are_refused(executions):
    with pytest.raises(CommandError, match="--days must be 0 or more"):
        purge("--days", "-1")
    assert len(remaining()) == 4
