"""Our API under /api/v1: every answer in the shape of the matching `git deploy … --json`,
computed by the same services the command line calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from git_deployments.core.model import COMMIT_PATTERN, REPOSITORY_PATTERN, Status, key_problem
from git_deployments.web import auth, bodies, cache, queries
from git_deployments.web.http import ApiError, json_response, read_json

if TYPE_CHECKING:
    from git_deployments.core.model import Request as Operation
    from git_deployments.core.store import Store, WriteResult
    from git_deployments.history.metrics import Window
    from git_deployments.web.projects import Project

DEFAULT_PAGE = queries.DEFAULT_PAGE
MAX_PAGE = queries.MAX_PAGE


# --- what a request names ---------------------------------------------------------------------


def key_of(request: Request, name: str = "key") -> str:
    key = str(request.path_params[name])
    problem = key_problem(key)
    if problem:
        raise ApiError(400, "invalid_value", f"invalid target key {key[:100]!r}: {problem}")
    return key


def number_of(request: Request) -> int:
    text = str(request.path_params["n"])
    if not (text.isascii() and text.isdigit()) or len(text) > 12 or int(text) < 1:
        raise ApiError(400, "invalid_value", f"invalid deployment number {text[:40]!r}: "
                                             "expected 1, 2, 3...")
    return int(text)


def incident_of(request: Request) -> int:
    text = str(request.path_params["id"])
    if not (text.isascii() and text.isdigit()) or len(text) > 12 or int(text) < 1:
        raise ApiError(400, "invalid_value", f"invalid incident id {text[:40]!r}: "
                                             "expected 1, 2, 3...")
    return int(text)


def count_of(request: Request, name: str, default: int | None, maximum: int = MAX_PAGE
           ) -> int | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise ApiError(400, "invalid_value", f"invalid {name} {text[:40]!r}: expected 0, 1, 2...")
    return min(int(text), maximum)


def flag_of(request: Request, name: str) -> bool:
    if not request.scope["query_string"]:
        return False  # no query at all: nothing to parse
    text = request.query_params.get(name, "false").lower()
    if text not in ("true", "false", "1", "0", "yes", "no", ""):
        raise ApiError(400, "invalid_value", f"invalid {name} {text[:40]!r}: expected true or "
                                             "false")
    return text in ("true", "1", "yes", "")


def _project(project: Project | None) -> Project:
    assert project is not None  # every route under /projects/{project} has one
    return project


# --- reading ------------------------------------------------------------------------------------


async def projects(request: Request, _: Project | None) -> Response:
    """Every project the asker may read, with how many targets it has."""
    found = auth.readable_projects(request)
    tips = [(p.name, p.refs.tips(queries.DEPLOYMENTS)) for p in found]
    data = [{"name": name, "targets": len(refs)} for name, refs in tips]
    return cache.answer_now(request, tips, data)


async def status(request: Request, project: Project | None) -> Response:
    served = _project(project)
    return await cache.answer(request, served,
                              queries.status(served.name, flag_of(request, "all")))


async def targets(request: Request, project: Project | None) -> Response:
    served = _project(project)
    return await cache.answer(request, served,
                              queries.targets(served.name, flag_of(request, "all")))


async def target(request: Request, project: Project | None) -> Response:
    served = _project(project)
    return await cache.answer(request, served, queries.target(served.name, key_of(request)))


def statuses(request: Request) -> list[str]:
    """`?status=a&status=b` or `?status=a,b`: known statuses only."""
    found: set[str] = set()
    for value in request.query_params.getlist("status"):
        found.update(part for part in value.split(",") if part)
    unknown = found - {s.value for s in Status}
    if unknown:
        raise ApiError(400, "invalid_value", f"invalid status {min(unknown)[:40]!r}: "
                                             f"one of {', '.join(s.value for s in Status)}")
    return sorted(found)


def branch(request: Request) -> str | None:
    """`?branch=NAME`: a valid branch name, or None."""
    from git_deployments.core.model import branch_is_valid

    text = request.query_params.get("branch") or None
    if text is not None and not branch_is_valid(text):
        raise ApiError(400, "invalid_value", f"invalid branch {text[:100]!r}")
    return text


async def deployments(request: Request, project: Project | None) -> Response:
    """A target's deployments, newest first, a page at a time (`Link` names the next)."""
    served = _project(project)
    return await cache.answer(request, served, queries.deployments(
        served.name, key_of(request), statuses(request), branch(request),
        count_of(request, "limit", DEFAULT_PAGE) or MAX_PAGE,
        count_of(request, "before", None, maximum=10**12)))


async def deployment(request: Request, project: Project | None) -> Response:
    served = _project(project)
    return await cache.answer(request, served,
                              queries.deployment(served.name, key_of(request), number_of(request)))


async def commits(request: Request, project: Project | None) -> Response:
    served = _project(project)
    limit = count_of(request, "limit", None, maximum=10**6)
    return await cache.answer(request, served, queries.commits(
        served.name, key_of(request), number_of(request), limit or None))


