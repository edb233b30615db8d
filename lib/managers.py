"""A manager whose create(), get_or_create() and update_or_create() each run in one transaction."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.db import models, router, transaction

ATOMIC_METHODS = ("create", "get_or_create", "update_or_create")


def _atomic(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: models.Manager, *args: Any, **kwargs: Any) -> Any:
        with transaction.atomic(using=router.db_for_write(self.model)):
            return method(self, *args, **kwargs)

    return wrapper


class AtomicCreateManager(models.Manager):
    """Through a many-to-many (`key.deployments.create(...)`), Django saves the new row and then add()s
    the link, with no transaction around the two: when a guard refuses the link, the row would stay.

    Django builds the related managers of a model as subclasses of its default manager, so
    every subclass's own create(), get_or_create() and update_or_create() are made atomic
    here, as this class's are: a refused link then stores nothing.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ATOMIC_METHODS:
            if name in cls.__dict__:
                setattr(cls, name, _atomic(cls.__dict__[name]))
