"""Admin forms for keys: shapes and the tenant boundary; the key service judges the rest."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.formats import date_format

from deployments.models import Deployment, DeploymentGroup
from keys import scopes
from keys.allowed_ips import MAX_ENTRIES, clean_allowed_ips_lines
from keys.models import ALLOW_ALL_WITH_GROUPS, ALLOW_ALL_WITH_LIST, FOREIGN_DEPLOYMENT, FOREIGN_GROUP, DeploymentKey, GlobalApiDeploymentKey
from keys.services import EMPTY_SCOPE, MAX_GRACE_PERIOD_SECONDS, scope_input_errors
from lib.admin import outside_organization, picker_field
from organizations.models import Organization

SCOPE_SELECTED = "selected"
SCOPE_ALL = "all"
SCOPE_CHOICES = [
    (SCOPE_SELECTED, "Only the selected deployments and the deployments of the selected groups"),
    (SCOPE_ALL, "All deployments of the organization, current and future"),
]
# The scope rules in the words of the form, which has a "Scope" radio where the API has allow_all_deployments.
SCOPE_FORM_WORDS = {
    ALLOW_ALL_WITH_LIST: 'With "All deployments" as its scope a key lists none: remove the chosen deployments, '
    'or choose "Only the selected deployments".',
    ALLOW_ALL_WITH_GROUPS: 'With "All deployments" as its scope a key lists no group: remove the chosen groups, '
    'or choose "Only the selected deployments".',
    EMPTY_SCOPE: 'Choose at least one deployment or group, or "All deployments" as the scope.',
}


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

    # What lib.admin.add_errors_to_form says instead of the service's words, when the service refuses.
    form_words = SCOPE_FORM_WORDS
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
            self.add_error(field, self.form_words.get(message, message))
        if outside_organization(self, deployments):
            self.add_error("deployments", FOREIGN_DEPLOYMENT)
        if outside_organization(self, groups):
            self.add_error("groups", FOREIGN_GROUP)
        return cleaned_data


CUSTOM = "custom"
# The grace presets of a rotation, as Stripe's roll offers them, in seconds.
GRACE_PRESETS = [(0, "Now"), (3600, "1 hour"), (86400, "24 hours"), (MAX_GRACE_PERIOD_SECONDS, "7 days")]
DEFAULT_GRACE_SECONDS = 86400
GRACE_UNITS = [(60, "minutes"), (3600, "hours"), (86400, "days")]


class RotateForm(forms.Form):
    """How long the replaced secret keeps working: a preset, or a custom number of minutes, hours or days."""

    grace_period_seconds = forms.ChoiceField(
        label="Old key keeps working",
        widget=forms.RadioSelect,
        initial=str(DEFAULT_GRACE_SECONDS),
        help_text="Long enough for every client to switch to the new key. If the key leaked, choose Now, or revoke it.",
    )
    custom_grace = forms.IntegerField(
        label="Custom",
        required=False,
        min_value=1,
        widget=forms.NumberInput(attrs={"aria-label": "Custom grace", "class": "vIntegerField"}),
    )
    custom_grace_unit = forms.TypedChoiceField(
        label="Unit",
        choices=GRACE_UNITS,
        coerce=int,
        initial=3600,
        required=False,
        widget=forms.Select(attrs={"aria-label": "Unit of the custom grace"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        now = timezone.now()

        def until(seconds: int) -> str:
            return date_format(timezone.localtime(now + timedelta(seconds=seconds)), "DATETIME_FORMAT")

        choices = [(str(seconds), f"{label} (until {until(seconds)})") for seconds, label in GRACE_PRESETS if seconds]
        choices.insert(0, ("0", "Now: the old key stops at once"))
        cast(forms.ChoiceField, self.fields["grace_period_seconds"]).choices = [*choices, (CUSTOM, "Custom, at most 7 days:")]

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned_data = self.cleaned_data
        choice = cleaned_data.get("grace_period_seconds")
        if choice is None:
            return cleaned_data
        if choice != CUSTOM:
            cleaned_data["grace_period_seconds"] = int(choice)
            return cleaned_data
        amount, unit = cleaned_data.get("custom_grace"), cleaned_data.get("custom_grace_unit") or 3600
        if amount is None:
            self.add_error("custom_grace", "Enter how long the old key keeps working.")
        elif amount * unit > MAX_GRACE_PERIOD_SECONDS:
            self.add_error("custom_grace", "The old key may keep working 7 days at most.")
        else:
            cleaned_data["grace_period_seconds"] = amount * unit
        return cleaned_data


class RotateImportedForm(RotateForm):
    """Rotate every imported key of one organization: which one, and the grace of their UUIDs."""

    organization = forms.ModelChoiceField(
        queryset=Organization.objects.none(),
        help_text="Every key of this organization that still has its imported UUID gets a keyscope secret.",
    )
    field_order = ("organization", "grace_period_seconds", "custom_grace", "custom_grace_unit")

    def __init__(self, *args: Any, organizations: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["organization"]).queryset = organizations
