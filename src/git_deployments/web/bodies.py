"""The JSON bodies the server accepts, declared once: read (each value checked, unknown fields
refused) and described in the OpenAPI document from the same declaration."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from git_deployments.web.http import ApiError

STATUSES_BY_HAND = ("scheduled", "deploying", "current", "failed")

_SCHEMAS: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "boolean": {"type": "boolean"},
    "number": {"type": "integer", "minimum": 1},
    "strings": {"type": "array", "items": {"type": "string"}},
    "duration": {"oneOf": [{"type": "string", "examples": ["30m", "2h", "off", "on"]},
                           {"type": "integer", "minimum": 1, "description": "seconds"}]},
    "time": {"oneOf": [{"type": "string", "examples": ["2026-05-01T14:00:00Z", "+2h"]},
                       {"type": "integer", "description": "milliseconds since 1970"}]},
    "commit-refs": {"type": "array", "items": {
        "type": "object", "required": ["repositoryName", "branch"],
        "additionalProperties": False,
        "properties": {"repositoryName": {"type": "string"}, "branch": {"type": "string"},
                       "commit": {"type": "string",
                                  "description": "an id, short id, tag or HEAD; left out: "
                                                 "the branch's latest commit"}}}},
}


@dataclass(frozen=True)
class Field:
    kind: str
    description: str
    required: bool = False
    choices: tuple[str, ...] = ()


class Body:
    def __init__(self, name: str, description: str, fields: dict[str, Field]) -> None:
        self.name = name
        self.description = description
        self.fields = fields

    def read(self, data: dict[str, Any]) -> dict[str, Any]:
        """The body's values, checked and converted; refused (400) as a whole otherwise."""
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise ApiError(400, "invalid_value",
                           f"unknown field {unknown[0]!r} (this body takes: "
                           f"{', '.join(self.fields)})")
        values: dict[str, Any] = {}
        for name, spec in self.fields.items():
            value = data.get(name)
            if value is None:
                if spec.required:
                    raise ApiError(400, "invalid_value", f"missing field {name!r}")
                continue
            values[name] = _convert(name, spec, value)
        return values

    def schema(self) -> dict[str, Any]:
        properties = {}
        for name, spec in self.fields.items():
            entry = dict(_SCHEMAS[spec.kind])
            entry["description"] = spec.description
            if spec.choices:
                entry["enum"] = list(spec.choices)
            properties[name] = entry
        schema: dict[str, Any] = {"type": "object", "description": self.description,
                                  "additionalProperties": False, "properties": properties}
        required = [name for name, spec in self.fields.items() if spec.required]
        if required:
            schema["required"] = required
        return schema


def _invalid(name: str, expected: str) -> ApiError:
    return ApiError(400, "invalid_value", f"invalid {name!r}: expected {expected}")


def _convert(name: str, spec: Field, value: Any) -> Any:
    kind = spec.kind
    if kind == "string":
        if not isinstance(value, str):
            raise _invalid(name, "a string")
        if spec.choices and value not in spec.choices:
            raise _invalid(name, f"one of {', '.join(spec.choices)}")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _invalid(name, "true or false")
        return value
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _invalid(name, "a deployment number (1, 2, 3...)" if name in (
                "number", "deployment") else "a whole number from 1")
        return value
    if kind == "strings":
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _invalid(name, "a list of strings")
        return value
    if kind == "duration":
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise _invalid(name, "a duration such as '30m', a number of seconds, 'on' or 'off'")
        return _duration(str(value))
    if kind == "time":
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise _invalid(name, "an ISO 8601 time or milliseconds since 1970")
        if isinstance(value, int):
            try:
                moment = datetime.fromtimestamp(value / 1000, UTC)
            except (OverflowError, OSError, ValueError):
                raise _invalid(name, "milliseconds since 1970") from None
            return moment.replace(microsecond=0).isoformat()
        return value
    if kind == "commit-refs":
        return _commit_refs(name, value)
    raise AssertionError(kind)  # every kind is declared above


def _duration(text: str) -> int | str:
    from git_deployments.core.timeutil import parse_duration

    if text.lower() in ("off", "none", "disabled"):
        return "off"
    if text.lower() == "on":
        return "on"
    return parse_duration(text)  # a DeployError: 400, worded as the CLI words it


def _commit_refs(name: str, value: Any) -> list[str]:
    """The reference's commitRefs as the CLI's REPO:BRANCH[:COMMIT] specs."""
    if not isinstance(value, list):
        raise _invalid(name, "a list of {repositoryName, branch, commit?}")
    specs = []
    for item in value:
        if not isinstance(item, dict) or set(item) - {"repositoryName", "branch", "commit"}:
            raise _invalid(name, "a list of {repositoryName, branch, commit?}")
        repository, branch, commit = item.get("repositoryName"), item.get("branch"), \
            item.get("commit")
        if not isinstance(repository, str) or not isinstance(branch, str) or \
                (commit is not None and not isinstance(commit, str)):
            raise _invalid(name, "repositoryName and branch as strings, commit a string if "
                                 "given")
        if ":" in repository or ":" in branch or (commit and ":" in commit) \
                or not repository or not branch:
            raise _invalid(name, "a repository name, a branch and a commit (none with ':')")
        specs.append(f"{repository}:{branch}" + (f":{commit}" if commit else ""))
    return specs


