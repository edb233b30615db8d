"""An org admin sees and changes only their organizations' objects; superusers see all."""

from __future__ import annotations

import pytest
from django.test import Client

from deployments.tests.factories import DeploymentFactory, ExecutionFactory
from keys.models import AuditEvent, GlobalApiDeploymentKey
from keys.tests.factories import issue_deployment_key
from keys.tests.helpers import DEPLOYMENT, GLOBAL, admin_url, global_key_form, logged_in
from organizations.models import Membership
from organizations.tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def both_orgs(global_all_key_a, global_all_key_b, deployment_key_a1, deployment_b1):
    """A key of each kind in org A; a global and a deployment key in org B, and an execution in each."""
    key_b = issue_deployment_key(deployment_b1, name="b-one key")[0]
    ExecutionFactory(deployment=deployment_key_a1[0].deployment, key_name="a-one key")
    ExecutionFactory(deployment=deployment_b1, key_name="b-one key")
    return {"a": global_all_key_a[0], "b": global_all_key_b[0], "key_a": deployment_key_a1[0], "key_b": key_b}


def changelist_rows(client: Client, model: str, app: str = "keys") -> str:
    response = client.get(admin_url(model, "changelist", app=app))
    assert response.status_code == 200
    return response.content.decode()


def test_an_org_admin_lists_only_their_organizations_keys(client_a, both_orgs):
    global_page = changelist_rows(client_a, GLOBAL)
    assert "all of A" in global_page and "all of B" not in global_page
    assert "Organization B" not in global_page  # not even as a filter choice
    deployment_page = changelist_rows(client_a, DEPLOYMENT)
    assert "a-one key" in deployment_page and "b-one key" not in deployment_page
    assert "b-one" not in deployment_page


def test_an_org_admin_lists_only_their_organizations_deployments_executions_and_audit_events(client_a, both_orgs):
    deployments = changelist_rows(client_a, "deployment", app="deployments")
    assert "a-one" in deployments and "b-one" not in deployments
    executions = changelist_rows(client_a, "execution", app="deployments")
    assert "a-one key" in executions and "b-one key" not in executions
    events = changelist_rows(client_a, "auditevent")
    assert "all of A" in events and "all of B" not in events and "b-one key" not in events
    organizations = changelist_rows(client_a, "organization", app="organizations")
    assert "org-a" in organizations and "org-b" not in organizations


def test_a_superuser_lists_every_organization(client_super, both_orgs):
    page = changelist_rows(client_super, GLOBAL)
    assert "all of A" in page and "all of B" in page
    page = changelist_rows(client_super, DEPLOYMENT)
    assert "a-one key" in page and "b-one key" in page


def foreign_urls(objects: dict, deployment_b1) -> list[str]:
    key_b, global_b = objects["key_b"], objects["b"]
    event_b = AuditEvent.objects.filter(key_id=global_b.pk).first()
    execution_b = deployment_b1.executions.first()
    return [
        admin_url(GLOBAL, "change", global_b.pk),
        admin_url(GLOBAL, "delete", global_b.pk),
        admin_url(GLOBAL, "history", global_b.pk),
        admin_url(DEPLOYMENT, "change", key_b.pk),
        admin_url(DEPLOYMENT, "delete", key_b.pk),
        admin_url("auditevent", "change", event_b.pk),  # type: ignore[union-attr]  # global_b was created, so audited
        admin_url("deployment", "change", deployment_b1.pk, app="deployments"),
        admin_url("deployment", "delete", deployment_b1.pk, app="deployments"),
        admin_url("execution", "change", execution_b.pk, app="deployments"),
        admin_url("organization", "change", deployment_b1.organization_id, app="organizations"),
    ]


def test_another_organizations_objects_are_unreachable_by_url(client_a, both_orgs, deployment_b1):
    for url in foreign_urls(both_orgs, deployment_b1):
        response = client_a.get(url)
        assert response.status_code in (302, 404), url
        if response.status_code == 302:
            assert response["Location"] == "/admin/", url  # "doesn't exist", like a deleted object
        page = client_a.get(url, follow=True).content.decode()
        assert "all of B" not in page and "b-one key" not in page and "B one" not in page, url


