"""Keys and their audit trail in the admin, for org admins.

Every write goes through keys/services.py, so each one is audited. A full key
is rendered once, in the page that answers its creation or rotation, straight
from that request: never through messages, the session, a cookie or a URL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Model, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from deployments.admin import DeploymentAdmin, ExecutionAdmin
from deployments.models import Deployment, DeploymentGroup, Execution
from keys import crypto, scopes, usage
from keys.forms import DeploymentKeyForm, GlobalKeyForm, RotateForm, RotateImportedForm
from keys.models import (
    MODEL_BY_KIND,
    ApiKey,
    AuditEvent,
    DeploymentKey,
    GlobalApiDeploymentKey,
    GlobalKeyDeployment,
    GlobalKeyGroup,
    KeyFormat,
    KeyQuerySet,
    KeyStatus,
    RevocationReason,
)
from keys.policy import POLICY_FIELDS, key_policy_update
from keys.services import (
    KeyRevokedError,
    deployment_key_issue,
    global_key_issue,
    imported_keys,
    imported_keys_rotate,
    key_activate,
    key_deactivate,
    key_delete,
    key_revoke,
    key_rotate,
    key_update,
)
from keys.usage_chart import usage_chart
from lib.admin import ReadOnlyAdminMixin, ServiceErrorsOnFormMixin
from lib.net import client_ip
from lib.text import first_names, plural
from organizations.admin import OrganizationAdmin, OrganizationScopedAdmin
from organizations.models import Organization

# How many of the deployments a key opens its page lists by name.
OPENED_SHOWN = 100
# What a read-only page shows for a field that the form edits with a widget of its own.
READ_ONLY_DISPLAYS = {"scopes": "scopes_display", "allowed_ips": "allowed_ips_display"}
USAGE_DAYS = 30  # the days a key's usage chart shows
# The newest audit events a key's History page shows (its audit events list has them all).
HISTORY_SHOWN = 100
# Where save_model leaves a new key for response_add: this request's memory only.
_ISSUED = "_keyscope_issued_keys"
COMMON_FIELDS = ["name", "description", "is_active", "expires_at", "rate_limit_per_minute", "scopes", "allowed_ips"]
# What both kinds' pages show after the fields of their own (the deployment; the organization and scope).
ADD_FIELDSETS: list[tuple[str | None, dict[str, Any]]] = [
    ("What the key may do", {"fields": ["scopes", "allowed_ips"]}),
    ("Status", {"fields": ["is_active", "expires_at"]}),
    ("Limits", {"fields": ["rate_limit_per_minute"]}),
]
CHANGE_FIELDSETS: list[tuple[str | None, dict[str, Any]]] = [
    ADD_FIELDSETS[0],
    (
        "Status",
        {
            "fields": [
                "key_masked", "status", "is_active", "expires_at", "revoked_at", "revocation",
                "previous_key_expires_at", "last_used_at",
            ]  # fmt: skip
        },
    ),
    ADD_FIELDSETS[2],
    ("Usage", {"fields": ["usage_last_30_days"]}),
    ("History", {"fields": ["audit_events", "created_at", "created_by", "modified_at"]}),
]


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    # Out of the repr: Django's template engine logs the repr of its context at DEBUG.
    full_key: str = field(repr=False)
    change_url: str
    scope: str = ""


IN_GRACE = "grace"


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [*((status.value, status.label) for status in KeyStatus), (IN_GRACE, "In grace (old key still works)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        status = self.value()
        if status == IN_GRACE:  # as the badge says it: active, and a rotation's old secret still works
            keys = cast(KeyQuerySet, queryset).with_status(KeyStatus.ACTIVE)
            return keys.with_previous_key_expiry().filter(previous_key_valid_until__isnull=False)
        return cast(KeyQuerySet, queryset).with_status(status) if status in KeyStatus.values else queryset


class RevocationFilter(admin.SimpleListFilter):
    """Revoked keys by why: reported as leaked (an anonymous report, GitHub, the command line), or by their holder."""

    title = "revocation"
    parameter_name = "revocation"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(reason.value, reason.label) for reason in RevocationReason]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in RevocationReason.values:
            return queryset.filter(revoked_at__isnull=False, revocation_reason=self.value())
        return queryset


class GlobalScopeFilter(admin.SimpleListFilter):
    title = "scope"
    parameter_name = "scope"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [
            ("all", "All deployments"),
            ("selected", "Selected deployments or groups"),
            ("groups", "Bound to a group"),
            ("none", "Nothing selected"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        selected = Q(deployment_count__gt=0) | Q(group_count__gt=0)
        if self.value() == "all":
            return queryset.filter(allow_all_deployments=True)
        if self.value() == "selected":
            return queryset.filter(selected, allow_all_deployments=False)
        if self.value() == "groups":
            return queryset.filter(group_count__gt=0)
        if self.value() == "none":
            return queryset.filter(allow_all_deployments=False).exclude(selected)
        return queryset


def _link_count(through: type[Model]) -> Coalesce:
    """How many rows of a global key's link table name it: a subquery, so two counts do not multiply."""
    counted = through._default_manager.filter(key=OuterRef("pk")).order_by().values("key").annotate(n=Count("pk"))
    return Coalesce(Subquery(counted.values("n")), 0)


