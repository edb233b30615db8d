"""Bad input on every POST and PATCH route, and slugs with path tricks: a clear 4xx in the error shape.

Validation 400s keep DRF's field form; everything else is {"detail", "code"}.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client

from deployments.models import Deployment, Execution
from keys.models import DeploymentKey, GlobalApiDeploymentKey
from keys.tests.helpers import ORG_A, basic, bearer
from keys.tests.leaks.github import GITHUB_URL

pytestmark = pytest.mark.django_db


@pytest.fixture
def write_routes(admin_a, deployment_a1, deployment_key_a1, global_all_key_a) -> list[tuple[str, str, dict]]:
    """(method, url, headers) of every route that takes a body."""
    user = {"HTTP_AUTHORIZATION": basic(admin_a.username)}
    dk, gk = deployment_key_a1[0].pk, global_all_key_a[0].pk
    routes = [
        ("post", "/api/v1/deployments/org-a/a-one/execute/", bearer(global_all_key_a[1])),
        ("post", f"{ORG_A}/deployments/", user),
        ("patch", f"{ORG_A}/deployments/a-one/", user),
        ("post", f"{ORG_A}/deployments/a-one/keys/", user),
        ("patch", f"{ORG_A}/deployments/a-one/keys/{dk}/", user),
        ("post", f"{ORG_A}/deployments/a-one/keys/{dk}/rotate/", user),
        ("post", f"{ORG_A}/deployments/a-one/keys/{dk}/revoke/", user),
        ("post", f"{ORG_A}/global-keys/", user),
        ("patch", f"{ORG_A}/global-keys/{gk}/", user),
        ("post", f"{ORG_A}/global-keys/{gk}/rotate/", user),
        ("post", f"{ORG_A}/global-keys/{gk}/revoke/", user),
        ("post", "/api/v1/credentials/revoke/", {}),  # anonymous
    ]
    return routes


def stored() -> list:
    """What a refused request must leave as it was."""
    return [
        sorted(DeploymentKey.objects.values_list("digest", "name", "revoked_at")),
        sorted(GlobalApiDeploymentKey.objects.values_list("digest", "name", "revoked_at")),
        sorted(Deployment.objects.values_list("slug", "name", "description")),
        Execution.objects.count(),
    ]


def assert_error_shape(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"] == "application/json"
    body = response.json()
    if code is not None:
        assert body == {"detail": body["detail"], "code": code}
        assert isinstance(body["detail"], str) and body["detail"]
    return body


def send(method: str, url: str, headers: dict, body: bytes, content_type: str = "application/json"):
    return Client().generic(method.upper(), url, body, content_type=content_type, **headers)


def test_a_body_over_the_limit_is_413_on_every_write_route(write_routes, settings):
    settings.KEYSCOPE_MAX_BODY_BYTES = 2048
    before = stored()
    oversized = json.dumps({"name": "big", "description": "x" * 4096}).encode()
    for method, url, headers in write_routes:
        assert_error_shape(send(method, url, headers, oversized), 413, "payload_too_large")
    assert stored() == before


@pytest.mark.parametrize("depth", [101, 900, 995, 100_000], ids=lambda depth: f"depth-{depth}")
def test_a_deeply_nested_body_is_a_400_on_every_write_route(write_routes, depth):
    before = stored()
    nested = ('{"name": ' + "[" * depth + "]" * depth + "}").encode()
    for method, url, headers in write_routes:
        assert_error_shape(send(method, url, headers, nested), 400, "parse_error")
    assert stored() == before


@pytest.mark.parametrize(
    "body",
    [b'{"name": "\xff\xfe"}', b'\xfe\xff\x00{', '{"name": "é"}'.encode("latin-1"), b"\x00\x00\x00"],
    ids=["invalid-utf8", "utf16-bom", "latin1", "nul-bytes"],
)
def test_a_body_that_is_not_utf8_is_a_400_on_every_write_route(write_routes, body):
    before = stored()
    for method, url, headers in write_routes:
        assert_error_shape(send(method, url, headers, body), 400, "parse_error")
    assert stored() == before


@pytest.mark.parametrize(
    "payload",
    ['{"a": "nul \\u0000 here"}', '{"\\u0000": 1}', '{"a": "\\ud800"}', '{"a": 1e999}', '{"a": -1e999}'],
    ids=["nul-in-string", "nul-in-key", "lone-surrogate", "infinity", "minus-infinity"],
)
def test_an_execute_body_postgresql_cannot_store_is_a_400(global_all_key_a, deployment_a1, payload):
    response = send("post", "/api/v1/deployments/org-a/a-one/execute/", bearer(global_all_key_a[1]), payload.encode())
    assert_error_shape(response, 400, "parse_error")
    assert not Execution.objects.exists()


@pytest.mark.parametrize(
    ("url", "body"),
    [
        (f"{ORG_A}/deployments/", {"slug": "long-name", "name": "n" * 10_000}),
        (f"{ORG_A}/deployments/a-one/", {"name": "n" * 10_000}),
        (f"{ORG_A}/deployments/a-one/keys/", {"name": "n" * 10_000}),
        (f"{ORG_A}/global-keys/", {"name": "n" * 10_000, "allow_all_deployments": True}),
    ],
)
def test_a_ten_thousand_character_name_is_a_400_naming_the_field(admin_a, deployment_a1, url, body):
    before = stored()
    method = "patch" if url.endswith("a-one/") else "post"
    response = send(method, url, {"HTTP_AUTHORIZATION": basic(admin_a.username)}, json.dumps(body).encode())
    assert assert_error_shape(response, 400).keys() == {"name"}
    assert stored() == before


PATH_TRICKS = ["..", "%2e%2e", "%2E%2E%2F..", "a%2Fb", "%00", "a%00b", ".", "%2e", "%C3%A9", "%F0%9F%94%91",
               "%E2%80%AE", "s" * 10_000, "%ff%fe", "~", "org-a%20", "%0a"]


@pytest.mark.parametrize("trick", PATH_TRICKS, ids=lambda trick: trick[:16])
def test_a_slug_with_a_path_trick_is_a_404_in_the_error_shape(admin_a, deployment_a1, global_all_key_a, trick):
    user = {"HTTP_AUTHORIZATION": basic(admin_a.username)}
    key = bearer(global_all_key_a[1])
    requests = [
        ("post", f"/api/v1/deployments/{trick}/a-one/execute/", key),
        ("post", f"/api/v1/deployments/org-a/{trick}/execute/", key),
        ("get", f"/api/v1/deployments/org-a/a-one/executions/{trick}/", key),
        ("get", f"/api/v1/orgs/{trick}/deployments/", user),
        ("get", f"{ORG_A}/deployments/{trick}/", user),
        ("patch", f"{ORG_A}/deployments/{trick}/", user),
        ("get", f"{ORG_A}/deployments/{trick}/keys/", user),
        ("get", f"{ORG_A}/deployments/a-one/keys/{trick}/", user),
        ("post", f"{ORG_A}/global-keys/{trick}/rotate/", user),
    ]
    before = stored()
    for method, url, headers in requests:
        assert_error_shape(send(method, url, headers, b"{}"), 404, "not_found")
    assert stored() == before


@pytest.mark.parametrize("slug", ["..", "../a-two", "a/b", "a\u0000b", "é", "a" * 10_000, " a-one", "a-one\n", ""])
def test_a_slug_with_a_path_trick_in_a_body_is_a_400_naming_the_field(admin_a, deployment_a1, slug):
    response = send("post", f"{ORG_A}/deployments/", {"HTTP_AUTHORIZATION": basic(admin_a.username)},
                    json.dumps({"slug": slug, "name": "tricky"}).encode())
    assert "slug" in assert_error_shape(response, 400)
    assert Deployment.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"[" * 5000 + b"]" * 5000, 400, "parse_error"),
        (b'[{"token": "\xff\xfe"}]', 400, "parse_error"),
        (b"\xfe\xff\x00[", 400, "parse_error"),
        (b'[{"token": "x", "type": "t"}]' + b" " * 4096, 413, "payload_too_large"),
    ],
    ids=["deeply-nested", "invalid-utf8", "utf16-bom", "oversized"],
)
def test_a_signed_github_alert_that_cannot_be_read_is_a_clear_4xx(github, settings, body, status, code):
    """GitHub's signature makes a body authentic, not well-formed: the same 4xx as any other route."""
    settings.KEYSCOPE_MAX_BODY_BYTES = 2048 if code == "payload_too_large" else settings.KEYSCOPE_MAX_BODY_BYTES
    before = stored()

    assert_error_shape(send("post", GITHUB_URL, github.headers(body), body), status, code)

    assert stored() == before
