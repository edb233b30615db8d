"""Every write to a deployment goes through here: the API, commands and tests."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from deployments.models import Deployment
from organizations.models import Organization

Actor = AbstractBaseUser | AnonymousUser | None

UPDATABLE_FIELDS = frozenset({"name", "description", "is_active"})
SLUG_TAKEN = "A deployment with this slug already exists in this organization."
SLUG_FIXED = "The slug is fixed once the deployment is created."
NAME_MAX_LENGTH = Deployment._meta.get_field("name").max_length


def _clean_name(name: Any) -> str:
    name = str(name or "").strip()
    if not name:
        raise ValidationError({"name": "This field may not be blank."})
    if len(name) > NAME_MAX_LENGTH:
        raise ValidationError({"name": f"Ensure this field has no more than {NAME_MAX_LENGTH} characters."})
    return name


def _slug_taken(deployment: Deployment) -> bool:
    return (
        Deployment.objects.filter(organization_id=deployment.organization_id, slug=deployment.slug)
        .exclude(pk=deployment.pk)
        .exists()
    )


@transaction.atomic
def deployment_create(
    *,
    organization: Organization,
    actor: Actor,
    slug: str,
    name: str,
    description: str = "",
    is_active: bool = True,
) -> Deployment:
    deployment = Deployment(
        organization=organization, slug=slug, name=_clean_name(name), description=description, is_active=is_active
    )
    if _slug_taken(deployment):
        raise ValidationError({"slug": SLUG_TAKEN})
    try:
        with transaction.atomic():
            deployment.save(force_insert=True)
    except IntegrityError as exc:
        # Lost a race with a concurrent create of the same slug.
        raise ValidationError({"slug": SLUG_TAKEN}) from exc
    return deployment


@transaction.atomic
def deployment_update(*, deployment: Deployment, actor: Actor, **changes: Any) -> Deployment:
    """Change a deployment's name, description or is_active. The slug never changes."""
    if "slug" in changes:
        raise ValidationError({"slug": SLUG_FIXED})
    unknown = set(changes) - UPDATABLE_FIELDS
    if unknown:
        raise ValidationError({field: "This field cannot be changed." for field in sorted(unknown)})
    locked = Deployment.objects.select_for_update().get(pk=deployment.pk)
    if "name" in changes:
        changes["name"] = _clean_name(changes["name"])
    for field, value in changes.items():
        setattr(locked, field, value)
    locked.save()
    return locked


@transaction.atomic
def deployment_delete(*, deployment: Deployment, actor: Actor, ip_address: str | None = None) -> None:
    """Delete a deployment with its keys (each audited `deleted`) and its executions (CONTRACT §5).

    Global keys that listed it lose it from their scope, audited as a `changed` event.
    """
    from keys.models import DeploymentKey, GlobalApiDeploymentKey
    from keys.services import key_delete, key_update

    for key in DeploymentKey.objects.filter(deployment=deployment).select_related("deployment"):
        key_delete(key=key, actor=actor, ip_address=ip_address)
    for key in GlobalApiDeploymentKey.objects.filter(deployments=deployment).distinct():
        remaining = list(key.deployments.exclude(pk=deployment.pk))
        key_update(key=key, actor=actor, ip_address=ip_address, deployments=remaining)
    deployment.delete()  # executions and scope links cascade
