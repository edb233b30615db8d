"""Every write to a key goes through here: the API, the admin, commands and tests.

Each function is keyword-only, runs in one transaction and writes its audit
event, so none of that can be skipped. Cache invalidation hangs on the model signals
(keys/signals.py), so it covers every other ORM path too.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from deployments.models import Deployment, DeploymentGroup
from keys import crypto
from keys.allowed_ips import clean_allowed_ips
from keys.audit import audit_record, audit_value, key_organization_id
from keys.models import (
    ALLOW_ALL_WITH_GROUPS,
    ALLOW_ALL_WITH_LIST,
    ISSUERS,
    ApiKey,
    AuditEvent,
    DeploymentKey,
    GlobalApiDeploymentKey,
    KeyFormat,
    KeyStatus,
    RetiredSecret,
    RevocationReason,
)
from keys.policy import lifetime_expiry
from keys.scopes import clean_scopes, default_scopes
from lib.exceptions import Conflict
from lib.users import Actor, authenticated_user
from lib.validation import clean_name
from organizations.models import Organization

K = TypeVar("K", bound=ApiKey)

MAX_GRACE_PERIOD_SECONDS = 7 * 24 * 3600
NAME_MAX_LENGTH = 100
DEPLOYMENT_LISTS = frozenset({"deployments", "groups"})
UPDATABLE_FIELDS = frozenset(
    {
        "name",
        "description",
        "is_active",
        "expires_at",
        "rate_limit_per_minute",
        "scopes",
        "allowed_ips",
        "allow_all_deployments",
        *DEPLOYMENT_LISTS,
    }
)
# What a key may do, besides where: each field's input rule (keys/scopes.py, keys/allowed_ips.py).
RESTRICTIONS = {"scopes": clean_scopes, "allowed_ips": clean_allowed_ips}
NAME_TAKEN = {
    "deployment": "A key with this name already exists for this deployment.",
    "global": "A global key with this name already exists in this organization.",
}
EMPTY_SCOPE = "A global key must have allow_all_deployments=true, at least one deployment or at least one group."


class KeyRevokedError(Conflict):
    default_detail = "This key has been revoked; revocation is final."
    default_code = "key_revoked"


def validate_expiry(expires_at: datetime | None) -> None:
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": "The expiry must be in the future."})


def _expiry(key: ApiKey, expires_at: datetime | None, *, new: bool) -> datetime | None:
    """A future expiry within the organization's `max_key_lifetime_days` (a new key gets its end by default)."""
    validate_expiry(expires_at)
    organization = Organization.objects.get(pk=key_organization_id(key))
    return lifetime_expiry(organization, expires_at, new=new, now=timezone.now())


def _as_list(value: Any) -> Any:
    """A tuple or other iterable as a list; anything else (a string, a number) as it came, for its rule to refuse."""
    return list(value) if isinstance(value, (list, tuple, set, frozenset)) else value


def _restriction(field: str, value: Any) -> Any:
    """`scopes` or `allowed_ips` in their stored form; a ValidationError naming the field."""
    try:
        return RESTRICTIONS[field](value)
    except ValidationError as exc:
        raise ValidationError({field: exc.messages}) from None


def scope_input_errors(
    *,
    allow_all_deployments: bool,
    deployments: Iterable[Deployment] | None,
    groups: Iterable[DeploymentGroup] | None = None,
) -> dict[str, str]:
    """The rules for a global key's scope as entered: allow-all, or a list and groups; not both and not neither
    (API, admin, command)."""
    deployments, groups = list(deployments or []), list(groups or [])
    errors = {}
    if allow_all_deployments and deployments:
        errors["deployments"] = ALLOW_ALL_WITH_LIST
    if allow_all_deployments and groups:
        errors["groups"] = ALLOW_ALL_WITH_GROUPS
    if not allow_all_deployments and not deployments and not groups:
        errors["deployments"] = EMPTY_SCOPE
    return errors


