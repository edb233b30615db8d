"""The admin's side of least privilege: scope checkboxes, the addresses textarea, the replaced
secret's end on the key's page, and the organization's key policy for its admins; every write audited."""

from __future__ import annotations

import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.test import Client
from django.utils import timezone
from django.utils.formats import date_format

from keys.models import AuditEvent, DeploymentKey, GlobalApiDeploymentKey
from keys.services import key_rotate
from keys.tests.helpers import (
    DEPLOYMENT,
    GLOBAL,
    admin_url,
    assert_error,
    deployment_key_form,
    execute,
    full_keys_in,
    global_key_form,
)
from organizations.models import Organization

pytestmark = pytest.mark.django_db

BOTH = ["deployments:execute", "executions:read"]


class _FormFields(HTMLParser):
    """The fields of a page's main form as a browser would post them unchanged."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, list[str]] = {}
        self._textarea: str | None = None
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("submit", "button", "file"):
            checkable = a.get("type") in ("checkbox", "radio")
            if checkable and "checked" not in a:
                return
            self.data.setdefault(name, []).append(a.get("value") or ("on" if checkable else ""))
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = [""]
        elif tag == "select" and name:
            self._select = name
            self.data.setdefault(name, [])
        elif tag == "option" and self._select and "selected" in a:
            self.data[self._select].append(a.get("value", ""))

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.data[self._textarea][0] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            if self._textarea:  # Django renders a newline after the opening tag
                self.data[self._textarea][0] = self.data[self._textarea][0].removeprefix("\n")
            self._textarea = None
        elif tag == "select":
            self._select = None


def posted_as_shown(client: Client, url: str, **changes) -> dict:
    parser = _FormFields()
    parser.feed(client.get(url).content.decode())
    data = {name: values if len(values) != 1 else values[0] for name, values in parser.data.items()}
    data.pop("csrfmiddlewaretoken", None)
    data.update(changes)
    return data


# Keys: scopes and addresses -------------------------------------------------------------


@pytest.mark.parametrize("model", [DEPLOYMENT, GLOBAL])
def test_the_add_page_has_a_checkbox_per_scope_all_ticked_and_an_addresses_textarea(client_a, deployment_a1, model):
    page = client_a.get(admin_url(model, "add")).content.decode()

    for scope in BOTH:
        assert f'type="checkbox" name="scopes" value="{scope}"' in page
    assert page.count('name="scopes"') == 2 and page.count("checked") >= 2
    assert '<textarea name="allowed_ips"' in page


def test_a_key_made_in_the_admin_keeps_its_scopes_and_canonical_addresses(client_a, deployment_a1):
    response = client_a.post(
        admin_url(DEPLOYMENT, "add"),
        deployment_key_form(deployment_a1, "reader", scopes=["executions:read"], allowed_ips="203.0.113.7\r\n\r\n2001:DB8::/32\r\n"),
    )

    [full_key] = full_keys_in(response)
    key = DeploymentKey.objects.get(name="reader")
    assert (key.scopes, key.allowed_ips) == (["executions:read"], ["203.0.113.7/32", "2001:db8::/32"])
    changes = AuditEvent.objects.get(key_id=key.pk, action="created").changes
    assert changes["scopes"] == [None, ["executions:read"]]
    assert changes["allowed_ips"] == [None, ["203.0.113.7/32", "2001:db8::/32"]]
    assert_error(execute(Client(), "org-a", "a-one", full_key, REMOTE_ADDR="203.0.113.7"), 403, "insufficient_scope")


def test_a_bad_address_is_a_form_error_naming_its_line(client_a, org_a, deployment_a1):
    response = client_a.post(
        admin_url(GLOBAL, "add"),
        global_key_form(org_a, "fenced", [deployment_a1], allowed_ips="203.0.113.7\n10.0.0.5/8\n\nnope"),
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["allowed_ips"] == [
        "Line 2: “10.0.0.5/8” has host bits set: write the address alone, or the network 10.0.0.0/8.",
        "Line 4: “nope” is not an IPv4 or IPv6 address or network.",
    ]
    assert full_keys_in(response) == []
    assert not GlobalApiDeploymentKey.objects.exists()


def test_101_addresses_are_a_form_error(client_a, deployment_a1):
    lines = "\n".join(f"198.51.100.{n}" for n in range(101))
    response = client_a.post(admin_url(DEPLOYMENT, "add"), deployment_key_form(deployment_a1, "many", allowed_ips=lines))
    assert response.context["adminform"].form.errors["allowed_ips"] == ["At most 100 addresses or networks."]
    assert not DeploymentKey.objects.exists()


def test_no_scope_ticked_is_a_form_error(client_a, deployment_a1):
    data = deployment_key_form(deployment_a1, "nothing")
    del data["scopes"]
    response = client_a.post(admin_url(DEPLOYMENT, "add"), data)
    assert response.context["adminform"].form.errors["scopes"] == ["A key needs at least one scope."]
    assert not DeploymentKey.objects.exists()


@pytest.mark.parametrize("fixture, model", [("deployment_key_a1", DEPLOYMENT), ("global_selected_key_a", GLOBAL)])
def test_the_change_page_edits_the_restrictions_through_the_service(client_a, request, fixture, model):
    key, full_key = request.getfixturevalue(fixture)
    url = admin_url(model, "change", key.pk)
    page = client_a.get(url).content.decode()
    assert page.count('name="scopes"') == 2 and '<textarea name="allowed_ips"' in page

    response = client_a.post(url, posted_as_shown(client_a, url, scopes=["deployments:execute"], allowed_ips="192.0.2.0/24"))

    assert response.status_code == 302, response.context["adminform"].form.errors
    key.refresh_from_db()
    assert (key.scopes, key.allowed_ips) == (["deployments:execute"], ["192.0.2.0/24"])
    event = AuditEvent.objects.get(key_id=key.pk, action="changed")
    assert event.changes == {"scopes": [BOTH, ["deployments:execute"]], "allowed_ips": [[], ["192.0.2.0/24"]]}
    assert event.actor_username == "admin-a"
    assert_error(execute(Client(), "org-a", "a-one", full_key), 403, "ip_not_allowed")
    # The page shows what it saved, one address per line.
    assert "192.0.2.0/24</textarea>" in client_a.get(url).content.decode()


def test_saving_the_page_unchanged_writes_no_event(client_a, deployment_a1):
    DeploymentKey.objects.issue(deployment=deployment_a1, name="fenced", allowed_ips=["203.0.113.7", "10.0.0.0/8"])
    key = DeploymentKey.objects.get(name="fenced")
    url = admin_url(DEPLOYMENT, "change", key.pk)
    events = AuditEvent.objects.count()

    assert client_a.post(url, posted_as_shown(client_a, url)).status_code == 302

    assert AuditEvent.objects.count() == events


def shown_beside(page: str, label: str) -> str:
    """The read-only value the admin renders after a field's label."""
    found = re.search(r'<div class="readonly">(.*?)</div>', page[page.index(label):], re.S)
    assert found is not None, label
    return found.group(1).strip()


