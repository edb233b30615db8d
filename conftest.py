"""Personas shared by every app's tests, in the healthchecks way.

org A has an admin (a staff user) and a member; org B has an admin; a
superuser belongs to no organization. Deployments and keys of each kind come
from keys/tests/fixtures.py, the `upstream` test server from
deployments/tests/upstream_server.py; helpers are imported from
keys/tests/helpers.py.
"""

import pytest

from keys.worker_state import forget_worker_state
from organizations.models import Membership
from organizations.tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytest_plugins = ["keys.tests.fixtures", "deployments.tests.upstream_server", "backend.tests.log_capture"]


@pytest.fixture(autouse=True)
def _clear_cache():
    """Rate-limit counters and cached lookups must not leak from one test into the next."""
    forget_worker_state()
    yield
    forget_worker_state()


@pytest.fixture
def org_a(db):
    return OrganizationFactory(slug="org-a", name="Organization A")


@pytest.fixture
def org_b(db):
    return OrganizationFactory(slug="org-b", name="Organization B")


@pytest.fixture
def admin_a(org_a):
    user = UserFactory(username="admin-a", is_staff=True)
    MembershipFactory(organization=org_a, user=user, role=Membership.Role.ADMIN)
    return user


@pytest.fixture
def member_a(org_a):
    user = UserFactory(username="member-a")
    MembershipFactory(organization=org_a, user=user, role=Membership.Role.MEMBER)
    return user


@pytest.fixture
def admin_b(org_b):
    user = UserFactory(username="admin-b", is_staff=True)
    MembershipFactory(organization=org_b, user=user, role=Membership.Role.ADMIN)
    return user


@pytest.fixture
def superuser(db):
    return UserFactory(username="superuser", is_staff=True, is_superuser=True)


@pytest.fixture
def staff_member_a(member_a):
    """member-a, made staff: the admin's read-only persona."""
    member_a.is_staff = True
    member_a.save(update_fields=["is_staff"])
    return member_a