_DEPLOY_FIELDS = {
    "version": Field("string", "the version (default: git describe --tags --always of the "
                               "commit)"),
    "commit": Field("strings", "what is deployed, REPO:BRANCH[:COMMIT] (COMMIT may be HEAD, a "
                               "short id or a tag); left out: the repository's HEAD branch and "
                               "commit, or for finish and fail the deployment in flight"),
    "branch": Field("string", "the branch, for a commit given without one"),
    "ext_label": Field("string", "label of an external link (a CI job)"),
    "ext_url": Field("string", "URL of the external link"),
    "description": Field("string", "shown with the deployment"),
    "reason": Field("string", "why, kept in the deployment's history"),
    "at": Field("time", "schedule only: when it is planned"),
    "number": Field("number", "finish and fail only: exactly this deployment, which must be "
                              "in flight"),
}

DEPLOY = Body("DeployOptions", "The options of git deploy schedule|start|finish|fail.",
              _DEPLOY_FIELDS)

REFERENCE = Body(
    "AutomationDeployment",
    "The hosted service's deployment request, field for field.",
    {
        "targetIdentifier": Field("string", "key:KEY or id:KEY", required=True),
        "version": Field("string", "the version"),
        "commitRefs": Field("commit-refs", "what is deployed; left out: the repository's HEAD "
                                           "branch and commit (finish and fail: the deployment "
                                           "in flight)"),
        "externalLinkLabel": Field("string", "label of an external link"),
        "externalLinkUrl": Field("string", "URL of the external link"),
        "description": Field("string", "shown with the deployment"),
        "scheduledStart": Field("time", "schedule: when it is planned (ignored by the others)"),
        "syncWithAutomationJob": Field("boolean", "accepted; there is no automation job to "
                                                  "follow here (use git deploy run)"),
    })

_TARGET_FIELDS = {
    "name": Field("string", "display name (default: the key)"),
    "description": Field("string", "shown with the target"),
    "repository": Field("strings", "NAME[=LOCATION] of each repository it deploys"),
    "manual_controls": Field("boolean", "allow status changes by hand"),
    "hanging_after": Field("duration", "hanging after this long in deploying"),
    "failed_after": Field("duration", "failed after this long in flight"),
    "start_requires_schedule": Field("boolean", "refuse start unless one is scheduled"),
    "schedule_on_push": Field("strings", "branches whose pushes schedule a deployment"),
    "health_url": Field("string", "health check: GET this http(s) URL (healthy on 2xx)"),
    "health_expect": Field("string", "health check: text the URL's answer must contain"),
    "health_exec": Field("string", "health check: a program and its arguments (split like a "
                                   "shell, run without one; healthy on exit 0)"),
    "health_every": Field("duration", "health check: how often (default 30s)"),
    "health_timeout": Field("duration", "health check: how long one probe may take"),
    "health_failures": Field("number", "health check: failures in a row that open an "
                                       "incident (and successes that resolve it)"),
}

TARGET_CREATE = Body("TargetCreate", "The options of git deploy target create.",
                     {"key": Field("string", "the target's key", required=True),
                      **_TARGET_FIELDS})

TARGET_EDIT = Body(
    "TargetEdit",
    "The options of git deploy target edit, or archived alone (archive / unarchive).",
    {**_TARGET_FIELDS,
     "remove_repository": Field("strings", "names of repositories to remove"),
     "no_schedule_on_push": Field("boolean", "stop scheduling on push"),
     "health_off": Field("boolean", "remove the health check"),
     "archived": Field("boolean", "archive (true) or unarchive (false); alone in its request")})

STATUS = Body("StatusChange", "git deploy set-status: needs the target's manual controls.",
              {"status": Field("string", "the new status", required=True,
                               choices=STATUSES_BY_HAND),
               "reason": Field("string", "why, kept in the deployment's history")})

EDIT = Body("DeploymentEdit", "git deploy edit: display fields.",
            {"version": Field("string", "the version"),
             "description": Field("string", "shown with the deployment"),
             "ext_label": Field("string", "label of the external link"),
             "ext_url": Field("string", "URL of the external link"),
             "at": Field("time", "the planned time")})

COMMENT = Body("Comment", "git deploy comment.",
               {"message": Field("string", "the comment", required=True),
                "number": Field("number", "the deployment it is about")})

INCIDENT_OPEN = Body(
    "IncidentOpen", "git deploy incident open.",
    {"message": Field("string", "what is wrong"),
     "deployment": Field("number", "the deployment it is attributed to (default: the current "
                                   "one)"),
     "at": Field("time", "when it began, if earlier than now")})

INCIDENT_RESOLVE = Body(
    "IncidentResolve", "git deploy incident resolve.",
    {"message": Field("string", "how it was resolved"),
     "at": Field("time", "when it ended, if earlier than now")})

BODIES = (DEPLOY, REFERENCE, TARGET_CREATE, TARGET_EDIT, STATUS, EDIT, COMMENT, INCIDENT_OPEN,
          INCIDENT_RESOLVE)
