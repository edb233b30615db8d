"""Writing audit events. Only keys/services.py calls this."""

from datetime import UTC, datetime
from typing import Any

from keys.models import ApiKey, AuditEvent, DeploymentKey
from lib.users import Actor, authenticated_user

AuditValue = str | int | bool | list[str] | None


def audit_value(value: Any) -> AuditValue:
    """A JSON-safe rendering of a field value for `changes` (never a secret: callers pass none)."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.isoformat().replace("+00:00", "Z")
    return value


def key_organization_id(key: ApiKey) -> int:
    if isinstance(key, DeploymentKey):
        return key.deployment.organization_id
    return key.organization_id  # type: ignore[attr-defined]


def audit_record(
    *,
    key: ApiKey,
    action: str,
    actor: Actor,
    ip_address: str | None = None,
    changes: dict[str, tuple[Any, Any]] | None = None,
) -> AuditEvent:
    user = authenticated_user(actor)
    return AuditEvent.objects.create(
        organization_id=key_organization_id(key),
        key_kind=key.KIND,
        key_id=key.pk,
        key_name=key.name,
        action=action,
        actor=user,
        actor_username=user.get_username() if user is not None else "",
        ip_address=ip_address,
        changes={field: [audit_value(old), audit_value(new)] for field, (old, new) in (changes or {}).items()},
    )
