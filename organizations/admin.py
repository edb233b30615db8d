"""The admin for org admins: everything is scoped by membership.

`OrganizationScopedAdmin` is the base of every keyscope ModelAdmin. A staff
user sees the objects of the organizations they belong to and changes those of
the organizations they administer; a superuser sees and changes everything.
Permissions come from memberships alone, so an org admin needs no hand-granted
Django model permissions.
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db.models import Model, QuerySet
from django.db.models.constants import LOOKUP_SEP
from django.forms.models import ModelChoiceField
from django.http import HttpRequest

from organizations.forms import AdminLoginForm
from organizations.models import Membership, Organization
from organizations.permissions import organizations_of

# The login page says when the login throttle refused the name or address.
admin.site.login_form = AdminLoginForm

_ORG_IDS_CACHE = "_keyscope_organization_ids"


def organization_ids(request: HttpRequest, *, admin_only: bool) -> frozenset[int]:
    """The organizations the user belongs to (or administers), computed once per request."""
    cache: dict[bool, frozenset[int]] = request.__dict__.setdefault(_ORG_IDS_CACHE, {})
    if admin_only not in cache:
        cache[admin_only] = frozenset(organizations_of(request.user, admin_only=admin_only).values_list("pk", flat=True))
    return cache[admin_only]


def reaches_secret(model: type[Model], lookup: str) -> bool:
    """Whether a lookup path touches a secret-derived column, on the model or across a relation.

    Secret: a column in its model's `SECRET_FIELDS` (a key's digest, encrypted
    upstream credentials) or a user's password hash. Filtering on one, even
    with `__startswith`, would read it out a character at a time.
    """
    for part in lookup.split(LOOKUP_SEP):
        try:
            field = model._meta.get_field(part)
        except FieldDoesNotExist:
            return False
        if field.name in getattr(model, "SECRET_FIELDS", ()) or (model is get_user_model() and field.name == "password"):
            return True
        if field.related_model is None:
            return False
        model = cast("type[Model]", field.related_model)
    return False


def belongs_to_an_organization(model: type[Model]) -> bool:
    """Whether `model` has an `organization` foreign key (a deployment, say): the apps above this one."""
    try:
        field = model._meta.get_field("organization")
    except FieldDoesNotExist:
        return False
    return field.is_relation and field.related_model is Organization


class OrganizationScopedAdmin(admin.ModelAdmin):
    """Querysets, choices and permissions that follow memberships.

    `organization_path` is the lookup from the model to its Organization
    ("pk" for Organization itself). Members see (read-only); admins change.
    Admins whose writes go through a service add lib.admin.ServiceErrorsOnFormMixin.
    """

    organization_path = "organization"

    # Scoping ------------------------------------------------------------------

    def organization_id_of(self, obj: Model) -> int | None:
        if self.organization_path == "pk":
            return obj.pk
        *relations, last = self.organization_path.split("__")
        for relation in relations:
            obj = getattr(obj, relation)
        return getattr(obj, f"{last}_id")

    def viewable_organization_ids(self, request: HttpRequest) -> frozenset[int]:
        return organization_ids(request, admin_only=False)

    def administered_organization_ids(self, request: HttpRequest) -> frozenset[int]:
        return organization_ids(request, admin_only=True)

    def scoped(self, queryset: QuerySet, request: HttpRequest, *, admin_only: bool) -> QuerySet:
        if request.user.is_superuser:
            return queryset
        ids = organization_ids(request, admin_only=admin_only)
        return queryset.filter(**{f"{self.organization_path}__in": ids})

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return self.scoped(super().get_queryset(request), request, admin_only=False)

    def administered(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        """The part of `queryset` the user may change (what actions act on)."""
        return self.scoped(queryset, request, admin_only=True)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> ModelChoiceField | None:
        queryset = self.choices_for(db_field.related_model, request)
        if queryset is not None:
            kwargs["queryset"] = queryset
            if db_field.related_model is Organization and len(only := list(queryset[:2])) == 1:
                # An admin of one organization has nothing to choose: it is chosen for them.
                kwargs.setdefault("initial", only[0].pk)
                kwargs.setdefault("empty_label", None)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def choices_for(self, model: type[Model], request: HttpRequest) -> QuerySet | None:
        """Foreign-key choices: the organizations the user administers, and what belongs to them.

        None means no restriction (a superuser, or a model outside every organization).
        """
        if request.user.is_superuser:
            return None
        ids = self.administered_organization_ids(request)
        if model is Organization:
            return Organization.objects.filter(pk__in=ids)
        if belongs_to_an_organization(model):
            return model._default_manager.filter(organization_id__in=ids).select_related("organization")
        return None

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        # Refused lookups answer 400 whatever their value, so the answer says nothing of a secret.
        return not reaches_secret(self.model, lookup) and super().lookup_allowed(lookup, value, request)

    def picker_choices(self, model: type[Model], request: HttpRequest, obj: Model | None) -> QuerySet:
        """What a many-to-many picker offers: `model` rows of the object's organization, or on the add
        page, before an organization is chosen, those of the organizations the user administers."""
        if obj is not None:
            choices = model._default_manager.filter(organization_id=self.organization_id_of(obj))
        else:
            scoped = self.choices_for(model, request)
            # None means "no restriction" (a superuser); an empty queryset must stay empty.
            choices = model._default_manager.all() if scoped is None else scoped
        return choices.select_related("organization").order_by("organization__slug", "slug")

    # Permissions -----------------------------------------------------------------

    def _allowed(self, request: HttpRequest, obj: Any, *, admin_only: bool) -> bool:
        user = request.user
        if not (user.is_active and user.is_staff):
            return False
        if user.is_superuser:
            return True
        ids = organization_ids(request, admin_only=admin_only)
        if obj is None:
            return bool(ids)
        return self.organization_id_of(obj) in ids

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request, None, admin_only=False)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, obj, admin_only=False)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request, None, admin_only=True)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, obj, admin_only=True)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, obj, admin_only=True)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.is_staff  # the parent's view permission already applies

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return request.user.is_superuser


@admin.register(Organization)
class OrganizationAdmin(OrganizationScopedAdmin):
    """Organizations.

    Superusers: everything. Org admins: view their organizations and change
    the name and default rate limit (the slug is fixed); they cannot add or
    delete organizations. Members: view only. Memberships are listed inline;
    only superusers change them, because adding a member means choosing among
    every user of the installation.
    """

    organization_path = "pk"
    list_display = ["slug", "name", "default_rate_limit_per_minute", "created_at"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Organization | None = None) -> list[str]:
        return ["created_at"] if request.user.is_superuser else ["slug", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Organization | None = None) -> bool:
        return request.user.is_active and request.user.is_superuser


@admin.register(Membership)
class MembershipAdmin(OrganizationScopedAdmin):
    """Memberships: visible to the members of the organization; only superusers add, change or delete."""

    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", ("organization", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["user__username", "organization__slug"]
    autocomplete_fields = ["user", "organization"]
    list_select_related = ["user", "organization"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Membership | None = None) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Membership | None = None) -> bool:
        return request.user.is_active and request.user.is_superuser
