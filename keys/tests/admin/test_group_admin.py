"""Deployment groups in the admin: org admins edit their own, members read, the picker stays in the organization.

And groups where keys are shown: the global key form's group picker, the list's
scope column, and the deployments a key opens on its page.
"""

from __future__ import annotations

import pytest

from deployments.models import DeploymentGroup
from deployments.services import group_create
from deployments.tests.factories import DeploymentFactory
from keys.models import AuditEvent, GlobalApiDeploymentKey
from keys.tests.factories import issue_global_key
from keys.tests.helpers import GLOBAL, admin_url, execute, global_key_form, logged_in

pytestmark = pytest.mark.django_db

GROUP = "deploymentgroup"


def group_url(view: str, *args: object) -> str:
    return admin_url(GROUP, view, *args, app="deployments")


def group_form(organization, slug: str, deployments=(), **extra) -> dict:
    """The add/change form's POST data for a group."""
    data = {
        "organization": organization.pk,
        "slug": slug,
        "name": slug.title(),
        "description": "",
        "deployments": [deployment.pk for deployment in deployments],
    }
    data.update(extra)
    return data


def options(response, field: str) -> set[str]:
    return {str(row) for row in response.context["adminform"].form.fields[field].queryset}


def test_an_org_admin_lists_only_their_organizations_groups(client_a, group_a, group_b):
    page = client_a.get(group_url("changelist")).content.decode()

    assert "Production" in page and "B production" not in page
    assert '<td class="field-deployment_count">1</td>' in page


def test_a_superuser_lists_every_group(client_super, group_a, group_b):
    page = client_super.get(group_url("changelist")).content.decode()

    assert "Production" in page and "B production" in page


def test_another_organizations_group_is_unreachable_by_url(client_a, group_b):
    for view in ("change", "delete", "history"):
        response = client_a.get(group_url(view, group_b.pk), follow=True)
        assert "B production" not in response.content.decode(), view
    response = client_a.post(group_url("change", group_b.pk), group_form(group_b.organization, "production", name="Taken"))
    assert response.status_code in (302, 403, 404)
    assert DeploymentGroup.objects.get(pk=group_b.pk).name == "B production"


def test_an_org_admin_creates_a_group_through_the_service(client_a, org_a, deployment_a1, deployment_a2):
    response = client_a.post(group_url("add"), group_form(org_a, "staging", [deployment_a1, deployment_a2]))

    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    group = DeploymentGroup.objects.get(organization=org_a, slug="staging")
    assert sorted(group.deployments.values_list("slug", flat=True)) == ["a-one", "a-two"]
    event = AuditEvent.objects.get(group="staging")
    assert (event.action, event.actor_username, event.key_id) == ("created", "admin-a", None)
    assert event.changes["deployments"] == [None, ["a-one", "a-two"]]


def test_the_add_page_offers_the_administered_organizations_deployments_only(
    client_a, deployment_a1, deployment_a2, deployment_b1
):
    response = client_a.get(group_url("add"))

    assert options(response, "deployments") == {"org-a/a-one", "org-a/a-two"}
    assert {str(org) for org in response.context["adminform"].form.fields["organization"].queryset} == {"Organization A"}
    assert "b-one" not in response.content.decode()


def test_a_group_cannot_take_a_deployment_of_another_administered_organization(
    admin_a_and_c, org_a, org_c, deployment_a1, group_a
):
    deployment_c = DeploymentFactory(organization=org_c, slug="c-one")
    client = logged_in(admin_a_and_c)

    assert options(client.get(group_url("add")), "deployments") == {"org-a/a-one", "org-c/c-one"}
    on_add = client.post(group_url("add"), group_form(org_a, "mixed", [deployment_a1, deployment_c]))
    assert "deployments" in on_add.context["adminform"].form.errors
    assert not DeploymentGroup.objects.filter(slug="mixed").exists()

    change_page = client.get(group_url("change", group_a.pk))
    assert options(change_page, "deployments") == {"org-a/a-one"}
    on_change = client.post(group_url("change", group_a.pk), group_form(org_a, "production", [deployment_c]))
    assert "deployments" in on_change.context["adminform"].form.errors
    assert list(group_a.deployments.values_list("slug", flat=True)) == ["a-one"]


