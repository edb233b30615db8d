"""Moving in from Unstract, end to end: the README's SQL exports Unstract's keys, import_keys stores
them hashed, clients keep calling with their UUIDs, a rotation phases the UUIDs out, and nothing holds one.

Unstract's tables are made here, in a schema of the test database named as Unstract's `DB_SCHEMA` default
(`unstract`), with the names and types of Unstract's migrations (api_v2 `APIKey` / `APIDeployment`,
account_v2 `Organization`, global_api_deployment_key with its many-to-many), the columns the export reads
and the constraints that shape them. The SQL run is the one the README documents, read from README.md.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import Client

from backend.tests.attack.test_secrets_at_rest import pg_dump_of_the_test_database
from deployments.tests.factories import DeploymentFactory
from keys import crypto
from keys.models import AuditEvent, DeploymentKey, GlobalApiDeploymentKey
from keys.services import imported_keys_rotate
from keys.tests.helpers import execute
from keys.tests.test_authentication_status_table import later
from organizations.models import Organization
from organizations.tests.factories import OrganizationFactory

pytestmark = [
    pytest.mark.django_db(transaction=True),  # pg_dump reads committed rows only
    pytest.mark.skipif(connection.vendor != "postgresql", reason="Unstract and the README's SQL are PostgreSQL's"),
]

UNSTRACT_TABLES = """
CREATE SCHEMA unstract;
CREATE TABLE unstract.organization (
    id bigserial PRIMARY KEY,
    name varchar(64) NOT NULL,
    display_name varchar(64) NOT NULL,
    organization_id varchar(64) NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    modified_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE unstract.api_deployment (
    created_at timestamptz NOT NULL DEFAULT now(),
    modified_at timestamptz NOT NULL DEFAULT now(),
    id uuid PRIMARY KEY,
    display_name varchar(30) NOT NULL,
    description varchar(255) NOT NULL DEFAULT '',
    is_active boolean NOT NULL DEFAULT true,
    api_endpoint varchar(255) NOT NULL UNIQUE,
    api_name varchar(30) NOT NULL,
    organization_id bigint NULL REFERENCES unstract.organization (id),
    CONSTRAINT unique_api_name UNIQUE (api_name, organization_id)
);
CREATE TABLE unstract.api_deployment_key (
    created_at timestamptz NOT NULL DEFAULT now(),
    modified_at timestamptz NOT NULL DEFAULT now(),
    id uuid PRIMARY KEY,
    api_key uuid NOT NULL UNIQUE,
    api_id uuid NULL REFERENCES unstract.api_deployment (id),
    pipeline_id uuid NULL,
    description varchar(255) NULL,
    is_active boolean NOT NULL DEFAULT true
);
CREATE TABLE unstract.global_api_deployment_key (
    created_at timestamptz NOT NULL DEFAULT now(),
    modified_at timestamptz NOT NULL DEFAULT now(),
    id uuid PRIMARY KEY,
    name varchar(128) NOT NULL,
    description varchar(512) NOT NULL,
    key uuid NOT NULL UNIQUE,
    is_active boolean NOT NULL DEFAULT true,
    allow_all_deployments boolean NOT NULL DEFAULT false,
    organization_id bigint NULL REFERENCES unstract.organization (id),
    CONSTRAINT unique_global_api_deployment_key_name_per_org UNIQUE (name, organization_id)
);
CREATE TABLE unstract.global_api_deployment_key_api_deployments (
    id bigserial PRIMARY KEY,
    globalapideploymentkey_id uuid NOT NULL REFERENCES unstract.global_api_deployment_key (id),
    apideployment_id uuid NOT NULL REFERENCES unstract.api_deployment (id),
    UNIQUE (globalapideploymentkey_id, apideployment_id)
);
"""


@dataclass
class UnstractKey:
    """One of Unstract's keys, and what Unstract let it open (KeyHelper.validate_api_key /
    validate_global_api_deployment_key): an active key, its own deployment or, for a global
    key, a deployment of its organization that it lists, or any with allow_all_deployments."""

    kind: str
    key: str
    organization: str
    is_active: bool = True
    deployment: str | None = None  # deployment keys
    allow_all_deployments: bool = False
    deployments: list[str] = field(default_factory=list)  # global keys' links (their own organization's or not)

    def opens(self, organization: str, api_name: str) -> bool:
        if not self.is_active:
            return False
        if self.kind == "deployment":
            return (self.organization, self.deployment) == (organization, api_name)
        return self.organization == organization and (
            self.allow_all_deployments or f"{organization}/{api_name}" in self.deployments
        )


# Unstract's organizations (organization_id -> keyscope slug) and their API deployments (api_name).
ORGANIZATIONS = {"org_AcMe7Hq2": "acme", "org_0ther9Zx": "other"}
API_NAMES = {"org_AcMe7Hq2": ["summarize", "classify", "extract"], "org_0ther9Zx": ["summarize"]}


def unstract_keys() -> list[UnstractKey]:
    """Every kind of row the export must handle, each key made at run time."""

    def new() -> str:
        return str(uuid.uuid4())

    acme, other = "org_AcMe7Hq2", "org_0ther9Zx"
    return [
        UnstractKey("deployment", new(), acme, deployment="summarize"),
        UnstractKey("deployment", new(), acme, deployment="summarize", is_active=False),
        UnstractKey("deployment", new(), acme, deployment="classify"),
        UnstractKey("deployment", new(), other, deployment="summarize"),  # another organization's: not exported
        # An allow-all key that also links a deployment (Unstract allows both; keyscope keeps no list).
        UnstractKey("global", new(), acme, allow_all_deployments=True, deployments=[f"{acme}/classify"]),
        # A selected key, with a stray link to another organization's deployment (it never opened it).
        UnstractKey("global", new(), acme, deployments=[f"{acme}/summarize", f"{acme}/classify", f"{other}/summarize"]),
        UnstractKey("global", new(), acme, is_active=False, deployments=[f"{acme}/extract"]),
        UnstractKey("global", new(), other, allow_all_deployments=True),  # not exported
    ]


def fill_unstract(cursor, keys: list[UnstractKey]) -> str:
    """Unstract's rows for these keys, plus a pipeline key; returns the pipeline key (never exported)."""
    cursor.execute(UNSTRACT_TABLES)
    organization_pks, deployment_ids = {}, {}
    for organization_id in ORGANIZATIONS:
        cursor.execute(
            "INSERT INTO unstract.organization (name, display_name, organization_id) VALUES (%s, %s, %s) RETURNING id",
            [organization_id, organization_id, organization_id],
        )
        organization_pks[organization_id] = cursor.fetchone()[0]
        for api_name in API_NAMES[organization_id]:
            deployment_ids[f"{organization_id}/{api_name}"] = deployment_id = uuid.uuid4()
            cursor.execute(
                "INSERT INTO unstract.api_deployment (id, display_name, api_endpoint, api_name, organization_id)"
                " VALUES (%s, %s, %s, %s, %s)",
                [deployment_id, api_name, f"deployment/api/{organization_id}/{api_name}/", api_name,
                 organization_pks[organization_id]],
            )
    for index, key in enumerate(keys):
        row_id = uuid.uuid4()
        if key.kind == "deployment":
            cursor.execute(
                "INSERT INTO unstract.api_deployment_key (id, api_key, api_id, description, is_active)"
                " VALUES (%s, %s, %s, %s, %s)",
                [row_id, key.key, deployment_ids[f"{key.organization}/{key.deployment}"],
                 None if index == 2 else f"API Key for {key.deployment}", key.is_active],
            )
            continue
        cursor.execute(
            "INSERT INTO unstract.global_api_deployment_key"
            " (id, name, description, key, is_active, allow_all_deployments, organization_id)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [row_id, f"Global key {index}", "from Unstract", key.key, key.is_active, key.allow_all_deployments,
             organization_pks[key.organization]],
        )
        for linked in key.deployments:
            cursor.execute(
                "INSERT INTO unstract.global_api_deployment_key_api_deployments"
                " (globalapideploymentkey_id, apideployment_id) VALUES (%s, %s)",
                [row_id, deployment_ids[linked]],
            )
    pipeline_key = str(uuid.uuid4())
    cursor.execute(
        "INSERT INTO unstract.api_deployment_key (id, api_key, pipeline_id, is_active) VALUES (%s, %s, %s, true)",
        [uuid.uuid4(), pipeline_key, uuid.uuid4()],
    )
    return pipeline_key


