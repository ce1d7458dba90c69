"""Our API under /api/v1: every answer in the shape of the matching `git deploy … --json`,
computed by the same services the command line calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from git_deployments.core.model import COMMIT_PATTERN, REPOSITORY_PATTERN, Status, key_problem
from git_deployments.web import auth, bodies, cache
from git_deployments.web.http import ApiError, json_response, read_json

if TYPE_CHECKING:
    from git_deployments.core.model import Request as Operation
    from git_deployments.core.store import Store, WriteResult
    from git_deployments.web.projects import Project

DEFAULT_PAGE = 50
MAX_PAGE = 1000


# --- what a request names ---------------------------------------------------------------------


def _key(request: Request, name: str = "key") -> str:
    key = str(request.path_params[name])
    problem = key_problem(key)
    if problem:
        raise ApiError(400, "invalid_value", f"invalid target key {key[:100]!r}: {problem}")
    return key


def _number(request: Request) -> int:
    text = str(request.path_params["n"])
    if not (text.isascii() and text.isdigit()) or len(text) > 12 or int(text) < 1:
        raise ApiError(400, "invalid_value", f"invalid deployment number {text[:40]!r}: "
                                             "expected 1, 2, 3...")
    return int(text)


def _count(request: Request, name: str, default: int | None, maximum: int = MAX_PAGE
           ) -> int | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise ApiError(400, "invalid_value", f"invalid {name} {text[:40]!r}: expected 0, 1, 2...")
    return min(int(text), maximum)


def _flag(request: Request, name: str) -> bool:
    text = request.query_params.get(name, "false").lower()
    if text not in ("true", "false", "1", "0", "yes", "no", ""):
        raise ApiError(400, "invalid_value", f"invalid {name} {text[:40]!r}: expected true or "
                                             "false")
    return text in ("true", "1", "yes", "")


def _project(project: Project | None) -> Project:
    assert project is not None  # every route under /projects/{project} has one
    return project


def _next_link(request: Request, **params: Any) -> dict[str, str]:
    """A `Link: <…>; rel="next"` header to the following page."""
    query = [(k, v) for k, v in request.query_params.multi_items() if k not in params]
    query += [(k, str(v)) for k, v in params.items()]
    return {"Link": f'<{request.url.path}?{urlencode(query)}>; rel="next"'}


# --- reading ------------------------------------------------------------------------------------


async def projects(request: Request, _: Project | None) -> Response:
    """Every project the asker may read, with how many targets it has."""
    found = auth.readable_projects(request)
    tips = [(p.name, p.refs.tips(cache.DEPLOYMENTS)) for p in found]
    data = [{"name": name, "targets": len(refs)} for name, refs in tips]
    return cache.answer_now(request, tips, data)


async def status(request: Request, project: Project | None) -> Response:
    from git_deployments.reading.status import status as read_status

    everything = _flag(request, "all")
    return await cache.answer(request, _project(project), (cache.DEPLOYMENTS, *cache.BRANCHES),
                              lambda store: read_status(store, include_archived=everything))


async def targets(request: Request, project: Project | None) -> Response:
    from git_deployments.reading.targets import target_entry
    from git_deployments.reading.targets import targets as read_targets

    everything = _flag(request, "all")
    return await cache.answer(
        request, _project(project), (cache.DEPLOYMENTS,),
        lambda store: [target_entry(t, i) for t, i in read_targets(store, everything)])


async def target(request: Request, project: Project | None) -> Response:
    from git_deployments.reading.targets import target_show

    key = _key(request)
    return await cache.answer(request, _project(project), (cache.target_ref(key),),
                              lambda store: target_show(store, key))


async def deployments(request: Request, project: Project | None) -> Response:
    """A target's deployments, newest first, a page at a time (`Link` names the next)."""
    from git_deployments.reading.deployments import deployment_json, newest_first

    key = _key(request)
    statuses: set[str] = set()
    for value in request.query_params.getlist("status"):
        statuses.update(part for part in value.split(",") if part)
    unknown = statuses - {s.value for s in Status}
    if unknown:
        raise ApiError(400, "invalid_value", f"invalid status {min(unknown)[:40]!r}: "
                                             f"one of {', '.join(s.value for s in Status)}")
    limit = _count(request, "limit", DEFAULT_PAGE) or MAX_PAGE
    before = _count(request, "before", None, maximum=10**12)

    def page(store: Store) -> list[dict[str, Any]]:
        snap = store.existing(key)
        _, index = snap.require()
        found = newest_first(snap, index, statuses or None, limit, before)
        return [deployment_json(key, r) for r in found]

    def link(data: list[dict[str, Any]]) -> dict[str, str]:
        if len(data) < limit or data[-1]["number"] <= 1:
            return {}
        return _next_link(request, before=data[-1]["number"], limit=limit)

    return await cache.answer(request, _project(project), (cache.target_ref(key),), page,
                              headers=link)


