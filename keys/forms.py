"""Admin forms for keys: shapes and the tenant boundary; the key service judges the rest."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError

from deployments.models import Deployment, DeploymentGroup
from keys import scopes
from keys.allowed_ips import MAX_ENTRIES, clean_allowed_ips_lines
from keys.models import FOREIGN_DEPLOYMENT, FOREIGN_GROUP, DeploymentKey, GlobalApiDeploymentKey
from keys.services import MAX_GRACE_PERIOD_SECONDS, scope_input_errors
from lib.admin import outside_organization, picker_field
from organizations.models import Organization

SCOPE_SELECTED = "selected"
SCOPE_ALL = "all"
SCOPE_CHOICES = [
    (SCOPE_SELECTED, "Only the selected deployments and the deployments of the selected groups"),
    (SCOPE_ALL, "All deployments of the organization, current and future"),
]


class AllowedIpsField(forms.CharField):
    """`allowed_ips` as a textarea, one address or network per line; each error names its line."""

    widget = forms.Textarea(attrs={"rows": 4, "cols": 40, "spellcheck": "false"})

    def prepare_value(self, value: Any) -> Any:
        return "\n".join(value) if isinstance(value, (list, tuple)) else value

    def clean(self, value: Any) -> list[str]:
        return clean_allowed_ips_lines(super().clean(value) or "")

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return clean_allowed_ips_lines(data or "") != list(initial or [])
        except ValidationError:
            return True


class KeyForm(forms.ModelForm):
    """What both kinds' forms share: the key's restrictions, as scope checkboxes and an addresses textarea."""

    scopes = forms.MultipleChoiceField(
        choices=list(scopes.SCOPES.items()),
        widget=forms.CheckboxSelectMultiple,
        initial=scopes.default_scopes,
        error_messages={"required": scopes.EMPTY},
        help_text="What the key may do.",
    )
    allowed_ips = AllowedIpsField(
        required=False,
        label="Allowed addresses",
        help_text=f"One IPv4/IPv6 address or CIDR network per line (203.0.113.7, 10.0.0.0/8, 2001:db8::/32), "
        f"at most {MAX_ENTRIES}. Empty: any address.",
    )

    def clean_scopes(self) -> list[str]:
        return sorted(self.cleaned_data["scopes"])

    def _get_validation_exclusions(self) -> set[str]:
        # Names are unique without regard to case. The key service checks it and
        # says so in words (the admin shows its answer on the form); left to the
        # model, the constraint would only give its own name.
        exclusions = super()._get_validation_exclusions()  # type: ignore[misc]
        exclusions.add("name")
        return exclusions


class DeploymentKeyForm(KeyForm):
    class Meta:
        model = DeploymentKey
        fields = [
            "deployment", "name", "description", "is_active", "expires_at", "rate_limit_per_minute", "scopes", "allowed_ips",
        ]  # fmt: skip


class GlobalKeyForm(KeyForm):
    """`scope` stands for `allow_all_deployments`; `deployments` and `groups` are pickers.

    The pickers' choices are set by the admin: the key's organization's
    deployments and groups, or on the add page those of the organizations the
    user administers. A choice outside them is "not one of the available
    choices"; one of another administered organization than the key's is
    caught here.
    """

    scope = forms.ChoiceField(choices=SCOPE_CHOICES, widget=forms.RadioSelect, initial=SCOPE_SELECTED)
    deployments = picker_field(
        Deployment, "deployments", "The deployments this key opens, when it does not open all of them."
    )
    groups = picker_field(
        DeploymentGroup,
        "groups",
        "The key also opens every deployment these groups hold, including ones added to them later.",
    )

    class Meta:
        model = GlobalApiDeploymentKey
        fields = [
            "organization", "name", "description", "is_active", "expires_at", "rate_limit_per_minute", "scopes",
            "allowed_ips",
        ]  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.initial["scope"] = SCOPE_ALL if self.instance.allow_all_deployments else SCOPE_SELECTED
            self.initial["deployments"] = list(self.instance.deployments.all())
            self.initial["groups"] = list(self.instance.groups.all())

    @property
    def allow_all_deployments(self) -> bool:
        return self.cleaned_data.get("scope") == SCOPE_ALL

    def scope_for_service(self) -> dict[str, Any]:
        """The scope as the key service takes it: a key that opens everything lists nothing."""
        allow_all = self.allow_all_deployments
        return {
            "allow_all_deployments": allow_all,
            "deployments": [] if allow_all else list(self.cleaned_data["deployments"]),
            "groups": [] if allow_all else list(self.cleaned_data["groups"]),
        }

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned_data = self.cleaned_data
        if not {"scope", "deployments", "groups"} <= set(cleaned_data):
            return cleaned_data
        deployments, groups = list(cleaned_data["deployments"]), list(cleaned_data["groups"])
        errors = scope_input_errors(allow_all_deployments=self.allow_all_deployments, deployments=deployments, groups=groups)
        for field, message in errors.items():
            self.add_error(field, message)
        if outside_organization(self, deployments):
            self.add_error("deployments", FOREIGN_DEPLOYMENT)
        if outside_organization(self, groups):
            self.add_error("groups", FOREIGN_GROUP)
        return cleaned_data


class RotateForm(forms.Form):
    grace_period_seconds = forms.IntegerField(
        label="Grace period (seconds)",
        min_value=0,
        max_value=MAX_GRACE_PERIOD_SECONDS,
        initial=0,
        help_text=(
            "How long the replaced secret keeps working: 0 stops it now, "
            f"at most {MAX_GRACE_PERIOD_SECONDS} (7 days)."
        ),
    )


class RotateImportedForm(RotateForm):
    """Rotate every imported key of one organization: which one, and the grace of their UUIDs."""

    organization = forms.ModelChoiceField(
        queryset=Organization.objects.none(),
        help_text="Every key of this organization that still has its imported UUID gets a keyscope secret.",
    )
    field_order = ("organization", "grace_period_seconds")

    def __init__(self, *args: Any, organizations: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["organization"]).queryset = organizations
