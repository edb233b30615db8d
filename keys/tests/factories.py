"""Keys are issued through the service, at run time: no full key is ever committed."""

from __future__ import annotations

from typing import Any

from deployments.models import Deployment
from keys.models import DeploymentKey, GlobalApiDeploymentKey
from organizations.models import Organization


def issue_deployment_key(deployment: Deployment, name: str = "deployment key", **fields: Any) -> tuple[DeploymentKey, str]:
    return DeploymentKey.objects.issue(deployment=deployment, name=name, **fields)


def issue_global_key(
    organization: Organization, name: str = "global key", **fields: Any
) -> tuple[GlobalApiDeploymentKey, str]:
    return GlobalApiDeploymentKey.objects.issue(organization=organization, name=name, **fields)
