"""Whatever a client sends, the management API answers 400 (or 415), never 500."""

import pytest

from keys.models import DeploymentKey, GlobalApiDeploymentKey
from keys.tests.helpers import ORG_A

NESTED = ("[" * 5000 + "]" * 5000).encode()


@pytest.fixture
def write_urls(deployment_a1, deployment_key_a1, global_all_key_a):
    dk, gk = deployment_key_a1[0].pk, global_all_key_a[0].pk
    return [
        ("post", f"{ORG_A}/deployments/"),
        ("patch", f"{ORG_A}/deployments/a-one/"),
        ("post", f"{ORG_A}/deployments/a-one/keys/"),
        ("patch", f"{ORG_A}/deployments/a-one/keys/{dk}/"),
        ("post", f"{ORG_A}/deployments/a-one/keys/{dk}/rotate/"),
        ("post", f"{ORG_A}/deployments/a-one/keys/{dk}/revoke/"),
        ("post", f"{ORG_A}/global-keys/"),
        ("patch", f"{ORG_A}/global-keys/{gk}/"),
        ("post", f"{ORG_A}/global-keys/{gk}/rotate/"),
        ("post", f"{ORG_A}/global-keys/{gk}/revoke/"),
    ]


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"name": "x",}', b"[]", b'["name"]', b'"a string"', b"42", b"null", NESTED, b'{"name": "\xff\xfe"}',
     b'{"name": NaN}', b'{"name": "x"} trailing'],
    ids=["malformed", "trailing-comma", "empty-list", "list", "string", "number", "null", "deeply-nested",
         "invalid-utf8", "nan", "trailing-garbage"],
)
def test_a_body_that_is_not_a_json_object_is_a_400(admin_client, write_urls, body):
    digests = sorted(DeploymentKey.objects.values_list("digest", flat=True)) + sorted(
        GlobalApiDeploymentKey.objects.values_list("digest", flat=True)
    )
    for method, url in write_urls:
        response = getattr(admin_client, method)(url, body, content_type="application/json")
        assert response.status_code == 400, (method, url, response.content[:200])
        assert isinstance(response.json(), dict)
    after = sorted(DeploymentKey.objects.values_list("digest", flat=True)) + sorted(
        GlobalApiDeploymentKey.objects.values_list("digest", flat=True)
    )
    assert after == digests
    assert not DeploymentKey.objects.filter(revoked_at__isnull=False).exists()


def test_a_parse_error_uses_the_error_shape(admin_client, deployment_a1):
    response = admin_client.post(f"{ORG_A}/deployments/a-one/keys/", b"{oops", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


def test_a_list_body_names_non_field_errors(admin_client, deployment_a1):
    response = admin_client.post(f"{ORG_A}/deployments/a-one/keys/", b"[]", content_type="application/json")
    assert list(response.json()) == ["non_field_errors"]


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"])
def test_a_body_that_is_not_json_is_415(admin_client, deployment_a1, content_type):
    response = admin_client.post(f"{ORG_A}/deployments/a-one/keys/", b"name=x", content_type=content_type)
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
    assert not DeploymentKey.objects.exists()


def test_a_nul_character_in_a_name_is_a_400(admin_client, deployment_a1):
    response = admin_client.post(f"{ORG_A}/deployments/a-one/keys/", {"name": "a\u0000b"}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["name"]
    response = admin_client.post(f"{ORG_A}/global-keys/", {"name": "x", "deployments": ["a\u0000"]}, format="json")
    assert response.status_code == 400


def test_an_empty_body_on_rotate_and_revoke_is_fine(admin_client, deployment_key_a1):
    key = deployment_key_a1[0]
    url = f"{ORG_A}/deployments/a-one/keys/{key.pk}/"
    assert admin_client.post(f"{url}rotate/", b"", content_type="application/json").status_code == 200
    assert admin_client.post(f"{url}revoke/", b"", content_type="application/json").status_code == 200


@pytest.mark.parametrize(
    "body",
    [b'{"slug": "s", "name": "n", "runner": "\\ud800"}', b'{"slug": "s", "name": "n", "x\\ud800": 1}',
     b'{"name": "\\udfff"}', b'{"name": "n", "deployments": ["\\ud800"]}', b'{"name": "n", "upstream_headers": {"A": "\\udbff"}}'],
    ids=["in-a-choice", "in-an-unknown-field-name", "low-surrogate", "in-a-list", "in-a-header-value"],
)
def test_an_unpaired_surrogate_anywhere_in_a_body_is_a_400(admin_client, write_urls, body):
    for method, url in write_urls:
        response = getattr(admin_client, method)(url, body, content_type="application/json")
        assert response.status_code == 400, (method, url, response.content[:200])
        assert response.json() == {"detail": response.json()["detail"], "code": "parse_error"}
        assert "surrogate" in response.json()["detail"]


def test_a_surrogate_pair_is_one_character_and_welcome(admin_client, deployment_a1):
    response = admin_client.post(f"{ORG_A}/deployments/a-one/keys/", b'{"name": "key \\ud83d\\udd11"}', content_type="application/json")
    assert response.status_code == 201
    assert DeploymentKey.objects.get(pk=response.json()["id"]).name == "key \U0001f511"
