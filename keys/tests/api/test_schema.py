"""The OpenAPI schema: generated without warnings, served at /api/schema/, Swagger UI without a CDN."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("schema") / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    return yaml.safe_load(path.read_text())


def test_spectacular_validates_without_warnings_from_the_command_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn", "--skip-checks",
         "--file", str(tmp_path / "schema.yaml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "DEBUG": "true"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr


def test_every_management_route_is_documented(schema):
    prefix = "/api/v1/orgs/{org_slug}"
    expected = {
        "/": {"get", "patch"},
        "/deployments/": {"get", "post"},
        "/deployments/{slug}/": {"get", "patch", "delete"},
        "/groups/": {"get", "post"},
        "/groups/{slug}/": {"get", "patch", "delete"},
        "/deployments/{deployment_slug}/keys/": {"get", "post"},
        "/deployments/{deployment_slug}/keys/{id}/": {"get", "patch", "delete"},
        "/deployments/{deployment_slug}/keys/{id}/rotate/": {"post"},
        "/deployments/{deployment_slug}/keys/{id}/revoke/": {"post"},
        "/global-keys/": {"get", "post"},
        "/global-keys/{id}/": {"get", "patch", "delete"},
        "/global-keys/{id}/rotate/": {"post"},
        "/global-keys/{id}/revoke/": {"post"},
        "/executions/": {"get"},
        "/audit-events/": {"get"},
    }
    for path, methods in expected.items():
        assert set(schema["paths"][prefix + path]) - {"parameters"} == methods, path


def test_the_schema_documents_both_authentications_and_the_error_shapes(schema):
    schemes = schema["components"]["securitySchemes"]
    assert {"basicAuth", "cookieAuth", "apiKeyBearer", "apiKeyHeader"} <= set(schemes)
    assert schemes["apiKeyHeader"]["name"] == "X-Api-Key"
    assert set(schema["components"]["schemas"]["Error"]["properties"]) == {"detail", "code"}
    assert "additionalProperties" in schema["components"]["schemas"]["ValidationError"]
    rotate = schema["paths"]["/api/v1/orgs/{org_slug}/global-keys/{id}/rotate/"]["post"]
    assert {"200", "400", "401", "403", "404", "409"} <= set(rotate["responses"])
    assert rotate["security"] == [{"basicAuth": []}, {"cookieAuth": []}]
    execute = schema["paths"]["/api/v1/deployments/{org_slug}/{deployment_slug}/execute/"]["post"]
    assert execute["security"] == [{"apiKeyBearer": []}, {"apiKeyHeader": []}]


def test_only_issued_keys_have_a_key_field(schema):
    with_key = {name for name, component in schema["components"]["schemas"].items()
                if "key" in component.get("properties", {})}
    assert with_key == {"IssuedDeploymentKey", "IssuedGlobalKey"}


def test_every_key_shape_documents_its_format(schema):
    components = schema["components"]["schemas"]
    for name in ("DeploymentKey", "GlobalKey", "IssuedDeploymentKey", "IssuedGlobalKey", "KeyIntrospection"):
        field = components[name]["properties"]["format"]
        ref = field.get("$ref") or field["allOf"][0]["$ref"]  # read-only fields wrap theirs in allOf
        assert components[ref.rsplit("/", 1)[1]]["enum"] == ["keyscope", "uuid"], name


def test_schema_and_docs_are_served_without_a_cdn(client, db):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert b"openapi" in response.content
    docs = client.get("/api/docs")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui" in html
    assert "cdn." not in html and "unpkg" not in html and "jsdelivr" not in html


def test_the_schema_documents_what_a_key_may_do(schema):
    components = schema["components"]["schemas"]
    assert components["ScopesEnum"]["enum"] == ["deployments:execute", "executions:read"]
    for name in ("DeploymentKey", "GlobalKey", "KeyInput", "PatchedKeyInput", "KeyIntrospection"):
        properties = components[name]["properties"]
        assert properties["scopes"]["items"] == {"$ref": "#/components/schemas/ScopesEnum"}, name
        assert properties["allowed_ips"]["type"] == "array", name
    assert components["DeploymentKey"]["properties"]["previous_key_expires_at"]["nullable"] is True
    policy = components["PatchedOrganizationPolicyInput"]["properties"]
    assert (policy["max_key_lifetime_days"]["minimum"], policy["max_key_lifetime_days"]["maximum"]) == (1, 3650)
    execute = schema["paths"]["/api/v1/deployments/{org_slug}/{deployment_slug}/execute/"]["post"]
    assert "insufficient_scope" in execute["responses"]["403"]["description"]
    assert "ip_not_allowed" in execute["responses"]["403"]["description"]


def test_the_leaked_key_endpoints_are_documented(schema):
    paths = schema["paths"]
    revoke = paths["/api/v1/key/revoke/"]["post"]
    assert {"200", "401", "429"} <= set(revoke["responses"])
    report = paths["/api/v1/credentials/revoke/"]["post"]
    assert {"202", "400", "429"} <= set(report["responses"]) and not report.get("security")
    github = paths["/api/v1/secret-scanning/github/"]["post"]
    assert {"200", "400", "401"} <= set(github["responses"])
    assert github["security"] == [{"githubSecretScanningSignature": []}]
