import json
import uuid
from typing import Any, ClassVar

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from deployments import encryption
from deployments.signals import organization_changing
from deployments.upstream import validate_upstream_headers, validate_upstream_url
from lib.guards import guard_links
from lib.managers import AtomicCreateManager
from organizations.models import Organization

SLUG_MAX_LENGTH = 100
NAME_MAX_LENGTH = 200
UPSTREAM_URL_MAX_LENGTH = 2000
MOVED_WITH_GROUPS = "A deployment in a group cannot move to another organization: remove it from its groups first."
FOREIGN_GROUP_DEPLOYMENT = "A group holds only deployments of its own organization."
MOVED_GROUP_WITH_DEPLOYMENTS = "A group with deployments cannot move to another organization."
MIN_TIMEOUT_SECONDS = 1
MAX_TIMEOUT_SECONDS = 300


class Deployment(models.Model):
    """An API that an organization exposes; clients execute it with a key."""

    class Runner(models.TextChoices):
        ECHO = "echo", "Echo (returns the request body)"
        HTTP = "http", "HTTP (posts the request body to the upstream URL)"

    # Columns no admin filter or search may touch (organizations/admin.py).
    SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset({"upstream_headers_encrypted"})

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="deployments")
    slug = models.SlugField(max_length=SLUG_MAX_LENGTH, help_text="Part of the URL; fixed once created.")
    name = models.CharField(max_length=NAME_MAX_LENGTH)
    description = models.TextField(blank=True, default="")
    is_active = models.BooleanField("active", default=True)
    runner = models.CharField(max_length=16, choices=Runner.choices, default=Runner.ECHO)
    upstream_url = models.URLField(
        "upstream URL",
        max_length=UPSTREAM_URL_MAX_LENGTH,
        blank=True,
        default="",
        validators=[validate_upstream_url],
        help_text="Where the HTTP runner posts the request body (http or https; internal addresses are refused).",
    )
    timeout_seconds = models.PositiveSmallIntegerField(
        "timeout (seconds)",
        default=30,
        validators=[MinValueValidator(MIN_TIMEOUT_SECONDS), MaxValueValidator(MAX_TIMEOUT_SECONDS)],
        help_text=f"How long the HTTP runner waits for the upstream ({MIN_TIMEOUT_SECONDS} to {MAX_TIMEOUT_SECONDS} seconds).",
    )
    # A Fernet token of the JSON header map (deployments/encryption.py); "" when there is none.
    # Write-only: set with set_upstream_headers(), read with upstream_headers().
    upstream_headers_encrypted = models.TextField(blank=True, default="", editable=False)
    # The names in plaintext, so they can be shown without decrypting anything.
    upstream_header_names = models.JSONField(default=list, blank=True, editable=False)
    created_at = models.DateTimeField("created", auto_now_add=True)
    modified_at = models.DateTimeField("modified", auto_now=True)

    # `key.deployments.create(...)` stores nothing when the tenant guard refuses the link.
    objects = AtomicCreateManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="deployment_slug_unique_per_organization"),
            models.CheckConstraint(
                condition=models.Q(timeout_seconds__gte=MIN_TIMEOUT_SECONDS, timeout_seconds__lte=MAX_TIMEOUT_SECONDS),
                name="deployment_timeout_seconds_in_range",
            ),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.organization.slug}/{self.slug}"

    def clean(self) -> None:
        super().clean()
        if self.runner == self.Runner.HTTP and not self.upstream_url:
            raise ValidationError({"upstream_url": "The http runner needs an upstream URL."})
        if errors := self.move_errors():
            raise ValidationError(errors)

    def save(self, *args: Any, **kwargs: Any) -> None:
        update_fields = kwargs.get("update_fields")
        if update_fields is None or {"organization", "organization_id"} & set(update_fields):
            if errors := self.move_errors():
                raise ValidationError(errors)
        super().save(*args, **kwargs)

    def move_errors(self) -> dict[str, str]:
        """Why this stored deployment may not change organization ({} when it is not changing, or may).

        The apps whose rows depend on it answer `organization_changing`: a
        deployment key's organization is its deployment's, so moving would take
        keys to another tenant.
        """
        if self._state.adding or self.pk is None:
            return {}
        stored = Deployment.objects.filter(pk=self.pk).values_list("organization_id", flat=True).first()
        if stored is None or stored == self.organization_id:
            return {}
        if GroupDeployment.objects.filter(deployment_id=self.pk).exclude(group__organization_id=self.organization_id).exists():
            return {"organization": MOVED_WITH_GROUPS}
        errors: dict[str, str] = {}
        for _receiver, answer in organization_changing.send(sender=Deployment, deployment=self):
            errors.update(answer)  # type: ignore[arg-type]  # each receiver answers a dict
        return errors

    @property
    def has_upstream_headers(self) -> bool:
        return bool(self.upstream_headers_encrypted)

    def set_upstream_headers(self, headers: dict[str, str] | None) -> None:
        """Replace the headers added to upstream calls (encrypted; {} or None clears them). Call save() after.

        Raises ValidationError for a bad map and encryption.CredentialsError when
        KEYSCOPE_ENCRYPTION_KEYS is missing or wrong: never stored in plaintext.
        """
        headers = validate_upstream_headers(headers)
        if not headers:
            self.upstream_headers_encrypted = ""
            self.upstream_header_names = []
            return
        self.upstream_headers_encrypted = encryption.encrypt(json.dumps(headers, separators=(",", ":")))
        self.upstream_header_names = sorted(headers, key=str.lower)

    def upstream_headers(self) -> dict[str, str]:
        """The decrypted header map; raises encryption.CredentialsError when it cannot be read."""
        if not self.upstream_headers_encrypted:
            return {}
        return json.loads(encryption.decrypt(self.upstream_headers_encrypted))


