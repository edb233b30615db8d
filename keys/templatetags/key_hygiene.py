"""`{% key_hygiene %}`: the admin index's key-hygiene panel, for the organizations the user belongs to."""

from __future__ import annotations

from typing import Any

from django import template

from keys.hygiene import hygiene_for
from organizations.permissions import organizations_of

register = template.Library()

# A superuser sees every organization: the first ones by name, so the index stays a page.
MOST_ORGANIZATIONS = 20


@register.inclusion_tag("keys/key_hygiene.html", takes_context=True)
def key_hygiene(context: dict[str, Any]) -> dict[str, Any]:
    request = context["request"]
    organizations = organizations_of(request.user).order_by("name")[:MOST_ORGANIZATIONS]
    return {"hygiene": hygiene_for(organizations)}