def readme_export_sql() -> str:
    """The SQL that README.md documents, after its `<!-- unstract-export.sql -->` marker."""
    readme = (Path(settings.BASE_DIR) / "README.md").read_text()
    match = re.search(r"<!-- unstract-export\.sql -->\s*```sql\n(.*?)```", readme, re.S)
    assert match, "README.md lost its export SQL"
    return match.group(1)


def export(cursor, organization_id: str) -> dict:
    """What `PGOPTIONS='-c search_path=unstract' psql -v org=... -f unstract-export.sql` prints, parsed.

    psql substitutes :'org' with the quoted value; here it becomes a bound parameter.
    """
    sql = readme_export_sql()
    assert sql.count(":'org'") == 1 and "%" not in sql
    cursor.execute("SET search_path TO unstract")
    try:
        cursor.execute(sql.replace(":'org'", "%(org)s"), {"org": organization_id})
        (document,) = cursor.fetchone()
    finally:
        cursor.execute("RESET search_path")
    return document


def answer(client: Client, organization: str, api_name: str, key: str) -> tuple[int, str | None]:
    response = execute(client, organization, api_name, key)
    return response.status_code, response.json().get("code")


def expected(key: UnstractKey, organization_id: str, api_name: str) -> tuple[int, str | None]:
    """keyscope's answer for what Unstract decided: open, or which refusal."""
    if key.opens(organization_id, api_name):
        return 200, None
    if not key.is_active:
        return 401, "key_inactive"
    if organization_id != key.organization:
        return 404, "not_found"
    return 403, "deployment_not_in_scope"


