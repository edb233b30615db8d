"""No admin filter or search reads a secret-derived column, a character at a time or at all."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin import SimpleListFilter

from deployments import encryption
from deployments.models import Deployment
from keys.tests.helpers import DEPLOYMENT, GLOBAL, admin_url
from organizations.admin import reaches_secret

pytestmark = pytest.mark.django_db

SECRET_WORDS = ("digest", "encrypted", "secret", "password")


@pytest.fixture
def deployment_with_credentials(deployment_a1, settings):
    settings.KEYSCOPE_ENCRYPTION_KEYS = [encryption.generate_key()]
    deployment_a1.set_upstream_headers({"Authorization": "Bearer upstream-secret"})
    deployment_a1.save()
    return deployment_a1


def secret_lookups(deployment_key_a1, global_all_key_a, deployment: Deployment) -> list[tuple[str, str, str]]:
    """(changelist, lookup, a prefix the column does have)."""
    ciphertext = deployment.upstream_headers_encrypted
    return [
        (admin_url(DEPLOYMENT, "changelist"), "digest__startswith", deployment_key_a1[0].digest[:2]),
        (admin_url(DEPLOYMENT, "changelist"), "digest", deployment_key_a1[0].digest),
        (admin_url(GLOBAL, "changelist"), "digest__startswith", global_all_key_a[0].digest[:2]),
        (admin_url(GLOBAL, "changelist"), "digest__regex", "^" + global_all_key_a[0].digest[:2]),
        (admin_url("deployment", "changelist", app="deployments"), "upstream_headers_encrypted__startswith", ciphertext[:4]),
        (admin_url(DEPLOYMENT, "changelist"), "deployment__upstream_headers_encrypted__startswith", ciphertext[:4]),
        (admin_url("execution", "changelist", app="deployments"), "deployment__upstream_headers_encrypted__gt", ""),
        (admin_url("membership", "changelist", app="organizations"), "user__password__startswith", "md5"),
    ]


@pytest.mark.parametrize("persona", ["client_member_a", "client_a", "client_super"])
def test_a_lookup_on_a_secret_column_is_refused_whatever_its_value(
    request, persona, deployment_key_a1, global_all_key_a, deployment_with_credentials
):
    client = request.getfixturevalue(persona)
    for url, lookup, true_prefix in secret_lookups(deployment_key_a1, global_all_key_a, deployment_with_credentials):
        right = client.get(url, {lookup: true_prefix})
        wrong = client.get(url, {lookup: "zz-not-a-prefix"})
        # Refused alike: no list is shown, so nothing tells a right guess from a wrong one.
        assert right.status_code == wrong.status_code == 400, (url, lookup, right.status_code)
        assert right.content == wrong.content


def test_lookups_on_ordinary_columns_still_filter(client_a, deployment_key_a1, global_all_key_a):
    response = client_a.get(admin_url(DEPLOYMENT, "changelist"), {"name__startswith": "a-one"})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [deployment_key_a1[0]]
    response = client_a.get(admin_url("auditevent", "changelist"), {"key_id": str(global_all_key_a[0].pk)})
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 1


def test_every_secret_looking_column_is_marked_secret():
    models = [m for m in apps.get_models() if m._meta.app_label in {"organizations", "deployments", "keys", "auth"}]
    found = [
        (model, field.name)
        for model in models
        for field in model._meta.concrete_fields
        if any(word in field.name for word in SECRET_WORDS)
    ]
    assert {(model._meta.label, name) for model, name in found} >= {
        ("keys.DeploymentKey", "digest"),
        ("keys.GlobalApiDeploymentKey", "digest"),
        ("keys.RetiredSecret", "digest"),
        ("deployments.Deployment", "upstream_headers_encrypted"),
        ("auth.User", "password"),
    }
    for model, name in found:
        assert reaches_secret(model, name), (model, name)


def test_no_admin_searches_or_filters_on_a_secret_column():
    for model, model_admin in admin.site._registry.items():
        lookups = [field.lstrip("^=@") for field in model_admin.search_fields or ()]
        for item in model_admin.list_filter:
            if isinstance(item, (list, tuple)):
                lookups.append(item[0])
            elif not (isinstance(item, type) and issubclass(item, SimpleListFilter)):
                lookups.append(item)
        if model_admin.date_hierarchy:
            lookups.append(model_admin.date_hierarchy)
        for lookup in lookups:
            assert not reaches_secret(model, lookup), (model, lookup)
