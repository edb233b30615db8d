"""Deployment keys, global keys, retired secrets and the audit trail.

Only a key's sha256 digest is stored. Every write goes through keys/services.py;
the model layer still guards the tenant boundary on its own, so a
shell session cannot link a global key to another organization's deployment.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import OuterRef, Q, Subquery
from django.db.models.functions import Lower
from django.utils import timezone

from deployments.models import Deployment, DeploymentGroup, GroupDeployment
from keys import crypto
from keys.allowed_ips import validate_allowed_ips
from keys.scopes import default_scopes, validate_scopes
from lib.guards import guard_links
from lib.managers import AtomicCreateManager
from organizations.models import Organization

ALLOW_ALL_WITH_LIST = "allow_all_deployments=true cannot be combined with a list of deployments."
ALLOW_ALL_WITH_GROUPS = "allow_all_deployments=true cannot be combined with groups."
FOREIGN_DEPLOYMENT = "Deployments must belong to the key's organization."
FOREIGN_GROUP = "Groups must belong to the key's organization."


def unset_digest() -> str:
    """A unique placeholder for a row made with plain `objects.create()`: it matches no key's sha256
    (hex has no colon), so such a row opens nothing until it is rotated."""
    return f"unset:{uuid.uuid4().hex}"


class KeyStatus(models.TextChoices):
    ACTIVE = "active"
    INACTIVE = "inactive"
    EXPIRED = "expired"
    REVOKED = "revoked"


class RevocationReason(models.TextChoices):
    """Why a key was revoked, when it was not simply an admin's decision. The label goes into the audit event."""

    REPORTED_AS_LEAKED = "leaked", "reported as leaked"
    REVOKED_BY_HOLDER = "holder", "revoked by its holder"


# The key service's issuing function for each kind. keys/services.py imports this module, so it
# fills this in when it loads (KeysConfig.ready loads it) instead of this module importing it back.
ISSUERS: dict[str, Callable[..., tuple[Any, str]]] = {}


class KeyFormat(models.TextChoices):
    """What shape the key's current secret has: keyscope's own, or an imported UUID."""

    KEYSCOPE = crypto.KEYSCOPE_FORMAT, "keyscope"
    UUID = crypto.UUID_FORMAT, "UUID (imported)"


class KeyQuerySet(models.QuerySet):
    def with_status(self, status: str, now: datetime | None = None) -> KeyQuerySet:
        """The keys whose status_at(now) is `status`: the same rule, as a query."""
        now = now or timezone.now()
        live = Q(revoked_at__isnull=True)
        expired = Q(expires_at__isnull=False, expires_at__lte=now)
        conditions = {
            KeyStatus.REVOKED: ~live,
            KeyStatus.EXPIRED: live & expired,
            KeyStatus.INACTIVE: live & ~expired & Q(is_active=False),
            KeyStatus.ACTIVE: live & ~expired & Q(is_active=True),
        }
        return self.filter(conditions[KeyStatus(status)])

    def with_previous_key_expiry(self, now: datetime | None = None) -> KeyQuerySet:
        """Annotate what `ApiKey.previous_key_expires_at` reads, so a list costs no query per key."""
        now = now or timezone.now()
        still_working = (
            RetiredSecret.objects.filter(key_kind=self.model.KIND, key_id=OuterRef("pk"), valid_until__gt=now)
            .order_by("-valid_until")
            .values("valid_until")[:1]
        )
        return self.annotate(previous_key_valid_until=Subquery(still_working))


