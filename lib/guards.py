"""The model layer's guard on a many-to-many: a link that breaks a rule is refused on every ORM path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import Model
from django.db.models.signals import m2m_changed


def guard_links(
    through: type[Model], *, owner: type[Model], target: type[Model], check: Callable[[Any, list[Any]], None]
) -> None:
    """Call `check(owner_row, target_rows)`, which raises ValidationError, before links are added from either side.

    `owner.links.add()/set()` and `target.owners.add()/set()` bypass the through
    model's save(); its clean() and save() call the same `check` for the other paths.
    """

    def guard(sender: type, instance: Any, action: str, reverse: bool, pk_set: set | None, **kwargs: Any) -> None:
        if action != "pre_add" or not pk_set:
            return
        if reverse:
            for row in owner._default_manager.filter(pk__in=pk_set):
                check(row, [instance])
        else:
            check(instance, list(target._default_manager.filter(pk__in=pk_set)))

    m2m_changed.connect(guard, sender=through, weak=False, dispatch_uid=f"keyscope-guard-{through._meta.label}")
