"""Upstream credentials are encrypted at rest, rotate with KEYSCOPE_ENCRYPTION_KEYS, and never fall back to plaintext."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from deployments import encryption
from deployments.models import Deployment
from deployments.tests.factories import DeploymentFactory

SECRET_VALUE = "Bearer upstream-token-that-must-not-be-stored-in-clear"
HEADERS = {"Authorization": SECRET_VALUE, "X-Tenant": "acme-tenant-value"}


@pytest.fixture
def key_one(settings):
    key = encryption.generate_key()
    settings.KEYSCOPE_ENCRYPTION_KEYS = [key]
    return key


def with_credentials(org, **fields) -> Deployment:
    deployment = DeploymentFactory.create(organization=org, **fields)
    deployment.set_upstream_headers(HEADERS)
    deployment.save()
    return deployment


def raw_row(deployment: Deployment) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT upstream_headers_encrypted, upstream_header_names FROM deployments_deployment WHERE id = %s",
            [deployment.pk],
        )
        return cursor.fetchone()


def reencrypt() -> str:
    out = StringIO()
    call_command("reencrypt_upstream_credentials", stdout=out)
    return out.getvalue()


def test_stored_column_holds_no_plaintext(org_a, key_one):
    deployment = with_credentials(org_a)

    token, names = raw_row(deployment)

    assert token.startswith("gAAAAA")  # a Fernet token
    for plaintext in (SECRET_VALUE, "upstream-token", "acme-tenant-value", "Authorization"):
        assert plaintext not in token
    assert SECRET_VALUE not in str(names)


def test_headers_read_back_decrypted_and_names_are_shown_without_decrypting(org_a, key_one, settings):
    deployment = with_credentials(org_a)
    fresh = Deployment.objects.get(pk=deployment.pk)

    assert fresh.upstream_headers() == HEADERS
    assert fresh.has_upstream_headers
    settings.KEYSCOPE_ENCRYPTION_KEYS = []
    assert fresh.upstream_header_names == ["Authorization", "X-Tenant"]


def test_clearing_headers_needs_no_key(org_a, key_one, settings):
    deployment = with_credentials(org_a)
    settings.KEYSCOPE_ENCRYPTION_KEYS = []

    deployment.set_upstream_headers({})
    deployment.save()

    assert raw_row(deployment)[0] == ""
    fresh = Deployment.objects.get(pk=deployment.pk)
    assert (fresh.upstream_header_names, fresh.upstream_headers()) == ([], {})


def test_saving_credentials_without_a_key_is_a_clear_error_and_stores_nothing(org_a, settings):
    settings.KEYSCOPE_ENCRYPTION_KEYS = []
    deployment = DeploymentFactory(organization=org_a)

    with pytest.raises(encryption.EncryptionKeyMissing, match="KEYSCOPE_ENCRYPTION_KEYS is not set"):
        deployment.set_upstream_headers(HEADERS)

    assert (deployment.upstream_headers_encrypted, deployment.upstream_header_names) == ("", [])
    assert raw_row(deployment)[0] == ""


def test_a_malformed_key_is_a_clear_error(org_a, settings):
    settings.KEYSCOPE_ENCRYPTION_KEYS = ["not-a-fernet-key"]
    deployment = DeploymentFactory(organization=org_a)

    with pytest.raises(encryption.EncryptionKeyInvalid, match="entry 1 is not a Fernet key"):
        deployment.set_upstream_headers(HEADERS)


def test_reading_credentials_without_the_key_is_a_clear_error(org_a, key_one, settings):
    deployment = with_credentials(org_a)

    settings.KEYSCOPE_ENCRYPTION_KEYS = []
    with pytest.raises(encryption.EncryptionKeyMissing):
        deployment.upstream_headers()

    settings.KEYSCOPE_ENCRYPTION_KEYS = [encryption.generate_key()]
    with pytest.raises(encryption.DecryptionFailed, match="cannot be decrypted"):
        deployment.upstream_headers()


def test_deployments_without_credentials_need_no_key(org_a, settings):
    settings.KEYSCOPE_ENCRYPTION_KEYS = []
    deployment = DeploymentFactory(organization=org_a)

    assert deployment.upstream_headers() == {}


def test_key_rotation_with_the_reencrypt_command_keeps_everything_readable(org_a, key_one, settings):
    first = with_credentials(org_a, slug="first")
    second = with_credentials(org_a, slug="second")
    DeploymentFactory(organization=org_a, slug="without-credentials")
    old_tokens = {raw_row(first)[0], raw_row(second)[0]}
    modified_at = Deployment.objects.get(pk=first.pk).modified_at

    key_two = encryption.generate_key()
    settings.KEYSCOPE_ENCRYPTION_KEYS = [key_two, key_one]
    # New key first: old rows still read, new rows are written under the new key.
    assert Deployment.objects.get(pk=first.pk).upstream_headers() == HEADERS

    assert reencrypt() == "Re-encrypted the upstream credentials of 2 deployments under the first key.\n"

    assert {raw_row(first)[0], raw_row(second)[0]}.isdisjoint(old_tokens)
    settings.KEYSCOPE_ENCRYPTION_KEYS = [key_two]
    for deployment in (first, second):
        assert Deployment.objects.get(pk=deployment.pk).upstream_headers() == HEADERS
    assert Deployment.objects.get(pk=first.pk).modified_at == modified_at
    settings.KEYSCOPE_ENCRYPTION_KEYS = [key_one]
    with pytest.raises(encryption.DecryptionFailed):
        Deployment.objects.get(pk=first.pk).upstream_headers()


def test_reencrypt_changes_nothing_when_a_row_cannot_be_read(org_a, key_one, settings):
    readable = with_credentials(org_a, slug="readable")
    settings.KEYSCOPE_ENCRYPTION_KEYS = [encryption.generate_key()]
    orphan = with_credentials(org_a, slug="orphan")  # under a key that is then lost
    before = raw_row(readable)
    settings.KEYSCOPE_ENCRYPTION_KEYS = [encryption.generate_key(), key_one]

    with pytest.raises(CommandError, match="Nothing was changed"):
        reencrypt()

    assert raw_row(readable) == before
    assert orphan.pk


def test_reencrypt_without_a_key_fails_only_when_there_is_something_to_do(org_a, settings):
    settings.KEYSCOPE_ENCRYPTION_KEYS = []
    DeploymentFactory(organization=org_a)

    assert reencrypt() == "Re-encrypted the upstream credentials of 0 deployments under the first key.\n"
