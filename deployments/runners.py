"""What executing a deployment does. The `echo` runner returns the request body."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from deployments.models import Deployment


@dataclass(frozen=True)
class RunContext:
    """Who is calling, for runners that tell their upstream."""

    organization_slug: str
    key_id: str
    execution_id: str


@dataclass
class RunOutcome:
    ok: bool
    result: Any
    http_status: int = 200
    code: str = ""
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Runner(Protocol):
    def run(self, *, deployment: Deployment, payload: dict[str, Any], context: RunContext) -> RunOutcome: ...


class EchoRunner:
    def run(self, *, deployment: Deployment, payload: dict[str, Any], context: RunContext) -> RunOutcome:
        return RunOutcome(ok=True, result=payload)


RUNNERS: dict[str, Runner] = {Deployment.Runner.ECHO: EchoRunner()}


def get_runner(name: str) -> Runner:
    return RUNNERS[name]
