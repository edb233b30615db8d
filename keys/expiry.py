"""Telling an organization's admins ahead of time that keys expire, as GitHub does before a token expires.

`manage.py keys notify-expiring` runs daily from cron: one email per organization,
listing its live keys that expire within N days. Each key is listed at most once a
(UTC) day, however often the command runs, and two runs at once do not both send.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from keys.models import ApiKey, DeploymentKey, ExpiryNotice, GlobalApiDeploymentKey
from keys.notifications import notify_expiring
from organizations.models import Organization

logger = logging.getLogger("keyscope.notifications")

NOTICES_KEPT_DAYS = 30


def expiring_keys(*, days: int) -> dict[Organization, list[ApiKey]]:
    """Live keys (not revoked, active, not expired yet) that expire within `days` days and were not listed today."""
    now = timezone.now()
    told_today = set(ExpiryNotice.objects.filter(sent_on=now.date()).values_list("key_kind", "key_id"))
    live = {
        "revoked_at__isnull": True,
        "is_active": True,
        "expires_at__gt": now,
        "expires_at__lte": now + timedelta(days=days),
    }
    keys: list[ApiKey] = [
        *DeploymentKey.objects.filter(**live).select_related("deployment__organization"),
        *GlobalApiDeploymentKey.objects.filter(**live).select_related("organization").prefetch_related("deployments"),
    ]
    grouped: dict[Organization, list[ApiKey]] = defaultdict(list)
    for key in keys:
        if (key.KIND, key.pk) not in told_today:
            grouped[key.organization].append(key)  # type: ignore[attr-defined]
    return grouped


def notify_expiring_keys(*, days: int) -> tuple[list[tuple[Organization, int, int]], list[Organization]]:
    """Email each organization its expiring keys; return ([(organization, keys, recipients)], [failed ones])."""
    today = timezone.now().date()
    ExpiryNotice.objects.filter(sent_on__lt=today - timedelta(days=NOTICES_KEPT_DAYS)).delete()
    sent, failed = [], []
    for organization, keys in sorted(expiring_keys(days=days).items(), key=lambda item: item[0].slug):
        try:
            # Recorded first, in the transaction that sends: a failed send records nothing (the next run
            # retries), and a concurrent run that got here first makes this one's insert fail.
            with transaction.atomic():
                ExpiryNotice.objects.bulk_create(
                    [ExpiryNotice(key_kind=key.KIND, key_id=key.pk, sent_on=today) for key in keys]
                )
                recipients = notify_expiring(organization, keys, days=days)
                if not recipients:  # nobody to tell: a later run may find an address
                    transaction.set_rollback(True)
        except IntegrityError:
            continue  # another run told them today
        except Exception as exc:  # the mail server
            logger.error(
                "could not email organization %s about expiring keys: %s", organization.slug, type(exc).__name__
            )
            failed.append(organization)
            continue
        if recipients:
            sent.append((organization, len(keys), recipients))
    return sent, failed
