"""What the management API's serializers share: strict JSON fields, unknown-field rejection, error shapes."""

from __future__ import annotations

from typing import Any

from django.db.models import Model, SlugField
from rest_framework import serializers

# PostgreSQL's integer column; larger values would be a DataError (500), not a 400.
MAX_POSITIVE_INTEGER = 2_147_483_647


class StrictCharField(serializers.CharField):
    """A JSON string only: DRF's CharField would turn 12 into "12"."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """JSON true or false only: DRF's BooleanField would accept "yes", 1 and "on"."""

    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer only: DRF's IntegerField would accept "5", 5.0 and true."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class OrganizationSlugsField(serializers.ListField):
    """A list of slugs of `model` rows of the organization in the serializer's context; validates to the rows.

    Repeats are dropped, the order kept. Another organization's slug is looked up
    in this organization only, so it reads as unknown: the same message either way.
    """

    def __init__(self, *, model: type[Model], not_found: str, **kwargs: Any) -> None:
        slug = model._meta.get_field("slug")
        assert isinstance(slug, SlugField) and slug.max_length is not None
        kwargs.setdefault("child", StrictCharField(max_length=slug.max_length))
        super().__init__(**kwargs)
        self.model = model
        self.not_found = not_found

    def to_internal_value(self, data: Any) -> list[Any]:
        slugs = list(dict.fromkeys(super().to_internal_value(data)))
        rows = self.model._default_manager.filter(organization=self.context["organization"], slug__in=slugs)
        found = {row.slug: row for row in rows}  # type: ignore[attr-defined]  # the model has a slug
        missing = [slug for slug in slugs if slug not in found]
        if missing:
            raise serializers.ValidationError([self.not_found.format(slug=slug) for slug in missing])
        return [found[slug] for slug in slugs]


class InputSerializer(serializers.Serializer):
    """Rejects fields it does not know, so a typo or a read-only field is a 400, not silently ignored."""

    unknown_field_message = "This field is not allowed here."

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, dict) else []
        if unknown:
            raise serializers.ValidationError({field: [self.message_for_unknown(field)] for field in unknown})
        return value

    def message_for_unknown(self, field: str) -> str:
        return self.unknown_field_message


class ErrorSerializer(serializers.Serializer):
    """Every error but a validation error: a sentence and a stable code."""

    detail = serializers.CharField(help_text="A sentence for humans.")
    code = serializers.CharField(help_text="A stable machine-readable code, e.g. `not_found` or `key_revoked`.")


class ValidationErrorSerializer(serializers.Serializer):
    """A 400: each offending field (or `non_field_errors`) maps to a list of messages.

    Documented as a free-form object by keys/schema.py.
    """