async def issues(request: Request, project: Project | None) -> Response:
    served = _project(project)
    limit = count_of(request, "limit", None, maximum=10**6)
    return await cache.answer(request, served, queries.issues(
        served.name, key_of(request), number_of(request), limit or None))


async def project_incidents(request: Request, project: Project | None) -> Response:
    """Every target's incidents, newest first (`?open=true`: only those open now)."""
    served = _project(project)
    return await cache.answer(request, served, queries.project_incidents(
        served.name, flag_of(request, "open")))


async def incidents(request: Request, project: Project | None) -> Response:
    """A target's incidents, newest first (`?open=true`: only those open now)."""
    served = _project(project)
    return await cache.answer(request, served, queries.incidents(
        served.name, key_of(request), flag_of(request, "open")))


def timeline_before(request: Request) -> str | None:
    before = request.query_params.get("before")
    if before is not None and not COMMIT_PATTERN.match(before):
        raise ApiError(400, "invalid_value", f"invalid before {before[:60]!r}: a timeline "
                                             "commit id (40 hex digits)")
    return before


async def timeline(request: Request, project: Project | None) -> Response:
    """A target's changes, newest first (`git deploy log --json`), a page at a time: `before`
    is the timeline commit the page starts below; `number` keeps a deployment's own."""
    served = _project(project)
    number = count_of(request, "number", None, maximum=10**12)
    if number == 0:
        raise ApiError(400, "invalid_value", "invalid number '0': expected 1, 2, 3...")
    return await cache.answer(request, served, queries.timeline(
        served.name, key_of(request), count_of(request, "limit", DEFAULT_PAGE) or MAX_PAGE,
        timeline_before(request), number))


async def pending(request: Request, project: Project | None) -> Response:
    served = _project(project)
    limit = count_of(request, "limit", None, maximum=10**6)
    return await cache.answer(request, served, queries.pending(
        served.name, key_of(request), request.query_params.get("branch") or None,
        limit or None))


def other_key(text: str | None) -> str:
    if not text:
        raise ApiError(400, "invalid_value", "compare needs ?with=OTHER_TARGET")
    problem = key_problem(text)
    if problem:
        raise ApiError(400, "invalid_value", f"invalid target key {text[:100]!r}: {problem}")
    return text


async def compare(request: Request, project: Project | None) -> Response:
    served = _project(project)
    return await cache.answer(request, served, queries.compare(
        served.name, key_of(request), other_key(request.query_params.get("with"))))


def commit_spec(commit: str) -> str:
    if not commit or len(commit) > 256 or commit.startswith("-") or \
            any(ord(c) < 33 for c in commit):
        raise ApiError(400, "invalid_value", f"invalid commit {commit[:60]!r}")
    return commit


async def contains(request: Request, project: Project | None) -> Response:
    served = _project(project)
    commit = commit_spec(str(request.path_params["commit"]))
    keys = request.query_params.getlist("target") or None
    for key in keys or []:
        if key_problem(key):
            raise ApiError(400, "invalid_value", f"invalid target key {key[:100]!r}")
    repository = request.query_params.get("repository") or None
    if repository is not None and not REPOSITORY_PATTERN.match(repository):
        raise ApiError(400, "invalid_value", f"invalid repository name {repository[:100]!r}")
    return await cache.answer(request, served,
                              queries.contains(served.name, commit, keys, repository))


def metrics_targets(request: Request) -> list[str]:
    """`?target=a&target=b` or `?target=a,b`: valid keys, in the order given."""
    found: list[str] = []
    for value in request.query_params.getlist("target"):
        for key in value.split(","):
            if not key:
                continue
            if key_problem(key):
                raise ApiError(400, "invalid_value", f"invalid target key {key[:100]!r}")
            found.append(key)
    return list(dict.fromkeys(found))


def metrics_window(request: Request) -> Window:
    """`?since=90d|DATE&until=DATE`, read as `git deploy metrics` reads them; without `until`,
    the end of the current minute (so a deployment of a moment ago is in), which keeps an
    answer for a minute at most."""
    from datetime import timedelta

    from git_deployments.core.intake import clock
    from git_deployments.history.metrics import window_of

    minute = clock().replace(second=0) + timedelta(minutes=1)
    return window_of(request.query_params.get("since") or None,
                     request.query_params.get("until") or None, minute, prefix="")


async def metrics(request: Request, project: Project | None) -> Response:
    """The four DORA figures of each target and of all together (git deploy metrics)."""
    served = _project(project)
    return await cache.answer(request, served, queries.metrics(
        served.name, metrics_targets(request), metrics_window(request)))


# --- writing ------------------------------------------------------------------------------------


async def perform(request: Request, project: Project | None,
                  build: Callable[[Store, str], Operation],
                  shape: Callable[[Store, WriteResult], Any]) -> Any:
    """Build the request as the command line would (so every rule and refusal is the CLI's)
    and record it through the one write path; the change is made by the token's name."""
    user = request.user
    assert isinstance(user, auth.TokenUser)  # writes are never anonymous (guard)
    served = _project(project)

    def run() -> Any:
        store = served.store()
        result = store.write(build(store, user.identity))
        return shape(store, result)

    return await run_in_threadpool(run)