def _name_taken(key: ApiKey) -> bool:
    siblings = type(key).objects.filter(name__iexact=key.name).exclude(pk=key.pk)
    if isinstance(key, DeploymentKey):
        return siblings.filter(deployment_id=key.deployment_id).exists()
    return siblings.filter(organization_id=key.organization_id).exists()  # type: ignore[attr-defined]


def _save(key: ApiKey, **kwargs: Any) -> None:
    """Save, turning a name collision (checked, or lost in a race) into a field error."""
    if _name_taken(key):
        raise ValidationError({"name": NAME_TAKEN[key.KIND]})
    try:
        with transaction.atomic():
            key.save(**kwargs)
    except IntegrityError as exc:
        if "name" in str(exc).lower() or _name_taken(key):
            raise ValidationError({"name": NAME_TAKEN[key.KIND]}) from exc
        raise


def _set_scope(key: GlobalApiDeploymentKey, deployments: Iterable[Deployment]) -> None:
    key.deployments.set(list(deployments))


def _scope_slugs(key: ApiKey) -> list[str]:
    if isinstance(key, GlobalApiDeploymentKey):
        return sorted(key.deployments.values_list("slug", flat=True))
    return [key.deployment.slug]  # type: ignore[attr-defined]


def _group_slugs(key: GlobalApiDeploymentKey) -> list[str]:
    return sorted(key.groups.values_list("slug", flat=True))


def _issue(
    key: K,
    *,
    actor: Actor,
    ip_address: str | None,
    deployments: list[Deployment] | None = None,
    groups: list[DeploymentGroup] | None = None,
) -> tuple[K, str]:
    """Give a new row a fresh keyscope secret and store it as _create does; return it with its full key.

    A new key is held to its organization's `max_key_lifetime_days` (an imported one keeps the expiry it had).
    """
    key.expires_at = _expiry(key, key.expires_at, new=True)
    full_key, secret = crypto.new_secret(key.KIND)
    return _create(key, secret=secret, actor=actor, ip_address=ip_address, deployments=deployments, groups=groups), full_key


def _create(
    key: K,
    *,
    secret: crypto.Secret,
    actor: Actor,
    ip_address: str | None,
    deployments: list[Deployment] | None = None,
    groups: list[DeploymentGroup] | None = None,
) -> K:
    """Save a new row with what is stored of its secret (and a global key's deployments and groups), audited as
    `created`.

    New and imported keys alike; nothing here sets an expiry, so an imported key keeps the none it had.
    """
    key.digest, key.last4, key.format = secret.digest, secret.last4, secret.format
    key.created_by = key.modified_by = authenticated_user(actor)
    key.name = clean_name(key.name, max_length=NAME_MAX_LENGTH)
    for field in RESTRICTIONS:
        setattr(key, field, _restriction(field, getattr(key, field)))
    validate_expiry(key.expires_at)
    _save(key)
    changes: dict[str, tuple[Any, Any]] = {
        "name": (None, key.name),
        "is_active": (None, key.is_active),
        "expires_at": (None, key.expires_at),
        "rate_limit_per_minute": (None, key.rate_limit_per_minute),
        "scopes": (None, key.scopes),
        "allowed_ips": (None, key.allowed_ips),
    }
    if isinstance(key, GlobalApiDeploymentKey):
        if deployments:
            _set_scope(key, deployments)
        if groups:
            key.groups.set(groups)
        changes["allow_all_deployments"] = (None, key.allow_all_deployments)
        changes["groups"] = (None, _group_slugs(key))
    changes["deployments"] = (None, _scope_slugs(key))
    changes["format"] = (None, key.format)
    audit_record(key=key, action=AuditEvent.Action.CREATED, actor=actor, ip_address=ip_address, changes=changes)
    return key


