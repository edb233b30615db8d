"""The client API's status table (which refusal answers first), row by row (the two rate-limit rows live with the limits),
the mangled keys, and both headers with their precedence. The client-address rules
themselves (IPv6, mapped IPv4, proxies) are in keys/tests/test_allowed_ips.py."""

import uuid
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from keys import crypto
from keys.models import DeploymentKey, RetiredSecret
from keys.services import key_deactivate, key_revoke, key_rotate, key_update
from keys.tests.factories import issue_deployment_key, issue_global_key
from keys.tests.helpers import assert_error, bearer, execute, execute_url, execution_url, x_api_key


def later(seconds: int):
    """Move the clock `seconds` ahead of now, for code that reads django.utils.timezone.now."""
    return mock.patch("django.utils.timezone.now", return_value=timezone.now() + timedelta(seconds=seconds))


def _replace(text: str, index: int) -> str:
    new = "0" if text[index] != "0" else "1"
    return text[:index] + new + text[index + 1 :]


# Each takes a valid key and returns an Authorization header value.
MANGLED = [
    pytest.param(lambda k: f"Bearer {k[:-1]}", id="truncated"),
    pytest.param(lambda k: f"Bearer {_replace(k, 41)}", id="checksum-broken"),
    pytest.param(lambda k: f"Bearer {_replace(k, 12)}", id="body-changed"),
    pytest.param(lambda k: f"Bearer ksx_{k[4:]}", id="wrong-prefix"),
    pytest.param(lambda k: f"Bearer {k[:20]} {k[20:]}", id="space-inside-the-key"),
    pytest.param(lambda k: f"Bearer {k} {k}", id="two-keys"),
    pytest.param(lambda k: "Bearer " + k * 500, id="20-KB-header"),
    pytest.param(lambda k: "Bearer", id="bearer-with-nothing-after-it"),
    pytest.param(lambda k: "Bearer    ", id="bearer-with-only-spaces"),
    pytest.param(lambda k: f"Bearer {k[:20]}\u00e9{k[21:]}", id="non-ascii"),
]


@pytest.mark.parametrize("header", MANGLED)
def test_a_mangled_key_is_invalid_key_with_no_query(client, deployment_key_a1, header, django_assert_num_queries):
    _, full_key = deployment_key_a1
    authorization = header(full_key)

    with django_assert_num_queries(0):
        response = execute(client, "org-a", "a-one", HTTP_AUTHORIZATION=authorization)

    assert_error(response, 401, "invalid_key")


def test_the_20_kb_header_really_is_20_kb(deployment_key_a1):
    assert len(MANGLED[6].values[0](deployment_key_a1[1])) > 20_000


@pytest.mark.parametrize("kind", ["deployment", "global"])
def test_a_well_formed_key_that_no_one_was_given_is_invalid_key(client, deployment_a1, kind):
    assert_error(execute(client, "org-a", "a-one", crypto.generate_key(kind)), 401, "invalid_key")


def test_a_deployment_key_with_the_global_prefix_is_unknown(client, deployment_key_a1):
    """The prefix picks the table: a ksd_ secret is never looked up among global keys."""
    _, full_key = deployment_key_a1
    assert_error(execute(client, "org-a", "a-one", "ksg_" + full_key[4:]), 401, "invalid_key")


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(lambda k: f"bearer {k}", id="lower-case-scheme"),
        pytest.param(lambda k: f"BEARER {k}", id="upper-case-scheme"),
        pytest.param(lambda k: f"Bearer    {k}", id="extra-spaces-before-the-key"),
        pytest.param(lambda k: f"Bearer {k}   ", id="extra-spaces-after-the-key"),
        pytest.param(lambda k: f"Bearer\t{k}", id="tab"),
        pytest.param(lambda k: f" \tBearer \t {k}\t ", id="spaces-and-tabs-around"),
    ],
)
def test_accepted_spellings_of_the_bearer_header_work(client, deployment_key_a1, authorization):
    _, full_key = deployment_key_a1
    response = execute(client, "org-a", "a-one", HTTP_AUTHORIZATION=authorization(full_key))
    assert response.status_code == 200, response.content


