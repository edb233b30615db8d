"""Personas for the attack suite: the shared users and keys, and the broken keys an attacker holds.

The users (admin and member of org A, admin of org B, a superuser) come from
the root conftest; deployments and the working keys from keys/tests/conftest.py;
clients from the API and admin conftests. Only what is new is defined here: a
revoked, an expired, an inactive and a rotated-out key, each `(row, full_key)`.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from keys.services import key_deactivate, key_revoke, key_rotate
from keys.tests.factories import issue_deployment_key, issue_global_key


@pytest.fixture
def revoked_key_a(deployment_a1):
    row, full_key = issue_deployment_key(deployment_a1, name="revoked")
    return key_revoke(key=row, actor=None), full_key


@pytest.fixture
def expired_key_a(org_a):
    row, full_key = issue_global_key(org_a, name="expired", allow_all_deployments=True)
    # Issued valid, then its expiry passes: the service refuses an expiry in the past.
    type(row).objects.filter(pk=row.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    row.refresh_from_db()
    return row, full_key


@pytest.fixture
def inactive_key_a(deployment_a1):
    row, full_key = issue_deployment_key(deployment_a1, name="inactive")
    return key_deactivate(key=row, actor=None), full_key


@pytest.fixture
def rotated_out_key_a(org_a):
    """The old secret of a global key rotated with no grace: `(row, old_full_key)`."""
    row, old_key = issue_global_key(org_a, name="rotated", allow_all_deployments=True)
    row, _new_key = key_rotate(key=row, actor=None, grace_period_seconds=0)
    return row, old_key
