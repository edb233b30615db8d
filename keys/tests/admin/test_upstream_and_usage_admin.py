"""The admin: a deployment's upstream with write-only credentials, and a key's usage."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test import override_settings

from deployments.models import Deployment
from keys.tests.helpers import DEPLOYMENT, GLOBAL, admin_url, execute, full_keys_in

pytestmark = pytest.mark.django_db

PUBLIC_URL = "https://93.184.215.14/v1/run"  # an IP literal: validated without DNS
SECRET = "Bearer admin-credential-never-rendered-5d1e"
OTHER_SECRET = "tenant-value-never-rendered-c4b8"
HEADERS = {"Authorization": SECRET, "X-Tenant": OTHER_SECRET}


pytestmark = pytest.mark.usefixtures("encryption_keys")  # every test here may store credentials


@pytest.fixture
def http_deployment(org_a):
    deployment = Deployment(organization=org_a, slug="model", name="Model", runner="http", upstream_url=PUBLIC_URL)
    deployment.set_upstream_headers(HEADERS)
    deployment.save()
    return deployment


def change_url(deployment: Deployment) -> str:
    return admin_url("deployment", "change", deployment.pk, app="deployments")


def deployment_form(deployment: Deployment | None = None, **changes) -> dict:
    """The change (or add) form's POST data: the deployment's current values, then `changes`."""
    data = {
        "name": deployment.name if deployment else "New",
        "description": deployment.description if deployment else "",
        "is_active": "on",
        "runner": deployment.runner if deployment else "echo",
        "upstream_url": deployment.upstream_url if deployment else "",
        "timeout_seconds": str(deployment.timeout_seconds if deployment else 30),
        "upstream_headers": "",
        "keys-TOTAL_FORMS": "0",
        "keys-INITIAL_FORMS": "0",
    }
    data.update(changes)
    return data


def assert_no_secret(response) -> None:
    page = response.content.decode()
    assert SECRET not in page and OTHER_SECRET not in page
    assert "never-rendered" not in page


def form_errors(response) -> dict:
    form = response.context["adminform"].form
    return {field: list(errors) for field, errors in form.errors.items()}


# The deployment's upstream ---------------------------------------------------------------


def test_an_org_admin_edits_the_upstream_fields_and_never_sees_the_stored_values(client_a, http_deployment):
    response = client_a.get(change_url(http_deployment))

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert {"runner", "upstream_url", "timeout_seconds", "upstream_headers", "clear_upstream_headers"} <= set(form.fields)
    page = response.content.decode()
    assert "Authorization, X-Tenant" in page  # the names, read-only
    assert '<textarea name="upstream_headers"' in page
    assert_no_secret(response)


def test_the_change_form_saves_runner_url_and_timeout(client_a, deployment_a1):
    response = client_a.post(
        change_url(deployment_a1), deployment_form(deployment_a1, runner="http", upstream_url=PUBLIC_URL, timeout_seconds="45")
    )

    assert response.status_code == 302, form_errors(response)
    deployment_a1.refresh_from_db()
    assert (deployment_a1.runner, deployment_a1.upstream_url, deployment_a1.timeout_seconds) == ("http", PUBLIC_URL, 45)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"runner": "http", "upstream_url": ""}, "upstream_url"),
        ({"runner": "http", "upstream_url": "ftp://93.184.215.14/"}, "upstream_url"),
        ({"runner": "http", "upstream_url": "http://10.0.0.1/"}, "upstream_url"),
        ({"runner": "http", "upstream_url": "http://169.254.169.254/latest/"}, "upstream_url"),
        ({"timeout_seconds": "0"}, "timeout_seconds"),
        ({"timeout_seconds": "301"}, "timeout_seconds"),
        ({"runner": "grpc"}, "runner"),
    ],
)
def test_invalid_upstream_settings_are_form_errors(client_a, deployment_a1, changes, field):
    response = client_a.post(change_url(deployment_a1), deployment_form(deployment_a1, **changes))

    assert response.status_code == 200
    assert field in form_errors(response)
    deployment_a1.refresh_from_db()
    assert (deployment_a1.runner, deployment_a1.upstream_url, deployment_a1.timeout_seconds) == ("echo", "", 30)


def test_a_private_address_is_accepted_once_allowed(client_a, deployment_a1):
    data = deployment_form(deployment_a1, runner="http", upstream_url="http://127.0.0.1:8001/run")

    with override_settings(KEYSCOPE_UPSTREAM_ALLOWED_HOSTS=["127.0.0.1"]):
        response = client_a.post(change_url(deployment_a1), data)

    assert response.status_code == 302, form_errors(response)
    deployment_a1.refresh_from_db()
    assert deployment_a1.upstream_url == "http://127.0.0.1:8001/run"


def test_new_headers_are_stored_encrypted_and_never_rendered(client_a, deployment_a1):
    response = client_a.post(change_url(deployment_a1), deployment_form(deployment_a1, upstream_headers=json.dumps(HEADERS)))

    assert response.status_code == 302, form_errors(response)
    deployment_a1.refresh_from_db()
    assert deployment_a1.upstream_headers() == HEADERS
    assert deployment_a1.upstream_header_names == ["Authorization", "X-Tenant"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM deployments_deployment WHERE id = %s", [deployment_a1.pk])
        row = repr(cursor.fetchone())
    assert SECRET not in row and OTHER_SECRET not in row
    changelist = admin_url("deployment", "changelist", app="deployments")
    for page in (client_a.get(response.url), client_a.get(change_url(deployment_a1)), client_a.get(changelist)):
        assert page.status_code == 200
        assert_no_secret(page)
    history = client_a.get(admin_url("deployment", "history", deployment_a1.pk, app="deployments"))
    assert_no_secret(history)


def test_an_empty_textarea_keeps_the_stored_headers(client_a, http_deployment):
    response = client_a.post(change_url(http_deployment), deployment_form(http_deployment, name="Renamed"))

    assert response.status_code == 302, form_errors(response)
    http_deployment.refresh_from_db()
    assert http_deployment.name == "Renamed"
    assert http_deployment.upstream_headers() == HEADERS


def test_new_headers_replace_the_stored_ones(client_a, http_deployment):
    data = deployment_form(http_deployment, upstream_headers='{"X-Api-Token": "t0ken-value"}')

    assert client_a.post(change_url(http_deployment), data).status_code == 302
    http_deployment.refresh_from_db()
    assert http_deployment.upstream_headers() == {"X-Api-Token": "t0ken-value"}


def test_the_clear_box_clears_the_stored_headers(client_a, http_deployment):
    response = client_a.post(change_url(http_deployment), deployment_form(http_deployment, clear_upstream_headers="on"))

    assert response.status_code == 302, form_errors(response)
    http_deployment.refresh_from_db()
    assert (http_deployment.has_upstream_headers, http_deployment.upstream_header_names) == (False, [])
    page = client_a.get(change_url(http_deployment))
    assert "clear_upstream_headers" not in page.context["adminform"].form.changed_data
    assert 'name="clear_upstream_headers"' not in page.content.decode()  # nothing left to clear


def test_clearing_and_entering_headers_at_once_is_refused(client_a, http_deployment):
    data = deployment_form(http_deployment, clear_upstream_headers="on", upstream_headers='{"X-New": "new-value"}')

    response = client_a.post(change_url(http_deployment), data)

    assert response.status_code == 200
    assert "clear_upstream_headers" in form_errors(response)
    assert "new-value" not in response.content.decode()
    http_deployment.refresh_from_db()
    assert http_deployment.upstream_headers() == HEADERS


@pytest.mark.parametrize(
    "typed",
    [
        "{not json " + SECRET,
        json.dumps({"Bad Name": SECRET}),
        json.dumps({"Host": SECRET}),
        json.dumps({"Authorization": SECRET + "\r\nX-Injected: 1"}),
        json.dumps({"Authorization": 5, "X-Tenant": OTHER_SECRET}),
        json.dumps([SECRET]),
    ],
)
def test_bad_headers_are_a_form_error_that_never_echoes_what_was_typed(client_a, deployment_a1, typed):
    response = client_a.post(change_url(deployment_a1), deployment_form(deployment_a1, upstream_headers=typed))

    assert response.status_code == 200
    assert "upstream_headers" in form_errors(response)
    assert_no_secret(response)
    deployment_a1.refresh_from_db()
    assert deployment_a1.upstream_headers_encrypted == ""


def test_a_form_error_elsewhere_does_not_render_the_typed_headers_back(client_a, deployment_a1):
    data = deployment_form(deployment_a1, timeout_seconds="0", upstream_headers=json.dumps(HEADERS))

    response = client_a.post(change_url(deployment_a1), data)

    assert response.status_code == 200
    assert "timeout_seconds" in form_errors(response)
    assert_no_secret(response)


def test_without_an_encryption_key_headers_are_a_form_error_not_plaintext(client_a, deployment_a1):
    with override_settings(KEYSCOPE_ENCRYPTION_KEYS=[]):
        response = client_a.post(change_url(deployment_a1), deployment_form(deployment_a1, upstream_headers=json.dumps(HEADERS)))

    assert response.status_code == 200
    assert any("KEYSCOPE_ENCRYPTION_KEYS" in message for message in form_errors(response)["upstream_headers"])
    assert_no_secret(response)
    deployment_a1.refresh_from_db()
    assert deployment_a1.upstream_headers_encrypted == ""


def test_the_add_page_creates_an_http_deployment_with_headers(client_a, org_a):
    data = deployment_form(
        organization=org_a.pk, slug="model", runner="http", upstream_url=PUBLIC_URL, upstream_headers=json.dumps(HEADERS)
    )

    response = client_a.post(admin_url("deployment", "add", app="deployments"), data)

    assert response.status_code == 302, form_errors(response)
    created = Deployment.objects.get(organization=org_a, slug="model")
    assert (created.runner, created.upstream_url) == ("http", PUBLIC_URL)
    assert created.upstream_headers() == HEADERS
    assert_no_secret(client_a.get(change_url(created)))


def test_a_member_sees_the_header_names_read_only_and_never_the_values(client_member_a, http_deployment):
    response = client_member_a.get(change_url(http_deployment))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Authorization, X-Tenant" in page
    assert "<textarea" not in page and 'name="clear_upstream_headers"' not in page
    assert_no_secret(response)
    refused = client_member_a.post(change_url(http_deployment), deployment_form(http_deployment, clear_upstream_headers="on"))
    assert refused.status_code == 403
    http_deployment.refresh_from_db()
    assert http_deployment.upstream_headers() == HEADERS


def test_a_superuser_never_sees_the_values_either(client_super, http_deployment):
    response = client_super.get(change_url(http_deployment))

    assert response.status_code == 200
    assert "Authorization, X-Tenant" in response.content.decode()
    assert_no_secret(response)


def test_another_organizations_admin_cannot_open_the_deployment(client_b, http_deployment):
    response = client_b.get(change_url(http_deployment))

    assert response.status_code in (302, 404)
    assert_no_secret(response)


# A key's usage ---------------------------------------------------------------------------


@pytest.fixture(params=[DEPLOYMENT, GLOBAL])
def any_key(request, deployment_key_a1, global_all_key_a):
    return (request.param, *(deployment_key_a1 if request.param == DEPLOYMENT else global_all_key_a))


def test_a_keys_page_shows_its_last_30_days_of_usage(client_a, client, any_key):
    model, key, full_key = any_key
    for _ in range(4):
        assert execute(client, "org-a", "a-one", full_key).status_code == 200

    response = client_a.get(admin_url(model, "change", key.pk))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Requests, last 30 days" in page
    assert "4 requests in 30 days" in page
    assert page.count('<rect class="key-usage-bar') == 30 and page.count('<th scope="row"><time datetime=') == 30
    assert full_keys_in(response) == []


def test_a_member_sees_usage_too(client_member_a, client, any_key):
    model, key, full_key = any_key
    execute(client, "org-a", "a-one", full_key)

    response = client_member_a.get(admin_url(model, "change", key.pk))

    assert response.status_code == 200
    assert "1 request in 30 days" in response.content.decode()


def test_the_add_page_has_no_usage(client_a, any_key):
    model = any_key[0]

    response = client_a.get(admin_url(model, "add"))

    assert response.status_code == 200
    assert "in 30 days" not in response.content.decode() and "key-usage-chart" not in response.content.decode()
