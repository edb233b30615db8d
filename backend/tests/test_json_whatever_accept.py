"""The API answers JSON whatever `Accept` or `?format=` say, and never a 500 for them."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.negotiation import DefaultContentNegotiation

from keys.tests.helpers import ORG_A, basic, bearer
from keys.views import ClientAPIView

pytestmark = pytest.mark.django_db

EXECUTE = "/api/v1/deployments/org-a/a-one/execute/"
ODD_ACCEPTS = ["text/html", "application/xml", "image/png;q=1, */*;q=0", "application/json; indent=x", "*/*", "\x00", "x" * 9000]
ODD_FORMATS = ["x", "api", "html", "yaml", "json", "%00", "%ED%A0%80", "%FF"]


def variants() -> list[tuple[str, str]]:
    """(Accept, query string) pairs to send."""
    return [(accept, "") for accept in ODD_ACCEPTS] + [("application/json", f"?format={f}") for f in ODD_FORMATS] + [
        ("text/html", "?format=x")
    ]


def assert_json(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"] == "application/json"
    return response.json()


@pytest.mark.parametrize(("accept", "query"), variants())
def test_a_valid_key_is_answered_normally_whatever_it_accepts(deployment_a1, global_all_key_a, accept, query):
    client = Client()
    headers = {**bearer(global_all_key_a[1]), "HTTP_ACCEPT": accept}
    body = assert_json(client.post(EXECUTE + query, {"n": 1}, content_type="application/json", **headers), 200)
    assert (body["status"], body["result"]) == ("COMPLETED", {"n": 1})
    assert assert_json(client.get("/api/v1/key/" + query, **headers), 200)["name"] == "all of A"


@pytest.mark.parametrize(("accept", "query"), variants())
def test_a_bad_or_missing_key_is_refused_in_json_whatever_it_accepts(deployment_a1, accept, query):
    client = Client()
    for headers, code in [({"HTTP_AUTHORIZATION": "Bearer ksg_bad"}, "invalid_key"), ({}, "not_authenticated")]:
        for response in (
            client.post(EXECUTE + query, "{}", content_type="application/json", HTTP_ACCEPT=accept, **headers),
            client.get("/api/v1/key/" + query, HTTP_ACCEPT=accept, **headers),
        ):
            assert assert_json(response, 401) == {"detail": response.json()["detail"], "code": code}


@pytest.mark.parametrize(("accept", "query"), variants())
def test_the_management_api_answers_json_whatever_it_is_asked(admin_a, deployment_a1, accept, query):
    client = Client()
    listed = client.get(f"{ORG_A}/deployments/{query}", HTTP_ACCEPT=accept, HTTP_AUTHORIZATION=basic(admin_a.username))
    assert assert_json(listed, 200)["count"] == 1
    refused = client.get(f"{ORG_A}/deployments/{query}", HTTP_ACCEPT=accept, HTTP_AUTHORIZATION=basic("nobody"))
    assert assert_json(refused, 401)["code"] == "authentication_failed"
    missing = client.get(f"{ORG_A}/deployments/nothing/{query}", HTTP_ACCEPT=accept, HTTP_AUTHORIZATION=basic(admin_a.username))
    assert assert_json(missing, 404)["code"] == "not_found"


def test_the_schema_still_chooses_its_format():
    assert Client().get("/api/schema/?format=json")["Content-Type"].startswith("application/vnd.oai.openapi+json")
    assert Client().get("/api/schema/")["Content-Type"].startswith("application/vnd.oai.openapi")


def test_an_error_raised_before_authentication_does_not_run_it_again(monkeypatch, deployment_a1):
    """Were negotiation to fail (DRF's own class), the error's answer must not authenticate: that raised a 500."""
    monkeypatch.setattr(ClientAPIView, "content_negotiation_class", DefaultContentNegotiation)
    for headers in ({"HTTP_AUTHORIZATION": "Bearer ksg_bad"}, {}):
        response = Client().post(EXECUTE, "{}", content_type="application/json", HTTP_ACCEPT="text/html", **headers)
        assert assert_json(response, 406)["code"] == "not_acceptable"