@transaction.atomic
def deployment_key_issue(
    *,
    deployment: Deployment,
    name: str,
    description: str = "",
    is_active: bool = True,
    expires_at: datetime | None = None,
    rate_limit_per_minute: int | None = None,
    scopes: Iterable[str] | None = None,
    allowed_ips: Iterable[str] = (),
    actor: Actor = None,
    ip_address: str | None = None,
) -> tuple[DeploymentKey, str]:
    """Create a key that opens one deployment; return the row and the full key, which is never stored."""
    key = DeploymentKey(
        deployment=deployment,
        name=name,
        description=description,
        is_active=is_active,
        expires_at=expires_at,
        rate_limit_per_minute=rate_limit_per_minute,
        scopes=default_scopes() if scopes is None else _as_list(scopes),
        allowed_ips=_as_list(allowed_ips),
    )
    return _issue(key, actor=actor, ip_address=ip_address)


@transaction.atomic
def global_key_issue(
    *,
    organization: Organization,
    name: str,
    allow_all_deployments: bool = False,
    deployments: Iterable[Deployment] = (),
    groups: Iterable[DeploymentGroup] = (),
    description: str = "",
    is_active: bool = True,
    expires_at: datetime | None = None,
    rate_limit_per_minute: int | None = None,
    scopes: Iterable[str] | None = None,
    allowed_ips: Iterable[str] = (),
    actor: Actor = None,
    ip_address: str | None = None,
) -> tuple[GlobalApiDeploymentKey, str]:
    """Create a key that opens all of an organization's deployments, or the ones listed and those of its groups;
    return it with its full key."""
    key = GlobalApiDeploymentKey(
        organization=organization,
        name=name,
        allow_all_deployments=allow_all_deployments,
        description=description,
        is_active=is_active,
        expires_at=expires_at,
        rate_limit_per_minute=rate_limit_per_minute,
        scopes=default_scopes() if scopes is None else _as_list(scopes),
        allowed_ips=_as_list(allowed_ips),
    )
    return _issue(key, actor=actor, ip_address=ip_address, deployments=list(deployments), groups=list(groups))


@transaction.atomic
def deployment_key_import(
    *,
    deployment: Deployment,
    secret: crypto.Secret,
    name: str,
    description: str = "",
    is_active: bool = True,
    actor: Actor = None,
) -> DeploymentKey:
    """Store a deployment key imported from Unstract: its UUID's digest, under a new key's rules."""
    key = DeploymentKey(deployment=deployment, name=name, description=description, is_active=is_active)
    return _create(key, secret=secret, actor=actor, ip_address=None)


@transaction.atomic
def global_key_import(
    *,
    organization: Organization,
    secret: crypto.Secret,
    name: str,
    allow_all_deployments: bool = False,
    deployments: Iterable[Deployment] = (),
    description: str = "",
    is_active: bool = True,
    actor: Actor = None,
) -> GlobalApiDeploymentKey:
    """Store a global key imported from Unstract, with its scope, under a new key's rules."""
    key = GlobalApiDeploymentKey(
        organization=organization,
        name=name,
        allow_all_deployments=allow_all_deployments,
        description=description,
        is_active=is_active,
    )
    return _create(key, secret=secret, actor=actor, ip_address=None, deployments=list(deployments))


def _locked(key: K) -> K:
    return type(key).objects.select_for_update().get(pk=key.pk)


