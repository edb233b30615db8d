"""The organization's key policy: its one write, and the lifetime rule the key service applies.

The fields live on `organizations.Organization`; this app writes them, because
a change is audited with the keys' events and only keys obey it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from keys.audit import audit_policy_record, audit_value
from lib.serializers import MAX_POSITIVE_INTEGER
from lib.users import Actor
from organizations.models import POLICY_DAYS_MAX, POLICY_DAYS_MIN, Organization

POLICY_FIELDS = ("default_rate_limit_per_minute", "max_key_lifetime_days", "deactivate_unused_keys_after_days")
FIELD_RANGES = {
    "default_rate_limit_per_minute": (0, MAX_POSITIVE_INTEGER),
    "max_key_lifetime_days": (POLICY_DAYS_MIN, POLICY_DAYS_MAX),
    "deactivate_unused_keys_after_days": (POLICY_DAYS_MIN, POLICY_DAYS_MAX),
}
OUT_OF_RANGE = "Ensure this value is null or an integer from {low} to {high}."
LATER_THAN_POLICY = (
    "This organization's key policy limits keys to {days} days: the expiry must be no later than {limit}."
)
NO_EXPIRY_UNDER_POLICY = "This organization's key policy limits keys to {days} days: a key must have an expiry."


def _check(field: str, value: Any) -> None:
    low, high = FIELD_RANGES[field]
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high):
        raise ValidationError({field: OUT_OF_RANGE.format(low=low, high=high)})


@transaction.atomic
def key_policy_update(*, organization: Organization, actor: Actor, ip_address: str | None = None, **changes: Any) -> Organization:
    """Change the key policy; each change is one `changed` audit event with the key fields null."""
    unknown = set(changes) - set(POLICY_FIELDS)
    if unknown:
        raise ValidationError({field: "This field cannot be changed." for field in sorted(unknown)})
    for field, value in changes.items():
        _check(field, value)
    locked = Organization.objects.select_for_update().get(pk=organization.pk)
    diff = {
        field: (getattr(locked, field), value)
        for field, value in changes.items()
        if audit_value(getattr(locked, field)) != audit_value(value)
    }
    if not diff:
        return locked
    for field, (_, value) in diff.items():
        setattr(locked, field, value)
    locked.save(update_fields=list(diff))
    audit_policy_record(organization=locked, actor=actor, ip_address=ip_address, changes=diff)
    return locked


def lifetime_expiry(organization: Organization, expires_at: datetime | None, *, new: bool, now: datetime) -> datetime | None:
    """The expiry a key gets under `max_key_lifetime_days`, or a ValidationError naming `expires_at`.

    A new key without one expires at the end of the lifetime; a later expiry, or
    clearing it, is refused. Without the policy, `expires_at` is kept as given.
    """
    days = organization.max_key_lifetime_days
    if days is None:
        return expires_at
    limit = now + timedelta(days=days)
    if expires_at is None:
        if new:
            return limit
        raise ValidationError({"expires_at": NO_EXPIRY_UNDER_POLICY.format(days=days)})
    if expires_at > limit:
        shown = audit_value(limit.replace(microsecond=0))
        raise ValidationError({"expires_at": LATER_THAN_POLICY.format(days=days, limit=shown)})
    return expires_at