async def deployment(request: Request, project: Project | None) -> Response:
    from git_deployments.reading.deployments import show

    key, number = _key(request), _number(request)
    return await cache.answer(request, _project(project), (cache.target_ref(key),),
                              lambda store: show(store, key, number).as_json())


async def commits(request: Request, project: Project | None) -> Response:
    from git_deployments.history.questions import brought
    from git_deployments.reading.history import brought_json

    key, number = _key(request), _number(request)
    limit = _count(request, "limit", None, maximum=10**6)
    return await cache.answer(
        request, _project(project), (cache.target_ref(key),),
        lambda store: brought_json(brought(store, key, number, max_count=limit or None)))


async def issues(request: Request, project: Project | None) -> Response:
    from git_deployments.reading.history import issues as read_issues

    key, number = _key(request), _number(request)
    limit = _count(request, "limit", None, maximum=10**6)
    return await cache.answer(
        request, _project(project), (cache.target_ref(key),),
        lambda store: read_issues(store, key, number, limit or None).as_json())


async def timeline(request: Request, project: Project | None) -> Response:
    """A target's changes, newest first (`git deploy log --json`), a page at a time: `before`
    is the timeline commit the page starts below."""
    from git_deployments.core.timeline import entries

    key = _key(request)
    limit = _count(request, "limit", DEFAULT_PAGE) or MAX_PAGE
    before = request.query_params.get("before")
    if before is not None and not COMMIT_PATTERN.match(before):
        raise ApiError(400, "invalid_value", f"invalid before {before[:60]!r}: a timeline "
                                             "commit id (40 hex digits)")

    def page(store: Store) -> list[dict[str, Any]]:
        snap = store.existing(key)
        start = snap.tip
        if before is not None:
            assert snap.tip is not None
            if not store.git.has_object(before) or not store.git.is_ancestor(before, snap.tip):
                from git_deployments.errors import NotFound

                raise NotFound(f"{before} is not a change of target '{key}'")
            parents = store.git.commit_info(before).parents
            start = parents[0] if parents else None
        found = []
        if start is not None:
            for entry in entries(store.git, key, start):
                found.append(entry.as_json())
                if len(found) >= limit:
                    break
        return found

    def link(data: list[dict[str, Any]]) -> dict[str, str]:
        if len(data) < limit:
            return {}
        return _next_link(request, before=data[-1]["timeline_commit"], limit=limit)

    return await cache.answer(request, _project(project), (cache.target_ref(key),), page,
                              headers=link)


async def pending(request: Request, project: Project | None) -> Response:
    from git_deployments.history.questions import pending as read_pending
    from git_deployments.reading.history import pending_json

    key = _key(request)
    branch = request.query_params.get("branch") or None
    limit = _count(request, "limit", None, maximum=10**6)
    return await cache.answer(
        request, _project(project), (cache.target_ref(key), *cache.BRANCHES),
        lambda store: pending_json(read_pending(store, key, branch, max_count=limit or None)))


async def compare(request: Request, project: Project | None) -> Response:
    from git_deployments.history.questions import compare as read_compare
    from git_deployments.reading.history import compare_json

    key = _key(request)
    other = request.query_params.get("with")
    if not other:
        raise ApiError(400, "invalid_value", "compare needs ?with=OTHER_TARGET")
    problem = key_problem(other)
    if problem:
        raise ApiError(400, "invalid_value", f"invalid target key {other[:100]!r}: {problem}")
    return await cache.answer(
        request, _project(project), (cache.target_ref(key), cache.target_ref(other)),
        lambda store: compare_json(read_compare(store, key, other)))


