"""Who gets what, on every route: the authorization matrix is the spec.

Rows are every URL pattern under /api/ (found through Django's resolver) and
the admin URLs of the key, deployment, execution and audit models (found
through each ModelAdmin's get_urls()). A route without a row fails
`test_every_route_has_a_row`. Columns are personas. Each cell is the status
that persona gets; writes run in a savepoint that is rolled back, so every cell
starts from the same data, set up once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from django.apps import apps
from django.contrib import admin
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from deployments.models import Execution
from keys import crypto
from keys.models import AuditEvent
from keys.tests.helpers import basic, bearer, execute, logged_in
from keys.tests.leaks.github import GITHUB_URL, alert_body

# Personas, in column order.
PERSONAS = [
    "anonymous", "member_a", "admin_a", "admin_b", "superuser",
    "deployment_key", "global_all", "global_selected",
    "revoked", "expired", "inactive", "rotated_out", "other_org_key",
]

# The models whose admin URLs are in the matrix.
ADMIN_MODELS = ["keys.DeploymentKey", "keys.GlobalApiDeploymentKey", "deployments.Deployment",
                "deployments.DeploymentGroup", "deployments.Execution", "keys.AuditEvent"]

# The spec. Key columns: 401 for every key that does not work;
# user columns on the client API: 401 (no key). Management API: keys are not
# credentials there (401); a non-member gets 404; a member reads (200) and may
# not write (403). Admin: anyone not logged in as staff is sent to the login
# page (302); another organization's object redirects like a missing one (302)
# or, on the key tools, is 404.
#                                       anon mem  adm  admB sup  dk   gAll gSel rev  exp  inac rot  othr
MATRIX: dict[str, tuple[int, ...]] = {
    # Client API (key-authenticated) --------------------------------------------------------------------
    "POST deployment-execute":           (401, 401, 401, 401, 401, 200, 200, 200, 401, 401, 401, 401, 404),
    "POST deployment-execute a-three":   (401, 401, 401, 401, 401, 403, 200, 403, 401, 401, 401, 401, 404),
    "POST deployment-execute org-b":     (401, 401, 401, 401, 401, 404, 404, 404, 401, 401, 401, 401, 200),
    "GET execution-detail":              (401, 401, 401, 401, 401, 200, 200, 200, 401, 401, 401, 401, 404),
    "GET execution-detail a-three":      (401, 401, 401, 401, 401, 404, 200, 404, 401, 401, 401, 401, 404),
    "GET key-introspection":             (401, 401, 401, 401, 401, 200, 200, 200, 401, 401, 401, 401, 200),
    "POST key-revoke":                   (401, 401, 401, 401, 401, 200, 200, 200, 401, 401, 401, 401, 200),
    # Leak reports (anonymous): anyone may report; GitHub's alerts need GitHub's signature, whoever sends them.
    "POST credentials-revoke":           (202,) * 13,
    "POST github-secret-scanning":       (401,) * 13,
    "POST github-secret-scanning signed": (200,) * 13,
    # Management API (users) ------------------------------------------------------------------------------
    "GET organization-detail":           (401, 200, 200, 404, 200, 401, 401, 401, 401, 401, 401, 401, 401),
    "PATCH organization-detail":         (401, 403, 200, 404, 200, 401, 401, 401, 401, 401, 401, 401, 401),
    "GET deployment-list":               (401, 200, 200, 404, 200, 401, 401, 401, 401, 401, 401, 401, 401),
    "POST deployment-list":              (401, 403, 201, 404, 201, 401, 401, 401, 401, 401, 401, 401, 401),
    "GET deployment-detail":             (401, 200, 200, 404, 200, 401, 401, 401, 401, 401, 401, 401, 401),
    "PATCH deployment-detail":           (401, 403, 200, 404, 200, 401, 401, 401, 401, 401, 401, 401, 401),
    "DELETE deployment-detail":          (401, 403, 204, 404, 204, 401, 401, 401, 401, 401, 401, 401, 401),
    "GET deployment-group-list":         (401, 200, 200, 404, 200, 401, 401, 401, 401, 401, 401, 401, 401),
    "POST deployment-group-list":        (401, 403, 201, 404, 201, 401, 401, 401, 401, 401, 401, 401, 401),
    "GET deployment-group-detail":       (401, 200, 200, 404, 200, 401, 401, 401, 401, 401, 401, 401, 401),
    "PATCH deployment-group-detail":     (401, 403, 200, 404, 200, 401, 401, 401, 401, 401, 401, 401, 401),
    "DELETE deployment-group-detail":    (401, 403, 204, 404, 204, 401, 401, 401, 401, 401, 401, 401, 401),
    "GET deployment-key-list":           (401, 200, 200, 404, 200, 401, 401, 401, 401, 401, 401, 401, 401),
    "POST deployment-key-list":          (401, 403, 201, 404, 201, 401, 401, 401, 401, 401, 401, 401, 401),
    "GET deployment-key-detail":         (401, 200, 200, 404, 200, 401, 401, 401, 401, 401, 401, 401, 401),
    "PATCH deployment-key-detail":       (401, 403, 200, 404, 200, 401, 401, 401, 401, 401, 401, 401, 401),
    "DELETE deployment-key-detail":      (401, 403, 204, 404, 204, 401, 401, 401, 401, 401, 401, 401, 401),
    "POST deployment-key-rotate":        (401, 403, 200, 404, 200, 401, 401, 401, 401, 401, 401, 401, 401),
    "POST deployment-key-revoke":        (401, 403, 200, 404, 200, 401, 401, 401, 401, 401, 401, 401, 401),
    "GET deployment-key-usage":          (401, 200, 200, 404, 200, 401, 401, 401, 401, 401, 401, 401, 401),
    "GET global-key-list":               (401, 200, 200, 404, 200, 401, 401, 401, 401, 401, 401, 401, 401),
    "POST global-key-list":              (401, 403, 201, 404, 201, 401, 401, 401, 401, 401, 401, 401, 401),
    "GET global-key-detail":             (401, 200, 200, 404, 200, 401, 401, 401, 401, 401, 401, 401, 401),
    "PATCH global-key-detail":           (401, 403, 200, 404, 200, 401, 401, 401, 401, 401, 401, 401, 401),
    "DELETE global-key-detail":          (401, 403, 204, 404, 204, 401, 401, 401, 401, 401, 401, 401, 401),
    "POST global-key-rotate":            (401, 403, 200, 404, 200, 401, 401, 401, 401, 401, 401, 401, 401),
    "POST global-key-revoke":            (401, 403, 200, 404, 200, 401, 401, 401, 401, 401, 401, 401, 401),
    "GET global-key-usage":              (401, 200, 200, 404, 200, 401, 401, 401, 401, 401, 401, 401, 401),
    "GET execution-list":                (401, 200, 200, 404, 200, 401, 401, 401, 401, 401, 401, 401, 401),
    "GET audit-event-list":              (401, 200, 200, 404, 200, 401, 401, 401, 401, 401, 401, 401, 401),
    # The schema and its docs are public --------------------------------------------------------------------
    "GET schema":                        (200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200),
    "GET swagger-ui":                    (200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200),
    # Admin (staff sessions; keys are not credentials here) ---------------------------------------------------
    "GET keys_deploymentkey_changelist":            (302, 200, 200, 200, 200) + (302,) * 8,
    "GET keys_deploymentkey_add":                   (302, 403, 200, 200, 200) + (302,) * 8,
    "GET keys_deploymentkey_change":                (302, 200, 200, 302, 200) + (302,) * 8,
    "GET keys_deploymentkey_delete":                (302, 403, 200, 302, 200) + (302,) * 8,
    "GET keys_deploymentkey_history":               (302, 200, 200, 302, 200) + (302,) * 8,
    "GET keys_deploymentkey_rotate":                (302, 404, 200, 404, 200) + (302,) * 8,
    "GET keys_deploymentkey_revoke":                (302, 404, 200, 404, 200) + (302,) * 8,
    "GET keys_deploymentkey_rotate_imported":       (302, 403, 200, 200, 200) + (302,) * 8,
    "GET keys_globalapideploymentkey_changelist":   (302, 200, 200, 200, 200) + (302,) * 8,
    "GET keys_globalapideploymentkey_add":          (302, 403, 200, 200, 200) + (302,) * 8,
    "GET keys_globalapideploymentkey_change":       (302, 200, 200, 302, 200) + (302,) * 8,
    "GET keys_globalapideploymentkey_delete":       (302, 403, 200, 302, 200) + (302,) * 8,
    "GET keys_globalapideploymentkey_history":      (302, 200, 200, 302, 200) + (302,) * 8,
    "GET keys_globalapideploymentkey_rotate":       (302, 404, 200, 404, 200) + (302,) * 8,
    "GET keys_globalapideploymentkey_revoke":       (302, 404, 200, 404, 200) + (302,) * 8,
    "GET keys_globalapideploymentkey_rotate_imported": (302, 403, 200, 200, 200) + (302,) * 8,
    "GET deployments_deployment_changelist":        (302, 200, 200, 200, 200) + (302,) * 8,
    "GET deployments_deployment_add":               (302, 403, 200, 200, 200) + (302,) * 8,
    "GET deployments_deployment_change":            (302, 200, 200, 302, 200) + (302,) * 8,
    "GET deployments_deployment_delete":            (302, 403, 200, 302, 200) + (302,) * 8,
    "GET deployments_deployment_history":           (302, 200, 200, 302, 200) + (302,) * 8,
    "GET deployments_deploymentgroup_changelist":   (302, 200, 200, 200, 200) + (302,) * 8,
    "GET deployments_deploymentgroup_add":          (302, 403, 200, 200, 200) + (302,) * 8,
    "GET deployments_deploymentgroup_change":       (302, 200, 200, 302, 200) + (302,) * 8,
    "GET deployments_deploymentgroup_delete":       (302, 403, 200, 302, 200) + (302,) * 8,
    "GET deployments_deploymentgroup_history":      (302, 200, 200, 302, 200) + (302,) * 8,
    "GET deployments_execution_changelist":         (302, 200, 200, 200, 200) + (302,) * 8,
    "GET deployments_execution_add":                (302, 403, 403, 403, 403) + (302,) * 8,
    "GET deployments_execution_change":             (302, 200, 200, 302, 200) + (302,) * 8,
    "GET deployments_execution_delete":             (302, 403, 403, 403, 403) + (302,) * 8,
    "GET deployments_execution_history":            (302, 200, 200, 302, 200) + (302,) * 8,
    "GET keys_auditevent_changelist":               (302, 200, 200, 200, 200) + (302,) * 8,
    "GET keys_auditevent_add":                      (302, 403, 403, 403, 403) + (302,) * 8,
    "GET keys_auditevent_change":                   (302, 200, 200, 302, 200) + (302,) * 8,
    "GET keys_auditevent_delete":                   (302, 403, 403, 403, 403) + (302,) * 8,
    "GET keys_auditevent_history":                  (302, 200, 200, 302, 200) + (302,) * 8,
}


def route_name(row: str) -> str:
    return row.split()[1]


def _walk(patterns: list, prefix: str = "") -> Iterator[tuple[str, str | None]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.name


def api_route_names() -> set[str]:
    routes = [(regex, name) for regex, name in _walk(get_resolver().url_patterns) if regex.startswith("^api/")]
    unnamed = [regex for regex, name in routes if not name]
    assert not unnamed, f"name these /api/ routes so the matrix can list them: {unnamed}"
    return {name for _, name in routes if name}


def admin_route_names() -> set[str]:
    names = set()
    for label in ADMIN_MODELS:
        model_admin = admin.site._registry[apps.get_model(label)]
        # The unnamed `<object_id>/` pattern only redirects to the change page.
        names |= {pattern.name for pattern in model_admin.get_urls() if pattern.name}
    return names


def test_every_route_has_a_row():
    expected = api_route_names() | admin_route_names()
    covered = {route_name(row) for row in MATRIX}
    assert expected - covered == set(), "routes without a row in MATRIX"
    assert covered - expected == set(), "rows for routes that do not exist"
    assert all(len(cells) == len(PERSONAS) for cells in MATRIX.values())


@dataclass
class Persona:
    api_headers: dict[str, str]
    admin_client: Client


@dataclass
class World:
    urls: dict[str, str]
    bodies: dict[str, dict[str, object] | bytes]
    headers: dict[str, dict[str, str]]


@pytest.fixture
def personas(
    admin_a, staff_member_a, admin_b, superuser, deployment_key_a1, global_all_key_a, global_selected_key_a,
    revoked_key_a, expired_key_a, inactive_key_a, rotated_out_key_a, global_all_key_b,
) -> dict[str, Persona]:
    users = {"member_a": staff_member_a, "admin_a": admin_a, "admin_b": admin_b, "superuser": superuser}
    keys = {
        "deployment_key": deployment_key_a1, "global_all": global_all_key_a, "global_selected": global_selected_key_a,
        "revoked": revoked_key_a, "expired": expired_key_a, "inactive": inactive_key_a,
        "rotated_out": rotated_out_key_a, "other_org_key": global_all_key_b,
    }
    result = {"anonymous": Persona({}, Client())}
    for name, user in users.items():
        result[name] = Persona({"HTTP_AUTHORIZATION": basic(user.username)}, logged_in(user))
    for name, (_, full_key) in keys.items():
        result[name] = Persona(bearer(full_key), Client())
    return result


@pytest.fixture
def world(
    client, settings, github, deployment_a1, deployment_a3, deployment_b1, deployment_key_a1, global_all_key_a,
    global_selected_key_a, group_a,
) -> World:
    settings.KEYSCOPE_CREDENTIAL_REPORTS_PER_MINUTE = 0  # every cell reports from the same address
    alert = alert_body(crypto.generate_key("global"))
    key_a1 = deployment_key_a1[0]
    global_key = global_selected_key_a[0]
    execution_a1 = execute(client, "org-a", "a-one", global_all_key_a[1]).json()["execution_id"]
    execution_a3 = execute(client, "org-a", "a-three", global_all_key_a[1]).json()["execution_id"]
    assert Execution.objects.count() == 2
    event = AuditEvent.objects.filter(organization__slug="org-a").first()
    org = "/api/v1/orgs/org-a"
    deployment_keys = f"{org}/deployments/a-one/keys"
    urls = {
        "POST deployment-execute": "/api/v1/deployments/org-a/a-one/execute/",
        "POST deployment-execute a-three": "/api/v1/deployments/org-a/a-three/execute/",
        "POST deployment-execute org-b": "/api/v1/deployments/org-b/b-one/execute/",
        "GET execution-detail": f"/api/v1/deployments/org-a/a-one/executions/{execution_a1}/",
        "GET execution-detail a-three": f"/api/v1/deployments/org-a/a-three/executions/{execution_a3}/",
        "GET key-introspection": "/api/v1/key/",
        "GET organization-detail": f"{org}/",
        "PATCH organization-detail": f"{org}/",
        "POST key-revoke": "/api/v1/key/revoke/",
        "POST credentials-revoke": "/api/v1/credentials/revoke/",
        "POST github-secret-scanning": GITHUB_URL,
        "POST github-secret-scanning signed": GITHUB_URL,
        "GET deployment-list": f"{org}/deployments/",
        "POST deployment-list": f"{org}/deployments/",
        "GET deployment-detail": f"{org}/deployments/a-one/",
        "PATCH deployment-detail": f"{org}/deployments/a-one/",
        "DELETE deployment-detail": f"{org}/deployments/a-one/",
        "GET deployment-group-list": f"{org}/groups/",
        "POST deployment-group-list": f"{org}/groups/",
        "GET deployment-group-detail": f"{org}/groups/production/",
        "PATCH deployment-group-detail": f"{org}/groups/production/",
        "DELETE deployment-group-detail": f"{org}/groups/production/",
        "GET deployment-key-list": f"{deployment_keys}/",
        "POST deployment-key-list": f"{deployment_keys}/",
        "GET deployment-key-detail": f"{deployment_keys}/{key_a1.pk}/",
        "PATCH deployment-key-detail": f"{deployment_keys}/{key_a1.pk}/",
        "DELETE deployment-key-detail": f"{deployment_keys}/{key_a1.pk}/",
        "POST deployment-key-rotate": f"{deployment_keys}/{key_a1.pk}/rotate/",
        "POST deployment-key-revoke": f"{deployment_keys}/{key_a1.pk}/revoke/",
        "GET deployment-key-usage": f"{deployment_keys}/{key_a1.pk}/usage/",
        "GET global-key-list": f"{org}/global-keys/",
        "POST global-key-list": f"{org}/global-keys/",
        "GET global-key-detail": f"{org}/global-keys/{global_key.pk}/",
        "PATCH global-key-detail": f"{org}/global-keys/{global_key.pk}/",
        "DELETE global-key-detail": f"{org}/global-keys/{global_key.pk}/",
        "POST global-key-rotate": f"{org}/global-keys/{global_key.pk}/rotate/",
        "POST global-key-revoke": f"{org}/global-keys/{global_key.pk}/revoke/",
        "GET global-key-usage": f"{org}/global-keys/{global_key.pk}/usage/",
        "GET execution-list": f"{org}/executions/",
        "GET audit-event-list": f"{org}/audit-events/",
        "GET schema": "/api/schema/",
        "GET swagger-ui": "/api/docs/",
    }
    objects = {
        "keys_deploymentkey": key_a1.pk,
        "keys_globalapideploymentkey": global_key.pk,
        "deployments_deployment": deployment_a1.pk,
        "deployments_deploymentgroup": group_a.pk,
        "deployments_execution": execution_a1,
        "keys_auditevent": event.pk,  # type: ignore[union-attr]  # the keys above were audited
    }
    for prefix, pk in objects.items():
        urls[f"GET {prefix}_changelist"] = reverse(f"admin:{prefix}_changelist")
        urls[f"GET {prefix}_add"] = reverse(f"admin:{prefix}_add")
        if f"GET {prefix}_rotate_imported" in MATRIX:
            urls[f"GET {prefix}_rotate_imported"] = reverse(f"admin:{prefix}_rotate_imported")
        for view in ("change", "delete", "history", "rotate", "revoke"):
            if f"GET {prefix}_{view}" in MATRIX:
                urls[f"GET {prefix}_{view}"] = reverse(f"admin:{prefix}_{view}", args=[pk])
    bodies: dict[str, dict[str, object] | bytes] = {
        "PATCH organization-detail": {"max_key_lifetime_days": 90},
        "POST deployment-list": {"slug": "matrix-new", "name": "Matrix"},
        "PATCH deployment-detail": {"description": "changed"},
        "POST deployment-group-list": {"slug": "matrix-group", "name": "Matrix"},
        "PATCH deployment-group-detail": {"description": "changed"},
        "POST deployment-key-list": {"name": "matrix key"},
        "PATCH deployment-key-detail": {"description": "changed"},
        "POST global-key-list": {"name": "matrix global", "allow_all_deployments": True},
        "PATCH global-key-detail": {"description": "changed"},
        "POST credentials-revoke": {"credentials": [crypto.generate_key("deployment"), "junk"]},
        "POST github-secret-scanning": alert,
        "POST github-secret-scanning signed": alert,
    }
    headers = {"POST github-secret-scanning signed": github.headers(alert)}
    return World(urls=urls, bodies=bodies, headers=headers)


def send(persona: Persona, row: str, world: World) -> int:
    method, name = row.split()[:2]
    url = world.urls[row]
    if "_" in name and not name.startswith(("deployment-", "global-", "execution-", "audit-", "key-")):
        return persona.admin_client.get(url, **persona.api_headers).status_code  # type: ignore[arg-type]  # headers as META keys
    call: Callable = getattr(Client(), method.lower())
    headers = {**persona.api_headers, **world.headers.get(row, {})}
    if method in ("POST", "PATCH"):
        return call(url, world.bodies.get(row, {}), content_type="application/json", **headers).status_code
    return call(url, **headers).status_code


def test_authorization_matrix(personas, world):
    assert set(world.urls) == set(MATRIX)
    mismatches = []
    for row, cells in MATRIX.items():
        for persona_name, expected in zip(PERSONAS, cells, strict=True):
            with transaction.atomic():  # every write is undone: each cell sees the same data
                actual = send(personas[persona_name], row, world)
                transaction.set_rollback(True)
            if actual != expected:
                mismatches.append(f"{row:45} {persona_name:16} expected {expected}, got {actual}")
    assert not mismatches, "\n" + "\n".join(mismatches)
