"""What a key may do: the registry of scopes.

Each client view declares the scope it needs (`required_scope`); the permission
class (keys/authentication.py) checks it. Adding a scope is one line here, the
view that declares it, and a migration that says whether existing keys hold it.
No ORM imports: the admin, the serializers and the command read this too.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

DEPLOYMENTS_EXECUTE = "deployments:execute"
EXECUTIONS_READ = "executions:read"

# scope → what it lets a key do (the admin's checkbox labels, the OpenAPI descriptions).
SCOPES: dict[str, str] = {
    DEPLOYMENTS_EXECUTE: "Execute deployments (POST …/execute/)",
    EXECUTIONS_READ: "Read executions back (GET …/executions/<id>/)",
}
ALL_SCOPES: tuple[str, ...] = tuple(sorted(SCOPES))

EMPTY = "A key needs at least one scope."
NOT_A_LIST = "Expected a list of scopes."
UNKNOWN = "“{scope}” is not a scope; the scopes are: {known}."


def default_scopes() -> list[str]:
    """A key made without `scopes` may do everything keys always could."""
    return list(ALL_SCOPES)


def clean_scopes(value: Any) -> list[str]:
    """A non-empty list of known scopes, sorted and without repeats; else a ValidationError of messages."""
    if not isinstance(value, (list, tuple)):
        raise ValidationError(NOT_A_LIST)
    unknown = [scope for scope in value if not isinstance(scope, str) or scope not in SCOPES]
    if unknown:
        known = ", ".join(ALL_SCOPES)
        raise ValidationError([UNKNOWN.format(scope=_shown(scope), known=known) for scope in unknown])
    if not value:
        raise ValidationError(EMPTY)
    return sorted(set(value))


def validate_scopes(value: Any) -> None:
    """The model field's validator (full_clean)."""
    clean_scopes(value)


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:40] + "…"