async def write(request: Request, project: Project | None,
                build: Callable[[Store, str], Operation],
                shape: Callable[[Store, WriteResult], Any], status: int = 200) -> Response:
    return json_response(await perform(request, project, build, shape), status)


def written(store: Store, result: WriteResult) -> dict[str, Any]:
    from git_deployments.reading.deployments import write_json

    return write_json(result)


def written_target(store: Store, result: WriteResult) -> dict[str, Any]:
    from git_deployments.reading.targets import target_written

    return target_written(result.change.target, result.commit)


async def create_target(request: Request, project: Project | None) -> Response:
    from git_deployments.core import intake

    values = bodies.TARGET_CREATE.read(await read_json(request))
    key = values.pop("key")
    problem = key_problem(key)
    if problem:
        raise ApiError(400, "invalid_value", f"invalid target key {key[:100]!r}: {problem}")
    return await write(request, project,
                       lambda store, by: intake.create_target_request(store, key, values, by),
                       written_target, status=201)


async def edit_target(request: Request, project: Project | None) -> Response:
    from git_deployments.core import intake

    key = key_of(request)
    values = bodies.TARGET_EDIT.read(await read_json(request))
    if "archived" in values:
        if len(values) > 1:
            raise ApiError(400, "invalid_value", "archived goes alone: archive or unarchive in "
                                                 "one request, edit settings in another")
        archived = values["archived"]
        return await write(
            request, project,
            lambda store, by: intake.archive_target_request(store, key, archived, by),
            written_target)
    return await write(request, project,
                       lambda store, by: intake.edit_target_request(store, key, values, by),
                       written_target)


def deploy_build(op: str, key: str, values: dict[str, Any]
                 ) -> Callable[[Store, str], Operation]:
    """How schedule/start/finish/fail with the DEPLOY body's `values` becomes a request."""
    from git_deployments.core import intake

    if "at" in values and op != "schedule":
        raise ApiError(400, "invalid_value", f"'at' is for schedule, not {op}")
    if "number" in values and op not in ("finish", "fail"):
        raise ApiError(400, "invalid_value", f"'number' is for finish and fail, not {op}")

    def build(store: Store, by: str) -> Operation:
        return intake.deploy_request(
            store, op, key, version=values.get("version"), commits=values.get("commit"),
            branch=values.get("branch"), ext_label=values.get("ext_label"),
            ext_url=values.get("ext_url"), description=values.get("description"),
            reason=values.get("reason"), at=values.get("at"), number=values.get("number"),
            by=by, environment=False)

    return build


def deploy(op: str) -> Callable[[Request, Project | None], Any]:
    async def endpoint(request: Request, project: Project | None) -> Response:
        key = key_of(request)
        values = bodies.DEPLOY.read(await read_json(request))
        return await write(request, project, deploy_build(op, key, values), written)

    endpoint.__name__ = op
    return endpoint


async def set_status(request: Request, project: Project | None) -> Response:
    from git_deployments.core import intake

    key, number = key_of(request), number_of(request)
    values = bodies.STATUS.read(await read_json(request))
    return await write(request, project, lambda store, by: intake.set_status_request(
        store, key, number, values["status"], values.get("reason"), by), written)


async def edit_deployment(request: Request, project: Project | None) -> Response:
    from git_deployments.core import intake

    key, number = key_of(request), number_of(request)
    values = bodies.EDIT.read(await read_json(request))
    return await write(request, project, lambda store, by: intake.edit_request(
        store, key, number, by=by, **values_as_options(values)), written)


def values_as_options(values: dict[str, Any]) -> dict[str, Any]:
    return {name: values.get(name) for name in ("version", "description", "ext_label",
                                                "ext_url", "at")}


async def delete_deployment(request: Request, project: Project | None) -> Response:
    from git_deployments.core import intake

    key, number = key_of(request), number_of(request)
    await read_json(request)  # a body, if any, is still held to the limits
    return await write(request, project,
                       lambda store, by: intake.delete_request(store, key, number, by),
                       written)


async def comment(request: Request, project: Project | None) -> Response:
    from git_deployments.core import intake

    key = key_of(request)
    values = bodies.COMMENT.read(await read_json(request))
    return await write(request, project, lambda store, by: intake.comment_request(
        store, key, values.get("number"), values["message"], by), written)


async def open_incident(request: Request, project: Project | None) -> Response:
    from git_deployments.core import intake

    key = key_of(request)
    values = bodies.INCIDENT_OPEN.read(await read_json(request))
    return await write(request, project, lambda store, by: intake.open_incident_request(
        store, key, reason=values.get("message"), deployment=values.get("deployment"),
        at=values.get("at"), by=by), written, status=201)


async def resolve_incident(request: Request, project: Project | None) -> Response:
    from git_deployments.core import intake

    key, incident = key_of(request), incident_of(request)
    values = bodies.INCIDENT_RESOLVE.read(await read_json(request))
    return await write(request, project, lambda store, by: intake.resolve_incident_request(
        store, key, incident, reason=values.get("message"), at=values.get("at"), by=by),
        written)