class KeyManager(AtomicCreateManager.from_queryset(KeyQuerySet)):  # type: ignore[misc]
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
    # "Enabled", not "active": an expired or revoked key is not active, whatever this switch says.
    is_active = models.BooleanField(
        "enabled", default=True, help_text="Off: clients get key_inactive until it is switched on again (unlike revoking)."
    )
    expires_at = models.DateTimeField("expires", null=True, blank=True)
    revoked_at = models.DateTimeField("revoked", null=True, blank=True, editable=False)
    revocation_reason = models.CharField(
        max_length=16, choices=RevocationReason.choices, blank=True, default="", editable=False
    )
    last_used_at = models.DateTimeField("last used", null=True, blank=True, editable=False)
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Requests per minute; empty uses the organization's default, 0 means unlimited.",
    )
    scopes = models.JSONField(
        default=default_scopes,
        validators=[validate_scopes],
        help_text="What the key may do: at least one action.",
    )
    allowed_ips = models.JSONField(
        "allowed addresses",
        default=list,
        blank=True,
        validators=[validate_allowed_ips],
        help_text="The client addresses or networks the key may be used from; none allows any address.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    modified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_at = models.DateTimeField("created", auto_now_add=True)
    modified_at = models.DateTimeField("modified", auto_now=True)

    objects = KeyManager()

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        # The name alone: the admin keeps this text in its log, and a rotation changes the mask.
        return self.name

    @property
    def key_masked(self) -> str:
        return crypto.mask(self.KIND, self.last4, self.format) if self.last4 else ""

    def status_at(self, now: datetime) -> str:
        """Revoked, else expired, else inactive, else active; KeyQuerySet.with_status() is the same rule as a query."""
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

    @property
    def previous_key_expires_at(self) -> datetime | None:
        """Until when the secret replaced by the last rotation works; None when it no longer does, or there was none."""
        now = timezone.now()
        if "previous_key_valid_until" in self.__dict__:
            valid_until = self.__dict__["previous_key_valid_until"]
        else:
            valid_until = (
                RetiredSecret.objects.filter(key_kind=self.KIND, key_id=self.pk, valid_until__gt=now)
                .order_by("-valid_until")
                .values_list("valid_until", flat=True)
                .first()
            )
        return valid_until if valid_until is not None and valid_until > now else None


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
    deployments: models.ManyToManyField[Deployment, GlobalKeyDeployment] = models.ManyToManyField(
        Deployment, through="GlobalKeyDeployment", related_name="global_keys", blank=True
    )
    # The key opens every deployment its groups hold now, beside its own list.
    groups: models.ManyToManyField[DeploymentGroup, GlobalKeyGroup] = models.ManyToManyField(
        DeploymentGroup, through="GlobalKeyGroup", related_name="global_keys", blank=True
    )

    class Meta(ApiKey.Meta):
        verbose_name = "global API deployment key"
        constraints = [
            models.UniqueConstraint(Lower("name"), "organization", name="global_key_name_unique_per_organization"),
        ]

    def stored_scope_errors(self) -> dict[str, str]:
        """What the stored scope links break of the tenant guard (a new key has none)."""
        if self._state.adding:
            return {}
        links = GlobalKeyDeployment.objects.filter(key_id=self.pk)
        group_links = GlobalKeyGroup.objects.filter(key_id=self.pk)
        if self.allow_all_deployments and links.exists():
            return {"allow_all_deployments": ALLOW_ALL_WITH_LIST}
        if self.allow_all_deployments and group_links.exists():
            return {"allow_all_deployments": ALLOW_ALL_WITH_GROUPS}
        if links.exclude(deployment__organization_id=self.organization_id).exists():
            return {"deployments": FOREIGN_DEPLOYMENT}
        if group_links.exclude(group__organization_id=self.organization_id).exists():
            return {"groups": FOREIGN_GROUP}
        return {}

    def opened_deployments(self) -> models.QuerySet[Deployment]:
        """Every deployment the key opens now: all of its organization's, or its list's and its groups'."""
        if self.allow_all_deployments:
            return Deployment.objects.filter(organization_id=self.organization_id)
        return deployments_in_scope(self.pk, self.organization_id)

    def clean(self) -> None:
        super().clean()
        if errors := self.stored_scope_errors():
            raise ValidationError(errors)

    def save(self, *args: Any, **kwargs: Any) -> None:
        if errors := self.stored_scope_errors():
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

    def __str__(self) -> str:
        return f"{self.key} opens {self.deployment}"

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


class GlobalKeyGroup(models.Model):
    """The binding of a global key to one deployment group of the same organization."""

    key = models.ForeignKey(GlobalApiDeploymentKey, on_delete=models.CASCADE, related_name="group_links")
    group = models.ForeignKey(DeploymentGroup, on_delete=models.CASCADE, related_name="global_key_links")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key", "group"], name="global_key_group_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.key} follows group {self.group}"

    def clean(self) -> None:
        check_group_link(self.key, [self.group])

    def save(self, *args: Any, **kwargs: Any) -> None:
        check_group_link(self.key, [self.group])
        super().save(*args, **kwargs)


def check_group_link(key: GlobalApiDeploymentKey, groups: list[DeploymentGroup]) -> None:
    """The tenant guard: a global key is bound only to groups of its own organization."""
    if key.allow_all_deployments:
        raise ValidationError({"groups": ALLOW_ALL_WITH_GROUPS})
    if any(group.organization_id != key.organization_id for group in groups):
        raise ValidationError({"groups": FOREIGN_GROUP})


