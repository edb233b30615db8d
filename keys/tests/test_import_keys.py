"""`manage.py import_keys`: Unstract's UUID keys move in hashed, validated as the API would, all or nothing."""

from __future__ import annotations

import hashlib
import json
import uuid
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from keys.management.commands.import_keys import Command
from keys.models import AuditEvent, DeploymentKey, GlobalApiDeploymentKey, RetiredSecret
from keys.services import key_rotate
from keys.tests.factories import issue_deployment_key


def new_uuid() -> str:
    """A key as Unstract made them, at run time: nothing secret is committed."""
    return str(uuid.uuid4())


def deployment_row(key: object, deployment: str = "a-one", name: str = "Unstract key", **fields) -> dict:
    return {"key": key, "deployment": deployment, "name": name, "description": "", "is_active": True, **fields}


def global_row(key: str, name: str = "Unstract global", **fields) -> dict:
    row = {"key": key, "name": name, "description": "", "is_active": True, "allow_all_deployments": False}
    row.update({"deployments": ["a-one"], **fields})
    return row


def write(tmp_path: Path, deployment_keys=(), global_keys=()) -> Path:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"deployment_keys": list(deployment_keys), "global_keys": list(global_keys)}))
    return path


def run(path: Path | str, *args: str, org: str = "org-a") -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_keys", "--org", org, str(path), *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def stored_counts() -> tuple[int, int, int]:
    return DeploymentKey.objects.count(), GlobalApiDeploymentKey.objects.count(), AuditEvent.objects.count()


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def deployments(deployment_a1, deployment_a2, deployment_b1):
    return deployment_a1, deployment_a2, deployment_b1


def test_each_key_is_stored_as_the_digest_of_its_lowercase_uuid(tmp_path, deployments):
    dep_key, glob_key = new_uuid(), new_uuid()
    path = write(
        tmp_path,
        [deployment_row(dep_key.upper(), description="from Unstract", is_active=False)],
        [global_row(glob_key, deployments=["a-one", "a-two"])],
    )
    out, err = run(path)

    dep = DeploymentKey.objects.get(name="Unstract key")
    assert (dep.digest, dep.format, dep.key_masked) == (sha256(dep_key), "uuid", f"uuid\u2026{dep_key[-4:]}")
    assert (dep.deployment.slug, dep.description, dep.is_active, dep.expires_at) == ("a-one", "from Unstract", False, None)
    glob = GlobalApiDeploymentKey.objects.get(name="Unstract global")
    assert (glob.digest, glob.format, glob.key_masked) == (sha256(glob_key), "uuid", f"uuid\u2026{glob_key[-4:]}")
    assert sorted(glob.deployments.values_list("slug", flat=True)) == ["a-one", "a-two"]
    assert "deployment keys: 1 created, 0 already imported" in out
    assert "global keys: 1 created, 0 already imported" in out
    for key in (dep_key, glob_key):
        assert key.lower() not in (out + err).lower()


def test_each_imported_key_is_audited_as_created_by_the_system(tmp_path, deployments):
    path = write(tmp_path, [deployment_row(new_uuid())], [global_row(new_uuid(), allow_all_deployments=True, deployments=[])])
    run(path)
    events = AuditEvent.objects.filter(action="created")
    assert sorted(event.key_kind for event in events) == ["deployment", "global"]
    for event in events:
        assert event.actor_id is None and event.actor_username == ""
        assert event.changes["format"] == [None, "uuid"]


def test_a_second_run_reports_already_imported_and_creates_nothing(tmp_path, deployments):
    path = write(tmp_path, [deployment_row(new_uuid())], [global_row(new_uuid())])
    run(path)
    before = stored_counts()

    out, _ = run(path)
    assert stored_counts() == before
    assert out.count("already imported:") == 2
    assert "deployment keys: 0 created, 1 already imported" in out
    assert "global keys: 0 created, 1 already imported" in out
    assert "Nothing new" in out


