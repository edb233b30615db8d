"""Flush the verification cache on every write that could change an answer.

Hooked on the models rather than the services so that the admin, the API,
commands and a shell session all invalidate alike; `last_used_at` and usage
bookkeeping use queryset updates and so flush nothing.

Also the deployment side of the tenant guard: a deployment that keys depend on
does not move to another organization.
"""

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save

from deployments.models import Deployment
from keys.cache import flush
from keys.models import (
    DeploymentKey,
    GlobalApiDeploymentKey,
    GlobalKeyDeployment,
    RetiredSecret,
    deployment_move_errors,
)
from organizations.models import Organization

WATCHED = (Organization, Deployment, DeploymentKey, GlobalApiDeploymentKey, GlobalKeyDeployment, RetiredSecret)


def _flush_now_and_on_commit(**kwargs: Any) -> None:
    # Now, so this process refuses a revoked key on its very next request; again
    # after commit, so no worker keeps an answer it read before the commit.
    flush()
    transaction.on_commit(flush)


def _guard_deployment_move(sender: type, instance: Deployment, update_fields: Any = None, **kwargs: Any) -> None:
    """Deployment.save() refuses to move a deployment that keys depend on to another organization.

    Here rather than in deployments/models.py, which must not import the keys app.
    """
    if update_fields is not None and not {"organization", "organization_id"} & set(update_fields):
        return
    if errors := deployment_move_errors(instance):
        raise ValidationError(errors)


def connect() -> None:
    pre_save.connect(_guard_deployment_move, sender=Deployment, dispatch_uid="keyscope-guard-deployment-move")
    for model in WATCHED:
        post_save.connect(_flush_now_and_on_commit, sender=model, dispatch_uid=f"keyscope-flush-save-{model.__name__}")
        post_delete.connect(_flush_now_and_on_commit, sender=model, dispatch_uid=f"keyscope-flush-del-{model.__name__}")
    m2m_changed.connect(_flush_now_and_on_commit, sender=GlobalKeyDeployment, dispatch_uid="keyscope-flush-m2m")