async def contains(request: Request, project: Project | None) -> Response:
    from git_deployments.history.questions import contains as read_contains
    from git_deployments.reading.history import contains_json

    commit = str(request.path_params["commit"])
    if not commit or len(commit) > 256 or commit.startswith("-") or \
            any(ord(c) < 33 for c in commit):
        raise ApiError(400, "invalid_value", f"invalid commit {commit[:60]!r}")
    keys = request.query_params.getlist("target") or None
    for key in keys or []:
        if key_problem(key):
            raise ApiError(400, "invalid_value", f"invalid target key {key[:100]!r}")
    repository = request.query_params.get("repository") or None
    if repository is not None and not REPOSITORY_PATTERN.match(repository):
        raise ApiError(400, "invalid_value", f"invalid repository name {repository[:100]!r}")
    return await cache.answer(
        request, _project(project), cache.EVERY_REF,
        lambda store: contains_json(read_contains(store, commit, keys, repository)))


# --- writing ------------------------------------------------------------------------------------


async def write(request: Request, project: Project | None,
                build: Callable[[Store, str], Operation],
                shape: Callable[[Store, WriteResult], Any], status: int = 200) -> Response:
    """Build the request as the command line would (so every rule and refusal is the CLI's)
    and record it through the one write path; the change is made by the token's name."""
    user = request.user
    assert isinstance(user, auth.TokenUser)  # writes are never anonymous (guard)
    served = _project(project)

    def run() -> Any:
        store = served.store()
        result = store.write(build(store, user.identity))
        return shape(store, result)

    return json_response(await run_in_threadpool(run), status)


def _written(store: Store, result: WriteResult) -> dict[str, Any]:
    from git_deployments.reading.deployments import write_json

    return write_json(result)


def _target_written(store: Store, result: WriteResult) -> dict[str, Any]:
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
                       _target_written, status=201)


async def edit_target(request: Request, project: Project | None) -> Response:
    from git_deployments.core import intake

    key = _key(request)
    values = bodies.TARGET_EDIT.read(await read_json(request))
    if "archived" in values:
        if len(values) > 1:
            raise ApiError(400, "invalid_value", "archived goes alone: archive or unarchive in "
                                                 "one request, edit settings in another")
        archived = values["archived"]
        return await write(
            request, project,
            lambda store, by: intake.archive_target_request(store, key, archived, by),
            _target_written)
    return await write(request, project,
                       lambda store, by: intake.edit_target_request(store, key, values, by),
                       _target_written)


def deploy(op: str) -> Callable[[Request, Project | None], Any]:
    async def endpoint(request: Request, project: Project | None) -> Response:
        from git_deployments.core import intake

        key = _key(request)
        values = bodies.DEPLOY.read(await read_json(request))
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

        return await write(request, project, build, _written)

    endpoint.__name__ = op
    return endpoint


async def set_status(request: Request, project: Project | None) -> Response:
    from git_deployments.core import intake

    key, number = _key(request), _number(request)
    values = bodies.STATUS.read(await read_json(request))
    return await write(request, project, lambda store, by: intake.set_status_request(
        store, key, number, values["status"], values.get("reason"), by), _written)


async def edit_deployment(request: Request, project: Project | None) -> Response:
    from git_deployments.core import intake

    key, number = _key(request), _number(request)
    values = bodies.EDIT.read(await read_json(request))
    return await write(request, project, lambda store, by: intake.edit_request(
        store, key, number, by=by, **values_as_options(values)), _written)


def values_as_options(values: dict[str, Any]) -> dict[str, Any]:
    return {name: values.get(name) for name in ("version", "description", "ext_label",
                                                "ext_url", "at")}


async def delete_deployment(request: Request, project: Project | None) -> Response:
    from git_deployments.core import intake

    key, number = _key(request), _number(request)
    await read_json(request)  # a body, if any, is still held to the limits
    return await write(request, project,
                       lambda store, by: intake.delete_request(store, key, number, by),
                       _written)


async def comment(request: Request, project: Project | None) -> Response:
    from git_deployments.core import intake

    key = _key(request)
    values = bodies.COMMENT.read(await read_json(request))
    return await write(request, project, lambda store, by: intake.comment_request(
        store, key, values.get("number"), values["message"], by), _written)