@transaction.atomic
def key_update(*, key: K, actor: Actor, ip_address: str | None = None, **changes: Any) -> K:
    """Change a key's editable fields. A change of `is_active` is its own activated/deactivated event."""
    unknown = set(changes) - UPDATABLE_FIELDS
    if unknown:
        raise ValidationError({field: "This field cannot be changed." for field in sorted(unknown)})
    locked = _locked(key)
    if locked.is_revoked and changes.get("is_active") is True:
        raise KeyRevokedError("This key has been revoked; it cannot be activated again.")

    before: dict[str, Any] = {field: getattr(locked, field) for field in UPDATABLE_FIELDS - DEPLOYMENT_LISTS if hasattr(locked, field)}
    before_scope = _scope_slugs(locked)
    before_groups = _group_slugs(locked) if isinstance(locked, GlobalApiDeploymentKey) else None
    new_deployments = changes.pop("deployments", None)
    new_groups = changes.pop("groups", None)

    if "name" in changes:
        changes["name"] = clean_name(changes["name"], max_length=NAME_MAX_LENGTH)
    if "expires_at" in changes:
        changes["expires_at"] = _expiry(locked, changes["expires_at"], new=False)
    for field in RESTRICTIONS.keys() & changes.keys():
        changes[field] = _restriction(field, changes[field])
    for field, value in changes.items():
        if field == "allow_all_deployments" and not isinstance(locked, GlobalApiDeploymentKey):
            raise ValidationError({field: "Only global keys have this field."})
        setattr(locked, field, value)
    for field, value in (("deployments", new_deployments), ("groups", new_groups)):
        if value is not None and not isinstance(locked, GlobalApiDeploymentKey):
            raise ValidationError({field: "Only global keys have this field."})

    if isinstance(locked, GlobalApiDeploymentKey):
        if locked.allow_all_deployments:
            errors = scope_input_errors(allow_all_deployments=True, deployments=new_deployments, groups=new_groups)
            if errors:
                raise ValidationError(errors)
            # A key that ends up opening everything keeps no lists.
            locked.deployments.clear()
            locked.groups.clear()
        else:
            if new_deployments is not None:
                _set_scope(locked, new_deployments)
            if new_groups is not None:
                locked.groups.set(list(new_groups))
    locked.modified_by = authenticated_user(actor)
    _save(locked)

    diff = {
        field: (old, getattr(locked, field))
        for field, old in before.items()
        if audit_value(old) != audit_value(getattr(locked, field))
    }
    after_scope = _scope_slugs(locked)
    if after_scope != before_scope:
        diff["deployments"] = (before_scope, after_scope)
    if isinstance(locked, GlobalApiDeploymentKey) and (after_groups := _group_slugs(locked)) != before_groups:
        diff["groups"] = (before_groups, after_groups)
    active_change = diff.pop("is_active", None)
    if active_change is not None:
        action = AuditEvent.Action.ACTIVATED if locked.is_active else AuditEvent.Action.DEACTIVATED
        audit_record(key=locked, action=action, actor=actor, ip_address=ip_address, changes={"is_active": active_change})
    if diff:
        audit_record(key=locked, action=AuditEvent.Action.CHANGED, actor=actor, ip_address=ip_address, changes=diff)
    return locked


def key_activate(*, key: K, actor: Actor, ip_address: str | None = None) -> K:
    return key_update(key=key, actor=actor, ip_address=ip_address, is_active=True)


def key_deactivate(*, key: K, actor: Actor, ip_address: str | None = None) -> K:
    return key_update(key=key, actor=actor, ip_address=ip_address, is_active=False)


def _end_grace(key: ApiKey, now: datetime) -> None:
    RetiredSecret.objects.filter(key_kind=key.KIND, key_id=key.pk, valid_until__gt=now).update(valid_until=now)