def test_a_key_rotated_out_since_its_import_is_not_imported_again(tmp_path, deployments):
    key = new_uuid()
    path = write(tmp_path, [deployment_row(key)])
    run(path)
    row = DeploymentKey.objects.get()
    key_rotate(key=row, actor=None)
    before = stored_counts()

    out, _ = run(path)
    assert stored_counts() == before
    assert "already imported, rotated since" in out
    assert RetiredSecret.objects.filter(digest=sha256(key)).exists()


def test_a_dry_run_says_what_it_would_create_and_stores_nothing(tmp_path, deployments):
    path = write(tmp_path, [deployment_row(new_uuid())], [global_row(new_uuid())])
    out, _ = run(path, "--dry-run")
    assert stored_counts() == (0, 0, 0)
    assert out.count("Would create") == 2
    assert "deployment keys: 1 would be created" in out
    assert "Dry run: nothing was stored" in out


def test_a_dry_run_finds_the_same_problems_as_a_real_run(tmp_path, deployments):
    path = write(tmp_path, [deployment_row(new_uuid(), name="twin"), deployment_row(new_uuid(), name="TWIN")])
    with pytest.raises(CommandError, match=r"deployment_keys\[1\]\.name: A key with this name already exists"):
        run(path, "--dry-run")


NEW = "<a new uuid>"  # replaced at run time by a fresh key


def with_new_keys(document):
    """A copy of the document with each NEW placeholder replaced by a fresh UUID."""
    return json.loads(json.dumps(document), object_hook=lambda row: {k: new_uuid() if v == NEW else v for k, v in row.items()})


BAD_ROWS = [
    pytest.param({"deployment_keys": [deployment_row("not-a-uuid")]}, r"deployment_keys\[0\]\.key: Must be a UUID", id="key not a uuid"),
    pytest.param({"deployment_keys": [deployment_row(uuid.uuid4().hex)]}, r"deployment_keys\[0\]\.key: Must be a UUID", id="key without hyphens"),
    pytest.param({"deployment_keys": [deployment_row(f"{{{uuid.uuid4()}}}")]}, r"deployment_keys\[0\]\.key: Must be a UUID", id="key in braces"),
    pytest.param({"deployment_keys": [deployment_row(12)]}, r"deployment_keys\[0\]\.key: Must be a UUID", id="key not a string"),
    pytest.param({"deployment_keys": [{k: v for k, v in deployment_row("k").items() if k != "key"}]}, r"deployment_keys\[0\]\.key: This field is required", id="key missing"),
    pytest.param({"deployment_keys": [deployment_row(NEW, name="   ")]}, r"deployment_keys\[0\]\.name: This field may not be blank", id="blank name"),
    pytest.param({"deployment_keys": [deployment_row(NEW, name="x" * 101)]}, r"deployment_keys\[0\]\.name: Ensure this field has no more than 100", id="long name"),
    pytest.param({"deployment_keys": [deployment_row(NEW, deployment="nowhere")]}, r"deployment_keys\[0\]\.deployment: No deployment with the slug “nowhere” exists in this organization", id="unknown deployment"),
    pytest.param({"deployment_keys": [deployment_row(NEW, deployment="b-one")]}, r"deployment_keys\[0\]\.deployment: No deployment with the slug “b-one” exists in this organization", id="foreign deployment"),
    pytest.param({"deployment_keys": [deployment_row(NEW, is_active="yes")]}, r"deployment_keys\[0\]\.is_active: Must be true or false", id="is_active not a boolean"),
    pytest.param({"deployment_keys": [deployment_row(NEW, expires_at="2030-01-01T00:00:00Z")]}, r"deployment_keys\[0\]\.expires_at: This field is not allowed here", id="unknown field"),
    pytest.param({"deployment_keys": ["a string"]}, r"deployment_keys\[0\]: Must be an object", id="row not an object"),
    pytest.param({"global_keys": [global_row(NEW), global_row(NEW, deployments=["nowhere", "b-one"])]}, r"global_keys\[1\]\.deployments: No deployment with the slug “nowhere”.*\n.*global_keys\[1\]\.deployments: No deployment with the slug “b-one”", id="unknown and foreign scope"),
    pytest.param({"global_keys": [global_row(NEW, allow_all_deployments=True)]}, r"global_keys\[0\]\.deployments: allow_all_deployments=true cannot be combined", id="all and a list"),
    pytest.param({"global_keys": [global_row(NEW, deployments=[])]}, r"global_keys\[0\]\.deployments: A global key must have", id="empty scope"),
    pytest.param({"global_keys": [global_row(NEW, name="Same"), global_row(NEW, name=" same ")]}, r"global_keys\[1\]\.name: A global key with this name already exists", id="name twice, any case"),
    pytest.param({"deployment_keys": [deployment_row(NEW, name="existing KEY")]}, r"deployment_keys\[0\]\.name: A key with this name already exists", id="name of an existing key"),
    pytest.param({"deployment_keys": "nope"}, r"deployment_keys: Must be a list", id="section not a list"),
    pytest.param({"api_keys": []}, r"api_keys: This field is not allowed here", id="unknown section"),
    pytest.param(["not", "an", "object"], r"must hold a JSON object", id="not an object"),
]