def test_another_organizations_key_cannot_be_rotated_or_revoked_by_url(client_a, both_orgs):
    key_b = both_orgs["b"]
    for view in ("rotate", "revoke"):
        assert client_a.get(admin_url(GLOBAL, view, key_b.pk)).status_code == 404
        response = client_a.post(admin_url(GLOBAL, view, key_b.pk), {"post": "yes", "grace_period_seconds": "0"})
        assert response.status_code == 404
    key_b.refresh_from_db()
    assert key_b.revoked_at is None
    assert not AuditEvent.objects.filter(key_id=key_b.pk).exclude(action="created").exists()


def test_another_organizations_key_cannot_be_changed_by_a_tampered_post(client_a, org_b, both_orgs):
    key_b = both_orgs["b"]
    response = client_a.post(admin_url(GLOBAL, "change", key_b.pk), global_key_form(org_b, "taken over", scope="all"))
    assert response.status_code in (302, 403, 404)
    key_b.refresh_from_db()
    assert key_b.name == "all of B"


def test_actions_on_a_tampered_selection_skip_another_organizations_keys(client_a, both_orgs):
    key_b = both_orgs["b"]
    for action in ("revoke_keys", "deactivate_keys"):
        client_a.post(
            admin_url(GLOBAL, "changelist"), {"action": action, "_selected_action": [str(key_b.pk)], "post": "yes"}
        )
    key_b.refresh_from_db()
    assert key_b.revoked_at is None and key_b.is_active


def picker_options(response) -> set[str]:
    return {str(deployment) for deployment in response.context["adminform"].form.fields["deployments"].queryset}


def test_the_add_page_offers_the_administered_organizations_and_their_deployments(
    client_a, org_a, org_b, deployment_a1, deployment_a2, deployment_b1
):
    response = client_a.get(admin_url(GLOBAL, "add"))
    form = response.context["adminform"].form

    assert {str(org) for org in form.fields["organization"].queryset} == {"Organization A"}
    assert picker_options(response) == {"org-a/a-one", "org-a/a-two"}
    page = response.content.decode()
    assert "b-one" not in page and "Organization B" not in page
    key_form = client_a.get(admin_url(DEPLOYMENT, "add")).context["adminform"].form
    assert {str(d) for d in key_form.fields["deployment"].queryset} == {"org-a/a-one", "org-a/a-two"}


def test_an_admin_of_two_organizations_is_offered_both_on_the_add_page_and_one_on_the_change_page(
    admin_a_and_c, org_c, global_all_key_a, deployment_a1, deployment_b1
):
    DeploymentFactory(organization=org_c, slug="c-one")
    client = logged_in(admin_a_and_c)

    assert picker_options(client.get(admin_url(GLOBAL, "add"))) == {"org-a/a-one", "org-c/c-one"}
    change_page = client.get(admin_url(GLOBAL, "change", global_all_key_a[0].pk))
    assert picker_options(change_page) == {"org-a/a-one"}


def test_a_deployment_of_another_organization_in_a_tampered_post_is_a_form_error(
    client_a, org_a, deployment_a1, deployment_b1
):
    response = client_a.post(admin_url(GLOBAL, "add"), global_key_form(org_a, "sneaky", [deployment_a1, deployment_b1]))

    assert response.status_code == 200
    assert "deployments" in response.context["adminform"].form.errors
    assert not GlobalApiDeploymentKey.objects.filter(name="sneaky").exists()


def test_a_tampered_post_cannot_create_a_key_in_another_organization(client_a, org_b, deployment_b1):
    response = client_a.post(admin_url(GLOBAL, "add"), global_key_form(org_b, "sneaky", [deployment_b1]))

    assert response.status_code == 200
    assert "organization" in response.context["adminform"].form.errors
    assert not GlobalApiDeploymentKey.objects.filter(name="sneaky").exists()