def scope_text(key: ApiKey) -> str:
    """What a key opens, in names: "All deployments", or its groups and deployments, the first three then "and N more".

    The one scope formatter: the lists, the one-time page; a deployment key's scope is its deployment.
    """
    if isinstance(key, DeploymentKey):
        return key.deployment.name
    assert isinstance(key, GlobalApiDeploymentKey)
    if key.allow_all_deployments:
        return "All deployments"
    if hasattr(key, "first_groups"):  # read through the list's get_queryset()
        groups, deployments = key.first_groups, key.first_deployments  # type: ignore[attr-defined]
        total = key.group_count + key.deployment_count  # type: ignore[attr-defined]  # annotated there too
    else:
        groups, deployments = key.groups.order_by("name", "pk")[:3], key.deployments.order_by("name", "pk")[:3]
        total = key.groups.count() + key.deployments.count()
    names = [f"{group.name} (group)" for group in groups] + [deployment.name for deployment in deployments]
    return first_names(names, total) if total else "No deployments"


def local_time(moment: datetime) -> str:
    """A time as the admin shows every time: in the site's zone, which it names."""
    return date_format(timezone.localtime(moment), "DATETIME_FORMAT")


def status_badges(key: ApiKey) -> SafeString:
    """The key's status as a coloured badge, and while a rotation's grace runs, until when the old key works.

    The one place a status is drawn: the lists, the key's page and the deployment's inline use it.
    """
    status = key.status
    badge = format_html('<span class="key-status key-status-{}">{}</span>', status, KeyStatus(status).label)
    if key.is_revoked and key.revocation_reason == RevocationReason.REPORTED_AS_LEAKED:
        return format_html(
            '{} <span class="key-status key-status-leaked">{}</span>', badge, key.get_revocation_reason_display().capitalize()
        )
    until = key.previous_key_expires_at if key.pk is not None and status == KeyStatus.ACTIVE else None
    if until is None:
        return badge
    return format_html(
        '{} <span class="key-status key-status-grace">In grace</span>'
        '<span class="key-grace-until">old key works until {}</span>',
        badge,
        local_time(until),
    )


