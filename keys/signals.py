"""Flush the verification cache on every write that could change an answer.

Hooked on the models rather than the services so that the admin, the API,
commands and a shell session all invalidate alike; `last_used_at` and usage
bookkeeping use queryset updates and so flush nothing.
"""

from typing import Any

from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from deployments.models import Deployment
from keys.cache import flush
from keys.models import DeploymentKey, GlobalApiDeploymentKey, GlobalKeyDeployment, RetiredSecret
from organizations.models import Organization

WATCHED = (Organization, Deployment, DeploymentKey, GlobalApiDeploymentKey, GlobalKeyDeployment, RetiredSecret)


def _flush_now_and_on_commit(**kwargs: Any) -> None:
    # Now, so this process refuses a revoked key on its very next request; again
    # after commit, so no worker keeps an answer it read before the commit.
    flush()
    transaction.on_commit(flush)


def connect() -> None:
    for model in WATCHED:
        post_save.connect(_flush_now_and_on_commit, sender=model, dispatch_uid=f"keyscope-flush-save-{model.__name__}")
        post_delete.connect(_flush_now_and_on_commit, sender=model, dispatch_uid=f"keyscope-flush-del-{model.__name__}")
    m2m_changed.connect(_flush_now_and_on_commit, sender=GlobalKeyDeployment, dispatch_uid="keyscope-flush-m2m")
