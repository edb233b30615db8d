"""Who a request or a command acts as: a user, the anonymous user, or None for the system."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias, cast

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser, User

AnyUser: TypeAlias = "AbstractBaseUser | AnonymousUser"  # what request.user holds
Actor: TypeAlias = "AbstractBaseUser | AnonymousUser | None"  # None: the system (commands, the demo seed)


def authenticated_user(actor: Actor) -> User | None:
    """The user behind `actor`, or None for the system and the anonymous user (what audit and `created_by` record)."""
    if actor is None or not actor.is_authenticated:
        return None
    return cast("User", actor)  # AUTH_USER_MODEL is Django's own User
