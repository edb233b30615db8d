"""Deployment keys, global keys, retired secrets and the audit trail.

Only a key's sha256 digest is stored. Every write goes through keys/services.py;
the model layer still guards the tenant boundary on its own (CONTRACT §1), so a
shell session cannot link a global key to another organization's deployment.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower
from django.db.models.signals import m2m_changed
from django.dispatch import receiver
from django.utils import timezone

from deployments.models import Deployment
from keys import crypto
from organizations.models import Organization

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


ALLOW_ALL_WITH_LIST = "A key that opens all deployments cannot also list deployments."
FOREIGN_DEPLOYMENT = "Deployments must belong to the key's organization."


class KeyStatus(models.TextChoices):
    ACTIVE = "active"
    INACTIVE = "inactive"
    EXPIRED = "expired"
    REVOKED = "revoked"


class KeyManager(models.Manager):
    def issue(self, **fields: Any) -> tuple[ApiKey, str]:
        """Save a new key through the key service (audited, actor null); return (row, full key)."""
        from keys.services import key_issue

        return key_issue(model=self.model, actor=None, **fields)


class ApiKey(models.Model):
    """What both kinds of key share."""

    KIND: ClassVar[crypto.KeyKind]

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, default="")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    last4 = models.CharField(max_length=4, editable=False)
    is_active = models.BooleanField(default=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Requests per minute; empty uses the organization's default, 0 means unlimited.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    modified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    modified_at = models.DateTimeField(auto_now=True)

    objects = KeyManager()

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.key_masked})"

    @property
    def key_masked(self) -> str:
        return crypto.mask(self.KIND, self.last4) if self.last4 else ""

    def status_at(self, now: Any) -> str:
        if self.revoked_at is not None:
            return KeyStatus.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return KeyStatus.EXPIRED
        if not self.is_active:
            return KeyStatus.INACTIVE
        return KeyStatus.ACTIVE

    @property
    def status(self) -> str:
        return self.status_at(timezone.now())

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class DeploymentKey(ApiKey):
    """Opens exactly one deployment."""

    KIND = "deployment"

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="keys")

    class Meta(ApiKey.Meta):
        verbose_name = "deployment key"
        constraints = [
            models.UniqueConstraint(Lower("name"), "deployment", name="deployment_key_name_unique_per_deployment"),
        ]

    @property
    def organization(self) -> Organization:
        return self.deployment.organization


class GlobalApiDeploymentKey(ApiKey):
    """Opens all of an organization's deployments, or the ones linked to it."""

    KIND = "global"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="global_keys")
    allow_all_deployments = models.BooleanField(
        default=False, help_text="Open every deployment of the organization, current and future."
    )
    deployments = models.ManyToManyField(
        Deployment, through="GlobalKeyDeployment", related_name="global_keys", blank=True
    )

    class Meta(ApiKey.Meta):
        verbose_name = "global API deployment key"
        constraints = [
            models.UniqueConstraint(Lower("name"), "organization", name="global_key_name_unique_per_organization"),
        ]

    def scope_errors(self) -> dict[str, str]:
        """What the stored scope links break of the tenant guard (a new key has none)."""
        if self._state.adding:
            return {}
        links = GlobalKeyDeployment.objects.filter(key_id=self.pk)
        if self.allow_all_deployments and links.exists():
            return {"allow_all_deployments": ALLOW_ALL_WITH_LIST}
        if links.exclude(deployment__organization_id=self.organization_id).exists():
            return {"deployments": FOREIGN_DEPLOYMENT}
        return {}

    def clean(self) -> None:
        super().clean()
        if errors := self.scope_errors():
            raise ValidationError(errors)

    def save(self, *args: Any, **kwargs: Any) -> None:
        if errors := self.scope_errors():
            raise ValidationError(errors)
        super().save(*args, **kwargs)


class GlobalKeyDeployment(models.Model):
    """The link between a global key and one deployment of the same organization."""

    key = models.ForeignKey(GlobalApiDeploymentKey, on_delete=models.CASCADE, related_name="scope_links")
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="global_key_links")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key", "deployment"], name="global_key_deployment_unique"),
        ]

    def clean(self) -> None:
        check_scope_link(self.key, [self.deployment])

    def save(self, *args: Any, **kwargs: Any) -> None:
        check_scope_link(self.key, [self.deployment])
        super().save(*args, **kwargs)


def check_scope_link(key: GlobalApiDeploymentKey, deployments: list[Deployment]) -> None:
    """The tenant guard: a global key links only deployments of its own organization."""
    if key.allow_all_deployments:
        raise ValidationError({"deployments": ALLOW_ALL_WITH_LIST})
    if any(deployment.organization_id != key.organization_id for deployment in deployments):
        raise ValidationError({"deployments": FOREIGN_DEPLOYMENT})


@receiver(m2m_changed, sender=GlobalKeyDeployment)
def guard_scope_links(sender: type, instance: Any, action: str, reverse: bool, pk_set: set | None, **kwargs: Any) -> None:
    """`key.deployments.add()/set()` and `deployment.global_keys.add()` bypass the through model's save()."""
    if action != "pre_add" or not pk_set:
        return
    if reverse:
        for key in GlobalApiDeploymentKey.objects.filter(pk__in=pk_set):
            check_scope_link(key, [instance])
    else:
        check_scope_link(instance, list(Deployment.objects.filter(pk__in=pk_set)))


class RetiredSecret(models.Model):
    """A secret replaced by a rotation: recognised forever, accepted until `valid_until`.

    Keeping it recognised is what lets a rotated-out secret answer `key_revoked`
    instead of looking like an unknown key.
    """

    digest = models.CharField(max_length=64, unique=True)
    key_kind = models.CharField(max_length=16)
    key_id = models.UUIDField(db_index=True)
    valid_until = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"retired secret of {self.key_kind} key {self.key_id}"


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        raise ValidationError("Audit events cannot be changed.")

    def delete(self) -> Any:
        # Bulk deletion (the admin's delete action) bypasses AuditEvent.delete().
        raise ValidationError("Audit events cannot be deleted.")


class AuditEvent(models.Model):
    """An append-only record of one change to a key. Outlives the key and its deployment."""

    class Action(models.TextChoices):
        CREATED = "created"
        CHANGED = "changed"
        ROTATED = "rotated"
        REVOKED = "revoked"
        ACTIVATED = "activated"
        DEACTIVATED = "deactivated"
        DELETED = "deleted"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="audit_events")
    key_kind = models.CharField(max_length=16, choices=[("deployment", "deployment"), ("global", "global")])
    key_id = models.UUIDField(db_index=True)
    key_name = models.CharField(max_length=100)
    action = models.CharField(max_length=16, choices=Action.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_username = models.CharField(max_length=150, blank=True, default="")
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "-created_at"], name="audit_organization_newest")]

    def __str__(self) -> str:
        return f"{self.key_name} {self.action} by {self.actor_username or 'system'}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValidationError("Audit events cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise ValidationError("Audit events cannot be deleted.")


def user_label(user: AbstractBaseUser | None) -> str | None:
    return user.get_username() if user is not None and user.is_authenticated else None