class KeyAdmin(ServiceErrorsOnFormMixin, OrganizationScopedAdmin):
    """What both key admins share.

    Who may do what: org admins (staff users with an `admin` membership) list,
    add, change, rotate, revoke, activate, deactivate and delete their
    organizations' keys; members (staff users with a `member` membership) see
    the same lists and pages read-only, keys masked, with no actions;
    superusers do everything everywhere. Revoked keys are read-only (they can
    still be deleted). Another organization's key is not in the queryset, so
    its URL answers like a key that does not exist.
    """

    list_display_links = ["name"]
    search_fields = ["name", "=last4"]
    search_help_text = "Name, or the last four characters of the key."
    actions = ["rotate_keys", "revoke_keys", "activate_keys", "deactivate_keys", "delete_selected"]
    readonly_fields = [
        "key_masked",
        "status",
        "audit_events",
        "created_at",
        "created_by",
        "modified_at",
        "last_used_at",
        "revoked_at",
        "previous_key_expires_at",
        "revocation",
        "usage_last_30_days",
        *READ_ONLY_DISPLAYS.values(),
    ]
    change_form_template = "admin/keys/key_change_form.html"
    # Set on the add page, fixed after: "deployment" or "organization".
    fixed_once_created: list[str] = []
    add_fieldsets: list[tuple[str | None, dict[str, Any]]] = []
    change_fieldsets: list[tuple[str | None, dict[str, Any]]] = []

    change_list_template = "admin/keys/key_change_list.html"

    class Media:
        css = {"all": ["keys/admin.css"]}

    # Display --------------------------------------------------------------------

    @admin.display(description="key")
    def key_masked(self, key: ApiKey) -> str:
        masked = format_html('<span class="key-masked">{}</span>', key.key_masked)
        if key.format != KeyFormat.UUID:
            return masked
        return format_html('{} <span class="key-badge key-badge-imported">{}</span>', masked, KeyFormat.UUID.label)

    @admin.display(description="status", ordering="revoked_at")
    def status(self, key: ApiKey) -> str:
        return status_badges(key)

    @admin.display(description="scopes")
    def scopes_display(self, key: ApiKey) -> str:
        return format_html_join(
            "", "<div><code>{}</code>: {}</div>", ((scope, scopes.SCOPES.get(scope, scope)) for scope in key.scopes)
        )

    @admin.display(description="allowed addresses")
    def allowed_ips_display(self, key: ApiKey) -> str:
        return ", ".join(key.allowed_ips) or "Any address"

    @admin.display(description="old key works until")
    def previous_key_expires_at(self, key: ApiKey) -> str:
        # After a rotation with a grace period; "-" once the replaced secret no longer works.
        until = key.previous_key_expires_at if key.pk is not None else None
        return self.get_empty_value_display() if until is None else local_time(until)

    @admin.display(description="revocation")
    def revocation(self, key: ApiKey) -> str:
        if not key.is_revoked:
            return self.get_empty_value_display()
        if key.revocation_reason:
            return key.get_revocation_reason_display()
        return "by an admin or the command line"

    @admin.display(description="audit events")
    def audit_events(self, key: ApiKey) -> str:
        if key.pk is None:
            return "-"
        count = AuditEvent.objects.filter(key_id=key.pk).count()
        executions = reverse("admin:deployments_execution_changelist") + f"?key_id={key.pk}"
        return format_html(
            '<a href="{}">{}</a> · <a href="{}">executions with this key</a>',
            audit_events_url(key.pk),
            plural(count, "audit event"),
            executions,
        )

    @admin.display(description="requests, last 30 days")
    def usage_last_30_days(self, key: ApiKey) -> str:
        if key.pk is None:
            return "-"
        chart = usage_chart(usage.usage_for(str(key.pk), USAGE_DAYS))
        return render_to_string("keys/usage_chart.html", {"chart": chart})

    def get_fieldsets(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        # Declared, as UserAdmin declares its add_fieldsets: the add page has nothing yet of what
        # only a saved key has. Not `fieldsets`: the checks reject a many-to-many with its own
        # through model there, though the global key's form declares the field itself.
        if obj is None:
            return self.add_fieldsets
        # A revoked key is off for good: an "enabled" tick beside "revoked" would contradict its status.
        hidden = {"is_active"} if obj.is_revoked else set()
        # Shown, not edited: the restrictions in words rather than as the JSON they are stored as.
        shown = READ_ONLY_DISPLAYS if not self.has_change_permission(request, obj) else {}
        return [
            (name, {**options, "fields": [shown.get(f, f) for f in options["fields"] if f not in hidden]})
            for name, options in self.change_fieldsets
        ]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # The status column says "in grace" and until when: one subquery, not a query per row.
        return cast(KeyQuerySet, super().get_queryset(request)).with_previous_key_expiry()

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> list[str]:
        return list(self.readonly_fields) if obj is None else [*self.fixed_once_created, *self.readonly_fields]

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        # A masked key ("ksg_…abcd") is searched by its last four characters.
        if crypto.MASK_SEPARATOR in search_term:
            search_term = search_term.rsplit(crypto.MASK_SEPARATOR, 1)[1].strip()
        return super().get_search_results(request, queryset, search_term)

    # Permissions ------------------------------------------------------------------

    def has_change_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        if obj is not None and obj.is_revoked:
            return False
        return super().has_change_permission(request, obj)

    # Writes, through the key service -----------------------------------------------

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        try:
            if change:
                saved = key_update(key=obj, actor=request.user, ip_address=client_ip(request), **self.changes(form))
            else:
                saved, full_key = self.issue(request, form)
                request.__dict__[_ISSUED] = [self.issued(saved, full_key)]
        except KeyRevokedError as exc:  # revoked since the form was shown
            raise ValidationError(str(exc.detail)) from exc
        obj.pk = saved.pk  # the admin logs and answers with the saved row
        obj.refresh_from_db()

    def changes(self, form: Any) -> dict[str, Any]:
        """What the change form changed, as key_update() takes it."""
        return {field: form.cleaned_data[field] for field in COMMON_FIELDS if field in form.changed_data}

    def issue(self, request: HttpRequest, form: Any) -> tuple[ApiKey, str]:
        """Create the key of the add form through this kind's service."""
        raise NotImplementedError

    @staticmethod
    def common_fields(form: Any) -> dict[str, Any]:
        return {field: form.cleaned_data[field] for field in COMMON_FIELDS if field in form.cleaned_data}

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """The service saved the scope; the form must not write it again, unaudited."""

    def delete_model(self, request: HttpRequest, obj: ApiKey) -> None:
        key_delete(key=obj, actor=request.user, ip_address=client_ip(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        with transaction.atomic():
            for key in self.administered(request, queryset):
                self.delete_model(request, key)

    # The one-time page --------------------------------------------------------------

    def issued(self, key: ApiKey, full_key: str) -> IssuedKey:
        # The key's own admin: rotating imported keys answers for both kinds at once.
        change_url = reverse(f"admin:{key._meta.app_label}_{key._meta.model_name}_change", args=[key.pk])
        return IssuedKey(key=key, full_key=full_key, change_url=change_url, scope=scope_text(key))

    def one_time_response(
        self,
        request: HttpRequest,
        issued: list[IssuedKey],
        *,
        title: str,
        skipped: Iterable[ApiKey] = (),
        grace_period_seconds: int | None = None,
    ) -> TemplateResponse:
        grace_until = None
        if grace_period_seconds:
            grace_until = timezone.now() + timedelta(seconds=grace_period_seconds)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "issued": issued,
            "skipped": list(skipped),
            "rotated": grace_period_seconds is not None,
            "grace_until": grace_until,
            "changelist_url": reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"),
            "add_url": reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_add"),
            "media": self.media,
        }
        response = TemplateResponse(request, "keys/one_time_key.html", context)
        response["Cache-Control"] = "no-store"
        return response

    def response_add(self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None) -> HttpResponse:
        issued = request.__dict__.pop(_ISSUED, None)
        if issued is None:
            return super().response_add(request, obj, post_url_continue)
        return self.one_time_response(request, issued, title=f"New {self.opts.verbose_name}")

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], add: bool = False, change: bool = False, form_url: str = "", obj: Any = None
    ) -> Any:
        # The add page answers with the one-time page, whatever the button.
        context.update(show_save_and_add_another=False, show_save_and_continue=not add)
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None) -> Any:
        # This worker's buffered uses first: "Last used" agrees with the chart below it.
        usage.flush_usage()
        extra_context = dict(extra_context or {})
        key = self.get_object(request, unquote(object_id))
        if key is not None:
            extra_context["key_tools"] = self.key_tools(request, key)
            extra_context["grace_until"] = key.previous_key_expires_at
        return super().change_view(request, object_id, form_url, extra_context)

    def history_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> HttpResponse:
        """A key's history is its audit trail: every write goes through the key service, not the admin's log."""
        key = self.get_object(request, unquote(object_id))
        if key is None:  # as Django's own history view answers: back to the index, saying so
            self.message_user(request, f"No {self.opts.verbose_name} with the ID “{object_id}”.", messages.WARNING)
            return HttpResponseRedirect(reverse("admin:index"))
        if not self.has_view_or_change_permission(request, key):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "object": key,
            "title": f"History: {key.name}",
            "events": AuditEvent.objects.filter(key_id=key.pk).order_by("-created_at", "-id")[:HISTORY_SHOWN],
            "event_count": AuditEvent.objects.filter(key_id=key.pk).count(),
            "audit_url": audit_events_url(key.pk),
            "changelist_url": reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/keys/key_history.html", context)

    def key_tools(self, request: HttpRequest, key: ApiKey) -> dict[str, str]:
        info = f"admin:{self.opts.app_label}_{self.opts.model_name}"
        tools = {"audit": audit_events_url(key.pk)}
        if self.has_change_permission(request, key):
            tools["rotate"] = reverse(f"{info}_rotate", args=[key.pk])
            tools["revoke"] = reverse(f"{info}_revoke", args=[key.pk])
        return tools

    # Actions --------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        own = [
            path(
                "rotate-imported/",
                self.admin_site.admin_view(self.rotate_imported_view),
                name=f"{info}_rotate_imported",
            ),
            path("<path:object_id>/rotate/", self.admin_site.admin_view(self.rotate_view), name=f"{info}_rotate"),
            path("<path:object_id>/revoke/", self.admin_site.admin_view(self.revoke_view), name=f"{info}_revoke"),
        ]
        return own + super().get_urls()

    def rotate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._one_key_action(request, object_id, self.rotate_keys)

    def revoke_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._one_key_action(request, object_id, self.revoke_keys)

    def rotate_imported_view(self, request: HttpRequest) -> HttpResponse:
        """Rotate every imported key (both kinds) of one organization the user administers."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        administered = self.choices_for(Organization, request)
        pending: dict[Organization, list[ApiKey]] = {}
        for key in imported_keys(organizations=Organization.objects.all() if administered is None else administered):
            pending.setdefault(key.organization, []).append(key)  # type: ignore[attr-defined]  # both kinds have one
        lone = next(iter(pending)).pk if len(pending) == 1 else None  # chosen already; ?organization= picks one
        form = RotateImportedForm(
            request.POST if request.method == "POST" else None,
            organizations=Organization.objects.filter(pk__in=[organization.pk for organization in pending]),
            initial={"organization": request.GET.get("organization") or lone},
        )
        if form.is_valid():
            grace = form.cleaned_data["grace_period_seconds"]
            rotated = imported_keys_rotate(
                organization=form.cleaned_data["organization"],
                actor=request.user,
                grace_period_seconds=grace,
                ip_address=client_ip(request),
            )
            issued = [self.issued(key, full_key) for key, full_key in rotated]
            title = "Rotated imported key" if len(issued) == 1 else "Rotated imported keys"
            return self.one_time_response(request, issued, title=title, grace_period_seconds=grace)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Rotate imported keys",
            "form": form,
            "pending": sorted(pending.items(), key=lambda item: item[0].slug),
            "changelist_url": reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"),
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "keys/rotate_imported.html", context)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        usage.flush_usage()  # this worker's buffered uses, so "Last used" is as fresh as it can be here
        extra_context = dict(extra_context or {})
        if self.has_change_permission(request):
            info = f"admin:{self.opts.app_label}_{self.opts.model_name}"
            extra_context["rotate_imported_url"] = reverse(f"{info}_rotate_imported")
        return super().changelist_view(request, extra_context)

    def _one_key_action(
        self, request: HttpRequest, object_id: str, action: Callable[[HttpRequest, QuerySet], HttpResponse | None]
    ) -> HttpResponse:
        key = self.get_object(request, unquote(object_id))
        if key is None or not self.has_change_permission(request, key):
            raise Http404("No such key.")
        response = action(request, self.get_queryset(request).filter(pk=key.pk))
        return response or HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[key.pk]))

    def _confirmation(self, request: HttpRequest, template: str, keys: list[ApiKey], action: str, **extra: Any) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "keys": keys,
            "action": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "changelist_url": reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"),
            "media": self.media + (extra["form"].media if "form" in extra else forms.Media()),
            **extra,
        }
        return TemplateResponse(request, template, context)

    @admin.action(description="Rotate selected keys", permissions=["change"])
    def rotate_keys(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        keys = list(self.administered(request, queryset))
        live = [key for key in keys if not key.is_revoked]
        skipped = [key for key in keys if key.is_revoked]
        if not live:
            self.message_user(request, "Revoked keys cannot be rotated: revocation is final.", messages.WARNING)
            return None
        form = RotateForm(request.POST if request.POST.get("post") == "yes" else None)
        if not form.is_valid():
            return self._confirmation(
                request,
                "keys/rotate_confirmation.html",
                live,
                "rotate_keys",
                form=form,
                skipped=skipped,
                title=f"Rotate {live[0].name}" if len(live) == 1 else f"Rotate {len(live)} keys",
            )
        grace = form.cleaned_data["grace_period_seconds"]
        issued = []
        with transaction.atomic():  # all rotated and shown, or none
            for key in live:
                try:
                    rotated, full_key = key_rotate(
                        key=key, actor=request.user, grace_period_seconds=grace, ip_address=client_ip(request)
                    )
                except KeyRevokedError:
                    skipped.append(key)
                    continue
                issued.append(self.issued(rotated, full_key))
        title = "Rotated key" if len(issued) == 1 else "Rotated keys"
        return self.one_time_response(request, issued, title=title, skipped=skipped, grace_period_seconds=grace)

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        keys = [key for key in self.administered(request, queryset) if not key.is_revoked]
        if not keys:
            self.message_user(request, "The selected keys are already revoked.", messages.WARNING)
            return None
        if request.POST.get("post") != "yes":
            title = f"Revoke {keys[0].name}" if len(keys) == 1 else f"Revoke {len(keys)} keys"
            return self._confirmation(request, "keys/revoke_confirmation.html", keys, "revoke_keys", title=title)
        with transaction.atomic():
            for key in keys:
                key_revoke(key=key, actor=request.user, ip_address=client_ip(request))
        self.message_user(request, f"Revoked {plural(len(keys), 'key')}.", messages.SUCCESS)
        return None

    @admin.action(description="Activate selected keys", permissions=["change"])
    def activate_keys(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_active(request, queryset, key_activate, active=True)

    @admin.action(description="Deactivate selected keys", permissions=["change"])
    def deactivate_keys(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_active(request, queryset, key_deactivate, active=False)

    def _set_active(self, request: HttpRequest, queryset: QuerySet, service: Callable[..., ApiKey], *, active: bool) -> None:
        keys = list(self.administered(request, queryset))
        changed = [key for key in keys if not key.is_revoked and key.is_active != active]
        revoked = sum(1 for key in keys if key.is_revoked)
        with transaction.atomic():
            for key in changed:
                service(key=key, actor=request.user, ip_address=client_ip(request))
        verb = "Activated" if active else "Deactivated"
        self.message_user(request, f"{verb} {plural(len(changed), 'key')}.", messages.SUCCESS)
        if revoked:
            self.message_user(request, f"Skipped {plural(revoked, 'revoked key')}: revocation is final.", messages.WARNING)


def audit_events_url(key_id: Any) -> str:
    return reverse("admin:keys_auditevent_changelist") + f"?key_id={key_id}"


class KeyLinksMixin(admin.ModelAdmin):
    """Rows that name a key (`key_kind`, `key_id`, `key_name`) link to its page while it exists.

    Which keys of a list page still exist is read in one query per kind, when the page is made.
    """

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)
        rows = list(changelist.result_list)  # the queryset the page renders, evaluated once
        for kind, model in MODEL_BY_KIND.items():
            wanted = {row.key_id for row in rows if row.key_kind == kind and row.key_id}
            live = set(model.objects.filter(pk__in=wanted).values_list("pk", flat=True)) if wanted else set()
            for row in rows:
                if row.key_kind == kind:
                    row.key_exists = row.key_id in live
        return changelist

    @admin.display(description="key", ordering="key_name")
    def key_link(self, row: Any) -> str:
        """The key's name linking to its page, or to its audit events once it is deleted."""
        if row.key_id is None:
            return row.key_name or self.get_empty_value_display()
        model = MODEL_BY_KIND.get(row.key_kind or "")
        exists = getattr(row, "key_exists", None)
        if exists is None:  # a single row's page
            exists = model is not None and model.objects.filter(pk=row.key_id).exists()
        if exists and model is not None:
            url = reverse(f"admin:keys_{model._meta.model_name}_change", args=[row.key_id])
            return format_html('<a href="{}">{}</a>', url, row.key_name)
        return format_html(
            '<a href="{}" title="The audit events of this deleted key">{}</a> (deleted)', audit_events_url(row.key_id), row.key_name
        )


