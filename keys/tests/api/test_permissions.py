"""Who may do what under /api/v1/orgs/<org_slug>/: every route × every persona."""

import pytest

from keys.tests.helpers import ORG_A

# (method, path template, body, status for an admin); {dk} a deployment key id, {gk} a global key id.
READS = [
    ("get", "/deployments/", None, 200),
    ("get", "/deployments/a-one/", None, 200),
    ("get", "/groups/", None, 200),
    ("get", "/groups/production/", None, 200),
    ("get", "/deployments/a-one/keys/", None, 200),
    ("get", "/deployments/a-one/keys/{dk}/", None, 200),
    ("get", "/global-keys/", None, 200),
    ("get", "/global-keys/{gk}/", None, 200),
    ("get", "/executions/", None, 200),
    ("get", "/audit-events/", None, 200),
]
WRITES = [
    ("post", "/deployments/", {"slug": "new-one", "name": "New"}, 201),
    ("patch", "/deployments/a-one/", {"name": "Renamed"}, 200),
    ("delete", "/deployments/a-one/", None, 204),
    ("post", "/groups/", {"slug": "new-group", "name": "New", "deployments": ["a-one"]}, 201),
    ("patch", "/groups/production/", {"name": "Renamed", "deployments": []}, 200),
    ("delete", "/groups/production/", None, 204),
    ("post", "/deployments/a-one/keys/", {"name": "new key"}, 201),
    ("patch", "/deployments/a-one/keys/{dk}/", {"name": "renamed"}, 200),
    ("delete", "/deployments/a-one/keys/{dk}/", None, 204),
    ("post", "/deployments/a-one/keys/{dk}/rotate/", {}, 200),
    ("post", "/deployments/a-one/keys/{dk}/revoke/", {}, 200),
    ("post", "/global-keys/", {"name": "new global", "allow_all_deployments": True}, 201),
    ("patch", "/global-keys/{gk}/", {"name": "renamed"}, 200),
    ("delete", "/global-keys/{gk}/", None, 204),
    ("post", "/global-keys/{gk}/rotate/", {}, 200),
    ("post", "/global-keys/{gk}/revoke/", {}, 200),
]
ROUTES = READS + WRITES
IDS = [f"{method.upper()} {path}" for method, path, _, _ in ROUTES]


@pytest.fixture
def call(deployment_key_a1, global_selected_key_a, group_a):
    def make(client, method, path, body, org=ORG_A):
        url = org + path.format(dk=deployment_key_a1[0].pk, gk=global_selected_key_a[0].pk)
        return getattr(client, method)(url, body, format="json") if body is not None else getattr(client, method)(url)

    return make


@pytest.mark.parametrize(("method", "path", "body", "_"), ROUTES, ids=IDS)
def test_anonymous_gets_401_with_a_basic_challenge(call, anonymous_client, method, path, body, _):
    response = call(anonymous_client, method, path, body)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Basic")
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize(("method", "path", "body", "_"), ROUTES, ids=IDS)
def test_wrong_password_gets_401(call, client_for, admin_a, method, path, body, _):
    client = client_for()
    client.credentials(HTTP_AUTHORIZATION="Basic YWRtaW4tYTp3cm9uZw==")  # admin-a:wrong
    response = call(client, method, path, body)
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


@pytest.mark.parametrize(("method", "path", "body", "_"), ROUTES, ids=IDS)
def test_another_organizations_admin_gets_404_for_everything(call, other_admin_client, method, path, body, _):
    response = call(other_admin_client, method, path, body)
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize(("method", "path", "body", "_"), ROUTES, ids=IDS)
def test_an_unknown_organization_looks_like_someone_elses(call, admin_client, other_admin_client, method, path, body, _):
    unknown = call(admin_client, method, path, body, org="/api/v1/orgs/no-such-org")
    foreign = call(other_admin_client, method, path, body)
    assert unknown.status_code == foreign.status_code == 404
    assert unknown.json() == foreign.json()


