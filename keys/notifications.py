"""Emails to an organization's admins about its keys: leaked ones that were stopped, ones about to expire.

One path for both: one plain-text message per organization, to its admins that have
an email address, through Django's email framework (EMAIL_URL). A key appears in it
only masked; links point at KEYSCOPE_PUBLIC_URL, never at a request's Host header.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.template.loader import render_to_string
from django.urls import reverse

from keys.models import ApiKey, DeploymentKey, GlobalApiDeploymentKey, RevocationReason
from organizations.models import Membership, Organization

logger = logging.getLogger("keyscope.notifications")

KIND_LABELS = {"deployment": "deployment key", "global": "global key"}


@dataclass(frozen=True)
class StoppedKey:
    """A key, or the secret a rotation replaced, that stopped working because it leaked."""

    key: ApiKey  # with its organization (and deployment, or deployments) loaded
    stopped: Literal["key", "previous_secret"]
    at: datetime
    reason: RevocationReason
    reported_from: str  # where it was found, or who asked


def when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def public_url(path: str) -> str:
    return settings.KEYSCOPE_PUBLIC_URL + path


def scope_description(key: ApiKey) -> str:
    if isinstance(key, DeploymentKey):
        return f"deployment {key.deployment.slug}"
    assert isinstance(key, GlobalApiDeploymentKey)
    if key.allow_all_deployments:
        return "all deployments of the organization"
    slugs = sorted(deployment.slug for deployment in key.deployments.all())
    return "deployments " + ", ".join(slugs) if slugs else "no deployments"


def _admin_url(key: ApiKey, view: str, *args: object) -> str:
    return public_url(reverse(f"admin:{key._meta.app_label}_{key._meta.model_name}_{view}", args=args))


def key_lines(key: ApiKey) -> dict[str, str]:
    """What every email says of a key: never more of its secret than the masked form."""
    return {
        "name": key.name,
        "key_masked": key.key_masked,
        "kind": KIND_LABELS[key.KIND],
        "scope": scope_description(key),
        "change_url": _admin_url(key, "change", key.pk),
        "new_key_url": _admin_url(key, "add"),
        "audit_url": public_url(reverse("admin:keys_auditevent_changelist") + f"?key_id={key.pk}"),
    }


def admin_addresses(organization: Organization) -> list[str]:
    users = get_user_model().objects.filter(
        memberships__organization=organization, memberships__role=Membership.Role.ADMIN, is_active=True
    )
    return sorted(set(users.exclude(email="").values_list("email", flat=True)))


def send_to_admins(organization: Organization, *, subject: str, template: str, context: dict[str, object]) -> int:
    """Send one email to the organization's admins; return how many it went to (0: nobody to tell).

    Raises what the email backend raises, so callers decide whether a failed send matters.
    """
    recipients = admin_addresses(organization)
    if not recipients:
        logger.warning("no admin of organization %s has an email address: %s not sent", organization.slug, template)
        return 0
    body = render_to_string(template, {"organization": organization, **context})
    EmailMessage(subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=recipients).send()
    return len(recipients)


def _by_organization(keys: Iterable[tuple[ApiKey, dict[str, str]]]) -> dict[Organization, list[dict[str, str]]]:
    grouped: dict[Organization, list[dict[str, str]]] = defaultdict(list)
    for key, lines in keys:
        grouped[key.organization].append(lines)  # type: ignore[attr-defined]
    return grouped


def notify_stopped(stopped: Sequence[StoppedKey]) -> None:
    """Tell each organization's admins, in one email, which of its keys were stopped by a leak report.

    A failed send is logged, not raised: the keys are stopped whatever the mail server does.
    """
    described = []
    for item in sorted(stopped, key=lambda item: (item.key.KIND, item.key.name.lower())):
        lines = key_lines(item.key)
        lines.update(
            stopped=item.stopped,
            at=when(item.at),
            reason=item.reason.label,
            reported_from=item.reported_from,
        )
        described.append((item.key, lines))
    for organization, keys in _by_organization(described).items():
        what = "key" if len(keys) == 1 else "keys"
        subject = f"[keyscope] {organization}: {len(keys)} {what} stopped ({keys[0]['reason']})"
        try:
            send_to_admins(
                organization, subject=subject, template="keys/email/stopped_keys.txt", context={"keys": keys}
            )
        except Exception as exc:  # the mail server: the revocations stand
            logger.error(
                "could not email organization %s about stopped keys: %s", organization.slug, type(exc).__name__
            )


def notify_expiring(organization: Organization, keys: Sequence[ApiKey], *, days: int) -> int:
    """One email to the organization's admins listing its keys that expire within `days` days."""
    described = []
    for key in sorted(keys, key=lambda key: (key.expires_at, key.name)):
        lines = key_lines(key)
        lines["expires_at"] = when(key.expires_at)  # type: ignore[arg-type]
        described.append(lines)
    what = "key expires" if len(described) == 1 else "keys expire"
    return send_to_admins(
        organization,
        subject=f"[keyscope] {organization}: {len(described)} {what} within {days} days",
        template="keys/email/expiring_keys.txt",
        context={"keys": described, "days": days},
    )
