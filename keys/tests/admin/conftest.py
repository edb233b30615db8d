"""Admin personas: logged-in clients, and a staff member of org A."""

from __future__ import annotations

import pytest
from django.test import Client

from keys.tests.helpers import logged_in
from organizations.models import Membership
from organizations.tests.factories import MembershipFactory, OrganizationFactory, UserFactory


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
