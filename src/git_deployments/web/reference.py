"""The hosted service's automation endpoints, accepting its request bodies as they are:
`POST /api/http/projects/{project}/automation/deployments/{schedule|start|finish|fail}`.

Each body becomes the request `git deploy schedule|start|finish|fail` would make (a commitRef
is the CLI's REPO:BRANCH[:COMMIT]; none at all means what no --commit means), so the rules and
refusals are the CLI's. The answer is the deployment in the shape of `git deploy show --json`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from git_deployments.core.model import key_problem
from git_deployments.web import bodies
from git_deployments.web.api import write
from git_deployments.web.http import ApiError, read_json

if TYPE_CHECKING:
    from git_deployments.core.model import Request as Operation
    from git_deployments.core.store import Store, WriteResult
    from git_deployments.web.projects import Project

OPS = ("schedule", "start", "finish", "fail")


def target_key(identifier: str) -> str:
    """`key:KEY` or `id:KEY` (a target's id is its key here); a bare key is taken too."""
    key = identifier
    for prefix in ("key:", "id:"):
        if identifier.startswith(prefix):
            key = identifier[len(prefix):]
            break
    problem = key_problem(key)
    if problem:
        raise ApiError(400, "invalid_value", f"invalid targetIdentifier {identifier[:100]!r}: "
                                             f"use key:KEY or id:KEY ({problem})")
    return key


def _shown(store: Store, result: WriteResult) -> dict[str, Any]:
    from git_deployments.reading.deployments import shown

    record = result.record
    assert record is not None  # schedule, start, finish and fail always name a deployment
    return shown(store, store.snapshot(result.key, result.commit), record).as_json()


def automation(op: str) -> Callable[[Request, Project | None], Awaitable[Response]]:
    async def endpoint(request: Request, project: Project | None) -> Response:
        from git_deployments.core import intake

        values = bodies.REFERENCE.read(await read_json(request))
        key = target_key(values["targetIdentifier"])

        def build(store: Store, by: str) -> Operation:
            return intake.deploy_request(
                store, op, key, version=values.get("version"),
                commits=values.get("commitRefs"), ext_label=values.get("externalLinkLabel"),
                ext_url=values.get("externalLinkUrl"), description=values.get("description"),
                at=values.get("scheduledStart") if op == "schedule" else None,
                by=by, environment=False)

        return await write(request, project, build, _shown)

    endpoint.__name__ = f"automation_{op}"
    return endpoint
