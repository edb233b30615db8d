"""What the leaked-key tests check on both sides: the key's stored state, its audit event, the admins' email."""

from __future__ import annotations

from django.core import mail
from django.test import Client

from keys.models import AuditEvent
from keys.tests.helpers import FULL_KEY

CREDENTIALS_URL = "/api/v1/credentials/revoke/"


def works(full_key: str) -> bool:
    """Whether the key authenticates now (introspection needs no scope and changes nothing)."""
    return Client().get("/api/v1/key/", HTTP_AUTHORIZATION=f"Bearer {full_key}").status_code == 200


def report(client, *credentials, **headers):
    return client.post(CREDENTIALS_URL, {"credentials": list(credentials)}, content_type="application/json", **headers)


def last_event(key) -> AuditEvent:
    event = AuditEvent.objects.filter(key_id=key.pk).order_by("-created_at").first()
    assert event is not None, "the key has no audit event"
    return event


def assert_no_full_key_in_any_email() -> None:
    for message in mail.outbox:
        assert not FULL_KEY.search(f"{message.subject}\n{message.body}"), message.body