def test_a_taken_slug_is_a_form_error(client_a, org_a, group_a):
    response = client_a.post(group_url("add"), group_form(org_a, "production"))

    assert response.status_code == 200
    assert "slug" in response.context["adminform"].form.errors
    assert DeploymentGroup.objects.filter(slug="production").count() == 1


def test_adding_a_deployment_on_the_change_page_opens_it_to_the_groups_keys(
    client, client_a, org_a, group_a, grouped_key_a, deployment_a1, deployment_a2
):
    _, full_key = grouped_key_a
    assert execute(client, "org-a", "a-two", full_key).json()["code"] == "deployment_not_in_scope"

    response = client_a.post(group_url("change", group_a.pk), group_form(org_a, "production", [deployment_a1, deployment_a2]))

    assert response.status_code == 302
    assert execute(client, "org-a", "a-two", full_key).status_code == 200
    assert AuditEvent.objects.get(group="production", action="changed").changes == {
        "deployments": [["a-one"], ["a-one", "a-two"]]
    }
    # The slug and the organization are fixed once created.
    page = client_a.get(group_url("change", group_a.pk)).content.decode()
    assert 'name="slug"' not in page and 'name="organization"' not in page


def test_deleting_a_group_in_the_admin_takes_it_out_of_its_keys(client, client_a, group_a, grouped_key_a):
    key, full_key = grouped_key_a

    response = client_a.post(group_url("delete", group_a.pk), {"post": "yes"})

    assert response.status_code == 302
    assert not DeploymentGroup.objects.filter(pk=group_a.pk).exists()
    assert execute(client, "org-a", "a-one", full_key).json()["code"] == "deployment_not_in_scope"
    change = AuditEvent.objects.get(key_id=key.pk, action="changed")
    assert (change.changes, change.actor_username) == ({"groups": [["production"], []]}, "admin-a")
    assert AuditEvent.objects.filter(group="production", action="deleted").exists()


def test_the_changelist_delete_action_deletes_through_the_service(client_a, group_a, grouped_key_a, group_b):
    client_a.post(
        group_url("changelist"),
        {"action": "delete_selected", "_selected_action": [str(group_a.pk), str(group_b.pk)], "post": "yes"},
    )

    assert not DeploymentGroup.objects.filter(pk=group_a.pk).exists()
    assert DeploymentGroup.objects.filter(pk=group_b.pk).exists()  # another organization's: skipped
    assert list(grouped_key_a[0].groups.all()) == []


def test_a_member_sees_groups_read_only(client_member_a, group_a):
    assert client_member_a.get(group_url("changelist")).status_code == 200
    page = client_member_a.get(group_url("change", group_a.pk))
    assert page.status_code == 200
    assert 'name="name"' not in page.content.decode() and "org-a/a-one" in page.content.decode()
    assert client_member_a.get(group_url("add")).status_code == 403
    assert client_member_a.post(group_url("change", group_a.pk), {"name": "Renamed"}).status_code == 403
    assert client_member_a.get(group_url("delete", group_a.pk)).status_code == 403
    assert DeploymentGroup.objects.get(pk=group_a.pk).name == "Production"


# Groups on the global key's pages ---------------------------------------------------


def test_the_global_key_form_offers_the_organizations_groups(admin_a_and_c, org_a, org_c, group_a, group_b, grouped_key_a):
    group_create(organization=org_c, slug="c-group", name="C group", actor=None)
    client = logged_in(admin_a_and_c)

    assert options(client.get(admin_url(GLOBAL, "add")), "groups") == {"org-a/production", "org-c/c-group"}
    assert options(client.get(admin_url(GLOBAL, "change", grouped_key_a[0].pk)), "groups") == {"org-a/production"}


def test_a_global_key_bound_to_a_group_is_made_in_the_admin(client, client_a, org_a, group_a):
    response = client_a.post(admin_url(GLOBAL, "add"), global_key_form(org_a, "by group", groups=[group_a.pk]))

    assert response.status_code == 200 and "by group" in response.content.decode()  # the one-time page
    key = GlobalApiDeploymentKey.objects.get(name="by group")
    assert list(key.groups.all()) == [group_a] and not key.deployments.exists()
    assert AuditEvent.objects.get(key_id=key.pk).changes["groups"] == [None, ["production"]]


