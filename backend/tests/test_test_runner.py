"""`python manage.py test` runs the same pytest suite as `make test`."""

import pytest

from backend.tests.subprocesses import clean_env, manage

pytestmark = pytest.mark.slow

# Small, database-free tests: the child run stays quick and cannot recurse.
ONE_SMALL_TEST = "backend/tests/test_request_id.py::test_log_lines_outside_a_request_say_so"


def test_manage_py_test_runs_pytest_without_any_variable_set():
    result = manage("test", ONE_SMALL_TEST, env=clean_env())

    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_manage_py_test_fails_when_pytest_fails():
    result = manage("test", "backend/tests/no_such_test_file.py", env=clean_env())

    assert result.returncode != 0
    assert "no_such_test_file.py" in result.stdout + result.stderr
