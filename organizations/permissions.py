"""Who may do what in an organization: one place for both the API and the admin."""

from __future__ import annotations

from django.db.models import QuerySet

from lib.users import AnyUser, authenticated_user
from organizations.models import Membership, Organization


def role_in(user: AnyUser, organization: Organization) -> str | None:
    """"admin" for superusers and admins, "member" for members, None for everyone else."""
    member = authenticated_user(user)
    if member is None:
        return None
    if member.is_superuser:
        return Membership.Role.ADMIN
    return Membership.objects.filter(organization=organization, user=member).values_list("role", flat=True).first()


def organizations_of(user: AnyUser, *, admin_only: bool = False) -> QuerySet[Organization]:
    """The organizations a user belongs to (all of them for a superuser)."""
    member = authenticated_user(user)
    if member is None:
        return Organization.objects.none()
    if member.is_superuser:
        return Organization.objects.all()
    memberships = Membership.objects.filter(user=member)
    if admin_only:
        memberships = memberships.filter(role=Membership.Role.ADMIN)
    return Organization.objects.filter(pk__in=memberships.values("organization_id"))
