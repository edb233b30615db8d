"""What a key may do: the scope registry, the views' declarations, and changes taking effect.

The status-table rows (insufficient_scope and its place in the order) are in
keys/tests/test_authentication_status_table.py.
"""

import pytest
from django.core.exceptions import ValidationError
from django.urls import URLPattern, get_resolver

from keys import scopes
from keys.services import key_update
from keys.tests.helpers import assert_error, bearer, execute, execution_url
from keys.views import ClientAPIView


def client_views() -> dict[str, type[ClientAPIView]]:
    views = {}
    for pattern in get_resolver().url_patterns:
        view_class = getattr(getattr(pattern, "callback", None), "view_class", None)
        if isinstance(pattern, URLPattern) and pattern.name and view_class and issubclass(view_class, ClientAPIView):
            views[pattern.name] = view_class
    return views


def test_every_client_view_declares_a_registered_scope_or_none():
    declared = {name: view.required_scope for name, view in client_views().items()}
    assert declared["deployment-execute"] == "deployments:execute"
    assert declared["execution-detail"] == "executions:read"
    assert declared["key-introspection"] is None
    assert {scope for scope in declared.values() if scope is not None} <= set(scopes.SCOPES)


def test_the_registry_is_what_keys_get_by_default():
    assert scopes.ALL_SCOPES == ("deployments:execute", "executions:read")
    assert scopes.default_scopes() == list(scopes.ALL_SCOPES)


@pytest.mark.parametrize(
    "given, expected",
    [
        (["executions:read"], ["executions:read"]),
        (["executions:read", "deployments:execute"], ["deployments:execute", "executions:read"]),
        (["deployments:execute", "deployments:execute"], ["deployments:execute"]),
    ],
)
def test_scopes_are_stored_sorted_without_repeats(given, expected):
    assert scopes.clean_scopes(given) == expected


@pytest.mark.parametrize(
    "given, message",
    [
        pytest.param([], "at least one scope", id="empty"),
        pytest.param(["deployments:delete"], "“deployments:delete” is not a scope", id="unknown"),
        pytest.param(["Deployments:Execute"], "is not a scope", id="wrong-case"),
        pytest.param([None], "“None” is not a scope", id="null-entry"),
        pytest.param([1], "is not a scope", id="a-number"),
        pytest.param("deployments:execute", "Expected a list", id="a-string"),
        pytest.param({"deployments:execute": True}, "Expected a list", id="an-object"),
        pytest.param(None, "Expected a list", id="null"),
    ],
)
def test_bad_scopes_are_refused_with_a_sentence(given, message):
    with pytest.raises(ValidationError) as raised:
        scopes.clean_scopes(given)
    assert any(message in text for text in raised.value.messages), raised.value.messages


@pytest.mark.parametrize("key_fixture", ["deployment_key_a1", "global_all_key_a"])
def test_a_key_narrowed_to_one_scope_is_refused_the_other_at_once(client, request, key_fixture, deployment_a1):
    row, full_key = request.getfixturevalue(key_fixture)
    executed = execute(client, "org-a", "a-one", full_key)  # both scopes; the answer is now cached
    assert executed.status_code == 200
    execution = execution_url("org-a", "a-one", executed.json()["execution_id"])

    key_update(key=row, actor=None, scopes=["executions:read"])

    assert_error(execute(client, "org-a", "a-one", full_key), 403, "insufficient_scope")
    assert client.get(execution, **bearer(full_key)).status_code == 200

    key_update(key=row, actor=None, scopes=["deployments:execute"])

    assert execute(client, "org-a", "a-one", full_key).status_code == 200
    assert_error(client.get(execution, **bearer(full_key)), 403, "insufficient_scope")


def test_a_key_given_allowed_ips_is_refused_elsewhere_at_once(client, deployment_key_a1):
    row, full_key = deployment_key_a1
    assert execute(client, "org-a", "a-one", full_key, REMOTE_ADDR="198.51.100.1").status_code == 200

    key_update(key=row, actor=None, allowed_ips=["203.0.113.0/24"])
    assert_error(execute(client, "org-a", "a-one", full_key, REMOTE_ADDR="198.51.100.1"), 403, "ip_not_allowed")

    key_update(key=row, actor=None, allowed_ips=[])
    assert execute(client, "org-a", "a-one", full_key, REMOTE_ADDR="198.51.100.1").status_code == 200
