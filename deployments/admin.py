"""Deployments and executions in the admin, scoped to the user's organizations."""

from __future__ import annotations

import inspect
from typing import Any

from django import forms
from django.contrib import admin
from django.db import models, transaction
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from deployments.forms import DeploymentGroupForm
from deployments.models import Deployment, DeploymentGroup, Execution
from deployments.services import (
    UPDATABLE_FIELDS,
    UPSTREAM_FIELDS,
    deployment_create,
    deployment_delete,
    deployment_update,
    group_create,
    group_delete,
    group_update,
)
from deployments.upstream import validate_upstream_headers
from lib.admin import ReadOnlyAdminMixin, ServiceErrorsOnFormMixin
from lib.net import client_ip
from organizations.admin import OrganizationScopedAdmin

# The deployment's own fields in form order; those the service writes are
# editable, the others are shown read-only.
SHOWN_FIELDS = [
    field.name
    for field in Deployment._meta.concrete_fields
    if field.editable and field.name not in {"id", "organization", "slug"}
]
EDITABLE_FIELDS = [field for field in SHOWN_FIELDS if field in UPDATABLE_FIELDS]
CREATE_FIELDS = [field for field in EDITABLE_FIELDS if field in inspect.signature(deployment_create).parameters]


class WriteOnlyTextarea(forms.Textarea):
    """Always renders empty: a secret is not sent back to the browser, not even the one just typed."""

    def format_value(self, value: Any) -> None:
        return None


class DeploymentAdminForm(forms.ModelForm):
    """The model's fields plus the write-only credentials: a new header map, or a box that clears the stored one."""

    upstream_headers = forms.JSONField(
        required=False,
        widget=WriteOnlyTextarea(attrs={"rows": 4, "placeholder": '{"Authorization": "Bearer …"}'}),
        label="New upstream headers",
        help_text="A JSON object of header name to value, added to every upstream call. Stored encrypted and "
        "never shown again; replaces the stored headers. Leave empty to keep them.",
    )
    clear_upstream_headers = forms.BooleanField(required=False, label="Clear stored headers")

    class Meta:
        model = Deployment
        fields: list[str] = []

    def clean_upstream_headers(self) -> dict[str, str] | None:
        headers = self.cleaned_data.get("upstream_headers")
        if headers is None:
            return None
        try:
            return validate_upstream_headers(headers)
        except forms.ValidationError as error:
            raise forms.ValidationError(error.message_dict["upstream_headers"]) from None

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned_data = self.cleaned_data
        if cleaned_data.get("clear_upstream_headers") and cleaned_data.get("upstream_headers"):
            self.add_error("clear_upstream_headers", "Either enter new headers or clear the stored ones, not both.")
        return cleaned_data

    def upstream_headers_change(self) -> dict[str, Any]:
        """The service's `upstream_headers` argument: {} when nothing changes, None to clear."""
        if self.cleaned_data.get("clear_upstream_headers"):
            return {"upstream_headers": None}
        headers = self.cleaned_data.get("upstream_headers")
        if headers is None:  # an empty textarea keeps what is stored
            return {}
        return {"upstream_headers": headers}


