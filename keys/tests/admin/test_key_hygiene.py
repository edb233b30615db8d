"""The admin index's key-hygiene panel: per organization, what to look at, each entry linking to its key."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from keys.models import DeploymentKey, GlobalApiDeploymentKey
from keys.services import key_revoke, key_rotate
from keys.tests.factories import issue_deployment_key, issue_global_key
from keys.tests.helpers import DEPLOYMENT, GLOBAL, admin_url, execute

pytestmark = pytest.mark.django_db


def panel(client: Client, organization) -> str:
    page = client.get("/admin/").content.decode()
    start = page.index(f'id="key-hygiene-{organization.slug}"')
    end = page.find('<div class="module key-hygiene"', start + 1)
    return page[start : end if end != -1 else page.index('id="content-main"')]


def section(html: str, list_id: str) -> str:
    start = html.index(f'id="key-hygiene-{list_id}"')
    return html[start : html.index("</section>", start)]


@pytest.fixture
def findings_a(org_a, deployment_a1):
    """One key of org A for each list: expiring, unused, in grace, refused as revoked; and one fine key."""
    now = timezone.now()
    expiring, _ = issue_global_key(org_a, name="expiring soon", allow_all_deployments=True, expires_at=now + timedelta(days=3))
    unused, _ = issue_deployment_key(deployment_a1, name="forgotten")
    DeploymentKey.objects.filter(pk=unused.pk).update(created_at=now - timedelta(days=45), last_used_at=now - timedelta(days=40))
    rotating, _ = issue_global_key(org_a, name="rotating", allow_all_deployments=True)
    key_rotate(key=rotating, actor=None, grace_period_seconds=3600)
    revoked, revoked_key = issue_deployment_key(deployment_a1, name="revoked but used")
    key_revoke(key=revoked, actor=None)
    execute(Client(), "org-a", "a-one", revoked_key)
    fine, _ = issue_global_key(org_a, name="all is well", allow_all_deployments=True)
    return {"expiring": expiring, "unused": unused, "in-grace": rotating, "refusals": revoked, "fine": fine}


def test_each_list_names_its_key_with_a_link(client_a, org_a, findings_a):
    html = panel(client_a, org_a)

    for list_id, key in findings_a.items():
        if list_id == "fine":
            continue
        model = GLOBAL if isinstance(key, GlobalApiDeploymentKey) else DEPLOYMENT
        assert f'<a href="{admin_url(model, "change", key.pk)}">{key.name}</a>' in section(html, list_id), list_id
    assert "all is well" not in html
    assert "revoked, once" in section(html, "refusals")
    assert "old key works until" in section(html, "in-grace") and " UTC" in section(html, "in-grace")


def test_an_org_admin_sees_only_their_organizations(client_b, org_a, org_b, findings_a):
    page = client_b.get("/admin/").content.decode()

    assert 'id="key-hygiene-org-b"' in page and 'id="key-hygiene-org-a"' not in page
    for key in findings_a.values():
        assert key.name not in page
    assert "Nothing to look at" in panel(client_b, org_b)


def test_a_superuser_sees_every_organization(client_super, org_a, org_b, findings_a):
    page = client_super.get("/admin/").content.decode()

    assert 'id="key-hygiene-org-a"' in page and 'id="key-hygiene-org-b"' in page
    assert "expiring soon" in panel(client_super, org_a)


def test_a_list_shows_its_first_five_and_how_many_more(client_a, org_a):
    soon = timezone.now() + timedelta(days=2)
    for n in range(7):
        issue_global_key(org_a, name=f"expiring {n}", allow_all_deployments=True, expires_at=soon + timedelta(minutes=n))

    html = section(panel(client_a, org_a), "expiring")

    assert html.count("<li><a href=") == 5 and "and 2 more" in html
    assert "expiring 0" in html and "expiring 6" not in html  # the soonest first