@pytest.mark.parametrize(("method", "path", "body", "_"), READS, ids=[i for i in IDS[: len(READS)]])
def test_member_reads(call, member_client, method, path, body, _):
    assert call(member_client, method, path, body).status_code == 200


@pytest.mark.parametrize(("method", "path", "body", "_"), WRITES, ids=IDS[len(READS) :])
def test_member_gets_403_on_every_write(call, member_client, deployment_key_a1, method, path, body, _):
    before = deployment_key_a1[0].__class__.objects.get(pk=deployment_key_a1[0].pk)
    response = call(member_client, method, path, body)
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    after = before.__class__.objects.get(pk=before.pk)
    assert (after.name, after.digest, after.revoked_at) == (before.name, before.digest, before.revoked_at)


@pytest.mark.parametrize(("method", "path", "body", "expected"), ROUTES, ids=IDS)
def test_admin_may_do_everything(call, admin_client, method, path, body, expected):
    assert call(admin_client, method, path, body).status_code == expected


@pytest.mark.parametrize(("method", "path", "body", "expected"), ROUTES, ids=IDS)
def test_superuser_may_do_everything(call, superuser_client, method, path, body, expected):
    assert call(superuser_client, method, path, body).status_code == expected


def test_session_authentication_works_too(client, admin_a, deployment_a1):
    client.force_login(admin_a)
    assert client.get(f"{ORG_A}/deployments/").status_code == 200


def test_another_organizations_key_is_404_through_my_organizations_urls(
    admin_client, deployment_a1, global_all_key_b, deployment_b1
):
    from keys.tests.factories import issue_deployment_key

    key_b, _ = issue_deployment_key(deployment_b1, name="b key")
    assert admin_client.get(f"{ORG_A}/global-keys/{global_all_key_b[0].pk}/").status_code == 404
    assert admin_client.get(f"{ORG_A}/deployments/a-one/keys/{key_b.pk}/").status_code == 404
    assert admin_client.post(f"{ORG_A}/global-keys/{global_all_key_b[0].pk}/revoke/").status_code == 404
    assert admin_client.get(f"{ORG_A}/deployments/b-one/").status_code == 404
    global_all_key_b[0].refresh_from_db()
    assert global_all_key_b[0].revoked_at is None


def test_a_deployment_key_is_404_under_another_deployment(admin_client, deployment_key_a1, deployment_a2):
    assert admin_client.get(f"{ORG_A}/deployments/a-two/keys/{deployment_key_a1[0].pk}/").status_code == 404
    assert admin_client.get(f"{ORG_A}/deployments/a-one/keys/{deployment_key_a1[0].pk}/").status_code == 200


@pytest.mark.parametrize("key_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000", "123"])
def test_a_malformed_or_unknown_key_id_is_404(admin_client, deployment_a1, key_id):
    response = admin_client.get(f"{ORG_A}/global-keys/{key_id}/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert admin_client.get(f"{ORG_A}/deployments/a-one/keys/{key_id}/").status_code == 404


def test_keys_of_an_unknown_deployment_are_404(admin_client, org_a):
    assert admin_client.get(f"{ORG_A}/deployments/nope/keys/").status_code == 404
    assert admin_client.post(f"{ORG_A}/deployments/nope/keys/", {"name": "x"}, format="json").status_code == 404


@pytest.mark.parametrize("path", ["/deployments", "/deployments/a-one", "/groups", "/groups/production", "/global-keys",
                                  "/audit-events",
                                  "/executions", "/deployments/a-one/keys", "/global-keys/{gk}/revoke"])
def test_paths_answer_without_their_trailing_slash(call, admin_client, path):
    method = "post" if path.endswith("revoke") else "get"
    assert call(admin_client, method, path, None).status_code == 200


def test_put_is_not_allowed(admin_client, deployment_a1):
    response = admin_client.put(f"{ORG_A}/deployments/a-one/", {"name": "x"}, format="json")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
