"""A deployment's upstream through the management API: runner, URL, timeout, and write-only credentials."""

import logging

import pytest
from django.db import connection
from django.test import override_settings

from deployments.models import Deployment
from keys.models import AuditEvent
from keys.tests.factories import issue_deployment_key
from keys.tests.helpers import ORG_A, execute

DEPLOYMENTS = f"{ORG_A}/deployments/"
PUBLIC_URL = "https://93.184.215.14/v1/run"  # an IP literal: validated without DNS
SECRET = "Bearer upstream-credential-that-is-never-shown-7f3a"
OTHER_SECRET = "tenant-credential-never-shown-91c2"
HEADERS = {"X-Tenant": OTHER_SECRET, "Authorization": SECRET}


@pytest.fixture
def http_deployment(org_a, encryption_keys):
    deployment = Deployment(organization=org_a, slug="model", name="Model", runner="http", upstream_url=PUBLIC_URL)
    deployment.set_upstream_headers(HEADERS)
    deployment.save()
    return deployment


def create(client, **fields):
    return client.post(DEPLOYMENTS, {"slug": "model", "name": "Model", **fields}, format="json")


def assert_no_secret(response) -> None:
    text = response.content.decode()
    assert SECRET not in text and OTHER_SECRET not in text
    assert "upstream-credential" not in text and "tenant-credential" not in text


def raw_columns(deployment: Deployment) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM deployments_deployment WHERE id = %s", [deployment.pk])
        return repr(cursor.fetchone())


# Runner, URL and timeout -------------------------------------------------------------


def test_an_http_deployment_is_created_with_its_upstream(admin_client, org_a):
    response = create(admin_client, runner="http", upstream_url=PUBLIC_URL, timeout_seconds=12)

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["runner"], body["upstream_url"], body["timeout_seconds"]) == ("http", PUBLIC_URL, 12)
    assert body["upstream_header_names"] == []
    assert "upstream_headers" not in body
    saved = Deployment.objects.get(organization=org_a, slug="model")
    assert (saved.runner, saved.upstream_url, saved.timeout_seconds) == ("http", PUBLIC_URL, 12)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://93.184.215.14/",
        "file:///etc/passwd",
        "not a url",
        "http://127.0.0.1:8000/",
        "http://10.1.2.3/",
        "http://192.168.0.10/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://user:pass@93.184.215.14/",
    ],
)
def test_a_refused_upstream_url_is_a_400_naming_it(admin_client, org_a, url):
    response = create(admin_client, runner="http", upstream_url=url)

    assert response.status_code == 400
    assert list(response.json()) == ["upstream_url"]
    assert not Deployment.objects.filter(slug="model").exists()


def test_a_private_address_is_accepted_once_allowed(admin_client, org_a):
    url = "http://127.0.0.1:8001/run"
    assert create(admin_client, runner="http", upstream_url=url).status_code == 400

    with override_settings(KEYSCOPE_UPSTREAM_ALLOWED_HOSTS=["127.0.0.1"]):
        response = create(admin_client, runner="http", upstream_url=url)

    assert response.status_code == 201
    assert Deployment.objects.get(slug="model").upstream_url == url


