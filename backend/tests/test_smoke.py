from django.db import connection


def test_suite_runs_on_postgresql_when_services_started(db):
    assert connection.vendor in {"postgresql", "sqlite"}