@transaction.atomic
def key_rotate(*, key: K, actor: Actor, grace_period_seconds: int = 0, ip_address: str | None = None) -> tuple[K, str]:
    """Give a key a new secret. The old one works for `grace_period_seconds`, then gets key_revoked.

    Rotations of one key are serialized by the row lock; each ends any earlier grace.
    """
    if (
        isinstance(grace_period_seconds, bool)
        or not isinstance(grace_period_seconds, int)
        or not 0 <= grace_period_seconds <= MAX_GRACE_PERIOD_SECONDS
    ):
        raise ValidationError(
            {"grace_period_seconds": f"Ensure this value is an integer from 0 to {MAX_GRACE_PERIOD_SECONDS}."}
        )
    locked = _locked(key)
    if locked.is_revoked:
        raise KeyRevokedError("This key has been revoked; a revoked key cannot be rotated.")
    now = timezone.now()
    _end_grace(locked, now)
    RetiredSecret.objects.create(
        digest=locked.digest,
        key_kind=locked.KIND,
        key_id=locked.pk,
        valid_until=now + timedelta(seconds=grace_period_seconds),
    )
    old_masked, old_format = locked.key_masked, locked.format
    # An imported UUID is replaced by a keyscope secret of the key's kind.
    full_key, secret = crypto.new_secret(locked.KIND)
    locked.digest, locked.last4, locked.format = secret.digest, secret.last4, secret.format
    locked.modified_by = authenticated_user(actor)
    locked.save(update_fields=["digest", "last4", "format", "modified_by", "modified_at"])
    changes: dict[str, tuple[Any, Any]] = {
        "key_masked": (old_masked, locked.key_masked),
        "grace_period_seconds": (None, grace_period_seconds),
    }
    if old_format != locked.format:
        changes["format"] = (old_format, locked.format)
    audit_record(key=locked, action=AuditEvent.Action.ROTATED, actor=actor, ip_address=ip_address, changes=changes)
    return locked, full_key


@transaction.atomic
def key_revoke(
    *, key: K, actor: Actor, ip_address: str | None = None, reason: RevocationReason | None = None
) -> K:
    """Revoke for good. Revoking a revoked key changes nothing and writes nothing.

    `reason` (a leak report, the key's own holder) is kept on the key and in the audit event.
    """
    locked = _locked(key)
    if locked.is_revoked:
        return locked
    now = timezone.now()
    locked.revoked_at = now
    locked.revocation_reason = reason or ""
    locked.modified_by = authenticated_user(actor)
    locked.save(update_fields=["revoked_at", "revocation_reason", "modified_by", "modified_at"])
    _end_grace(locked, now)
    changes: dict[str, tuple[Any, Any]] = {"revoked_at": (None, now)}
    if reason is not None:
        changes["reason"] = (None, reason.label)
    audit_record(key=locked, action=AuditEvent.Action.REVOKED, actor=actor, ip_address=ip_address, changes=changes)
    return locked


@transaction.atomic
def key_end_grace(
    *, key: K, actor: Actor, ip_address: str | None = None, reason: RevocationReason | None = None
) -> datetime | None:
    """Stop the secret that the last rotation replaced now, instead of when its grace ends.

    The key and its current secret stay as they are. Audited as `changed`; returns when the
    replaced secret stopped working, or None (and writes nothing) when no grace was running.
    """
    locked = _locked(key)
    now = timezone.now()
    ending = (
        RetiredSecret.objects.filter(key_kind=locked.KIND, key_id=locked.pk, valid_until__gt=now)
        .order_by("-valid_until")
        .values_list("valid_until", flat=True)
        .first()
    )
    if ending is None:
        return None
    _end_grace(locked, now)
    locked.modified_by = authenticated_user(actor)
    # Saving the key row is also what flushes every worker's verification cache (keys/signals.py).
    locked.save(update_fields=["modified_by", "modified_at"])
    changes: dict[str, tuple[Any, Any]] = {"previous_key_expires_at": (ending, None)}
    if reason is not None:
        changes["reason"] = (None, reason.label)
    audit_record(key=locked, action=AuditEvent.Action.CHANGED, actor=actor, ip_address=ip_address, changes=changes)
    return now


@transaction.atomic
def key_delete(*, key: ApiKey, actor: Actor, ip_address: str | None = None) -> None:
    audit_record(key=key, action=AuditEvent.Action.DELETED, actor=actor, ip_address=ip_address, changes={})
    RetiredSecret.objects.filter(key_kind=key.KIND, key_id=key.pk).delete()
    key.delete()