def deployment_link(deployment: Deployment) -> str:
    url = reverse("admin:deployments_deployment_change", args=[deployment.pk])
    return format_html('<a href="{}">{}</a>', url, deployment.slug)


@admin.register(DeploymentKey)
class DeploymentKeyAdmin(KeyAdmin):
    __doc__ = KeyAdmin.__doc__

    form = DeploymentKeyForm
    organization_path = "deployment__organization"
    fixed_once_created = ["deployment"]
    # The deployment column is the key's scope: no second column says "1 deployment".
    list_display = ["name", "organization", "deployment_slug", "key_masked", "status", "expires_at", "last_used_at"]
    list_filter = [
        StatusFilter,
        RevocationFilter,
        ("deployment__organization", admin.RelatedOnlyFieldListFilter),
        ("deployment", admin.RelatedOnlyFieldListFilter),
        "format",
    ]
    list_select_related = ["deployment__organization"]
    add_fieldsets = [
        (None, {"fields": ["deployment", "name", "description"]}),
        *ADD_FIELDSETS,
    ]
    change_fieldsets = [
        (None, {"fields": ["deployment", "name", "description"]}),
        *CHANGE_FIELDSETS,
    ]

    def issue(self, request: HttpRequest, form: DeploymentKeyForm) -> tuple[DeploymentKey, str]:
        return deployment_key_issue(
            deployment=form.cleaned_data["deployment"],
            actor=request.user,
            ip_address=client_ip(request),
            **self.common_fields(form),
        )

    @admin.display(description="organization", ordering="deployment__organization__slug")
    def organization(self, key: DeploymentKey) -> str:
        return str(key.deployment.organization)

    @admin.display(description="deployment", ordering="deployment__slug")
    def deployment_slug(self, key: DeploymentKey) -> str:
        return deployment_link(key.deployment)