def test_the_keys_page_says_until_when_the_replaced_secret_works(client_a, deployment_key_a1):
    key, _ = deployment_key_a1
    url = admin_url(DEPLOYMENT, "change", key.pk)
    assert shown_beside(client_a.get(url).content.decode(), "Old key works until") == "-"

    rotated, _ = key_rotate(key=key, actor=None, grace_period_seconds=3600)
    until = timezone.localtime(rotated.previous_key_expires_at)
    shown = shown_beside(client_a.get(url).content.decode(), "Old key works until")
    assert shown == date_format(until, "DATETIME_FORMAT") and shown.endswith(" UTC")

    key_rotate(key=key, actor=None)  # no grace: the earlier one ends too
    assert shown_beside(client_a.get(url).content.decode(), "Old key works until") == "-"


# The organization's key policy --------------------------------------------------------------


def organization_url(organization) -> str:
    return admin_url("organization", "change", organization.pk, app="organizations")


def test_an_org_admin_edits_the_key_policy_and_each_change_is_audited(client_a, org_a):
    url = organization_url(org_a)
    page = client_a.get(url).content.decode()
    assert "Key policy" in page and 'name="max_key_lifetime_days"' in page
    assert 'name="slug"' not in page  # the slug is fixed for org admins

    response = client_a.post(url, posted_as_shown(client_a, url, max_key_lifetime_days="90",
                                                  deactivate_unused_keys_after_days="30", name="Renamed A"))

    assert response.status_code == 302, response.context["adminform"].form.errors
    org_a.refresh_from_db()
    assert (org_a.name, org_a.max_key_lifetime_days, org_a.deactivate_unused_keys_after_days) == ("Renamed A", 90, 30)
    event = AuditEvent.objects.get()
    assert (event.key_kind, event.key_id, event.key_name, event.action, event.actor_username) == (
        None, None, None, "changed", "admin-a",
    )  # fmt: skip
    assert event.changes == {"max_key_lifetime_days": [None, 90], "deactivate_unused_keys_after_days": [None, 30]}
    # The audit list names the event for what it is.
    assert "the organization&#x27;s key policy" in client_a.get(admin_url("auditevent", "changelist")).content.decode()


