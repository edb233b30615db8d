"""Management API shapes for keys and audit events.

Output and input are separate classes. Only the `Issued…` serializers, used
by the create and rotate responses, have a `key` field.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from deployments.models import Deployment, DeploymentGroup, Execution
from deployments.serializers import UNKNOWN_DEPLOYMENT, UNKNOWN_GROUP
from keys.allowed_ips import MAX_ENTRIES, clean_allowed_ips
from keys.models import AuditEvent, DeploymentKey, GlobalApiDeploymentKey, KeyFormat, KeyStatus
from keys.scopes import ALL_SCOPES, clean_scopes
from keys.services import MAX_GRACE_PERIOD_SECONDS, NAME_MAX_LENGTH, scope_input_errors
from lib.serializers import (
    MAX_POSITIVE_INTEGER,
    InputSerializer,
    OrganizationSlugsField,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
)
from organizations.models import POLICY_DAYS_MAX, POLICY_DAYS_MIN, Organization

KEY_FORMAT_HELP = "`keyscope` (a `ksd_`/`ksg_` key), or `uuid` for a key imported from Unstract until it is rotated."

KEY_FIELDS = [
    "id",
    "name",
    "description",
    "key_masked",
    "status",
    "is_active",
    "expires_at",
    "revoked_at",
    "last_used_at",
    "created_at",
    "modified_at",
    "created_by",
    "rate_limit_per_minute",
    "scopes",
    "allowed_ips",
    "previous_key_expires_at",
    "format",
]

SCOPES_HELP = "What the key may do: a non-empty list of " + ", ".join(f"`{scope}`" for scope in ALL_SCOPES) + "."
ALLOWED_IPS_HELP = (
    f"Client addresses or CIDR networks (IPv4, IPv6) the key may be used from, at most {MAX_ENTRIES}; "
    "canonical network form, in the order given. [] allows any address."
)


class RestrictionField(serializers.Field):
    """A list judged by its rule in keys/scopes.py or keys/allowed_ips.py: one set of messages for API, admin and CLI."""

    def rule(self, data: Any) -> list[str]:
        raise NotImplementedError

    def to_internal_value(self, data: Any) -> list[str]:
        try:
            return self.rule(data)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None

    def to_representation(self, value: Any) -> list[str]:
        return list(value)


@extend_schema_field(serializers.ListField(child=serializers.ChoiceField(choices=ALL_SCOPES)))
class ScopesField(RestrictionField):
    def rule(self, data: Any) -> list[str]:
        return clean_scopes(data)


@extend_schema_field(serializers.ListField(child=serializers.CharField(), max_length=MAX_ENTRIES))
class AllowedIpsField(RestrictionField):
    def rule(self, data: Any) -> list[str]:
        return clean_allowed_ips(data)


# Output ----------------------------------------------------------------------


class KeySerializer(serializers.ModelSerializer):
    """What both kinds of key show. Never the key itself: only its masked form."""

    key_masked = serializers.CharField(
        read_only=True, help_text="The key's prefix (`uuid` for an imported key), “…” and its last 4 characters."
    )
    status = serializers.ChoiceField(choices=KeyStatus.choices, read_only=True)
    format = serializers.ChoiceField(choices=KeyFormat.choices, read_only=True, help_text=KEY_FORMAT_HELP)
    created_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True,
        help_text="The username of who created the key; null for the system."
    )
    scopes = ScopesField(read_only=True, help_text="What the key may do, sorted.")
    allowed_ips = AllowedIpsField(read_only=True, help_text=ALLOWED_IPS_HELP)
    previous_key_expires_at = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="After a rotation with a grace period: until when the replaced secret works. "
        "Null when it no longer works, or there was none.",
    )


class DeploymentKeySerializer(KeySerializer):
    deployment: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = DeploymentKey
        fields = [*KEY_FIELDS, "deployment"]
        read_only_fields = fields


class GlobalKeySerializer(KeySerializer):
    deployments = serializers.SerializerMethodField(
        help_text="Slugs of the deployments on the key's own list, sorted (not what its groups add)."
    )
    groups = serializers.SerializerMethodField(help_text="Slugs of the deployment groups the key is bound to, sorted.")

    class Meta:
        model = GlobalApiDeploymentKey
        fields = [*KEY_FIELDS, "allow_all_deployments", "deployments", "groups"]
        read_only_fields = fields

    # .all() uses the viewset's prefetch; sorting in Python keeps it to one query per page.
    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_deployments(self, key: GlobalApiDeploymentKey) -> list[str]:
        return sorted(deployment.slug for deployment in key.deployments.all())

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_groups(self, key: GlobalApiDeploymentKey) -> list[str]:
        return sorted(group.slug for group in key.groups.all())


class IssuedKeyMixin(serializers.Serializer):
    key = serializers.SerializerMethodField(
        help_text="The full key. Shown in this response only: store it now, it cannot be retrieved again."
    )

    @extend_schema_field(OpenApiTypes.STR)
    def get_key(self, key: Any) -> str:
        return self.context["full_key"]


class IssuedDeploymentKeySerializer(IssuedKeyMixin, DeploymentKeySerializer):
    class Meta(DeploymentKeySerializer.Meta):
        fields = [*DeploymentKeySerializer.Meta.fields, "key"]
        read_only_fields = fields


class IssuedGlobalKeySerializer(IssuedKeyMixin, GlobalKeySerializer):
    class Meta(GlobalKeySerializer.Meta):
        fields = [*GlobalKeySerializer.Meta.fields, "key"]
        read_only_fields = fields


NOT_A_KEY = "Null on an event that is not about a key: a deployment group's, or a change of the key policy."


class AuditEventSerializer(serializers.ModelSerializer):
    organization: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    # The same choice set as Execution.key_kind, so the schema has one KeyKind enum.
    key_kind = serializers.ChoiceField(
        choices=Execution.KeyKind.choices, read_only=True, allow_null=True, help_text=NOT_A_KEY
    )
    key_id = serializers.UUIDField(read_only=True, allow_null=True, help_text=NOT_A_KEY)
    key_name = serializers.CharField(read_only=True, allow_null=True, help_text=NOT_A_KEY)
    group = serializers.CharField(
        read_only=True, allow_null=True, help_text="The deployment group's slug, for a group's event; null for a key's."
    )
    actor = serializers.SerializerMethodField(help_text="The username of who acted; null for the system.")
    changes = serializers.JSONField(read_only=True, help_text="Field → [old, new]. Never holds a secret.")

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "organization",
            "key_kind",
            "key_id",
            "key_name",
            "group",
            "action",
            "actor",
            "created_at",
            "ip_address",
            "changes",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_actor(self, event: AuditEvent) -> str | None:
        return event.actor_username or None


class DailyUsageSerializer(serializers.Serializer):
    date = serializers.DateField(help_text="A day in UTC.")
    count = serializers.IntegerField(help_text="Requests authenticated with the key that day, refused ones included.")


class KeyUsageSerializer(serializers.Serializer):
    key_id = serializers.UUIDField()
    days = DailyUsageSerializer(many=True, help_text="The last 30 days, oldest first, today last.")
    total = serializers.IntegerField(help_text="The sum of `days`.")


# Input -----------------------------------------------------------------------


class KeyInputSerializer(InputSerializer):
    """Create (all fields) and PATCH (partial) of a deployment key."""

    name = StrictCharField(max_length=NAME_MAX_LENGTH, help_text="1 to 100 characters, unique regardless of case.")
    description = StrictCharField(required=False, allow_blank=True)
    is_active = StrictBooleanField(required=False)
    expires_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="Must be in the future; null means the key never expires. Under the organization's "
        "`max_key_lifetime_days`, at most that many days ahead (the default for a new key) and never null.",
    )
    rate_limit_per_minute = StrictIntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=MAX_POSITIVE_INTEGER,
        help_text="Null uses the organization's default; 0 means unlimited.",
    )
    scopes = ScopesField(required=False, help_text=SCOPES_HELP + " Default: all of them.")
    allowed_ips = AllowedIpsField(required=False, help_text=ALLOWED_IPS_HELP + " Default [].")


class GlobalKeyInputSerializer(KeyInputSerializer):
    """Adds the scope. Needs `organization` in its context; on PATCH, `instance` is the key."""

    allow_all_deployments = StrictBooleanField(
        required=False, help_text="Open every deployment of the organization, current and future. Default false."
    )
    deployments = OrganizationSlugsField(
        model=Deployment,
        not_found=UNKNOWN_DEPLOYMENT,
        required=False,
        help_text="Slugs of the deployments the key opens. Not with allow_all_deployments=true.",
    )
    groups = OrganizationSlugsField(
        model=DeploymentGroup,
        not_found=UNKNOWN_GROUP,
        required=False,
        help_text="Slugs of the deployment groups whose deployments the key opens, as they join and leave. "
        "Not with allow_all_deployments=true.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        key: GlobalApiDeploymentKey | None = self.instance
        if key is not None and not {"allow_all_deployments", "deployments", "groups"} & set(attrs):
            return attrs  # a PATCH that leaves the scope alone (even an emptied one) is not judged on it
        allow_all = attrs.get("allow_all_deployments", key.allow_all_deployments if key else False)
        lists = {}
        for field in ("deployments", "groups"):
            if field in attrs:
                lists[field] = attrs[field]
            elif allow_all or key is None:
                lists[field] = []  # a key that ends up opening everything drops its lists
            else:
                lists[field] = list(getattr(key, field).all())
        if errors := scope_input_errors(allow_all_deployments=allow_all, **lists):
            raise serializers.ValidationError(errors)
        return attrs


POLICY_DAYS_HELP = {
    "max_key_lifetime_days": "New keys expire within this many days, by default at its end; a later expiry, or "
    "clearing it, is refused. Existing keys keep their expiry. Null: no limit.",
    "deactivate_unused_keys_after_days": "`manage.py keys deactivate-unused` (run daily) deactivates keys not used "
    "for this many days, counted from creation when never used. Null: never.",
}
DEFAULT_RATE_LIMIT_HELP = "Requests per minute for keys without a limit of their own; null: the server's default; 0: unlimited."


class OrganizationSerializer(serializers.ModelSerializer):
    """An organization and its key policy."""

    default_rate_limit_per_minute = serializers.IntegerField(read_only=True, allow_null=True, help_text=DEFAULT_RATE_LIMIT_HELP)
    max_key_lifetime_days = serializers.IntegerField(
        read_only=True, allow_null=True, help_text=POLICY_DAYS_HELP["max_key_lifetime_days"]
    )
    deactivate_unused_keys_after_days = serializers.IntegerField(
        read_only=True, allow_null=True, help_text=POLICY_DAYS_HELP["deactivate_unused_keys_after_days"]
    )

    class Meta:
        model = Organization
        fields = ["slug", "name", "default_rate_limit_per_minute", "max_key_lifetime_days", "deactivate_unused_keys_after_days"]
        read_only_fields = fields


def policy_days_field(name: str) -> StrictIntegerField:
    return StrictIntegerField(
        required=False, allow_null=True, min_value=POLICY_DAYS_MIN, max_value=POLICY_DAYS_MAX, help_text=POLICY_DAYS_HELP[name]
    )


READ_ONLY_HERE = "This field cannot be changed."


class OrganizationPolicyInputSerializer(InputSerializer):
    """PATCH of the key policy; `slug` and `name` are read-only here."""

    default_rate_limit_per_minute = StrictIntegerField(
        required=False, allow_null=True, min_value=0, max_value=MAX_POSITIVE_INTEGER, help_text=DEFAULT_RATE_LIMIT_HELP
    )
    max_key_lifetime_days = policy_days_field("max_key_lifetime_days")
    deactivate_unused_keys_after_days = policy_days_field("deactivate_unused_keys_after_days")

    def message_for_unknown(self, field: str) -> str:
        return READ_ONLY_HERE if field in OrganizationSerializer.Meta.fields else super().message_for_unknown(field)


class RotateInputSerializer(InputSerializer):
    grace_period_seconds = StrictIntegerField(
        required=False,
        default=0,
        min_value=0,
        max_value=MAX_GRACE_PERIOD_SECONDS,
        help_text="How long the replaced secret keeps working, 0 to 604800 seconds. Default 0.",
    )


class RevokeInputSerializer(InputSerializer):
    """Revoking takes no parameters; an empty body or `{}`."""


# Query parameters -----------------------------------------------------------


class KeyFilterSerializer(serializers.Serializer):
    is_active = serializers.BooleanField(required=False, allow_null=True, default=None)
    status = serializers.ChoiceField(choices=KeyStatus.choices, required=False)
    search = serializers.CharField(required=False, max_length=100, help_text="Part of the name, any case.")


class AuditEventFilterSerializer(serializers.Serializer):
    key_id = serializers.UUIDField(required=False)
    group = serializers.CharField(required=False, max_length=100, help_text="A deployment group's slug.")
    action = serializers.ChoiceField(choices=AuditEvent.Action.choices, required=False)
    since = serializers.DateTimeField(required=False, help_text="Only events at or after this time (ISO 8601).")
