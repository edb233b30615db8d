"""Every write that could change an answer takes effect on the very next request.

Each test warms the verification cache with a request, writes, and checks that
the next request is refused: a stale cache would let it through.
"""

import pytest

from deployments.services import deployment_delete
from keys import verification_cache
from keys.models import DeploymentKey
from keys.services import key_deactivate, key_delete, key_revoke, key_rotate, key_update
from keys.tests.helpers import assert_error, execute

pytestmark = pytest.mark.django_db


def warm(client, full_key: str, slug: str = "a-one") -> None:
    assert execute(client, "org-a", slug, full_key).status_code == 200
    assert verification_cache.local_cache._entries, "the request should have been cached"


@pytest.mark.parametrize("persona", ["deployment_key_a1", "global_all_key_a"])
def test_key_revoke(client, request, admin_a, deployment_a1, persona):
    key, full_key = request.getfixturevalue(persona)
    warm(client, full_key)

    key_revoke(key=key, actor=admin_a)

    assert_error(execute(client, "org-a", "a-one", full_key), 401, "key_revoked")


@pytest.mark.parametrize("persona", ["deployment_key_a1", "global_all_key_a"])
def test_key_deactivate(client, request, admin_a, deployment_a1, persona):
    key, full_key = request.getfixturevalue(persona)
    warm(client, full_key)

    key_deactivate(key=key, actor=admin_a)

    assert_error(execute(client, "org-a", "a-one", full_key), 401, "key_inactive")


def test_key_update_of_the_rate_limit(client, deployment_key_a1, admin_a):
    key, full_key = deployment_key_a1
    warm(client, full_key)
    warm(client, full_key)

    key_update(key=key, actor=admin_a, rate_limit_per_minute=2)

    refused = execute(client, "org-a", "a-one", full_key)
    assert_error(refused, 429, "rate_limited")
    assert refused["RateLimit-Policy"] == '"key";q=2;w=60'


def test_key_update_of_a_global_keys_scope(client, global_selected_key_a, deployment_a1, admin_a):
    key, full_key = global_selected_key_a
    warm(client, full_key, "a-two")

    key_update(key=key, actor=admin_a, deployments=[deployment_a1])

    assert_error(execute(client, "org-a", "a-two", full_key), 403, "deployment_not_in_scope")
    assert execute(client, "org-a", "a-one", full_key).status_code == 200


def test_key_update_from_allow_all_to_a_list(client, global_all_key_a, deployment_a1, deployment_a2, admin_a):
    key, full_key = global_all_key_a
    warm(client, full_key, "a-two")

    key_update(key=key, actor=admin_a, allow_all_deployments=False, deployments=[deployment_a1])

    assert_error(execute(client, "org-a", "a-two", full_key), 403, "deployment_not_in_scope")


def test_key_update_widening_a_scope_is_seen_at_once_too(client, global_selected_key_a, deployment_a3, admin_a):
    key, full_key = global_selected_key_a
    assert_error(execute(client, "org-a", "a-three", full_key), 403, "deployment_not_in_scope")  # a cached "no"

    key_update(key=key, actor=admin_a, allow_all_deployments=True, deployments=[])

    assert execute(client, "org-a", "a-three", full_key).status_code == 200


@pytest.mark.parametrize("persona", ["deployment_key_a1", "global_all_key_a"])
def test_key_rotate_without_grace(client, request, admin_a, deployment_a1, persona):
    key, old_key = request.getfixturevalue(persona)
    warm(client, old_key)

    _, new_key = key_rotate(key=key, actor=admin_a, grace_period_seconds=0)

    assert_error(execute(client, "org-a", "a-one", old_key), 401, "key_revoked")
    assert execute(client, "org-a", "a-one", new_key).status_code == 200


def test_key_rotate_ends_an_earlier_grace_at_once(client, deployment_key_a1, admin_a):
    key, first = deployment_key_a1
    key, second = key_rotate(key=key, actor=admin_a, grace_period_seconds=3600)
    warm(client, first)  # the retired secret, in its grace, now cached

    key_rotate(key=key, actor=admin_a, grace_period_seconds=0)

    assert_error(execute(client, "org-a", "a-one", first), 401, "key_revoked")
    assert_error(execute(client, "org-a", "a-one", second), 401, "key_revoked")


@pytest.mark.parametrize("persona", ["deployment_key_a1", "global_all_key_a"])
def test_key_delete(client, request, admin_a, deployment_a1, persona):
    key, full_key = request.getfixturevalue(persona)
    warm(client, full_key)

    key_delete(key=key, actor=admin_a)

    assert_error(execute(client, "org-a", "a-one", full_key), 401, "invalid_key")


def test_deployment_deactivation(client, global_all_key_a, deployment_a1):
    _, full_key = global_all_key_a
    warm(client, full_key)

    deployment_a1.is_active = False
    deployment_a1.save()

    assert_error(execute(client, "org-a", "a-one", full_key), 403, "deployment_inactive")


def test_deployment_reactivation(client, global_all_key_a, deployment_a1):
    _, full_key = global_all_key_a
    deployment_a1.is_active = False
    deployment_a1.save()
    assert_error(execute(client, "org-a", "a-one", full_key), 403, "deployment_inactive")

    deployment_a1.is_active = True
    deployment_a1.save()

    assert execute(client, "org-a", "a-one", full_key).status_code == 200


def test_deployment_deletion(client, global_all_key_a, deployment_key_a1, deployment_a1, admin_a):
    _, global_key = global_all_key_a
    _, deployment_key = deployment_key_a1
    warm(client, global_key)
    warm(client, deployment_key)

    deployment_delete(deployment=deployment_a1, actor=admin_a)

    assert_error(execute(client, "org-a", "a-one", global_key), 404, "not_found")
    assert_error(execute(client, "org-a", "a-one", deployment_key), 401, "invalid_key")
    assert not DeploymentKey.objects.filter(pk=deployment_key_a1[0].pk).exists()


def test_deployment_deletion_takes_it_out_of_a_selected_scope(client, global_selected_key_a, deployment_a1, admin_a):
    _, full_key = global_selected_key_a
    warm(client, full_key)

    deployment_delete(deployment=deployment_a1, actor=admin_a)

    assert_error(execute(client, "org-a", "a-one", full_key), 404, "not_found")
    assert execute(client, "org-a", "a-two", full_key).status_code == 200


def test_a_plain_orm_delete_invalidates_too(client, deployment_key_a1):
    """The admin and a shell session do not go through the services; the signals still fire."""
    key, full_key = deployment_key_a1
    warm(client, full_key)

    DeploymentKey.objects.filter(pk=key.pk).delete()

    assert_error(execute(client, "org-a", "a-one", full_key), 401, "invalid_key")