def test_a_key_cannot_be_given_a_deployment_of_another_administered_organization(
    admin_a_and_c, org_a, org_c, global_selected_key_a
):
    deployment_c = DeploymentFactory(organization=org_c, slug="c-one")
    client = logged_in(admin_a_and_c)
    key = global_selected_key_a[0]

    on_add = client.post(admin_url(GLOBAL, "add"), global_key_form(org_a, "mixed", [deployment_c]))
    assert "Deployments must belong to the key's organization." in on_add.context["adminform"].form.errors["deployments"]
    assert not GlobalApiDeploymentKey.objects.filter(name="mixed").exists()

    on_change = client.post(admin_url(GLOBAL, "change", key.pk), global_key_form(org_a, key.name, [deployment_c]))
    assert "deployments" in on_change.context["adminform"].form.errors
    assert set(key.deployments.values_list("slug", flat=True)) == {"a-one", "a-two"}


def test_a_member_sees_keys_read_only_and_masked(client_member_a, global_selected_key_a):
    key, full_key = global_selected_key_a

    page = changelist_rows(client_member_a, GLOBAL)
    assert key.key_masked in page and full_key not in page
    assert 'name="action"' not in page  # no actions
    change_page = client_member_a.get(admin_url(GLOBAL, "change", key.pk))
    assert change_page.status_code == 200
    assert 'name="name"' not in change_page.content.decode()
    assert "org-a/a-one" in change_page.content.decode()
    assert client_member_a.get(admin_url(GLOBAL, "add")).status_code == 403
    assert client_member_a.get(admin_url(GLOBAL, "rotate", key.pk)).status_code == 404
    assert client_member_a.post(admin_url(GLOBAL, "change", key.pk), {"name": "renamed"}).status_code == 403
    assert client_member_a.get(admin_url(GLOBAL, "delete", key.pk)).status_code == 403
    key.refresh_from_db()
    assert key.name == "a-one and a-two"


def test_a_member_may_read_deployments_but_not_change_them(client_member_a, deployment_a1):
    assert client_member_a.get(admin_url("deployment", "change", deployment_a1.pk, app="deployments")).status_code == 200
    assert client_member_a.get(admin_url("deployment", "add", app="deployments")).status_code == 403


def test_a_staff_user_without_membership_sees_no_keyscope_models(db, global_all_key_a):
    client = logged_in(UserFactory(username="lonely", is_staff=True))

    index = client.get("/admin/").content.decode()
    assert "Global API deployment keys" not in index and "Deployments" not in index
    assert client.get(admin_url(GLOBAL, "changelist")).status_code == 403


def test_an_org_admin_needs_no_django_model_permissions(admin_a, client_a):
    assert not admin_a.user_permissions.exists() and not admin_a.groups.exists()
    index = client_a.get("/admin/").content.decode()
    for label in ("Global API deployment keys", "Deployment keys", "Deployments", "Audit events", "Executions"):
        assert label in index


def test_an_org_admin_without_deployments_is_offered_none_of_another_organizations(client, deployment_b1):
    empty_org = OrganizationFactory(slug="org-empty")
    user = UserFactory(username="empty-admin", is_staff=True)
    MembershipFactory(organization=empty_org, user=user, role=Membership.Role.ADMIN)
    client.force_login(user)
    response = client.get("/admin/keys/globalapideploymentkey/add/")
    assert response.status_code == 200
    assert list(response.context["adminform"].form.fields["deployments"].queryset) == []
    assert "b-one" not in response.content.decode()


def test_an_admin_of_one_organization_finds_it_chosen_on_the_add_page(client_a, org_a):
    form = client_a.get(admin_url(GLOBAL, "add")).context["adminform"].form

    assert [choice for _, choice in form.fields["organization"].choices] == ["Organization A"]
    assert form["organization"].value() == org_a.pk


def test_an_admin_of_two_organizations_chooses_one(admin_a_and_c):
    form = logged_in(admin_a_and_c).get(admin_url(GLOBAL, "add")).context["adminform"].form

    assert [label for _, label in form.fields["organization"].choices] == ["---------", "Organization A", "Organization C"]
    assert form["organization"].value() is None