@admin.register(Deployment)
class DeploymentAdmin(ServiceErrorsOnFormMixin, OrganizationScopedAdmin):
    """Deployments.

    Org admins add, change and delete their organizations' deployments;
    members see them read-only. The slug is fixed once created. Upstream
    credentials are write-only: the page shows their names, never a value.
    Writes go through deployments/services.py; deleting a deployment deletes
    its keys (each audited) and executions. The keys app, which sits above
    this one, registers this admin again with the deployment's keys inline.
    """

    form = DeploymentAdminForm
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ["slug", "name", "organization", "is_active", "runner_short", "created_at"]
    list_filter = ["is_active", "runner", ("organization", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["organization"]
    search_fields = ["slug", "name"]

    def get_fieldsets(self, request: HttpRequest, obj: Deployment | None = None) -> Any:
        upstream = [field for field in SHOWN_FIELDS if field in UPSTREAM_FIELDS]
        upstream.append("stored_upstream_headers")
        # Only where they can be written: shown read-only, "upstream_headers" would
        # resolve to the model's method and print the decrypted values.
        can_write = self.has_add_permission(request) if obj is None else self.has_change_permission(request, obj)
        if can_write:
            upstream.append("upstream_headers")
            if obj is not None and obj.has_upstream_headers:
                upstream.append("clear_upstream_headers")
        return [
            (None, {"fields": ["organization", "slug", *(f for f in SHOWN_FIELDS if f not in UPSTREAM_FIELDS)]}),
            ("Upstream", {"fields": upstream}),
            ("History", {"fields": ["created_at", "modified_at", "executions_link"]}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Deployment | None = None) -> list[str]:
        editable = CREATE_FIELDS if obj is None else EDITABLE_FIELDS
        fixed = [field for field in SHOWN_FIELDS if field not in editable]
        fixed += ["stored_upstream_headers", "created_at", "modified_at", "executions_link"]
        return fixed if obj is None else ["organization", "slug", *fixed]

    @admin.display(description="runner", ordering="runner")
    def runner_short(self, deployment: Deployment) -> str:
        # "HTTP", not the filter's "HTTP (posts the request body to the upstream URL)" wrapped over seven lines.
        return deployment.get_runner_display().split(" (", 1)[0]

    @admin.display(description="stored headers")
    def stored_upstream_headers(self, deployment: Deployment) -> str:
        if not deployment.upstream_header_names:
            return "None"
        names = ", ".join(deployment.upstream_header_names)
        return f"{names} (values are write-only and never shown)"

    @admin.display(description="executions")
    def executions_link(self, deployment: Deployment) -> str:
        if deployment.pk is None:
            return "-"
        url = reverse("admin:deployments_execution_changelist") + f"?deployment__id__exact={deployment.pk}"
        return format_html('<a href="{}">Executions of this deployment</a>', url)

    def save_model(self, request: HttpRequest, obj: Deployment, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if change:
            changes = {field: data[field] for field in EDITABLE_FIELDS if field in form.changed_data}
            saved = deployment_update(deployment=obj, **changes, **form.upstream_headers_change())
        else:
            saved = deployment_create(
                organization=data["organization"],
                slug=data["slug"],
                **{field: data[field] for field in CREATE_FIELDS},
                **form.upstream_headers_change(),
            )
        obj.pk = saved.pk  # the admin logs and redirects with the saved row
        obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Deployment) -> None:
        deployment_delete(deployment=obj, actor=request.user, ip_address=client_ip(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for deployment in self.administered(request, queryset):
            self.delete_model(request, deployment)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        # The right to delete a deployment is the right to delete its keys and
        # executions (the service does it); only the deployments are checked.
        deleted, counts, _, protected = super().get_deleted_objects(objs, request)
        lacking = {Deployment._meta.verbose_name for obj in objs if not self.has_delete_permission(request, obj)}
        return deleted, counts, lacking, protected


@admin.register(DeploymentGroup)
class DeploymentGroupAdmin(ServiceErrorsOnFormMixin, OrganizationScopedAdmin):
    """Deployment groups.

    Org admins add, change and delete their organizations' groups, picking
    among their organization's deployments; members see them read-only.
    The organization and the slug are fixed once created. Writes go through
    deployments/services.py, audited; a change of membership reaches every key
    bound to the group within a second, and deleting a group takes it out of
    its keys' scopes (each key audited).
    """

    form = DeploymentGroupForm
    list_display = ["slug", "name", "organization", "deployment_count", "modified_at"]
    list_filter = [("organization", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["organization"]
    search_fields = ["slug", "name"]
    readonly_fields = ["created_at", "modified_at"]
    # Declared, as UserAdmin declares its add_fieldsets. Not `fieldsets`: the checks reject a
    # many-to-many with its own through model there, though the form declares the field itself.
    add_fieldsets = [(None, {"fields": ["organization", "slug", "name", "description", "deployments"]})]
    change_fieldsets = [
        (None, {"fields": ["organization", "slug", "name", "description", "deployments"]}),
        ("History", {"fields": ["created_at", "modified_at"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).annotate(member_count=Count("deployments"))

    def get_fieldsets(self, request: HttpRequest, obj: DeploymentGroup | None = None) -> Any:
        return self.add_fieldsets if obj is None else self.change_fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: DeploymentGroup | None = None) -> list[str]:
        return list(self.readonly_fields) if obj is None else ["organization", "slug", *self.readonly_fields]

    def get_form(self, request: HttpRequest, obj: DeploymentGroup | None = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        if "deployments" in form.base_fields:
            form.base_fields["deployments"].queryset = self.picker_choices(Deployment, request, obj)
        return form

    @admin.display(description="deployments", ordering="member_count")
    def deployment_count(self, group: DeploymentGroup) -> int:
        return group.member_count  # type: ignore[attr-defined]  # annotated by get_queryset()

    def save_model(self, request: HttpRequest, obj: DeploymentGroup, form: DeploymentGroupForm, change: bool) -> None:
        data = form.cleaned_data
        if change:
            changes = {field: data[field] for field in ("name", "description", "deployments") if field in form.changed_data}
            saved = group_update(group=obj, actor=request.user, ip_address=client_ip(request), **changes)
        else:
            saved = group_create(
                organization=data["organization"],
                slug=data["slug"],
                name=data["name"],
                description=data["description"],
                deployments=data["deployments"],
                actor=request.user,
                ip_address=client_ip(request),
            )
        obj.pk = saved.pk  # the admin logs and redirects with the saved row
        obj.refresh_from_db()

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """The service saved the members; the form must not write them again, unaudited."""

    def delete_model(self, request: HttpRequest, obj: DeploymentGroup) -> None:
        group_delete(group=obj, actor=request.user, ip_address=client_ip(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        with transaction.atomic():
            for group in self.administered(request, queryset):
                self.delete_model(request, group)


@admin.register(Execution)
class ExecutionAdmin(ReadOnlyAdminMixin, OrganizationScopedAdmin):
    """Executions: read-only for everyone, visible to the members of the deployment's organization."""

    organization_path = "deployment__organization"
    list_display = ["created_at", "deployment", "status", "http_status", "elapsed_ms", "key_name", "key_kind"]
    list_filter = ["status", "key_kind", ("deployment", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["deployment__organization"]
    search_fields = ["key_name", "deployment__slug"]
    date_hierarchy = "created_at"
