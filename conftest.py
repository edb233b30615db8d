"""Personas shared by every app's tests, in the healthchecks way.

org A has an admin (a staff user) and a member; org B has an admin; a
superuser belongs to no organization. Keys of each kind are added by the
keys app's own fixtures.
"""

import pytest
from django.core.cache import cache

from keys import ratelimit, usage, verification, verification_cache
from organizations.models import Membership
from organizations.tests.factories import MembershipFactory, OrganizationFactory, UserFactory


def _forget_everything() -> None:
    usage.flush_usage()  # drain this process's buffer before the store is emptied
    cache.clear()  # with Redis, a FLUSHDB: rate-limit and usage counters too
    verification_cache.local_cache.clear()
    verification._last_touched.clear()
    ratelimit.forget_leases()
    ratelimit.forget_throttled()


@pytest.fixture(autouse=True)
def _clear_cache():
    """Rate-limit counters and cached lookups must not leak from one test into the next."""
    _forget_everything()
    yield
    _forget_everything()


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