def _row_of(uuid_key):
    digest = crypto.imported_secret(uuid_key).digest
    return DeploymentKey.objects.filter(digest=digest).first() or GlobalApiDeploymentKey.objects.get(digest=digest)


def _all_keys() -> list:
    return [*DeploymentKey.objects.all(), *GlobalApiDeploymentKey.objects.all()]


def test_unstract_keys_move_in_and_keep_working_until_rotated_out(tmp_path, caplog, capsys):
    keys = unstract_keys()
    acme_keys = [key for key in keys if key.organization == "org_AcMe7Hq2"]
    for organization_id, slug in ORGANIZATIONS.items():
        organization = OrganizationFactory(slug=slug, name=slug.title())
        for api_name in API_NAMES[organization_id]:
            DeploymentFactory(organization=organization, slug=api_name, name=api_name.title())

    # Unstract's side: its tables, and the README's export of one organization.
    with connection.cursor() as cursor:
        pipeline_key = fill_unstract(cursor, keys)
        document = export(cursor, "org_AcMe7Hq2")
        cursor.execute("DROP SCHEMA unstract CASCADE")  # Unstract's database is not keyscope's
    assert sorted(row["key"] for row in document["deployment_keys"]) == sorted(
        key.key for key in acme_keys if key.kind == "deployment"
    )
    assert sorted(row["key"] for row in document["global_keys"]) == sorted(
        key.key for key in acme_keys if key.kind == "global"
    )
    by_key = {row["key"]: row for row in document["global_keys"]}
    assert by_key[acme_keys[3].key]["deployments"] == []  # allow-all keeps no list
    assert by_key[acme_keys[4].key]["deployments"] == ["classify", "summarize"]  # the stray link is dropped
    assert all(re.fullmatch(r"Unstract key [0-9a-f]{8}", row["name"]) for row in document["deployment_keys"])
    path = tmp_path / "unstract-keys.json"
    path.write_text(json.dumps(document))

    # keyscope's side, watched at DEBUG from here on: SQL, requests, everything.
    django_logger = logging.getLogger("django")  # it does not propagate to the root logger caplog watches
    django_logger.addHandler(caplog.handler)
    previous_level = django_logger.level
    django_logger.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    connection.force_debug_cursor = True
    try:
        out = StringIO()
        call_command("import_keys", "--org", "acme", str(path), "--dry-run", stdout=out)
        assert DeploymentKey.objects.count() == GlobalApiDeploymentKey.objects.count() == 0
        call_command("import_keys", "--org", "acme", str(path), stdout=out)
        call_command("import_keys", "--org", "acme", str(path), stdout=out)  # a second run changes nothing
        assert DeploymentKey.objects.count() == GlobalApiDeploymentKey.objects.count() == 3
        assert AuditEvent.objects.filter(action="created").count() == 6

        # Clients call with their old UUIDs, in either case, and get Unstract's answers.
        client = Client()
        calls = [(organization_id, api_name) for organization_id in ORGANIZATIONS for api_name in API_NAMES[organization_id]]
        for key in acme_keys:
            for organization_id, api_name in calls:
                for spelling in (key.key, key.key.upper()):
                    got = answer(client, ORGANIZATIONS[organization_id], api_name, spelling)
                    assert got == expected(key, organization_id, api_name), (key, organization_id, api_name)
        for not_exported in (keys[3].key, keys[7].key, pipeline_key):
            assert answer(client, "other", "summarize", not_exported) == (401, "invalid_key")

        # Rotating phases each UUID out: it works through the grace period, then is revoked.
        row_of = {key.key: _row_of(key.key) for key in acme_keys}
        acme = Organization.objects.get(slug="acme")
        rotated = {
            row.pk: new_key
            for row, new_key in imported_keys_rotate(organization=acme, actor=None, grace_period_seconds=600)
        }
        assert sorted(rotated) == sorted(row.pk for row in row_of.values())
        assert {row.format for row in _all_keys()} == {"keyscope"}
        acme_calls = [(organization_id, api_name) for organization_id, api_name in calls if organization_id == "org_AcMe7Hq2"]
        for key in acme_keys:
            for organization_id, api_name in acme_calls:
                assert answer(client, "acme", api_name, key.key.upper()) == expected(key, organization_id, api_name)
        with later(601):
            for key in acme_keys:
                assert answer(client, "acme", "summarize", key.key) == (401, "key_revoked")
                assert answer(client, "acme", "summarize", key.key.upper()) == (401, "key_revoked")
                new_key = rotated[row_of[key.key].pk]
                for organization_id, api_name in acme_calls:
                    assert answer(client, "acme", api_name, new_key) == expected(key, organization_id, api_name)
        printed = out.getvalue()
    finally:
        connection.force_debug_cursor = False
        django_logger.setLevel(previous_level)
        django_logger.removeHandler(caplog.handler)

    # Nothing holds a UUID key: not the database (every table, index and sequence), not a log line, not the output.
    dump = pg_dump_of_the_test_database()
    captured = capsys.readouterr()
    logged = caplog.text + "\n".join(repr(record.args) for record in caplog.records)
    assert "keys_deploymentkey" in logged  # the SQL was logged, so the check below reads something
    for where, text in [("pg_dump", dump), ("logs", logged), ("command output", printed),
                        ("stdout", captured.out), ("stderr", captured.err)]:
        text = text.lower()
        leaks = [key.key for key in keys if key.key in text or key.key.replace("-", "") in text]
        assert not leaks, f"{where} holds {len(leaks)} UUID key(s)"
