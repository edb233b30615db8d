"""Keys are issued through the service, at run time: no full key is ever committed."""

from __future__ import annotations

import uuid
from typing import Any

from deployments.models import Deployment
from keys import crypto
from keys.models import DeploymentKey, GlobalApiDeploymentKey
from keys.services import deployment_key_import, deployment_key_issue, global_key_import, global_key_issue
from organizations.models import Organization


def issue_deployment_key(deployment: Deployment, name: str = "deployment key", **fields: Any) -> tuple[DeploymentKey, str]:
    return deployment_key_issue(deployment=deployment, name=name, **fields)


def issue_global_key(
    organization: Organization, name: str = "global key", **fields: Any
) -> tuple[GlobalApiDeploymentKey, str]:
    return global_key_issue(organization=organization, name=name, **fields)


def import_deployment_key(deployment: Deployment, name: str = "imported key", **fields: Any) -> tuple[DeploymentKey, str]:
    """A deployment key as `import_keys` stores one: its UUID, made at run time, hashed."""
    uuid_key = str(uuid.uuid4())
    secret = crypto.imported_secret(uuid_key)
    assert secret is not None
    return deployment_key_import(deployment=deployment, secret=secret, name=name, **fields), uuid_key


def import_global_key(
    organization: Organization, name: str = "imported global key", **fields: Any
) -> tuple[GlobalApiDeploymentKey, str]:
    uuid_key = str(uuid.uuid4())
    secret = crypto.imported_secret(uuid_key)
    assert secret is not None
    key = global_key_import(organization=organization, secret=secret, name=name, **fields)
    return key, uuid_key
