"""Admin mixins that any app's ModelAdmin may use."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.core.exceptions import ValidationError
from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html
from django.utils.safestring import SafeString

_SERVICE_ERRORS = "_keyscope_service_errors"


def add_errors_to_form(form: forms.BaseForm, error: ValidationError) -> None:
    """Show a service's ValidationError on the form; fields the form lacks become non-field errors.

    A form's `form_words` ({service message: the form's message}) says a message in the form's terms.
    """
    words: dict[str, str] = getattr(form, "form_words", {})
    if not hasattr(error, "error_dict"):
        form.add_error(None, [words.get(message, message) for message in error.messages])
        return
    for field, messages in error.message_dict.items():
        form.add_error(field if field in form.fields else None, [words.get(message, message) for message in messages])


class ServiceErrorsOnFormMixin(admin.ModelAdmin):
    """A ValidationError raised by the service that save_model() calls becomes an error on the re-rendered form.

    The service judges what the form cannot (a taken name, a lost race) and its
    transaction rolls back; the view then runs once more, with a form that adds
    the service's answer to its own errors, instead of answering a server error.
    """

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ValidationError as error:
            if request.method != "POST" or _SERVICE_ERRORS in request.__dict__:
                raise
            request.__dict__[_SERVICE_ERRORS] = error
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        error = request.__dict__.get(_SERVICE_ERRORS)
        return form if error is None else with_service_errors(form, error)


def with_service_errors(form: type[forms.BaseForm], error: ValidationError) -> type[forms.BaseForm]:
    """`form`, whose clean() also reports `error`."""

    class FormWithServiceErrors(form):  # type: ignore[misc, valid-type]
        def clean(self) -> dict[str, Any]:
            cleaned_data = super().clean()
            add_errors_to_form(self, error)
            return cleaned_data

    FormWithServiceErrors.__name__ = form.__name__
    return FormWithServiceErrors


class ReadOnlyAdminMixin(admin.ModelAdmin):
    """Shown to whoever may view it, changed by no one, superusers included (records such as audit events)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class Picker(FilteredSelectMultiple):
    """filter_horizontal's widget, wrapped as the admin wraps it, so its label stays on the left."""

    def render(self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None) -> SafeString:
        return format_html('<div class="related-widget-wrapper">{}</div>', super().render(name, value, attrs, renderer))


def picker_field(model: type[Model], label: str, help_text: str) -> forms.ModelMultipleChoiceField:
    """A many-to-many picker of `model` rows; the admin sets its choices (OrganizationScopedAdmin.picker_choices)."""
    return forms.ModelMultipleChoiceField(
        queryset=model._default_manager.none(), required=False, widget=Picker(label, is_stacked=False), help_text=help_text
    )


def outside_organization(form: forms.ModelForm, rows: list[Any]) -> bool:
    """Whether any of the picked rows belongs to another organization than the form's row: the one
    chosen on the add page, or the saved row's once its organization is fixed."""
    if "organization" in form.fields:
        organization = form.cleaned_data.get("organization")
        organization_id = organization.pk if organization is not None else None
    else:
        organization_id = form.instance.organization_id
    return organization_id is not None and any(row.organization_id != organization_id for row in rows)
