import uuid

from django.db import models

from organizations.models import Organization


class Deployment(models.Model):
    """An API that an organization exposes; clients execute it with a key."""

    class Runner(models.TextChoices):
        ECHO = "echo", "Echo (returns the request body)"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="deployments")
    slug = models.SlugField(max_length=100, help_text="Part of the URL; fixed once created.")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    is_active = models.BooleanField(default=True)
    runner = models.CharField(max_length=16, choices=Runner.choices, default=Runner.ECHO)
    created_at = models.DateTimeField(auto_now_add=True)
    modified_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="deployment_slug_unique_per_organization"),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.organization.slug}/{self.slug}"


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
    http_status = models.PositiveSmallIntegerField(default=200)
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_detail = models.CharField(max_length=500, blank=True, default="")
    elapsed_ms = models.PositiveIntegerField(default=0)
    key_kind = models.CharField(max_length=16, choices=KeyKind.choices, blank=True, default="")
    key_id = models.UUIDField(null=True, blank=True, db_index=True)
    key_name = models.CharField(max_length=100, blank=True, default="")
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["deployment", "-created_at"], name="execution_deployment_newest"),
        ]

    def __str__(self) -> str:
        return f"{self.deployment} {self.status} {self.created_at:%Y-%m-%d %H:%M:%S}"
