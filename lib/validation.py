"""Input rules shared by every service."""

from typing import Any

from django.core.exceptions import ValidationError


def clean_name(name: Any, *, max_length: int, field: str = "name") -> str:
    """A required display name: trimmed, 1 to `max_length` characters."""
    name = str(name or "").strip()
    if not name:
        raise ValidationError({field: "This field may not be blank."})
    if len(name) > max_length:
        raise ValidationError({field: f"Ensure this field has no more than {max_length} characters."})
    return name
