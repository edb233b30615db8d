"""A key's daily usage through the management API: `.../keys/<id>/usage/` and `global-keys/<id>/usage/`."""

import uuid
from datetime import timedelta
from unittest import mock

import pytest
from django.core.management import call_command
from django.utils import timezone

from keys.services import key_revoke
from keys.tests.helpers import ORG_A, execute
from keys.usage import flush_usage


def usage_url(key) -> str:
    if hasattr(key, "deployment_id"):
        return f"{ORG_A}/deployments/{key.deployment.slug}/keys/{key.pk}/usage/"
    return f"{ORG_A}/global-keys/{key.pk}/usage/"


@pytest.fixture(params=["deployment", "global"])
def any_key(request, deployment_key_a1, global_all_key_a):
    """A key of each kind of org A that opens a-one, as (row, full key)."""
    return deployment_key_a1 if request.param == "deployment" else global_all_key_a


def test_n_requests_show_as_n_for_today(admin_client, client, any_key):
    key, full_key = any_key
    for _ in range(5):
        assert execute(client, "org-a", "a-one", full_key).status_code == 200

    response = admin_client.get(usage_url(key))

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"key_id", "days", "total"}
    assert body["key_id"] == str(key.pk)
    assert body["total"] == 5
    today = timezone.now().date()
    assert len(body["days"]) == 30
    assert body["days"][-1] == {"date": today.isoformat(), "count": 5}
    assert body["days"][0] == {"date": (today - timedelta(days=29)).isoformat(), "count": 0}
    dates = [day["date"] for day in body["days"]]
    assert dates == sorted(dates) and len(set(dates)) == 30


def test_a_key_never_used_has_thirty_empty_days(admin_client, any_key):
    body = admin_client.get(usage_url(any_key[0])).json()

    assert body["total"] == 0
    assert [day["count"] for day in body["days"]] == [0] * 30


def test_usage_is_per_key_and_per_day(admin_client, client, deployment_key_a1, global_all_key_a):
    key, full_key = deployment_key_a1
    yesterday = timezone.now() - timedelta(days=1)
    with mock.patch("django.utils.timezone.now", return_value=yesterday):
        for _ in range(3):
            execute(client, "org-a", "a-one", full_key)
        flush_usage()
    execute(client, "org-a", "a-one", full_key)
    execute(client, "org-a", "a-one", global_all_key_a[1])

    body = admin_client.get(usage_url(key)).json()

    assert [day["count"] for day in body["days"][-2:]] == [3, 1]
    assert body["total"] == 4
    assert admin_client.get(usage_url(global_all_key_a[0])).json()["total"] == 1


def test_a_member_may_read_usage(member_client, client, any_key):
    key, full_key = any_key
    execute(client, "org-a", "a-one", full_key)

    response = member_client.get(usage_url(key))

    assert response.status_code == 200
    assert response.json()["total"] == 1


def test_usage_of_a_revoked_key_is_still_readable(admin_client, client, admin_a, any_key):
    key, full_key = any_key
    execute(client, "org-a", "a-one", full_key)
    key_revoke(key=key, actor=admin_a)

    assert admin_client.get(usage_url(key)).json()["total"] == 1


def test_an_outsider_and_anonymous_cannot_read_usage(other_admin_client, anonymous_client, any_key):
    url = usage_url(any_key[0])

    assert other_admin_client.get(url).status_code == 404
    assert anonymous_client.get(url).status_code == 401


def test_usage_follows_the_404_rules_of_the_key_detail(
    admin_client, other_admin_client, deployment_key_a1, deployment_a2, global_all_key_b
):
    key, _ = deployment_key_a1
    missing = uuid.uuid4()
    not_found = [
        f"{ORG_A}/deployments/a-one/keys/{missing}/usage/",
        f"{ORG_A}/deployments/a-one/keys/not-a-uuid/usage/",
        f"{ORG_A}/deployments/a-two/keys/{key.pk}/usage/",  # another deployment's key
        f"{ORG_A}/deployments/nope/keys/{key.pk}/usage/",
        f"{ORG_A}/global-keys/{key.pk}/usage/",  # a deployment key is not a global key
        f"{ORG_A}/global-keys/{global_all_key_b[0].pk}/usage/",  # another organization's key
        f"/api/v1/orgs/org-b/deployments/a-one/keys/{key.pk}/usage/",
    ]
    for url in not_found:
        assert admin_client.get(url).status_code == 404, url
    assert admin_client.get(usage_url(key).rstrip("/")).status_code == 200  # with and without the slash


@pytest.mark.parametrize("method", ["post", "patch", "put", "delete"])
def test_usage_is_read_only(admin_client, any_key, method):
    response = getattr(admin_client, method)(usage_url(any_key[0]), {}, format="json")

    assert response.status_code == 405


def test_usage_is_documented_in_the_schema(tmp_path):
    path = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))

    import yaml

    schema = yaml.safe_load(path.read_text())
    prefix = "/api/v1/orgs/{org_slug}"
    for route in ("/deployments/{deployment_slug}/keys/{id}/usage/", "/global-keys/{id}/usage/"):
        operation = schema["paths"][prefix + route]
        assert set(operation) - {"parameters"} == {"get"}
        body = operation["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/KeyUsage"}
    assert set(schema["components"]["schemas"]["KeyUsage"]["properties"]) == {"key_id", "days", "total"}
