"""What the keys app hooks on: model writes that flush the verification cache, and the deployments app's signals.

The flush is hooked on the models rather than the services so that the admin,
the API, commands and a shell session all invalidate alike; `last_used_at` and
usage bookkeeping use queryset updates and so flush nothing.

A deployment that keys depend on does not move to another organization, and
deleting a deployment deletes its keys first, audited (deployments/signals.py).
Likewise for deployment groups: a group bound to keys does not move, deleting
one takes it out of its keys' scopes first (each audited), and the group
services' audit events are recorded here, where the audit trail lives.

A group's membership is not copied onto its keys: the lookup joins through it,
so adding a deployment to a group changes no key row, only flushes the cache.
"""

from typing import Any

from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from deployments.models import Deployment, DeploymentGroup, GroupDeployment
from deployments.signals import deployment_deleting, group_deleting, group_written, organization_changing
from keys.audit import audit_group_record
from keys.models import (
    DeploymentKey,
    GlobalApiDeploymentKey,
    GlobalKeyDeployment,
    GlobalKeyGroup,
    RetiredSecret,
    deployment_move_errors,
    group_move_errors,
)
from keys.services import deployment_keys_remove, group_keys_remove
from keys.verification_cache import flush, move_stamp
from organizations.models import Organization

WATCHED = (
    Organization,
    Deployment,
    DeploymentGroup,
    GroupDeployment,
    DeploymentKey,
    GlobalApiDeploymentKey,
    GlobalKeyDeployment,
    GlobalKeyGroup,
    RetiredSecret,
)
SCOPE_LINKS = (GlobalKeyDeployment, GlobalKeyGroup, GroupDeployment)


def _tags(sender: type, instance: Any = None, **kwargs: Any) -> frozenset[str] | None:
    """What a write of `sender` could change in a verification answer (keys.verification_cache.LocalCache.drop)."""
    if sender in (DeploymentKey, GlobalApiDeploymentKey):
        return frozenset({f"key:{instance.pk}"})
    if sender is RetiredSecret:
        return frozenset({f"key:{instance.key_id}"})
    if sender in SCOPE_LINKS or sender is DeploymentGroup:
        return frozenset({"scope"})
    if sender is Deployment:
        return frozenset({"deployment"})
    return None  # an organization (its slug, its default limit): every answer


def _flush_now_and_on_commit(sender: type, **kwargs: Any) -> None:
    # The stamp in the write's own transaction: every worker of every host flushes within half a
    # second of the commit, whatever becomes of the messages. The flush now, so this process refuses
    # a revoked key on its very next request; again after commit, so no worker keeps an answer it
    # read before the commit. Both drop only what the write could change.
    tags = _tags(sender, **kwargs)
    stamp = move_stamp()
    flush(tags)
    transaction.on_commit(lambda: flush(tags, stamp))


def _deployment_move_errors(sender: type, deployment: Deployment, **kwargs: Any) -> dict[str, str]:
    return deployment_move_errors(deployment)


def _remove_keys_of_deployment(sender: type, deployment: Deployment, actor: Any, ip_address: str | None, **kwargs: Any) -> None:
    deployment_keys_remove(deployment=deployment, actor=actor, ip_address=ip_address)


def _group_move_errors(sender: type, group: DeploymentGroup, **kwargs: Any) -> dict[str, str]:
    return group_move_errors(group)


def _remove_group_from_keys(sender: type, group: DeploymentGroup, actor: Any, ip_address: str | None, **kwargs: Any) -> None:
    group_keys_remove(group=group, actor=actor, ip_address=ip_address)


def _audit_group(
    sender: type, group: DeploymentGroup, action: str, actor: Any, ip_address: str | None, changes: dict, **kwargs: Any
) -> None:
    audit_group_record(group=group, action=action, actor=actor, ip_address=ip_address, changes=changes)


def connect() -> None:
    organization_changing.connect(_deployment_move_errors, sender=Deployment, dispatch_uid="keyscope-guard-deployment-move")
    deployment_deleting.connect(_remove_keys_of_deployment, sender=Deployment, dispatch_uid="keyscope-deployment-keys")
    organization_changing.connect(_group_move_errors, sender=DeploymentGroup, dispatch_uid="keyscope-guard-group-move")
    group_deleting.connect(_remove_group_from_keys, sender=DeploymentGroup, dispatch_uid="keyscope-group-keys")
    group_written.connect(_audit_group, sender=DeploymentGroup, dispatch_uid="keyscope-group-audit")
    for model in WATCHED:
        post_save.connect(_flush_now_and_on_commit, sender=model, dispatch_uid=f"keyscope-flush-save-{model.__name__}")
        post_delete.connect(_flush_now_and_on_commit, sender=model, dispatch_uid=f"keyscope-flush-del-{model.__name__}")
    for link in SCOPE_LINKS:
        m2m_changed.connect(_flush_now_and_on_commit, sender=link, dispatch_uid=f"keyscope-flush-m2m-{link.__name__}")
