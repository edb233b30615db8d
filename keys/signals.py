"""What the keys app hooks on: model writes that flush the verification cache, and the deployments app's signals.

The flush is hooked on the models rather than the services so that the admin,
the API, commands and a shell session all invalidate alike; `last_used_at` and
usage bookkeeping use queryset updates and so flush nothing.

A deployment that keys depend on does not move to another organization, and
deleting a deployment deletes its keys first, audited (deployments/signals.py).
"""

from typing import Any

from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from deployments.models import Deployment
from deployments.signals import deployment_deleting, organization_changing
from keys.models import (
    DeploymentKey,
    GlobalApiDeploymentKey,
    GlobalKeyDeployment,
    RetiredSecret,
    deployment_move_errors,
)
from keys.services import deployment_keys_remove
from keys.verification_cache import flush
from organizations.models import Organization

WATCHED = (Organization, Deployment, DeploymentKey, GlobalApiDeploymentKey, GlobalKeyDeployment, RetiredSecret)


def _flush_now_and_on_commit(**kwargs: Any) -> None:
    # Now, so this process refuses a revoked key on its very next request; again
    # after commit, so no worker keeps an answer it read before the commit.
    flush()
    transaction.on_commit(flush)


def _deployment_move_errors(sender: type, deployment: Deployment, **kwargs: Any) -> dict[str, str]:
    return deployment_move_errors(deployment)


def _remove_keys_of_deployment(sender: type, deployment: Deployment, actor: Any, ip_address: str | None, **kwargs: Any) -> None:
    deployment_keys_remove(deployment=deployment, actor=actor, ip_address=ip_address)


def connect() -> None:
    organization_changing.connect(_deployment_move_errors, sender=Deployment, dispatch_uid="keyscope-guard-deployment-move")
    deployment_deleting.connect(_remove_keys_of_deployment, sender=Deployment, dispatch_uid="keyscope-deployment-keys")
    for model in WATCHED:
        post_save.connect(_flush_now_and_on_commit, sender=model, dispatch_uid=f"keyscope-flush-save-{model.__name__}")
        post_delete.connect(_flush_now_and_on_commit, sender=model, dispatch_uid=f"keyscope-flush-del-{model.__name__}")
    m2m_changed.connect(_flush_now_and_on_commit, sender=GlobalKeyDeployment, dispatch_uid="keyscope-flush-m2m")
