"""The admin speaks English: labels read as words, every time names its zone, a key is logged by its name."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.admin.templatetags.admin_list import result_headers
from django.test import Client
from django.utils.text import capfirst

from deployments.tests.factories import ExecutionFactory
from keys.models import GlobalApiDeploymentKey
from keys.services import key_rotate
from keys.tests.helpers import GLOBAL, admin_url, execute, global_key_form

pytestmark = pytest.mark.django_db


def column_headers(response) -> set[str]:
    # As the list template shows them: capitalised.
    return {capfirst(str(header["text"])) for header in result_headers(response.context["cl"]) if header["text"]}


def test_execution_columns_read_as_english_and_times_name_their_zone(client_a, deployment_a1):
    ExecutionFactory(deployment=deployment_a1, client_ip="203.0.113.7")
    response = client_a.get(admin_url("execution", "changelist", app="deployments"))

    headers = column_headers(response)
    assert {"HTTP status", "Elapsed (ms)", "Client IP", "Time"} <= headers
    assert not {"Http status", "Elapsed ms", "Client ip"} & headers
    assert " UTC</a>" in response.content.decode()  # the time, which links to the execution


def test_audit_event_columns_read_as_english(client_a, global_all_key_a):
    headers = column_headers(client_a.get(admin_url("auditevent", "changelist")))

    assert "IP address" in headers and "Ip address" not in headers


def test_key_lists_say_expires_and_last_used_with_the_zone(client_a, global_all_key_a):
    _, full_key = global_all_key_a
    execute(Client(), "org-a", "a-one", full_key)
    response = client_a.get(admin_url(GLOBAL, "changelist"))

    headers = column_headers(response)
    assert {"Expires", "Last used"} <= headers and not {"Expires at", "Last used at"} & headers
    assert " UTC</td>" in response.content.decode()


def test_recent_actions_name_a_rotated_key_without_its_old_mask(client_a, org_a, deployment_a1):
    client_a.post(admin_url(GLOBAL, "add"), global_key_form(org_a, "ci key", [deployment_a1]))
    key = GlobalApiDeploymentKey.objects.get(name="ci key")
    old_mask = key.key_masked
    key_rotate(key=key, actor=None)

    assert LogEntry.objects.get().object_repr == "ci key"
    index = client_a.get("/admin/").content.decode()
    assert "ci key" in index and old_mask not in index


def test_a_read_only_key_page_shows_scopes_and_addresses_in_words(client_member_a, deployment_key_a1):
    key, _ = deployment_key_a1
    page = client_member_a.get(admin_url("deploymentkey", "change", key.pk)).content.decode()

    assert "<code>deployments:execute</code>: Execute deployments" in page
    assert "Any address" in page and "Allowed addresses" in page
    assert '["deployments:execute"' not in page and "keys/scopes.py" not in page