# --- no key / another scheme -------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"HTTP_AUTHORIZATION": "Basic YWRtaW4tYTpwYXNzd29yZA=="}, id="basic-alone"),
        pytest.param({"HTTP_AUTHORIZATION": "Token abc"}, id="token-alone"),
        pytest.param({"HTTP_X_API_KEY": ""}, id="empty-x-api-key"),
    ],
)
def test_no_key_is_not_authenticated(client, deployment_a1, headers, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = execute(client, "org-a", "a-one", **headers)
    assert_error(response, 401, "not_authenticated")


def test_a_logged_in_session_is_not_a_key(client, admin_a, deployment_a1):
    client.force_login(admin_a)
    assert_error(execute(client, "org-a", "a-one"), 401, "not_authenticated")


# --- both headers ----------------------------------------------------------------


# Unicode's other spaces: str.strip() and str.split() take them, HTTP does not.
NOT_HTTP_WHITESPACE = ["\u00a0", "\u0085", "\u2028", "\u3000", "\x0b", "\x0c", "\x1f"]


@pytest.mark.parametrize("space", NOT_HTTP_WHITESPACE, ids=ascii)
def test_a_key_beside_a_space_http_does_not_know_is_not_that_key(client, deployment_key_a1, space):
    _, full_key = deployment_key_a1
    for headers, code in [
        ({"HTTP_AUTHORIZATION": f"Bearer {full_key}{space}"}, "invalid_key"),
        ({"HTTP_AUTHORIZATION": f"Bearer {space}{full_key}"}, "invalid_key"),
        ({"HTTP_AUTHORIZATION": f"Bearer{space}{full_key}"}, "not_authenticated"),  # not the Bearer scheme
        ({"HTTP_X_API_KEY": f"{full_key}{space}"}, "invalid_key"),
        ({"HTTP_X_API_KEY": f"{space}{full_key}"}, "invalid_key"),
    ]:
        assert_error(execute(client, "org-a", "a-one", **headers), 401, code)


def test_x_api_key_alone_works(client, deployment_key_a1):
    _, full_key = deployment_key_a1
    response = client.post(execute_url("org-a", "a-one"), {}, content_type="application/json", **x_api_key(full_key))
    assert response.status_code == 200


def test_x_api_key_surrounded_by_spaces_works(client, deployment_key_a1):
    _, full_key = deployment_key_a1
    response = client.post(
        execute_url("org-a", "a-one"), {}, content_type="application/json", **x_api_key(f"  {full_key} ")
    )
    assert response.status_code == 200


@pytest.mark.parametrize("header", MANGLED[:7])
def test_a_mangled_x_api_key_is_invalid_key(client, deployment_key_a1, header):
    _, full_key = deployment_key_a1
    mangled = header(full_key).removeprefix("Bearer ")
    response = client.post(execute_url("org-a", "a-one"), {}, content_type="application/json", **x_api_key(mangled))
    assert_error(response, 401, "invalid_key")


def test_a_bearer_authorization_wins_over_x_api_key(client, deployment_key_a1):
    _, full_key = deployment_key_a1
    junk = full_key[:-1]

    good_bearer = execute(client, "org-a", "a-one", full_key, **x_api_key(junk))
    junk_bearer = execute(client, "org-a", "a-one", junk, **x_api_key(full_key))
    empty_bearer = execute(client, "org-a", "a-one", HTTP_AUTHORIZATION="Bearer", **x_api_key(full_key))

    assert good_bearer.status_code == 200
    assert_error(junk_bearer, 401, "invalid_key")
    assert_error(empty_bearer, 401, "invalid_key")


@pytest.mark.parametrize("scheme", ["Basic YWRtaW4tYTpwYXNzd29yZA==", "Token abc", "Digest username=x"])
def test_another_authorization_scheme_is_ignored_when_x_api_key_is_set(client, deployment_key_a1, scheme):
    _, full_key = deployment_key_a1
    response = execute(client, "org-a", "a-one", HTTP_AUTHORIZATION=scheme, **x_api_key(full_key))
    assert response.status_code == 200, response.content


# --- key states ------------------------------------------------------------------


def test_a_revoked_key_gets_key_revoked(client, deployment_key_a1):
    row, full_key = deployment_key_a1
    key_revoke(key=row, actor=None)

    assert_error(execute(client, "org-a", "a-one", full_key), 401, "key_revoked")
    row.refresh_from_db()
    assert row.is_active is True  # revoking does not change is_active


def test_a_key_past_its_expiry_gets_key_expired(client, deployment_key_a1):
    row, full_key = deployment_key_a1
    key_update(key=row, actor=None, expires_at=timezone.now() + timedelta(hours=1))

    assert execute(client, "org-a", "a-one", full_key).status_code == 200
    with later(3601):
        assert_error(execute(client, "org-a", "a-one", full_key), 401, "key_expired")


def test_a_deactivated_key_gets_key_inactive_and_works_again_once_activated(client, deployment_key_a1):
    row, full_key = deployment_key_a1
    key_deactivate(key=row, actor=None)
    assert_error(execute(client, "org-a", "a-one", full_key), 401, "key_inactive")

    key_update(key=row, actor=None, is_active=True)
    assert execute(client, "org-a", "a-one", full_key).status_code == 200


def test_revoked_comes_before_expired_and_inactive(client, deployment_key_a1):
    row, full_key = deployment_key_a1
    DeploymentKey.objects.filter(pk=row.pk).update(
        is_active=False, expires_at=timezone.now() - timedelta(days=1), revoked_at=timezone.now()
    )
    assert_error(execute(client, "org-a", "a-one", full_key), 401, "key_revoked")


def test_expired_comes_before_inactive(client, deployment_key_a1):
    row, full_key = deployment_key_a1
    DeploymentKey.objects.filter(pk=row.pk).update(is_active=False, expires_at=timezone.now() - timedelta(days=1))
    assert_error(execute(client, "org-a", "a-one", full_key), 401, "key_expired")


@pytest.mark.parametrize("key_fixture", ["deployment_key_a1", "global_all_key_a"])
def test_a_rotated_secret_works_during_its_grace_and_gets_key_revoked_after(client, request, key_fixture, deployment_a1):
    row, old_key = request.getfixturevalue(key_fixture)
    _, new_key = key_rotate(key=row, actor=None, grace_period_seconds=300)

    assert execute(client, "org-a", "a-one", old_key).status_code == 200
    assert execute(client, "org-a", "a-one", new_key).status_code == 200
    with later(299):
        assert execute(client, "org-a", "a-one", old_key).status_code == 200
    with later(301):
        assert_error(execute(client, "org-a", "a-one", old_key), 401, "key_revoked")
        assert execute(client, "org-a", "a-one", new_key).status_code == 200


def test_a_retired_secret_past_its_valid_until_gets_key_revoked(client, deployment_key_a1):
    row, old_key = deployment_key_a1
    key_rotate(key=row, actor=None, grace_period_seconds=3600)
    RetiredSecret.objects.filter(key_id=row.pk).update(valid_until=timezone.now() - timedelta(seconds=1))

    assert_error(execute(client, "org-a", "a-one", old_key), 401, "key_revoked")


@pytest.mark.parametrize("key_fixture", ["deployment_key_a1", "global_all_key_a"])
def test_a_secret_rotated_without_grace_gets_key_revoked_at_once(client, request, key_fixture, deployment_a1):
    row, old_key = request.getfixturevalue(key_fixture)
    _, new_key = key_rotate(key=row, actor=None)

    assert_error(execute(client, "org-a", "a-one", old_key), 401, "key_revoked")
    assert execute(client, "org-a", "a-one", new_key).status_code == 200


def test_revoking_ends_a_rotation_grace(client, deployment_key_a1):
    row, old_key = deployment_key_a1
    row, new_key = key_rotate(key=row, actor=None, grace_period_seconds=3600)
    key_revoke(key=row, actor=None)

    assert_error(execute(client, "org-a", "a-one", old_key), 401, "key_revoked")
    assert_error(execute(client, "org-a", "a-one", new_key), 401, "key_revoked")


# --- the deployment ---------------------------------------------------------------


def test_the_key_is_checked_before_the_deployment_is_looked_up(client, deployment_key_a1):
    """Without a valid key no one can learn which deployments exist."""
    row, full_key = deployment_key_a1
    for slug in ["a-one", "does-not-exist"]:
        assert_error(execute(client, "org-a", slug), 401, "not_authenticated")
        assert_error(execute(client, "org-a", slug, full_key[:-1]), 401, "invalid_key")
    key_revoke(key=row, actor=None)
    assert_error(execute(client, "org-a", "does-not-exist", full_key), 401, "key_revoked")
    assert_error(execute(client, "nowhere", "does-not-exist", full_key), 401, "key_revoked")


@pytest.mark.parametrize("key_fixture", ["deployment_key_a1", "global_all_key_a", "global_selected_key_a", "grouped_key_a"])
def test_a_deployment_that_does_not_exist_is_not_found(client, request, key_fixture):
    _, full_key = request.getfixturevalue(key_fixture)
    assert_error(execute(client, "org-a", "does-not-exist", full_key), 404, "not_found")
    assert_error(execute(client, "no-such-org", "a-one", full_key), 404, "not_found")


@pytest.mark.parametrize("key_fixture", ["deployment_key_a1", "global_all_key_a", "global_selected_key_a", "grouped_key_a"])
def test_another_organizations_deployment_is_not_found_while_the_key_works_at_home(
    client, request, key_fixture, deployment_a1, deployment_b1
):
    _, full_key = request.getfixturevalue(key_fixture)

    assert_error(execute(client, "org-b", "b-one", full_key), 404, "not_found")
    # The same slug under the key's own organization is simply unknown there.
    assert_error(execute(client, "org-a", "b-one", full_key), 404, "not_found")
    assert execute(client, "org-a", "a-one", full_key).status_code == 200


def test_org_bs_key_gets_404_on_org_as_deployment_and_works_on_its_own(client, global_all_key_b, deployment_a1):
    _, full_key = global_all_key_b
    assert_error(execute(client, "org-a", "a-one", full_key), 404, "not_found")
    assert execute(client, "org-b", "b-one", full_key).status_code == 200


def test_a_deployment_key_of_another_deployment_is_not_in_scope(client, deployment_key_a1, deployment_a2):
    _, full_key = deployment_key_a1
    assert_error(execute(client, "org-a", "a-two", full_key), 403, "deployment_not_in_scope")


def test_a_global_key_whose_scope_lacks_the_deployment_is_not_in_scope(client, global_selected_key_a):
    _, full_key = global_selected_key_a
    assert execute(client, "org-a", "a-two", full_key).status_code == 200
    assert_error(execute(client, "org-a", "a-three", full_key), 403, "deployment_not_in_scope")


def test_a_global_key_whose_deployments_were_deleted_opens_nothing(client, global_selected_key_a, deployment_a1, deployment_a2):
    row, full_key = global_selected_key_a
    deployment_a1.delete()
    deployment_a2.delete()

    assert not row.deployments.exists()
    assert_error(execute(client, "org-a", "a-three", full_key), 403, "deployment_not_in_scope")


def test_an_allow_all_key_opens_deployments_created_after_it(client, global_all_key_a, org_a):
    from deployments.tests.factories import DeploymentFactory

    _, full_key = global_all_key_a
    DeploymentFactory(organization=org_a, slug="brand-new")
    assert execute(client, "org-a", "brand-new", full_key).status_code == 200


@pytest.mark.parametrize("key_fixture", ["deployment_key_a1", "global_all_key_a", "global_selected_key_a", "grouped_key_a"])
def test_an_inactive_deployment_is_deployment_inactive(client, request, key_fixture, deployment_a1):
    _, full_key = request.getfixturevalue(key_fixture)
    deployment_a1.is_active = False
    deployment_a1.save()

    assert_error(execute(client, "org-a", "a-one", full_key), 403, "deployment_inactive")


def test_not_in_scope_comes_before_deployment_inactive(client, deployment_key_a1, deployment_a2):
    _, full_key = deployment_key_a1
    deployment_a2.is_active = False
    deployment_a2.save()

    assert_error(execute(client, "org-a", "a-two", full_key), 403, "deployment_not_in_scope")


def test_key_states_come_before_the_deployment(client, deployment_a1, deployment_b1):
    """An inactive key on a missing or foreign deployment is still key_inactive."""
    row, full_key = issue_deployment_key(deployment_a1, name="soon off")
    key_deactivate(key=row, actor=None)
    for org, slug in [("org-a", "nope"), ("org-b", "b-one"), ("org-a", "a-one")]:
        assert_error(execute(client, org, slug, full_key), 401, "key_inactive")


@pytest.mark.parametrize("key_fixture", ["deployment_key_a1", "global_all_key_a", "global_selected_key_a", "grouped_key_a"])
def test_a_valid_key_executes(client, request, key_fixture, deployment_a1):
    row, full_key = request.getfixturevalue(key_fixture)
    response = execute(client, "org-a", "a-one", full_key, body={"x": 1})

    assert response.status_code == 200
    assert response.json()["result"] == {"x": 1}


# --- where a key may be used from, and what it may do ---------------------------------


def read_execution(client, full_key: str, execution_id: str, org: str = "org-a", slug: str = "a-one", **extra):
    return client.get(execution_url(org, slug, execution_id), **bearer(full_key), **extra)


def assert_insufficient_scope(response, scope: str) -> None:
    assert_error(response, 403, "insufficient_scope")
    assert response["WWW-Authenticate"] == f'Bearer error="insufficient_scope", scope="{scope}"'


@pytest.mark.parametrize("kind", ["deployment", "global"])
def test_a_client_outside_the_keys_allowed_ips_gets_ip_not_allowed(client, deployment_a1, org_a, kind):
    full_key = restricted_key(kind, deployment_a1, org_a, allowed_ips=["203.0.113.0/24", "2001:db8::/32"])

    assert execute(client, "org-a", "a-one", full_key, REMOTE_ADDR="203.0.113.9").status_code == 200
    assert execute(client, "org-a", "a-one", full_key, REMOTE_ADDR="2001:db8::5").status_code == 200
    refused = execute(client, "org-a", "a-one", full_key, REMOTE_ADDR="198.51.100.1")
    assert_error(refused, 403, "ip_not_allowed")
    assert "WWW-Authenticate" not in refused  # not a credentials problem: the same key works from elsewhere


def test_an_empty_allowed_ips_allows_any_address(client, deployment_key_a1):
    _, full_key = deployment_key_a1
    for address in ["198.51.100.1", "2001:db8::1", "::ffff:192.0.2.1"]:
        assert execute(client, "org-a", "a-one", full_key, REMOTE_ADDR=address).status_code == 200


@pytest.mark.parametrize("state", ["revoked", "expired", "inactive"])
def test_key_states_come_before_ip_not_allowed(client, deployment_a1, state):
    row, full_key = issue_deployment_key(deployment_a1, name="fenced", allowed_ips=["203.0.113.0/24"])
    if state == "revoked":
        key_revoke(key=row, actor=None)
    elif state == "expired":
        DeploymentKey.objects.filter(pk=row.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    else:
        key_deactivate(key=row, actor=None)
    code = {"revoked": "key_revoked", "expired": "key_expired", "inactive": "key_inactive"}[state]

    assert_error(execute(client, "org-a", "a-one", full_key, REMOTE_ADDR="198.51.100.1"), 401, code)


def test_ip_not_allowed_comes_before_the_rate_limit_and_does_not_count_against_it(client, deployment_a1):
    _, full_key = issue_deployment_key(deployment_a1, name="fenced", allowed_ips=["203.0.113.7"], rate_limit_per_minute=1)

    for _ in range(3):
        refused = execute(client, "org-a", "a-one", full_key, REMOTE_ADDR="198.51.100.1")
        assert_error(refused, 403, "ip_not_allowed")
        assert not refused.has_header("RateLimit")  # not authenticated: the key's limit is not consulted
    assert execute(client, "org-a", "a-one", full_key, REMOTE_ADDR="203.0.113.7").status_code == 200
    assert_error(execute(client, "org-a", "a-one", full_key, REMOTE_ADDR="203.0.113.7"), 429, "rate_limited")
    assert_error(execute(client, "org-a", "a-one", full_key, REMOTE_ADDR="198.51.100.1"), 403, "ip_not_allowed")


@pytest.mark.parametrize("kind", ["deployment", "global"])
def test_a_key_without_the_scope_gets_insufficient_scope(client, deployment_a1, org_a, kind):
    reader = restricted_key(kind, deployment_a1, org_a, scopes=["executions:read"])
    runner = restricted_key(kind, deployment_a1, org_a, scopes=["deployments:execute"], name="runner")

    executed = execute(client, "org-a", "a-one", runner)
    assert executed.status_code == 200
    execution_id = executed.json()["execution_id"]
    assert_insufficient_scope(execute(client, "org-a", "a-one", reader), "deployments:execute")
    assert read_execution(client, reader, execution_id).status_code == 200
    assert_insufficient_scope(read_execution(client, runner, execution_id), "executions:read")
    # Introspection needs no scope.
    assert client.get("/api/v1/key/", **bearer(reader)).json()["scopes"] == ["executions:read"]
    assert client.get("/api/v1/key/", **bearer(runner)).json()["scopes"] == ["deployments:execute"]


def test_the_rate_limit_comes_before_insufficient_scope(client, deployment_a1):
    _, reader = issue_deployment_key(deployment_a1, name="reader", scopes=["executions:read"], rate_limit_per_minute=1)

    assert_insufficient_scope(execute(client, "org-a", "a-one", reader), "deployments:execute")
    assert_error(execute(client, "org-a", "a-one", reader), 429, "rate_limited")


def test_ip_not_allowed_comes_before_insufficient_scope(client, deployment_a1):
    _, reader = issue_deployment_key(deployment_a1, name="reader", scopes=["executions:read"], allowed_ips=["203.0.113.7"])

    assert_error(execute(client, "org-a", "a-one", reader, REMOTE_ADDR="198.51.100.1"), 403, "ip_not_allowed")
    assert_insufficient_scope(execute(client, "org-a", "a-one", reader, REMOTE_ADDR="203.0.113.7"), "deployments:execute")


@pytest.mark.parametrize("kind", ["deployment", "global"])
def test_insufficient_scope_is_decided_before_the_deployment_is_looked_up(
    client, org_a, deployment_a1, deployment_a2, deployment_b1, kind
):
    """A key that may not execute learns nothing of which deployments exist, are its own or are active."""
    reader = restricted_key(kind, deployment_a1, org_a, scopes=["executions:read"])
    runner = restricted_key(kind, deployment_a1, org_a, scopes=["deployments:execute"], name="runner")
    deployment_a2.is_active = False
    deployment_a2.save()

    for org, slug in [("org-a", "a-one"), ("org-a", "no-such"), ("org-b", "b-one"), ("nowhere", "x"), ("org-a", "a-two")]:
        assert_insufficient_scope(execute(client, org, slug, reader), "deployments:execute")
        assert_insufficient_scope(read_execution(client, runner, str(uuid.uuid4()), org, slug), "executions:read")
        assert_insufficient_scope(read_execution(client, runner, "not-a-uuid", org, slug), "executions:read")


def restricted_key(kind: str, deployment, organization, name: str = "restricted", **fields) -> str:
    """A key of `kind` that opens `deployment` (a global key: through its list), with `fields`; its full key."""
    if kind == "deployment":
        return issue_deployment_key(deployment, name=name, **fields)[1]
    return issue_global_key(organization, name=name, deployments=[deployment], **fields)[1]
