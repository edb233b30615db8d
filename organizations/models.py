from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

# The key policy's day counts: 1 day to 10 years.
POLICY_DAYS_MIN = 1
POLICY_DAYS_MAX = 3650


def policy_days(help_text: str) -> models.PositiveSmallIntegerField:
    return models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(POLICY_DAYS_MIN), MaxValueValidator(POLICY_DAYS_MAX)],
        help_text=help_text,
    )


class Organization(models.Model):
    """A tenant: it owns deployments and keys; users join it through a Membership."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    default_rate_limit_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Requests per minute for keys without a limit of their own; "
        "empty uses the server default, 0 means unlimited.",
    )
    max_key_lifetime_days = policy_days(
        "New keys expire within this many days (by default at its end); empty: no limit. Existing keys keep their expiry."
    )
    deactivate_unused_keys_after_days = policy_days(
        "`manage.py keys deactivate-unused` deactivates keys unused for this many days; empty: never."
    )
    created_at = models.DateTimeField("created", auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name or self.slug


class Membership(models.Model):
    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField("created", auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], name="membership_unique_per_organization"),
        ]
        ordering = ["organization__slug", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"
