"""Writing audit events: keys/services.py and keys/policy.py call this, and keys/signals.py for deployment groups."""

from datetime import UTC, datetime
from typing import Any

from deployments.models import DeploymentGroup
from keys.models import ApiKey, AuditEvent, DeploymentKey
from lib.users import Actor, authenticated_user
from organizations.models import Organization

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


def _create(
    *, action: str, actor: Actor, ip_address: str | None, changes: dict[str, tuple[Any, Any]] | None, **fields: Any
) -> AuditEvent:
    user = authenticated_user(actor)
    return AuditEvent.objects.create(
        action=action,
        actor=user,
        actor_username=user.get_username() if user is not None else "",
        ip_address=ip_address,
        changes={field: [audit_value(old), audit_value(new)] for field, (old, new) in (changes or {}).items()},
        **fields,
    )


def audit_record(
    *,
    key: ApiKey,
    action: str,
    actor: Actor,
    ip_address: str | None = None,
    changes: dict[str, tuple[Any, Any]] | None = None,
) -> AuditEvent:
    return _create(
        action=action,
        actor=actor,
        ip_address=ip_address,
        changes=changes,
        organization_id=key_organization_id(key),
        key_kind=key.KIND,
        key_id=key.pk,
        key_name=key.name,
    )


def audit_policy_record(
    *, organization: Organization, actor: Actor, ip_address: str | None = None, changes: dict[str, tuple[Any, Any]]
) -> AuditEvent:
    """A change of the organization's key policy: a `changed` event with the key fields null."""
    return _create(
        action=AuditEvent.Action.CHANGED,
        actor=actor,
        ip_address=ip_address,
        changes=changes,
        organization_id=organization.pk,
    )


def audit_group_record(
    *,
    group: DeploymentGroup,
    action: str,
    actor: Actor,
    ip_address: str | None = None,
    changes: dict[str, tuple[Any, Any]] | None = None,
) -> AuditEvent:
    """A deployment group's event: `group` set, the key fields null."""
    return _create(
        action=action,
        actor=actor,
        ip_address=ip_address,
        changes=changes,
        organization_id=group.organization_id,
        group=group.slug,
    )