@admin.register(GlobalApiDeploymentKey)
class GlobalApiDeploymentKeyAdmin(KeyAdmin):
    __doc__ = KeyAdmin.__doc__

    form = GlobalKeyForm
    fixed_once_created = ["organization"]
    list_display = ["name", "organization", "key_masked", "scope", "status", "expires_at", "last_used_at"]
    list_filter = [
        StatusFilter,
        RevocationFilter,
        ("organization", admin.RelatedOnlyFieldListFilter),
        GlobalScopeFilter,
        "format",
    ]
    list_select_related = ["organization"]
    readonly_fields = [*KeyAdmin.readonly_fields, "opened_deployments"]
    add_fieldsets = [
        (None, {"fields": ["organization", "name", "description"]}),
        ("Scope", {"fields": ["scope", "deployments", "groups"]}),
        *ADD_FIELDSETS,
    ]
    change_fieldsets = [
        (None, {"fields": ["organization", "name", "description"]}),
        ("Scope", {"fields": ["scope", "deployments", "groups", "opened_deployments"]}),
        *CHANGE_FIELDSETS,
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # The scope column names the first three groups and deployments: three of each are read per page.
        first = [
            Prefetch("groups", DeploymentGroup.objects.order_by("name", "pk")[:3], to_attr="first_groups"),
            Prefetch("deployments", Deployment.objects.order_by("name", "pk")[:3], to_attr="first_deployments"),
        ]
        return (
            super()
            .get_queryset(request)
            .annotate(deployment_count=_link_count(GlobalKeyDeployment), group_count=_link_count(GlobalKeyGroup))
            .prefetch_related(*first)
        )

    @admin.display(description="scope", ordering="deployment_count")
    def scope(self, key: GlobalApiDeploymentKey) -> str:
        return scope_text(key)

    @admin.display(description="opens now")
    def opened_deployments(self, key: GlobalApiDeploymentKey) -> str:
        """Every deployment the key opens at this moment, with where it comes from (its list, or which groups)."""
        if key.pk is None:
            return "-"
        if key.allow_all_deployments:
            return "All deployments of the organization, current and future."
        listed = set(key.deployments.values_list("pk", flat=True))
        opened = key.opened_deployments().order_by("name", "pk").prefetch_related(
            Prefetch("groups", DeploymentGroup.objects.filter(global_key_links__key=key).order_by("name"), to_attr="via")
        )
        total = opened.count()
        if not total:
            return "Nothing: the key lists no deployment and its groups hold none."
        rows = [
            (
                reverse("admin:deployments_deployment_change", args=[deployment.pk]),
                deployment.name,
                deployment.slug,
                ", ".join((["listed"] if deployment.pk in listed else []) + [f"via {group.name}" for group in deployment.via]),
            )
            for deployment in opened[:OPENED_SHOWN]
        ]
        more = format_html("<li>and {} more</li>", total - OPENED_SHOWN) if total > OPENED_SHOWN else ""
        return format_html(
            '<p>{}</p><ul class="key-opens">{}{}</ul>',
            plural(total, "deployment"),
            format_html_join("", '<li><a href="{}">{}</a> <code>{}</code> ({})</li>', rows),
            more,
        )

    def get_form(self, request: HttpRequest, obj: GlobalApiDeploymentKey | None = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        # The pickers offer the key's organization's deployments and groups; on the add
        # page, those of the organizations the user administers.
        for picker, model in (("deployments", Deployment), ("groups", DeploymentGroup)):
            if picker in form.base_fields:
                form.base_fields[picker].queryset = self.picker_choices(model, request, obj)
        return form

    def changes(self, form: GlobalKeyForm) -> dict[str, Any]:
        changes = super().changes(form)
        if {"scope", "deployments", "groups"} & set(form.changed_data):
            changes.update(form.scope_for_service())
        return changes

    def issue(self, request: HttpRequest, form: GlobalKeyForm) -> tuple[GlobalApiDeploymentKey, str]:
        return global_key_issue(
            organization=form.cleaned_data["organization"],
            actor=request.user,
            ip_address=client_ip(request),
            **form.scope_for_service(),
            **self.common_fields(form),
        )


class DeploymentKeyInline(admin.TabularInline):
    """The deployment's keys, masked and read-only: keys are changed on their own pages."""

    model = DeploymentKey
    extra = 0
    can_delete = False
    show_change_link = True
    fields = readonly_fields = ("name", "key_masked", "status", "expires_at", "last_used_at", "created_at")

    def has_view_permission(self, request: HttpRequest, obj: Deployment | None = None) -> bool:
        return request.user.is_staff  # shown only inside a deployment the user may view

    def has_add_permission(self, request: HttpRequest, obj: Deployment | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Deployment | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Deployment | None = None) -> bool:
        return False

    @admin.display(description="key")
    def key_masked(self, key: DeploymentKey) -> str:
        return key.key_masked

    @admin.display(description="status")
    def status(self, key: DeploymentKey) -> str:
        return status_badges(key)


# The deployment's page lists its keys. This app sits above the deployments app, so it
# registers the deployment admin again with the inline, as one extends Django's UserAdmin.
admin.site.unregister(Deployment)


@admin.register(Deployment)
class DeploymentWithKeysAdmin(DeploymentAdmin):
    __doc__ = DeploymentAdmin.__doc__

    inlines = [*DeploymentAdmin.inlines, DeploymentKeyInline]

    class Media:
        css = {"all": ["keys/admin.css"]}  # the inline's status badges


# Executions name their key: registered again here, with links to it and to the deployment.
admin.site.unregister(Execution)


@admin.register(Execution)
class ExecutionWithKeyLinksAdmin(KeyLinksMixin, ExecutionAdmin):
    __doc__ = ExecutionAdmin.__doc__

    list_display = ["created_at", "deployment_link", "status", "http_status", "elapsed_ms", "key_link", "key_kind", "client_ip"]
    fields = readonly_fields = (
        "created_at", "deployment", "status", "http_status", "elapsed_ms", "error_code", "error_detail",
        "key_link", "key_kind", "client_ip", "request", "result",
    )  # fmt: skip

    @admin.display(description="deployment", ordering="deployment__slug")
    def deployment_link(self, execution: Execution) -> str:
        return deployment_link(execution.deployment)


@admin.register(AuditEvent)
class AuditEventAdmin(KeyLinksMixin, ReadOnlyAdminMixin, OrganizationScopedAdmin):
    """Audit events: read-only for everyone, superusers included; visible to the organization's members."""

    list_display = ["created_at", "action", "key_link", "key_kind", "organization", "actor_label", "ip_address"]
    list_display_links = ["created_at"]
    list_filter = ["action", "key_kind", ("organization", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["organization"]
    search_fields = ["key_name", "group", "actor_username"]
    search_help_text = "A key's name, a group's slug, or who acted."
    date_hierarchy = "created_at"
    fields = readonly_fields = (
        "created_at",
        "organization",
        "action",
        "key_kind",
        "key_link",
        "group",
        "actor_label",
        "ip_address",
        "changes_display",
    )

    @admin.display(description="key or group", ordering="key_name")
    def key_link(self, event: AuditEvent) -> str:
        if event.group:
            url = reverse("admin:keys_auditevent_changelist") + "?" + urlencode({"group": event.group})
            return format_html('<a href="{}" title="Events of this group">group {}</a>', url, event.group)
        if event.key_id is None:
            return "(the organization's key policy)"
        return super().key_link(event)

    @admin.display(description="actor", ordering="actor_username")
    def actor_label(self, event: AuditEvent) -> str:
        return event.actor_username or "system"

    @admin.display(description="changes")
    def changes_display(self, event: AuditEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(event.changes, indent=2, sort_keys=True, ensure_ascii=False))


# The organization's page edits its key policy through the audited service. This app sits above the
# organizations app, so it registers the organization admin again, as it does the deployment admin.
admin.site.unregister(Organization)


@admin.register(Organization)
class OrganizationWithKeyPolicyAdmin(ServiceErrorsOnFormMixin, OrganizationAdmin):
    """Organizations, and the policy their keys follow.

    Superusers: everything. Org admins: view their organizations and change the
    name and the key policy (the slug is fixed); they cannot add or delete
    organizations. Members: view only. Each change of the policy is audited.
    """

    list_display = ["slug", "name", *POLICY_FIELDS, "created_at"]
    fieldsets = [
        (None, {"fields": ["slug", "name", "created_at"]}),
        ("Key policy", {"fields": list(POLICY_FIELDS)}),
    ]

    def save_model(self, request: HttpRequest, obj: Organization, form: Any, change: bool) -> None:
        policy = {name: form.cleaned_data[name] for name in POLICY_FIELDS if name in form.changed_data}
        # The form has set the new values on `obj`: the rest is saved as usual, the policy by its service.
        for name in policy:
            setattr(obj, name, form.initial.get(name))
        super().save_model(request, obj, form, change)
        if policy:
            saved = key_policy_update(organization=obj, actor=request.user, ip_address=client_ip(request), **policy)
            for name in policy:
                setattr(obj, name, getattr(saved, name))