def deployments_in_scope(key_id: Any, organization_id: int) -> models.QuerySet[Deployment]:
    """The deployments a selected-scope global key opens: its own list and what its groups hold now.

    Two EXISTS per deployment of the organization, each an index probe, so asking
    about one deployment (`.filter(pk=...)`) costs the same however large the
    key's list or its groups. keys/lookup.py asks the same in its hand-written
    SQL, for the cold check's one query.
    """
    listed = GlobalKeyDeployment.objects.filter(key_id=key_id, deployment_id=models.OuterRef("pk"))
    groups = GlobalKeyGroup.objects.filter(key_id=key_id).values("group_id")
    grouped = GroupDeployment.objects.filter(deployment_id=models.OuterRef("pk"), group_id__in=groups)
    return Deployment.objects.filter(organization_id=organization_id).filter(models.Exists(listed) | models.Exists(grouped))


MOVED_WITH_DEPLOYMENT_KEYS = "A deployment with keys cannot move to another organization: its keys would move with it."
MOVED_WITH_GLOBAL_KEYS = "A deployment linked to global keys cannot move to another organization."
MOVED_GROUP_WITH_GLOBAL_KEYS = "A group bound to global keys cannot move to another organization."


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


def group_move_errors(group: DeploymentGroup) -> dict[str, str]:
    """The tenant guard from the group's side, for a group that is changing organization: its keys' links would cross it."""
    if GlobalKeyGroup.objects.filter(group_id=group.pk).exclude(key__organization_id=group.organization_id).exists():
        return {"organization": MOVED_GROUP_WITH_GLOBAL_KEYS}
    return {}


guard_links(GlobalKeyDeployment, owner=GlobalApiDeploymentKey, target=Deployment, check=check_scope_link)
guard_links(GlobalKeyGroup, owner=GlobalApiDeploymentKey, target=DeploymentGroup, check=check_group_link)


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


class ExpiryNotice(models.Model):
    """That an organization's admins were told, on the UTC day `sent_on`, that this key expires soon.

    `manage.py keys notify-expiring` runs daily from cron; the unique day keeps a second
    run on the same day (or two at once) from telling anyone twice.
    """

    key_kind = models.CharField(max_length=16)
    key_id = models.UUIDField()
    sent_on = models.DateField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["key_kind", "key_id", "sent_on"], name="expiry_notice_once_per_key_and_day"
            ),
        ]

    def __str__(self) -> str:
        return f"expiry notice of {self.key_kind} key {self.key_id} on {self.sent_on}"


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        raise ValidationError("Audit events cannot be changed.")

    def delete(self) -> Any:
        # Bulk deletion (the admin's delete action) bypasses AuditEvent.delete().
        raise ValidationError("Audit events cannot be deleted.")


class AuditEvent(models.Model):
    """An append-only record of one change to a key or a deployment group. Outlives the key, its deployment and the group."""

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
    # Null, not "", where they do not apply: the key fields on an event that is not about a key (a change
    # of the organization's key policy, a deployment group's), the group on every other event. The API
    # shows them as null there.
    key_kind = models.CharField(  # noqa: DJ001
        max_length=16, choices=[("deployment", "deployment"), ("global", "global")], null=True, blank=True
    )
    key_id = models.UUIDField("key ID", db_index=True, null=True, blank=True)
    key_name = models.CharField(max_length=100, null=True, blank=True)  # noqa: DJ001
    group = models.CharField(  # noqa: DJ001
        max_length=100, null=True, blank=True, db_index=True, help_text="The deployment group's slug, for a group's event."
    )
    action = models.CharField(max_length=16, choices=Action.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_username = models.CharField(max_length=150, blank=True, default="")
    ip_address = models.GenericIPAddressField("IP address", null=True, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField("time", default=timezone.now, db_index=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "-created_at"], name="audit_organization_newest")]

    def __str__(self) -> str:
        subject = f"group {self.group}" if self.group else self.key_name or "key policy"
        return f"{subject} {self.action} by {self.actor_username or 'system'}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValidationError("Audit events cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise ValidationError("Audit events cannot be deleted.")


class KeyUsageDay(models.Model):
    """Requests a key made in one UTC day, summed from every worker's buffered counts (keys/usage.py).

    By key id, not a foreign key: a key is of one of two tables, and what it did outlives it as its audit events do.
    """

    key_id = models.UUIDField()
    day = models.DateField()
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key_id", "day"], name="key_usage_day_unique")]

    def __str__(self) -> str:
        return f"{self.key_id} on {self.day}: {self.count}"


class VerificationStamp(models.Model):
    """One row whose version every write that could change a key check moves on (keys/verification_cache.py).

    Written in the write's own transaction, by whatever process makes it (a worker, the admin, a `manage.py`
    command), and read by every worker at most twice a second: a worker that sees it move empties its
    verification cache, so a write is honoured within that bound even when no flush message reached it.
    """

    version = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"verification stamp {self.version}"