@transaction.atomic
def deployment_keys_remove(*, deployment: Deployment, actor: Actor, ip_address: str | None = None) -> None:
    """Before a deployment is deleted: delete its deployment keys and drop it from global keys' lists, each audited."""
    for key in DeploymentKey.objects.filter(deployment=deployment).select_related("deployment"):
        key_delete(key=key, actor=actor, ip_address=ip_address)
    for global_key in GlobalApiDeploymentKey.objects.filter(deployments=deployment).distinct():
        remaining = list(global_key.deployments.exclude(pk=deployment.pk))
        key_update(key=global_key, actor=actor, ip_address=ip_address, deployments=remaining)


def imported_keys(*, organizations: Iterable[Organization]) -> list[ApiKey]:
    """These organizations' keys whose secret is still an imported UUID (revoked ones aside), both kinds."""
    live = {"format": KeyFormat.UUID, "revoked_at__isnull": True}
    deployment_keys = DeploymentKey.objects.filter(deployment__organization__in=organizations, **live)
    global_keys = GlobalApiDeploymentKey.objects.filter(organization__in=organizations, **live)
    return [*deployment_keys.select_related("deployment__organization"), *global_keys.select_related("organization")]


@transaction.atomic
def imported_keys_rotate(
    *, organization: Organization, actor: Actor, grace_period_seconds: int = 0, ip_address: str | None = None
) -> list[tuple[ApiKey, str]]:
    """Rotate every imported key of an organization, each as key_rotate does: all of them, or none.

    This is how an organization retires its UUIDs: each key gets a
    keyscope secret of its kind, and its UUID works for the grace period.
    """
    return [
        key_rotate(key=key, actor=actor, grace_period_seconds=grace_period_seconds, ip_address=ip_address)
        for key in imported_keys(organizations=[organization])
    ]


def unused_keys(*, now: datetime | None = None) -> list[ApiKey]:
    """The active keys of organizations with `deactivate_unused_keys_after_days` = N not used in the last N days
    (counting from creation when never used), oldest organization slug first."""
    now = now or timezone.now()
    found: list[ApiKey] = []
    for organization in Organization.objects.filter(deactivate_unused_keys_after_days__isnull=False).order_by("slug"):
        cutoff = now - timedelta(days=organization.deactivate_unused_keys_after_days)
        unused = Q(last_used_at__lt=cutoff) | Q(last_used_at__isnull=True, created_at__lt=cutoff)
        for keys, owner in (
            (DeploymentKey.objects.select_related("deployment"), "deployment__organization"),
            (GlobalApiDeploymentKey.objects.all(), "organization"),
        ):
            active = keys.with_status(KeyStatus.ACTIVE, now)
            found += active.filter(unused, **{owner: organization}).order_by("created_at")
    return found


def keys_deactivate_unused(*, dry_run: bool = False, now: datetime | None = None) -> list[ApiKey]:
    """Deactivate each key `unused_keys` finds, audited as `deactivated` by the system; return them.

    With `dry_run`, only say which: nothing is changed.
    """
    found = unused_keys(now=now)
    if dry_run:
        return found
    return [key_deactivate(key=key, actor=None) for key in found]


@transaction.atomic
def group_keys_remove(*, group: DeploymentGroup, actor: Actor, ip_address: str | None = None) -> None:
    """Before a group is deleted: the global keys bound to it lose it, each audited `changed`.

    A key left with neither a list nor a group opens nothing; it is not deleted.
    """
    for global_key in GlobalApiDeploymentKey.objects.filter(groups=group).distinct():
        remaining = list(global_key.groups.exclude(pk=group.pk))
        key_update(key=global_key, actor=actor, ip_address=ip_address, groups=remaining)


# The managers' issue() calls these: keys/models.py cannot import this module back.
ISSUERS.update({"deployment": deployment_key_issue, "global": global_key_issue})
