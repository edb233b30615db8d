"""Deployment keys, global keys, retired secrets and the audit trail.

Only a key's sha256 digest is stored. Every write goes through keys/services.py;
the model layer still guards the tenant boundary on its own (CONTRACT §1), so a
shell session cannot link a global key to another organization's deployment.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, router, transaction
from django.db.models.fields.related_descriptors import ManyToManyDescriptor, create_forward_many_to_many_manager
from django.db.models.functions import Lower
from django.db.models.signals import m2m_changed
from django.dispatch import receiver
from django.utils import timezone
from django.utils.functional import cached_property

from deployments.models import Deployment
from keys import crypto
from organizations.models import Organization

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


ALLOW_ALL_WITH_LIST = "A key that opens all deployments cannot also list deployments."
FOREIGN_DEPLOYMENT = "Deployments must belong to the key's organization."


def unset_digest() -> str:
    """A unique placeholder for a row made with plain `objects.create()`: it matches no key's sha256
    (hex has no colon), so such a row opens nothing until it is rotated."""
    return f"unset:{uuid.uuid4().hex}"


class KeyStatus(models.TextChoices):
    ACTIVE = "active"
    INACTIVE = "inactive"
    EXPIRED = "expired"
    REVOKED = "revoked"


# The key service's issuing function for each kind. keys/services.py imports this module, so it
# fills this in when it loads (KeysConfig.ready loads it) instead of this module importing it back.
ISSUERS: dict[str, Callable[..., tuple[Any, str]]] = {}


class KeyFormat(models.TextChoices):
    """What shape the key's current secret has: keyscope's own, or an imported UUID (CONTRACT §9)."""

    KEYSCOPE = crypto.KEYSCOPE_FORMAT, "keyscope"
    UUID = crypto.UUID_FORMAT, "UUID (imported)"


class KeyManager(models.Manager):
    def issue(self, **fields: Any) -> tuple[ApiKey, str]:
        """Save a new key through the key service (audited, actor null); return (row, full key)."""
        return ISSUERS[self.model.KIND](actor=None, **fields)


class ApiKey(models.Model):
    """What both kinds of key share."""

    KIND: ClassVar[crypto.KeyKind]
    # Columns no admin filter or search may touch (organizations/admin.py).
    SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset({"digest"})

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, default="")
    digest = models.CharField(max_length=64, unique=True, editable=False, default=unset_digest)
    last4 = models.CharField(max_length=4, editable=False)
    format = models.CharField(
        max_length=16,
        choices=KeyFormat.choices,
        default=KeyFormat.KEYSCOPE,
        editable=False,
        help_text="keyscope's own key, or a UUID imported from Unstract (until the key is rotated).",
    )
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
        return crypto.mask(self.KIND, self.last4, self.format) if self.last4 else ""

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


def _atomic_create_manager(manager_cls: type) -> type:
    """A related manager whose create(), get_or_create() and update_or_create() run in one transaction.

    Django's many-to-many manager saves the new row and then add()s the link, with
    no transaction around the two: when the tenant guard refuses the link, the row
    (a deployment of another organization, say) would stay committed.
    """

    class AtomicCreateManager(manager_cls):  # type: ignore[misc, valid-type]
        def _atomic(self) -> Any:
            return transaction.atomic(using=router.db_for_write(self.instance.__class__, instance=self.instance))

        def create(self, **kwargs: Any) -> Any:
            with self._atomic():
                return super().create(**kwargs)

        create.alters_data = True  # type: ignore[attr-defined]

        def get_or_create(self, **kwargs: Any) -> Any:
            with self._atomic():
                return super().get_or_create(**kwargs)

        get_or_create.alters_data = True  # type: ignore[attr-defined]

        def update_or_create(self, **kwargs: Any) -> Any:
            with self._atomic():
                return super().update_or_create(**kwargs)

        update_or_create.alters_data = True  # type: ignore[attr-defined]

    AtomicCreateManager.__name__ = AtomicCreateManager.__qualname__ = manager_cls.__name__
    return AtomicCreateManager


class _AtomicCreateManyToManyDescriptor(ManyToManyDescriptor):
    @cached_property
    def related_manager_cls(self) -> type:
        related_model = self.rel.related_model if self.reverse else self.rel.model
        return _atomic_create_manager(
            create_forward_many_to_many_manager(related_model._default_manager.__class__, self.rel, reverse=self.reverse)
        )


class ScopeField(models.ManyToManyField):
    """A many-to-many whose related managers' create() stores nothing when the link is refused.

    Both sides (`key.deployments` and `deployment.global_keys`) get the atomic
    manager. Migrations see a plain ManyToManyField.
    """

    def contribute_to_class(self, cls: type, name: str, **kwargs: Any) -> None:
        super().contribute_to_class(cls, name, **kwargs)
        setattr(cls, self.name, _AtomicCreateManyToManyDescriptor(self.remote_field, reverse=False))

    def contribute_to_related_class(self, cls: type, related: Any) -> None:
        super().contribute_to_related_class(cls, related)
        if not self.remote_field.hidden and not related.related_model._meta.swapped:
            setattr(cls, related.accessor_name, _AtomicCreateManyToManyDescriptor(self.remote_field, reverse=True))

    def deconstruct(self) -> Any:
        name, _path, args, kwargs = super().deconstruct()
        return name, "django.db.models.ManyToManyField", args, kwargs


class GlobalApiDeploymentKey(ApiKey):
    """Opens all of an organization's deployments, or the ones linked to it."""

    KIND = "global"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="global_keys")
    allow_all_deployments = models.BooleanField(
        default=False, help_text="Open every deployment of the organization, current and future."
    )
    deployments = ScopeField(
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


MODEL_BY_KIND: dict[str, type[ApiKey]] = {DeploymentKey.KIND: DeploymentKey, GlobalApiDeploymentKey.KIND: GlobalApiDeploymentKey}


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


MOVED_WITH_DEPLOYMENT_KEYS = "A deployment with keys cannot move to another organization: its keys would move with it."
MOVED_WITH_GLOBAL_KEYS = "A deployment linked to global keys cannot move to another organization."


def deployment_move_errors(deployment: Deployment) -> dict[str, str]:
    """The tenant guard from the deployment's side, for a deployment that is changing organization.

    A deployment key's organization is its deployment's, so moving the deployment
    would move its keys to another tenant; a global key's links would cross the
    boundary. Deployment.clean() and save() ask through `organization_changing`.
    """
    if DeploymentKey.objects.filter(deployment_id=deployment.pk).exists():
        return {"organization": MOVED_WITH_DEPLOYMENT_KEYS}
    if (
        GlobalKeyDeployment.objects.filter(deployment_id=deployment.pk)
        .exclude(key__organization_id=deployment.organization_id)
        .exists()
    ):
        return {"organization": MOVED_WITH_GLOBAL_KEYS}
    return {}


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

    SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset({"digest"})

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
