"""The OpenAPI description of every route, made from the route list and the body declarations
(so it cannot drift from what the server does)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from git_deployments import __version__
from git_deployments.access.tokens import PERMISSION_NAMES
from git_deployments.web.bodies import BODIES

if TYPE_CHECKING:
    from git_deployments.web.endpoint import Endpoint

_PARAMETER = re.compile(r"{(\w+)(?::\w+)?}")
_PATH_PARAMETERS = {
    "project": "the project: its repository's name (any case), key:NAME or id:NAME; _ when "
               "the server serves one repository",
    "key": "the target's key",
    "n": "the deployment's number",
    "id": "the incident's id",
    "commit": "a commit id, tag or branch",
}
_ERRORS = {
    "400": "malformed JSON or an invalid value",
    "401": "no valid token (and no anonymous reading here)",
    "403": "the token lacks the permission, or is for another project",
    "404": "unknown project, target or deployment",
    "409": "the state machine refuses",
    "413": "the body is over 64 KiB",
    "415": "the body is not JSON",
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"},
         "description": _PATH_PARAMETERS.get(name, name)}
        for name in _PARAMETER.findall(endpoint.path)]
    parameters += [{"name": name, "in": "query", "required": False,
                    "schema": {"type": "string"}, "description": text}
                   for name, text in endpoint.query]
    needs = endpoint.permission or endpoint.needs
    operation: dict[str, Any] = {
        "summary": endpoint.summary,
        "operationId": f"{endpoint.method.lower()}_{endpoint.handler.__name__}",
        "responses": {str(endpoint.status): {
            "description": "the answer, in the shape of the matching git deploy --json",
            "content": {"application/json": {"schema": {}}}}},
    }
    if parameters:
        operation["parameters"] = parameters
    if endpoint.method == "GET":
        operation["responses"]["304"] = {"description": "If-None-Match named the current ETag"}
    if endpoint.body is not None:
        operation["requestBody"] = {"required": False, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{endpoint.body.name}"}}}}
    if needs is not None:
        operation["security"] = [{"bearer": []}]
        operation["x-permission"] = PERMISSION_NAMES[needs]
        codes = ["400", "401", "403", "404"]
        if endpoint.method != "GET":
            codes += ["409", "413", "415"]
        for code in codes:
            operation["responses"][code] = _error(_ERRORS[code])
    else:
        operation["security"] = []
    return operation


def document(endpoints: Sequence[Endpoint]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        path = _PARAMETER.sub(lambda m: "{" + m.group(1) + "}", endpoint.path)
        paths.setdefault(path, {})[endpoint.method.lower()] = _operation(endpoint)
    schemas: dict[str, Any] = {body.name: body.schema() for body in BODIES}
    schemas["Error"] = {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "message"],
                                 "properties": {"code": {"type": "string"},
                                                "message": {"type": "string"}}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "git-deployments", "version": __version__,
                 "description": "Deployments kept in git refs: our API under /api/v1 (answers "
                                "in the shapes of git deploy --json) and the hosted service's "
                                "automation endpoints under /api/http."},
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
