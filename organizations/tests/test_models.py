"""Organizations and memberships, with the constraints held by the database."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from organizations.models import Membership, Organization
from organizations.tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_an_organization_is_created_with_only_slug_and_name():
    organization = Organization.objects.create(slug="acme", name="Acme")

    organization.refresh_from_db()
    assert (organization.slug, organization.name) == ("acme", "Acme")
    assert organization.created_at is not None
    assert organization.default_rate_limit_per_minute is None
    assert str(organization) == "Acme"


def test_organization_slug_is_unique_in_the_database():
    Organization.objects.create(slug="acme", name="Acme")

    with pytest.raises(IntegrityError), transaction.atomic():
        Organization.objects.create(slug="acme", name="Another Acme")

    assert Organization.objects.filter(slug="acme").count() == 1


@pytest.mark.parametrize("slug", ["Not A Slug", "acme/corp", "acme corp", ""])
def test_organization_slug_must_be_a_slug(slug):
    with pytest.raises(ValidationError) as excinfo:
        Organization(slug=slug, name="Acme").full_clean()

    assert "slug" in excinfo.value.message_dict


def test_a_membership_is_created_with_organization_user_and_role(org_a):
    user = UserFactory()

    membership = Membership.objects.create(organization=org_a, user=user, role="admin")

    membership.refresh_from_db()
    assert membership.role == Membership.Role.ADMIN
    assert membership.created_at is not None
    assert list(user.memberships.values_list("organization__slug", flat=True)) == ["org-a"]


def test_a_membership_defaults_to_member(org_a):
    membership = Membership.objects.create(organization=org_a, user=UserFactory())

    assert membership.role == "member"


def test_a_user_has_at_most_one_membership_per_organization(org_a):
    user = UserFactory()
    MembershipFactory(organization=org_a, user=user, role="member")

    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.create(organization=org_a, user=user, role="admin")

    assert Membership.objects.filter(organization=org_a, user=user).count() == 1
    assert Membership.objects.get(organization=org_a, user=user).role == "member"


def test_a_user_may_belong_to_several_organizations(org_a, org_b):
    user = UserFactory()

    MembershipFactory(organization=org_a, user=user)
    MembershipFactory(organization=org_b, user=user, admin=True)

    assert dict(user.memberships.values_list("organization__slug", "role")) == {"org-a": "member", "org-b": "admin"}


def test_a_duplicate_membership_fails_validation_before_the_database(org_a):
    user = UserFactory()
    MembershipFactory(organization=org_a, user=user)

    with pytest.raises(ValidationError):
        Membership(organization=org_a, user=user, role="admin").full_clean()


@pytest.mark.parametrize("role", ["owner", "ADMIN", ""])
def test_a_membership_role_is_admin_or_member(org_a, role):
    with pytest.raises(ValidationError) as excinfo:
        Membership(organization=org_a, user=UserFactory(), role=role).full_clean()

    assert "role" in excinfo.value.message_dict


def test_deleting_an_organization_deletes_its_memberships_not_its_users(org_a, admin_a):
    org_a.delete()

    assert not Membership.objects.filter(user=admin_a).exists()
    admin_a.refresh_from_db()


def test_the_personas_belong_where_the_fixtures_say(org_a, org_b, admin_a, member_a, admin_b, superuser):
    assert admin_a.is_staff
    assert Membership.objects.get(user=admin_a).organization == org_a
    assert Membership.objects.get(user=admin_a).role == "admin"
    assert Membership.objects.get(user=member_a).role == "member"
    assert Membership.objects.get(user=admin_b).organization == org_b
    assert superuser.is_superuser and not superuser.memberships.exists()