class Execution(models.Model):
    """One call of a deployment by a key, successful or not."""

    class Status(models.TextChoices):
        COMPLETED = "COMPLETED"
        FAILED = "FAILED"

    class KeyKind(models.TextChoices):
        DEPLOYMENT = "deployment"
        GLOBAL = "global"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="executions")
    status = models.CharField(max_length=16, choices=Status.choices)
    request = models.JSONField(default=dict, blank=True)
    result = models.JSONField(null=True, blank=True)
    http_status = models.PositiveSmallIntegerField("HTTP status", default=200)
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_detail = models.CharField(max_length=500, blank=True, default="")
    elapsed_ms = models.PositiveIntegerField("elapsed (ms)", default=0)
    key_kind = models.CharField(max_length=16, choices=KeyKind.choices, blank=True, default="")
    key_id = models.UUIDField("key ID", null=True, blank=True, db_index=True)
    key_name = models.CharField(max_length=100, blank=True, default="")
    client_ip = models.GenericIPAddressField("client IP", null=True, blank=True)
    created_at = models.DateTimeField("time", auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["deployment", "-created_at"], name="execution_deployment_newest"),
        ]

    def __str__(self) -> str:
        return f"{self.deployment} {self.status} {self.created_at:%Y-%m-%d %H:%M:%S}"


class DeploymentGroup(models.Model):
    """A named set of one organization's deployments. A global key bound to it opens what it holds now."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="deployment_groups")
    slug = models.SlugField(max_length=SLUG_MAX_LENGTH, help_text="Names the group in the API; fixed once created.")
    name = models.CharField(max_length=NAME_MAX_LENGTH)
    description = models.TextField(blank=True, default="")
    deployments: "models.ManyToManyField[Deployment, GroupDeployment]" = models.ManyToManyField(
        Deployment, through="GroupDeployment", related_name="groups", blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    modified_at = models.DateTimeField(auto_now=True)

    # `deployment.groups.create(...)` stores nothing when the tenant guard refuses the link.
    objects = AtomicCreateManager()

    class Meta:
        verbose_name = "deployment group"
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="deployment_group_slug_unique_per_organization"),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.organization.slug}/{self.slug}"

    def membership_errors(self) -> dict[str, str]:
        """What the stored memberships and links break of the tenant guard (a new group has none)."""
        if self._state.adding or self.pk is None:
            return {}
        foreign = GroupDeployment.objects.filter(group_id=self.pk).exclude(deployment__organization_id=self.organization_id)
        if foreign.exists():
            return {"organization": MOVED_GROUP_WITH_DEPLOYMENTS}
        stored = DeploymentGroup.objects.filter(pk=self.pk).values_list("organization_id", flat=True).first()
        if stored is None or stored == self.organization_id:
            return {}
        # The keys bound to it answer: moving would bind them to another tenant's group.
        errors: dict[str, str] = {}
        for _receiver, answer in organization_changing.send(sender=DeploymentGroup, group=self):
            errors.update(answer)  # type: ignore[arg-type]  # each receiver answers a dict
        return errors

    def clean(self) -> None:
        super().clean()
        if errors := self.membership_errors():
            raise ValidationError(errors)

    def save(self, *args: Any, **kwargs: Any) -> None:
        update_fields = kwargs.get("update_fields")
        if update_fields is None or {"organization", "organization_id"} & set(update_fields):
            if errors := self.membership_errors():
                raise ValidationError(errors)
        super().save(*args, **kwargs)


class GroupDeployment(models.Model):
    """A deployment's place in a group of the same organization."""

    group = models.ForeignKey(DeploymentGroup, on_delete=models.CASCADE, related_name="deployment_links")
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="group_links")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["group", "deployment"], name="group_deployment_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.deployment} in group {self.group}"

    def clean(self) -> None:
        check_group_membership(self.group, [self.deployment])

    def save(self, *args: Any, **kwargs: Any) -> None:
        check_group_membership(self.group, [self.deployment])
        super().save(*args, **kwargs)


def check_group_membership(group: DeploymentGroup, deployments: list[Deployment]) -> None:
    """The tenant guard: a group holds only deployments of its own organization."""
    if any(deployment.organization_id != group.organization_id for deployment in deployments):
        raise ValidationError({"deployments": FOREIGN_GROUP_DEPLOYMENT})


guard_links(GroupDeployment, owner=DeploymentGroup, target=Deployment, check=check_group_membership)
