"""schemathesis against /api/schema/, as an org admin and as a member: no 5xx, responses match the schema.

The schema is loaded from the WSGI application in-process; every operation
gets a bounded number of generated requests, authenticated with HTTP Basic.
"""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from backend.wsgi import application
from keys.tests.helpers import basic

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

EXAMPLES_PER_OPERATION = 15
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture
def api_schema():
    """The schema, served by the application; its requests keep the test's database connection.

    Django's test client disconnects close_old_connections for the same reason:
    a WSGI call would otherwise close the connection the test transaction lives on.
    """
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/", application)
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def pins(deployment_a1, deployment_a2, deployment_key_a1, global_selected_key_a, settings) -> dict[str, str]:
    """Path parameters that name existing objects of org A."""
    settings.KEYSCOPE_FAILED_AUTH_PER_MINUTE = 0
    return {
        "org_slug": "org-a",
        "deployment_slug": "a-one",
        "slug": "a-one",
        "key_pk": str(deployment_key_a1[0].pk),
        "global_pk": str(global_selected_key_a[0].pk),
    }


@pytest.mark.parametrize("persona", ["admin_a", "member_a"])
def test_the_management_api_keeps_to_its_schema(request, api_schema, pins, persona):
    user = request.getfixturevalue(persona)
    headers = {"Authorization": basic(user.username)}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert operations, "the schema lists no operations"
    failures = []
    statuses: Counter[int] = Counter()
    for operation in operations:

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(case=operation.as_strategy(), pin=st.booleans())
        def run(case, pin):
            if pin:  # half the cases name what exists, so they get past the 404s
                known = {**pins, "pk": pins["global_pk" if "/global-keys/" in operation.path else "key_pk"]}  # noqa: B023  (run inside this iteration)
                for name in case.path_parameters or {}:
                    if name in known:
                        case.path_parameters[name] = known[name]
            with transaction.atomic():  # each case starts from the same data
                response = case.call_and_validate(headers=headers, checks=CHECKS)
                transaction.set_rollback(True)
            statuses[response.status_code] += 1

        try:
            run()
        except Exception as exc:  # noqa: BLE001 - collected, so one run reports every operation
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)
    # The generated requests got through, not only refusals.
    assert any(200 <= status < 300 for status in statuses), statuses
