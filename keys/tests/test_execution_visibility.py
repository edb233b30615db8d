"""An execution is visible only to keys that may execute its deployment; to any other key it is 404."""

import uuid

import pytest

from keys.tests.factories import issue_deployment_key, issue_global_key
from keys.tests.helpers import assert_error, bearer, execute, execution_url


def read(client, org_slug, deployment_slug, execution_id, full_key, trailing_slash=True):
    url = execution_url(org_slug, deployment_slug, execution_id)
    return client.get(url if trailing_slash else url.rstrip("/"), **bearer(full_key))


@pytest.fixture
def execution_on_a1(client, deployment_key_a1):
    _, full_key = deployment_key_a1
    response = execute(client, "org-a", "a-one", full_key, body={"secret-ish": "payload"})
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize("trailing_slash", [True, False])
def test_the_key_that_made_an_execution_reads_it_back(client, deployment_key_a1, execution_on_a1, trailing_slash):
    _, full_key = deployment_key_a1
    response = read(client, "org-a", "a-one", execution_on_a1["execution_id"], full_key, trailing_slash)

    assert response.status_code == 200
    assert response.json() == execution_on_a1


@pytest.mark.parametrize("key_fixture", ["global_all_key_a", "global_selected_key_a"])
def test_another_key_that_may_execute_the_deployment_reads_it(client, request, execution_on_a1, key_fixture):
    _, full_key = request.getfixturevalue(key_fixture)
    response = read(client, "org-a", "a-one", execution_on_a1["execution_id"], full_key)
    assert response.status_code == 200
    assert response.json() == execution_on_a1


def test_a_deployment_key_of_another_deployment_gets_404(client, execution_on_a1, deployment_a2):
    _, other_key = issue_deployment_key(deployment_a2, name="a-two key")
    response = read(client, "org-a", "a-one", execution_on_a1["execution_id"], other_key)
    assert_error(response, 404, "not_found")


def test_a_global_key_whose_scope_lacks_the_deployment_gets_404(client, org_a, execution_on_a1, deployment_a2):
    _, other_key = issue_global_key(org_a, name="only a-two", deployments=[deployment_a2])
    assert_error(read(client, "org-a", "a-one", execution_on_a1["execution_id"], other_key), 404, "not_found")


def test_another_organizations_key_gets_404(client, execution_on_a1, global_all_key_b):
    _, other_key = global_all_key_b
    assert_error(read(client, "org-a", "a-one", execution_on_a1["execution_id"], other_key), 404, "not_found")
    assert_error(read(client, "org-b", "b-one", execution_on_a1["execution_id"], other_key), 404, "not_found")


def test_an_execution_read_under_another_deployment_is_404(client, execution_on_a1, global_all_key_a, deployment_a2):
    """A key that may execute both deployments still cannot read a-one's execution through a-two."""
    _, full_key = global_all_key_a
    assert_error(read(client, "org-a", "a-two", execution_on_a1["execution_id"], full_key), 404, "not_found")


def test_an_execution_made_by_a_global_key_is_hidden_from_a_key_of_another_deployment(
    client, global_all_key_a, deployment_key_a1, deployment_a3
):
    _, global_key = global_all_key_a
    _, a1_key = deployment_key_a1
    execution_id = execute(client, "org-a", "a-three", global_key).json()["execution_id"]

    assert read(client, "org-a", "a-three", execution_id, global_key).status_code == 200
    assert_error(read(client, "org-a", "a-three", execution_id, a1_key), 404, "not_found")


@pytest.mark.parametrize("execution_id", ["not-a-uuid", "123", str(uuid.UUID(int=0)), "random-uuid"])
def test_a_malformed_or_unknown_id_is_404(client, deployment_key_a1, execution_on_a1, execution_id):
    _, full_key = deployment_key_a1
    if execution_id == "random-uuid":
        execution_id = str(uuid.uuid4())
    assert_error(read(client, "org-a", "a-one", execution_id, full_key), 404, "not_found")


def test_a_bad_key_is_401_before_the_execution_is_looked_up(client, deployment_key_a1, execution_on_a1):
    _, full_key = deployment_key_a1
    response = read(client, "org-a", "a-one", execution_on_a1["execution_id"], full_key[:-1])
    assert_error(response, 401, "invalid_key")
    response = client.get(execution_url("org-a", "a-one", execution_on_a1["execution_id"]))
    assert_error(response, 401, "not_authenticated")