@pytest.mark.parametrize(("document", "message"), BAD_ROWS)
def test_a_bad_row_is_named_by_its_position_and_field_and_nothing_is_stored(tmp_path, deployments, document, message):
    issue_deployment_key(deployments[0], name="Existing key")
    document = with_new_keys(document)
    if isinstance(document, dict) and isinstance(document.setdefault("deployment_keys", []), list):
        document["deployment_keys"].append(deployment_row(new_uuid(), name="good"))  # a good row, not stored either
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(document))
    before = stored_counts()

    with pytest.raises(CommandError, match=message):
        run(path)
    assert stored_counts() == before
    assert not DeploymentKey.objects.filter(name="good").exists()


def test_the_same_key_twice_in_a_file_is_a_bad_row(tmp_path, deployments):
    key = new_uuid()
    path = write(tmp_path, [deployment_row(key)], [global_row(key.upper())])
    with pytest.raises(CommandError, match=r"global_keys\[0\]\.key: The same key is already at deployment_keys\[0\]"):
        run(path)
    assert stored_counts() == (0, 0, 0)


def test_a_key_imported_into_another_organization_is_a_bad_row(tmp_path, deployments):
    key = new_uuid()
    run(write(tmp_path, [deployment_row(key, deployment="b-one")]), org="org-b")
    before = stored_counts()
    with pytest.raises(CommandError, match=r"deployment_keys\[0\]\.key: This key was already imported into another"):
        run(write(tmp_path, [deployment_row(key)]))
    assert stored_counts() == before


def test_no_error_message_holds_the_key(tmp_path, deployments):
    key = new_uuid()
    path = write(tmp_path, [deployment_row(key, deployment="nowhere", name="")], [global_row(key)])
    with pytest.raises(CommandError) as raised:
        run(path)
    assert key not in str(raised.value)
    assert key[:8] not in str(raised.value)


def test_an_unknown_organization_a_missing_file_and_bad_json_are_clear_errors(tmp_path, deployments):
    with pytest.raises(CommandError, match="No organization with the slug 'nowhere'"):
        run(write(tmp_path), org="nowhere")
    with pytest.raises(CommandError, match="Cannot read"):
        run(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    key = new_uuid()
    broken.write_text('{"deployment_keys": [{"key": "' + key + '",,}]}')
    with pytest.raises(CommandError, match="is not valid JSON") as raised:
        run(broken)
    assert key not in str(raised.value)


def test_an_empty_file_imports_nothing(tmp_path, deployments):
    out, _ = run(write(tmp_path))
    assert "deployment keys: 0 created" in out and stored_counts() == (0, 0, 0)


def test_help_explains_the_file_and_the_options():
    text = Command().create_parser("manage.py", "import_keys").format_help()
    for words in ["--org", "--dry-run", "FILE", "deployment_keys", "global_keys", "already imported", "position"]:
        assert words in text