@pytest.mark.parametrize(
    ("fields", "error_field"),
    [
        pytest.param({"scope": "selected"}, "deployments", id="empty-scope"),
        pytest.param({"scope": "all", "groups": "group"}, "groups", id="allow-all-with-a-group"),
    ],
)
def test_the_global_key_form_holds_the_scope_rules(client_a, org_a, group_a, fields, error_field):
    data = global_key_form(org_a, "bad scope", **fields)
    if data.get("groups") == "group":
        data["groups"] = [group_a.pk]

    response = client_a.post(admin_url(GLOBAL, "add"), data)

    assert error_field in response.context["adminform"].form.errors
    assert not GlobalApiDeploymentKey.objects.filter(name="bad scope").exists()


def test_a_global_key_cannot_take_a_group_of_another_administered_organization(admin_a_and_c, org_a, org_c):
    group_c = group_create(organization=org_c, slug="c-group", name="C group", actor=None)
    client = logged_in(admin_a_and_c)

    response = client.post(admin_url(GLOBAL, "add"), global_key_form(org_a, "mixed", groups=[group_c.pk]))

    assert "Groups must belong to the key's organization." in response.context["adminform"].form.errors["groups"]
    assert not GlobalApiDeploymentKey.objects.filter(name="mixed").exists()


def test_the_scope_column_names_groups_and_deployments_then_says_how_many_more(
    client_a, org_a, group_a, deployment_a1, deployment_a2, deployment_a3, global_all_key_a
):
    staging = group_create(organization=org_a, slug="staging", name="Staging", actor=None)
    issue_global_key(org_a, name="few", groups=[group_a], deployments=[deployment_a2])
    issue_global_key(org_a, name="many", groups=[group_a, staging], deployments=[deployment_a1, deployment_a2, deployment_a3])

    page = client_a.get(admin_url(GLOBAL, "changelist")).content.decode()

    assert '<td class="field-scope">Production (group), A two</td>' in page
    assert '<td class="field-scope">Production (group), Staging (group), A one and 2 more</td>' in page
    assert '<td class="field-scope">All deployments</td>' in page


def test_the_scope_filter_finds_keys_bound_to_groups(client_a, org_a, grouped_key_a, global_all_key_a, global_selected_key_a):
    emptied, _ = issue_global_key(org_a, name="emptied", groups=[grouped_key_a[0].groups.get()])
    emptied.groups.clear()

    def names(scope: str) -> set[str]:
        response = client_a.get(admin_url(GLOBAL, "changelist"), {"scope": scope})
        return {key.name for key in response.context["cl"].result_list}

    assert names("groups") == {"production key"}
    assert names("selected") == {"production key", "a-one and a-two"}
    assert names("none") == {"emptied"}
    assert names("all") == {"all of A"}


def test_a_global_keys_page_lists_the_deployments_it_opens_and_through_what(
    client_a, org_a, group_a, deployment_a1, deployment_a2, deployment_a3, global_all_key_a
):
    key, _ = issue_global_key(org_a, name="mixed", groups=[group_a], deployments=[deployment_a1, deployment_a2])

    page = client_a.get(admin_url(GLOBAL, "change", key.pk)).content.decode()

    assert "2 deployments" in page
    assert "<code>a-one</code> (listed, via Production)" in page
    assert "<code>a-two</code> (listed)" in page
    assert "a-three" not in page.split('class="key-opens"')[1].split("</ul>")[0]
    all_page = client_a.get(admin_url(GLOBAL, "change", global_all_key_a[0].pk)).content.decode()
    assert "All deployments of the organization, current and future." in all_page


def test_the_audit_admin_shows_group_events_and_filters_by_group(client_a, group_a, group_b):
    page = client_a.get(admin_url("auditevent", "changelist"), {"group": "production"})

    events = list(page.context["cl"].result_list)
    assert [(event.group, event.action) for event in events] == [("production", "created")]
    assert "group production" in page.content.decode()
