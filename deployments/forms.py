"""Admin forms for deployment groups: shapes and the tenant boundary; the group services judge the rest."""

from __future__ import annotations

from typing import Any

from django import forms

from deployments.models import FOREIGN_GROUP_DEPLOYMENT, Deployment, DeploymentGroup
from lib.admin import outside_organization, picker_field


class DeploymentGroupForm(forms.ModelForm):
    """`deployments` is a picker whose choices the admin sets: the group's organization's deployments,
    or on the add page those of the organizations the user administers."""

    deployments = picker_field(
        Deployment,
        "deployments",
        "Every global key bound to this group opens these deployments; one added or removed here "
        "opens or closes to those keys within a second.",
    )

    class Meta:
        model = DeploymentGroup
        fields = ["organization", "slug", "name", "description"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.initial["deployments"] = list(self.instance.deployments.all())

    def _get_validation_exclusions(self) -> set[str]:
        # The group service checks that the slug is free and says so on the slug field
        # (the admin shows its answer on the form); the constraint would say it on none.
        exclusions = super()._get_validation_exclusions()  # type: ignore[misc]
        exclusions.add("slug")
        return exclusions

    def clean(self) -> dict[str, Any]:
        super().clean()
        if outside_organization(self, list(self.cleaned_data.get("deployments") or [])):
            self.add_error("deployments", FOREIGN_GROUP_DEPLOYMENT)
        return self.cleaned_data
