"""Management API shapes for deployments and executions."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from deployments.models import (
    MAX_TIMEOUT_SECONDS,
    MIN_TIMEOUT_SECONDS,
    NAME_MAX_LENGTH,
    SLUG_MAX_LENGTH,
    UPSTREAM_URL_MAX_LENGTH,
    Deployment,
    DeploymentGroup,
    Execution,
)
from deployments.services import GROUP_SLUG_FIXED, SLUG_FIXED
from lib.serializers import (
    InputSerializer,
    OrganizationSlugsField,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
)

# Unknown slugs and another organization's read alike (lib.serializers.OrganizationSlugsField).
UNKNOWN_DEPLOYMENT = "No deployment with the slug “{slug}” exists in this organization."
UNKNOWN_GROUP = "No group with the slug “{slug}” exists in this organization."


class DeploymentSerializer(serializers.ModelSerializer):
    # The header values are write-only: only their names are ever shown.
    upstream_header_names = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="Names of the headers added to upstream calls, sorted; their values are never shown.",
    )
    # "" when the deployment has no upstream: a URLField would document it as format "uri".
    upstream_url = serializers.CharField(read_only=True, help_text="Where the http runner posts the request body; \"\" when none.")

    class Meta:
        model = Deployment
        fields = [
            "slug",
            "name",
            "description",
            "is_active",
            "runner",
            "upstream_url",
            "timeout_seconds",
            "upstream_header_names",
            "created_at",
            "modified_at",
        ]
        read_only_fields = fields


class DeploymentUpdateSerializer(InputSerializer):
    """Shapes only: the service applies the model's rules (allowed addresses, the http runner needs a URL)."""

    name = StrictCharField(max_length=NAME_MAX_LENGTH)
    description = StrictCharField(required=False, allow_blank=True)
    is_active = StrictBooleanField(required=False)
    runner = serializers.ChoiceField(choices=Deployment.Runner.choices, required=False)
    upstream_url = serializers.URLField(
        max_length=UPSTREAM_URL_MAX_LENGTH,
        required=False,
        allow_blank=True,
        help_text="Where the http runner posts the request body: http or https, and not an internal address "
        "unless the server allows it.",
    )
    timeout_seconds = StrictIntegerField(
        min_value=MIN_TIMEOUT_SECONDS, max_value=MAX_TIMEOUT_SECONDS, required=False
    )
    upstream_headers = serializers.DictField(
        child=StrictCharField(allow_blank=True, trim_whitespace=False),
        required=False,
        allow_null=True,
        write_only=True,
        help_text="Write-only. Headers added to upstream calls (name → value), stored encrypted and never shown: "
        "responses give `upstream_header_names`. Replaces the stored map; null or {} clears it; leaving it out keeps it.",
    )

    def message_for_unknown(self, field: str) -> str:
        return SLUG_FIXED if field == "slug" else super().message_for_unknown(field)


class StrictSlugMixin(serializers.Serializer):
    def to_internal_value(self, data: object) -> object:
        # StrictCharField semantics for the slug too: SlugField would turn 12 into "12".
        if isinstance(data, dict) and "slug" in data and not isinstance(data["slug"], str):
            raise serializers.ValidationError({"slug": ["Not a valid string."]})
        return super().to_internal_value(data)


class DeploymentCreateSerializer(StrictSlugMixin, DeploymentUpdateSerializer):
    slug = serializers.SlugField(
        max_length=SLUG_MAX_LENGTH,
        help_text="Letters, digits, hyphens and underscores; part of the URL, fixed once created.",
    )


class DeploymentGroupSerializer(serializers.ModelSerializer):
    deployments = serializers.SerializerMethodField(help_text="Slugs of the group's deployments, sorted.")

    class Meta:
        model = DeploymentGroup
        fields = ["slug", "name", "description", "deployments", "created_at", "modified_at"]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_deployments(self, group: DeploymentGroup) -> list[str]:
        # .all() uses the viewset's prefetch; sorting in Python keeps it to one query per page.
        return sorted(deployment.slug for deployment in group.deployments.all())


class DeploymentGroupUpdateSerializer(InputSerializer):
    """Shapes, and the slugs resolved within the organization; the service and the model hold the rules."""

    name = StrictCharField(max_length=NAME_MAX_LENGTH)
    description = StrictCharField(required=False, allow_blank=True)
    deployments = OrganizationSlugsField(
        model=Deployment,
        not_found=UNKNOWN_DEPLOYMENT,
        required=False,
        help_text="Slugs of the organization's deployments the group holds: the whole list, replacing the stored one.",
    )

    def message_for_unknown(self, field: str) -> str:
        return GROUP_SLUG_FIXED if field == "slug" else super().message_for_unknown(field)


class DeploymentGroupCreateSerializer(StrictSlugMixin, DeploymentGroupUpdateSerializer):
    slug = serializers.SlugField(
        max_length=SLUG_MAX_LENGTH,
        help_text="Letters, digits, hyphens and underscores; unique in the organization, fixed once created.",
    )


class ExecutionSerializer(serializers.ModelSerializer):
    deployment: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    # A plain string in the schema: `status` is the keys' status enum there.
    status = serializers.CharField(read_only=True, help_text="`COMPLETED` or `FAILED`.")

    class Meta:
        model = Execution
        fields = [
            "id",
            "deployment",
            "status",
            "http_status",
            "error_code",
            "error_detail",
            "elapsed_ms",
            "key_kind",
            "key_id",
            "key_name",
            "client_ip",
            "request",
            "result",
            "created_at",
        ]
        read_only_fields = fields


class ExecutionFilterSerializer(serializers.Serializer):
    deployment = serializers.CharField(required=False, max_length=100, help_text="A deployment's slug.")
    key_id = serializers.UUIDField(required=False)
    status = serializers.ChoiceField(choices=Execution.Status.choices, required=False)
    since = serializers.DateTimeField(required=False, help_text="Only executions at or after this time (ISO 8601).")

    def to_internal_value(self, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("status"), str):
            data = {**data, "status": data["status"].upper()}  # ?status=failed reads as FAILED
        return super().to_internal_value(data)
