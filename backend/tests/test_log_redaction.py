"""No full key in any log line, at any level, tracebacks and stacks included."""

from __future__ import annotations

import logging
import sys

import pytest

from backend.logging import RedactKeysFilter
from backend.tests.log_capture import written
from keys import crypto
from keys.tests.helpers import DEPLOYMENT, GLOBAL, admin_url, deployment_key_form, full_keys_in, global_key_form, logged_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def client_a(admin_a):
    return logged_in(admin_a)



def test_creating_and_rotating_keys_in_the_admin_logs_no_key_at_debug(client_a, org_a, deployment_a1, debug_log):
    recording, stdout = debug_log
    issued = []
    response = client_a.post(admin_url(GLOBAL, "add"), global_key_form(org_a, "ci", [deployment_a1]))
    issued += full_keys_in(response)
    key_id = response.context["issued"][0].key.pk
    response = client_a.post(admin_url(DEPLOYMENT, "add"), deployment_key_form(deployment_a1, "ci"))
    issued += full_keys_in(response)
    response = client_a.post(admin_url(GLOBAL, "rotate", key_id), {"post": "yes", "grace_period_seconds": "3600"})
    issued += full_keys_in(response)
    assert len(set(issued)) == 3

    # The path that leaked: the template engine's DEBUG tracebacks, which hold the repr of the page's context.
    assert any("VariableDoesNotExist" in (record.exc_text or "") for record in recording.records)
    output = written(recording, stdout)
    for full_key in issued:
        assert full_key not in output
        assert full_key[4:36] not in output
    assert all(record.exc_info is None for record in recording.records)


def test_the_one_time_pages_context_holds_no_object_whose_repr_shows_the_key(client_a, org_a, deployment_a1):
    response = client_a.post(admin_url(GLOBAL, "add"), global_key_form(org_a, "ci", [deployment_a1]))
    [full_key] = full_keys_in(response)
    assert full_key not in repr(response.context)


def record_with(message: str, *args: object, exc_info=None, stack_info: str | None = None) -> logging.LogRecord:
    record = logging.LogRecord("keyscope.test", logging.ERROR, __file__, 1, message, args, exc_info)
    record.stack_info = stack_info
    return record


def test_the_filter_redacts_message_arguments_traceback_and_stack():
    full_key = crypto.generate_key("global")
    try:
        raise ValueError(f"a context holding {full_key}")
    except ValueError:
        exc_info = sys.exc_info()
    record = record_with("key %s", full_key, exc_info=exc_info, stack_info=f"Stack (most recent call last):\n  {full_key}")

    assert RedactKeysFilter().filter(record)

    formatted = logging.Formatter().format(record)
    assert full_key not in formatted
    assert "ksg_[redacted]" in formatted
    assert "ValueError: a context holding ksg_[redacted]" in formatted
    assert record.exc_info is None and record.args is None
    assert full_key not in (record.stack_info or "")


def test_arguments_that_do_not_fit_the_message_are_redacted_too():
    full_key = crypto.generate_key("deployment")
    record = record_with("%d keys", full_key)
    RedactKeysFilter().filter(record)
    assert full_key not in logging.Formatter().format(record)


def test_every_configured_handler_redacts_keys():
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    handlers = [
        handler
        for logger in loggers
        for handler in getattr(logger, "handlers", [])
        if not type(handler).__module__.startswith("_pytest")  # pytest's own capture
    ]
    assert "stdout" in {handler.get_name() for handler in handlers}
    assert any(handler.get_name() is None for handler in handlers)  # a library's own, not named in LOGGING
    for handler in handlers:
        assert any(isinstance(f, RedactKeysFilter) for f in handler.filters), handler
