"""Imported keys in the admin: a badge, a filter, and rotating all of an organization's at once."""

from __future__ import annotations

import pytest

from keys.models import AuditEvent, DeploymentKey, GlobalApiDeploymentKey, RetiredSecret
from keys.services import key_revoke
from keys.tests.factories import import_deployment_key, import_global_key
from keys.tests.helpers import DEPLOYMENT, GLOBAL, admin_url, full_keys_in

pytestmark = pytest.mark.django_db

BADGE = '<span class="key-badge key-badge-imported">UUID (imported)</span>'


@pytest.fixture
def imported_a(deployment_a1, org_a):
    """Org A's imported keys: one of each kind."""
    return import_deployment_key(deployment_a1, name="old dep"), import_global_key(org_a, allow_all_deployments=True)


@pytest.fixture
def imported_b(deployment_b1):
    return import_deployment_key(deployment_b1, name="old dep of B")


def test_imported_keys_show_a_badge_in_the_list_and_on_their_page(client_a, imported_a, deployment_key_a1):
    (dep, _), (glob, _) = imported_a
    listing = client_a.get(admin_url(DEPLOYMENT, "changelist")).content.decode()
    assert listing.count(BADGE) == 1  # the imported key's row, not the keyscope key's
    assert f"uuid\u2026{dep.last4}" in listing and "keys/admin.css" in listing
    assert BADGE in client_a.get(admin_url(GLOBAL, "change", glob.pk)).content.decode()
    assert BADGE not in client_a.get(admin_url(DEPLOYMENT, "change", deployment_key_a1[0].pk)).content.decode()


def test_the_format_filter_lists_imported_keys_only(client_a, imported_a, deployment_key_a1):
    (dep, _), _ = imported_a
    imported = client_a.get(admin_url(DEPLOYMENT, "changelist"), {"format__exact": "uuid"}).context["cl"].result_list
    own = client_a.get(admin_url(DEPLOYMENT, "changelist"), {"format__exact": "keyscope"}).context["cl"].result_list
    assert list(imported) == [dep]
    assert list(own) == [deployment_key_a1[0]]


def test_the_lists_link_to_the_rotation_of_imported_keys(client_a, client_member_a):
    url = admin_url(GLOBAL, "rotate_imported")
    assert url in client_a.get(admin_url(GLOBAL, "changelist")).content.decode()
    assert url not in client_member_a.get(admin_url(GLOBAL, "changelist")).content.decode()


def test_the_page_lists_the_imported_keys_of_the_users_organizations_only(client_a, imported_a, imported_b):
    page = client_a.get(admin_url(DEPLOYMENT, "rotate_imported"))
    text = page.content.decode()
    assert page.status_code == 200
    assert "old dep" in text and "imported global key" in text
    assert "old dep of B" not in text
    assert [org.slug for org in page.context["form"].fields["organization"].queryset] == ["org-a"]


def test_rotating_all_imported_keys_shows_each_new_key_once(client_a, imported_a, imported_b):
    (dep, _), (glob, _) = imported_a
    ten_minutes = {"grace_period_seconds": "custom", "custom_grace": 10, "custom_grace_unit": 60}
    response = client_a.post(admin_url(GLOBAL, "rotate_imported"), {"organization": dep.deployment.organization_id, **ten_minutes})

    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    shown = full_keys_in(response)
    assert sorted(key[:4] for key in shown) == ["ksd_", "ksg_"] and len(set(shown)) == 2
    for key in (dep, glob):
        key.refresh_from_db()
        assert key.format == "keyscope"
        assert RetiredSecret.objects.get(key_id=key.pk).valid_until > key.modified_at
        event = AuditEvent.objects.get(key_id=key.pk, action="rotated")
        assert event.actor_username == "admin-a" and event.changes["format"] == ["uuid", "keyscope"]
        assert event.changes["grace_period_seconds"] == [None, 600]
    assert DeploymentKey.objects.get(pk=imported_b[0].pk).format == "uuid"  # org B's stays
    # Each key's link leads to its own admin, whichever list the rotation started from.
    assert admin_url(DEPLOYMENT, "change", dep.pk) in response.content.decode()


def test_revoked_imported_keys_are_neither_listed_nor_rotated(client_a, imported_a):
    (dep, _), (glob, _) = imported_a
    key_revoke(key=dep, actor=None)
    page = client_a.get(admin_url(DEPLOYMENT, "rotate_imported")).content.decode()
    assert "old dep" not in page
    client_a.post(admin_url(DEPLOYMENT, "rotate_imported"), {"organization": glob.organization_id, "grace_period_seconds": 0})
    assert DeploymentKey.objects.get(pk=dep.pk).format == "uuid"
    assert GlobalApiDeploymentKey.objects.get(pk=glob.pk).format == "keyscope"


def test_an_admin_cannot_rotate_another_organizations_imported_keys(client_b, imported_a, imported_b):
    (dep, _), _ = imported_a
    response = client_b.post(
        admin_url(DEPLOYMENT, "rotate_imported"), {"organization": dep.deployment.organization_id, "grace_period_seconds": 0}
    )
    assert response.status_code == 200 and full_keys_in(response) == []
    assert "organization" in response.context["form"].errors
    assert DeploymentKey.objects.get(pk=dep.pk).format == "uuid"


def test_members_may_not_rotate_imported_keys(client_member_a, imported_a):
    (dep, _), _ = imported_a
    url = admin_url(DEPLOYMENT, "rotate_imported")
    assert client_member_a.get(url).status_code == 403
    response = client_member_a.post(url, {"organization": dep.deployment.organization_id, "grace_period_seconds": 0})
    assert response.status_code == 403
    assert DeploymentKey.objects.get(pk=dep.pk).format == "uuid"


def test_with_nothing_left_to_rotate_the_page_says_so(client_a, deployment_key_a1):
    page = client_a.get(admin_url(GLOBAL, "rotate_imported"))
    assert 'id="no-imported-keys"' in page.content.decode()