def test_a_patch_to_a_private_address_is_refused(admin_client, deployment_a1):
    response = admin_client.patch(f"{DEPLOYMENTS}a-one/", {"upstream_url": "http://10.0.0.5/"}, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["upstream_url"]
    deployment_a1.refresh_from_db()
    assert deployment_a1.upstream_url == ""


@pytest.mark.parametrize("timeout", [0, 301, -1, "30", 2.5, True, None])
def test_a_timeout_out_of_range_is_a_400(admin_client, deployment_a1, timeout):
    response = admin_client.patch(f"{DEPLOYMENTS}a-one/", {"timeout_seconds": timeout}, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["timeout_seconds"]
    deployment_a1.refresh_from_db()
    assert deployment_a1.timeout_seconds == 30


@pytest.mark.parametrize("timeout", [1, 300])
def test_the_timeout_bounds_are_accepted(admin_client, deployment_a1, timeout):
    response = admin_client.patch(f"{DEPLOYMENTS}a-one/", {"timeout_seconds": timeout}, format="json")

    assert response.status_code == 200
    assert response.json()["timeout_seconds"] == timeout
    deployment_a1.refresh_from_db()
    assert deployment_a1.timeout_seconds == timeout


def test_the_http_runner_without_a_url_is_a_400(admin_client, deployment_a1):
    created = create(admin_client, runner="http")
    switched = admin_client.patch(f"{DEPLOYMENTS}a-one/", {"runner": "http"}, format="json")

    assert created.status_code == 400 and list(created.json()) == ["upstream_url"]
    assert switched.status_code == 400 and list(switched.json()) == ["upstream_url"]
    assert not Deployment.objects.filter(slug="model").exists()
    deployment_a1.refresh_from_db()
    assert deployment_a1.runner == "echo"


def test_an_http_deployments_url_cannot_be_emptied_but_it_can_go_back_to_echo(admin_client, http_deployment):
    emptied = admin_client.patch(f"{DEPLOYMENTS}model/", {"upstream_url": ""}, format="json")
    back_to_echo = admin_client.patch(f"{DEPLOYMENTS}model/", {"runner": "echo", "upstream_url": ""}, format="json")

    assert emptied.status_code == 400 and list(emptied.json()) == ["upstream_url"]
    assert back_to_echo.status_code == 200
    http_deployment.refresh_from_db()
    assert (http_deployment.runner, http_deployment.upstream_url) == ("echo", "")


@pytest.mark.parametrize("runner", ["ftp", "", 1, None])
def test_an_unknown_runner_is_a_400(admin_client, deployment_a1, runner):
    response = admin_client.patch(f"{DEPLOYMENTS}a-one/", {"runner": runner}, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["runner"]


def test_a_patch_of_other_fields_keeps_a_url_no_longer_allowed(admin_client, org_a):
    with override_settings(KEYSCOPE_UPSTREAM_ALLOWED_HOSTS=["127.0.0.1"]):
        assert create(admin_client, runner="http", upstream_url="http://127.0.0.1:9/").status_code == 201

    response = admin_client.patch(f"{DEPLOYMENTS}model/", {"name": "Renamed"}, format="json")

    assert response.status_code == 200
    assert Deployment.objects.get(slug="model").name == "Renamed"


# Write-only credentials ----------------------------------------------------------------


def test_headers_are_stored_encrypted_and_only_their_names_are_shown(admin_client, org_a, encryption_keys):
    response = create(admin_client, runner="http", upstream_url=PUBLIC_URL, upstream_headers=HEADERS)

    assert response.status_code == 201, response.content
    assert response.json()["upstream_header_names"] == ["Authorization", "X-Tenant"]
    assert_no_secret(response)
    saved = Deployment.objects.get(slug="model")
    assert saved.upstream_headers() == HEADERS
    row = raw_columns(saved)
    assert SECRET not in row and OTHER_SECRET not in row and "never-shown" not in row


def test_no_response_shows_a_header_value(admin_client, member_client, http_deployment):
    responses = [
        admin_client.get(DEPLOYMENTS),
        admin_client.get(f"{DEPLOYMENTS}model/"),
        member_client.get(f"{DEPLOYMENTS}model/"),
        admin_client.patch(f"{DEPLOYMENTS}model/", {"name": "Renamed"}, format="json"),
        admin_client.get("/api/schema/"),
    ]

    for response in responses:
        assert response.status_code == 200
        assert_no_secret(response)
    assert member_client.get(f"{DEPLOYMENTS}model/").json()["upstream_header_names"] == ["Authorization", "X-Tenant"]


def test_leaving_headers_out_keeps_them_and_sending_them_replaces_them(admin_client, http_deployment):
    kept = admin_client.patch(f"{DEPLOYMENTS}model/", {"timeout_seconds": 5}, format="json")
    http_deployment.refresh_from_db()
    assert kept.json()["upstream_header_names"] == ["Authorization", "X-Tenant"]
    assert http_deployment.upstream_headers() == HEADERS

    replaced = admin_client.patch(f"{DEPLOYMENTS}model/", {"upstream_headers": {"X-Api-Token": "t0ken"}}, format="json")

    assert replaced.status_code == 200
    assert replaced.json()["upstream_header_names"] == ["X-Api-Token"]
    assert "t0ken" not in replaced.content.decode()
    http_deployment.refresh_from_db()
    assert http_deployment.upstream_headers() == {"X-Api-Token": "t0ken"}


@pytest.mark.parametrize("cleared", [None, {}])
def test_null_or_an_empty_object_clears_the_headers(admin_client, http_deployment, cleared):
    response = admin_client.patch(f"{DEPLOYMENTS}model/", {"upstream_headers": cleared}, format="json")

    assert response.status_code == 200
    assert response.json()["upstream_header_names"] == []
    http_deployment.refresh_from_db()
    assert (http_deployment.upstream_headers_encrypted, http_deployment.has_upstream_headers) == ("", False)
    assert http_deployment.upstream_headers() == {}


@pytest.mark.parametrize(
    "headers",
    [
        {"Bad Name": SECRET},
        {"": SECRET},
        {"Host": SECRET},
        {"X-Keyscope-Key-Id": SECRET},
        {"Authorization": SECRET + "\r\nX-Injected: 1"},
        {"Authorization": SECRET + " café"},
        {"Authorization": SECRET + "\u2028"},
        {"Authorization": SECRET + "\u00a0"},
        {"Authorization": 5},
        {"Authorization": None},
        {"Authorization": [SECRET]},
        [SECRET],
        SECRET,
    ],
)
def test_a_bad_header_map_is_a_400_that_never_echoes_a_value(admin_client, http_deployment, headers):
    response = admin_client.patch(f"{DEPLOYMENTS}model/", {"upstream_headers": headers}, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["upstream_headers"]
    assert_no_secret(response)
    http_deployment.refresh_from_db()
    assert http_deployment.upstream_headers() == HEADERS


def test_without_an_encryption_key_headers_are_refused_not_stored_in_plaintext(admin_client, org_a):
    with override_settings(KEYSCOPE_ENCRYPTION_KEYS=[]):
        response = create(admin_client, runner="http", upstream_url=PUBLIC_URL, upstream_headers=HEADERS)

    assert response.status_code == 400
    assert list(response.json()) == ["upstream_headers"]
    assert "KEYSCOPE_ENCRYPTION_KEYS" in response.json()["upstream_headers"][0]
    assert_no_secret(response)
    assert not Deployment.objects.filter(slug="model").exists()


def test_with_a_wrong_encryption_key_headers_are_refused(admin_client, deployment_a1):
    with override_settings(KEYSCOPE_ENCRYPTION_KEYS=["not-a-fernet-key"]):
        response = admin_client.patch(f"{DEPLOYMENTS}a-one/", {"upstream_headers": HEADERS}, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["upstream_headers"]
    assert_no_secret(response)
    deployment_a1.refresh_from_db()
    assert deployment_a1.upstream_headers_encrypted == ""


def test_a_member_cannot_set_headers(member_client, http_deployment):
    response = member_client.patch(f"{DEPLOYMENTS}model/", {"upstream_headers": None}, format="json")

    assert response.status_code == 403
    http_deployment.refresh_from_db()
    assert http_deployment.upstream_headers() == HEADERS


def test_an_outsider_gets_404(other_admin_client, http_deployment):
    response = other_admin_client.patch(f"{DEPLOYMENTS}model/", {"upstream_headers": None}, format="json")

    assert response.status_code == 404
    http_deployment.refresh_from_db()
    assert http_deployment.has_upstream_headers


def test_no_log_line_or_audit_event_holds_a_header_value(admin_client, org_a, encryption_keys, caplog):
    with caplog.at_level(logging.DEBUG):
        create(admin_client, runner="http", upstream_url=PUBLIC_URL, upstream_headers=HEADERS)
        admin_client.patch(f"{DEPLOYMENTS}model/", {"upstream_headers": {"Bad Name": SECRET}}, format="json")
        admin_client.patch(f"{DEPLOYMENTS}model/", {"upstream_headers": HEADERS}, format="json")

    logged = caplog.text + repr([record.args for record in caplog.records])
    assert SECRET not in logged and OTHER_SECRET not in logged
    audited = repr(list(AuditEvent.objects.values()))
    assert SECRET not in audited and OTHER_SECRET not in audited


def test_headers_set_through_the_api_reach_the_upstream(admin_client, client, org_a, upstream, encryption_keys):
    created = create(admin_client, runner="http", upstream_url=upstream.url("/headers"), upstream_headers=HEADERS)
    assert created.status_code == 201, created.content
    _, full_key = issue_deployment_key(Deployment.objects.get(slug="model"), name="client")

    response = execute(client, "org-a", "model", full_key)

    assert response.status_code == 200, response.content
    (received,) = upstream.requests
    assert received.headers["Authorization"] == SECRET
    assert received.headers["X-Tenant"] == OTHER_SECRET
