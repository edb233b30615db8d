"""Admin personas: logged-in clients, and a staff member of org A."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from organizations.models import Membership
from organizations.tests.factories import MembershipFactory, OrganizationFactory, UserFactory

# The shape of a full key (CONTRACT §3), to find one in a page; never a key itself.
FULL_KEY = re.compile(r"ks[dg]_[0-9A-Za-z]{38}")

GLOBAL = "globalapideploymentkey"
DEPLOYMENT = "deploymentkey"


def admin_url(model: str, view: str, *args: object, app: str = "keys") -> str:
    return reverse(f"admin:{app}_{model}_{view}", args=args)


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def client_a(admin_a) -> Client:
    return logged_in(admin_a)


@pytest.fixture
def client_b(admin_b) -> Client:
    return logged_in(admin_b)


@pytest.fixture
def client_super(superuser) -> Client:
    return logged_in(superuser)


@pytest.fixture
def staff_member_a(member_a):
    """member-a, made staff: the admin's read-only persona."""
    member_a.is_staff = True
    member_a.save(update_fields=["is_staff"])
    return member_a


@pytest.fixture
def client_member_a(staff_member_a) -> Client:
    return logged_in(staff_member_a)


@pytest.fixture
def org_c(db):
    return OrganizationFactory(slug="org-c", name="Organization C")


@pytest.fixture
def admin_a_and_c(org_a, org_c):
    """An admin of two organizations: the add page offers both, a key stays within one."""
    user = UserFactory(username="admin-ac", is_staff=True)
    MembershipFactory(organization=org_a, user=user, role=Membership.Role.ADMIN)
    MembershipFactory(organization=org_c, user=user, role=Membership.Role.ADMIN)
    return user


def full_keys_in(response) -> list[str]:
    return FULL_KEY.findall(response.content.decode())


def global_key_form(organization, name: str, deployments=(), *, scope: str = "selected", **extra) -> dict:
    """The add/change form's POST data for a global key."""
    data = {
        "organization": organization.pk,
        "name": name,
        "description": "",
        "scope": scope,
        "deployments": [deployment.pk for deployment in deployments],
        "is_active": "on",
        "expires_at_0": "",
        "expires_at_1": "",
        "rate_limit_per_minute": "",
    }
    data.update(extra)
    return data
