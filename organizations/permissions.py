"""Who may do what in an organization: one place for both the API and the admin."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from organizations.models import Membership, Organization

User = AbstractBaseUser | AnonymousUser


def role_in(user: User, organization: Organization) -> str | None:
    """"admin" for superusers and admins, "member" for members, None for everyone else."""
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return Membership.Role.ADMIN
    return (
        Membership.objects.filter(organization=organization, user=user).values_list("role", flat=True).first()
    )


def organizations_of(user: User, *, admin_only: bool = False) -> QuerySet[Organization]:
    """The organizations a user belongs to (all of them for a superuser)."""
    if not user.is_authenticated:
        return Organization.objects.none()
    if user.is_superuser:
        return Organization.objects.all()
    memberships = Membership.objects.filter(user=user)
    if admin_only:
        memberships = memberships.filter(role=Membership.Role.ADMIN)
    return Organization.objects.filter(pk__in=memberships.values("organization_id"))