@pytest.mark.parametrize("value", ["0", "3651", "-1", "ten"])
def test_a_policy_out_of_range_is_a_form_error(client_a, org_a, value):
    url = organization_url(org_a)
    response = client_a.post(url, posted_as_shown(client_a, url, max_key_lifetime_days=value))

    assert response.status_code == 200
    assert "max_key_lifetime_days" in response.context["adminform"].form.errors
    assert Organization.objects.get(pk=org_a.pk).max_key_lifetime_days is None
    assert not AuditEvent.objects.exists()


def test_a_member_and_another_organizations_admin_cannot_change_the_policy(client_member_a, client_b, org_a):
    url = organization_url(org_a)
    assert client_member_a.post(url, {"max_key_lifetime_days": "1"}).status_code == 403
    assert client_b.get(url).status_code == 302  # like an organization that does not exist
    assert Organization.objects.get(pk=org_a.pk).max_key_lifetime_days is None


def test_a_superuser_may_change_the_slug_and_the_policy(client_super, org_a):
    url = organization_url(org_a)
    response = client_super.post(url, posted_as_shown(client_super, url, slug="org-a2", default_rate_limit_per_minute="5"))

    assert response.status_code == 302, response.context["adminform"].form.errors
    org_a.refresh_from_db()
    assert (org_a.slug, org_a.default_rate_limit_per_minute) == ("org-a2", 5)
    assert AuditEvent.objects.get().changes == {"default_rate_limit_per_minute": [None, 5]}


def test_under_a_lifetime_the_add_page_gives_its_end_and_the_change_page_refuses_clearing_it(client_a, org_a, deployment_a1):
    Organization.objects.filter(pk=org_a.pk).update(max_key_lifetime_days=30)

    client_a.post(admin_url(DEPLOYMENT, "add"), deployment_key_form(deployment_a1, "bounded"))
    key = DeploymentKey.objects.get(name="bounded")
    assert timedelta(days=29) < key.expires_at - timezone.now() <= timedelta(days=30)

    url = admin_url(DEPLOYMENT, "change", key.pk)
    response = client_a.post(url, posted_as_shown(client_a, url, expires_at_0="", expires_at_1=""))
    assert response.status_code == 200
    assert "30 days" in response.context["adminform"].form.errors["expires_at"][0]
    key.refresh_from_db()
    assert key.expires_at is not None
