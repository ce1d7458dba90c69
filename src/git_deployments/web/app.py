"""The server's application: the routes as one plain list, middleware for what every request
shares (an access-log line, no traceback in any answer, who is asking), state made at start-up
(no global state), errors as JSON."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from git_deployments.access.tokens import MODIFY_DEPLOYMENTS, MODIFY_TARGETS, VIEW
from git_deployments.errors import DeployError
from git_deployments.web import api, auth, bodies, reference
from git_deployments.web.cache import AnswerCache, answer_now
from git_deployments.web.endpoint import Endpoint
from git_deployments.web.http import ApiError, error_response, from_deploy_error
from git_deployments.web.projects import Projects

CONFIG_VARIABLE = "GIT_DEPLOY_SERVE_CONFIG"  # how `serve` hands its options to each worker


# --- the routes ---------------------------------------------------------------------------------


async def health(request: Request, _: Any) -> Response:
    return answer_now(request, "ok", {"status": "ok"})


async def openapi(request: Request, _: Any) -> Response:
    from git_deployments.web.openapi import document

    data = document(ENDPOINTS)
    return answer_now(request, json.dumps(data, sort_keys=True), data)


PROJECT = "/api/v1/projects/{project}"
TARGET = PROJECT + "/targets/{key}"
DEPLOYMENT = TARGET + "/deployments/{n}"
REFERENCE = "/api/http/projects/{project}/automation/deployments"
PAGE = (("limit", "at most this many (default 50, at most 1000)"),
        ("before", "the page below this one (the Link header names the next page)"))

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/healthz", health, None, "the server is up"),
    Endpoint("GET", "/api/v1/openapi.json", openapi, None, "this description of the API"),
    Endpoint("GET", "/api/v1/projects", api.projects, None, "the projects you may read",
             needs=VIEW),
    Endpoint("GET", PROJECT + "/status", api.status, VIEW,
             "every target: current, in flight, scheduled, pending (git deploy status)",
             query=(("all", "include archived targets"),)),
    Endpoint("GET", PROJECT + "/targets", api.targets, VIEW, "every target (target list)",
             query=(("all", "include archived targets"),)),
    Endpoint("POST", PROJECT + "/targets", api.create_target, MODIFY_TARGETS,
             "create a target (target create)", body=bodies.TARGET_CREATE, status=201),
    Endpoint("GET", PROJECT + "/incidents", api.project_incidents, VIEW,
             "every target's incidents, newest first (git deploy incidents)",
             query=(("open", "only the incidents open now"),)),
    Endpoint("GET", TARGET, api.target, VIEW, "a target's settings and index (target show)"),
    Endpoint("PATCH", TARGET, api.edit_target, MODIFY_TARGETS,
             "edit a target's settings, or archive or unarchive it (target edit|archive)",
             body=bodies.TARGET_EDIT),
    Endpoint("GET", TARGET + "/deployments", api.deployments, VIEW,
             "a target's deployments, newest first (git deploy list)",
             query=(("status", "only these statuses (repeat, or comma-separated)"),
                    ("branch", "only those with a commit on this branch"), *PAGE)),
    *(Endpoint("POST", TARGET + f"/deployments/{op}", api.deploy(op), MODIFY_DEPLOYMENTS,
               f"git deploy {op}", body=bodies.DEPLOY) for op in reference.OPS),
    Endpoint("GET", DEPLOYMENT, api.deployment, VIEW, "one deployment in full (git deploy show)"),
    Endpoint("PATCH", DEPLOYMENT, api.edit_deployment, MODIFY_DEPLOYMENTS,
             "edit a deployment's display fields (git deploy edit)", body=bodies.EDIT),
    Endpoint("DELETE", DEPLOYMENT, api.delete_deployment, MODIFY_DEPLOYMENTS,
             "delete a deployment; the timeline keeps it (git deploy delete)"),
    Endpoint("POST", DEPLOYMENT + "/status", api.set_status, MODIFY_DEPLOYMENTS,
             "change a deployment's status by hand (git deploy set-status)", body=bodies.STATUS),
    Endpoint("GET", DEPLOYMENT + "/commits", api.commits, VIEW,
             "the commits a deployment brought (git deploy commits)",
             query=(("limit", "at most this many commits per repository"),)),
    Endpoint("GET", DEPLOYMENT + "/issues", api.issues, VIEW,
             "merges and issues in what a deployment brought (git deploy issues)",
             query=(("limit", "at most this many commits per repository"),)),
    Endpoint("GET", TARGET + "/timeline", api.timeline, VIEW,
             "a target's changes, newest first (git deploy log)",
             query=(("limit", "at most this many (default 50, at most 1000)"),
                    ("before", "the timeline commit this page starts below"),
                    ("number", "only the changes about this deployment"))),
    Endpoint("POST", TARGET + "/comments", api.comment, MODIFY_DEPLOYMENTS,
             "add a comment to the timeline (git deploy comment)", body=bodies.COMMENT),
    Endpoint("GET", TARGET + "/incidents", api.incidents, VIEW,
             "a target's incidents, newest first (git deploy incidents)",
             query=(("open", "only the incidents open now"),)),
    Endpoint("POST", TARGET + "/incidents", api.open_incident, MODIFY_DEPLOYMENTS,
             "open an incident (git deploy incident open)", body=bodies.INCIDENT_OPEN,
             status=201),
    Endpoint("POST", TARGET + "/incidents/{id}/resolve", api.resolve_incident,
             MODIFY_DEPLOYMENTS, "resolve an open incident (git deploy incident resolve)",
             body=bodies.INCIDENT_RESOLVE),
    Endpoint("GET", TARGET + "/pending", api.pending, VIEW,
             "commits on the branch not yet deployed (git deploy pending)",
             query=(("branch", "[REPO:]BRANCH to compare with"),
                    ("limit", "at most this many commits per repository"))),
    Endpoint("GET", TARGET + "/compare", api.compare, VIEW,
             "what another target's current deployment has that this one's has not "
             "(git deploy compare)", query=(("with", "the other target's key"),)),
    Endpoint("GET", PROJECT + "/metrics", api.metrics, VIEW,
             "deployment frequency, lead time, change failure rate and time to restore, per "
             "target and all together (git deploy metrics)",
             query=(("target", "only this target (repeat, or comma-separated; default: every "
                               "target not archived)"),
                    ("since", "the window's start: a span before until (90d, 12w, 36h) or a "
                              "date (default 90d)"),
                    ("until", "the window's end, not included (default: now)"))),
    Endpoint("GET", PROJECT + "/contains/{commit:path}", api.contains, VIEW,
             "which targets run a commit, and what first shipped it (git deploy contains)",
             query=(("target", "only this target (repeat)"),
                    ("repository", "the repository the commit is in"))),
    *(Endpoint("POST", f"{REFERENCE}/{op}", reference.automation(op), MODIFY_DEPLOYMENTS,
               f"the hosted service's {op}, its body as it is", body=bodies.REFERENCE)
      for op in reference.OPS),
)


def routes() -> list[BaseRoute]:
    from git_deployments.web import pages

    found: list[BaseRoute] = [Route(e.path, auth.guard(e.permission, e.handler),
                                    methods=[e.method], name=f"{e.method.lower()} {e.path}")
                              for e in ENDPOINTS]
    return found + pages.routes()


# --- middleware ---------------------------------------------------------------------------------


# the dashboard's pages load only their own script and style sheet, and nothing frames them
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
SECURITY_HEADER_NAMES = frozenset(name for name, _ in SECURITY_HEADERS)


class EveryAnswer:
    """What every HTTP answer gets, in one pass over it (one layer costs less than three on
    every request):

    - the same security headers: pages, the API, static files and errors;
    - no traceback: an unexpected error is answered 500 with a JSON error and logged in one
      line (the traceback only with --debug);
    - one access-log line on stderr: who, what, the status, the size and how long."""

    def __init__(self, app: ASGIApp, stream: Any = None, debug: bool = False) -> None:
        self.app = app
        self.stream = stream or sys.stderr
        self.debug = debug

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = size = 0

        async def answered(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in SECURITY_HEADER_NAMES]
                message = {**message, "headers": headers + list(SECURITY_HEADERS)}
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, answered)
        except Exception as exc:
            self._internal_error(scope, exc)
            if status:
                raise  # the answer has begun: the connection is cut instead
            response = error_response(ApiError(500, "internal_error",
                                               "internal error (the server's log says more)"))
            await response(scope, receive, answered)
        finally:
            self._log(scope, status, size, time.perf_counter() - started)

    def _internal_error(self, scope: Scope, exc: Exception) -> None:
        text = str(exc).splitlines()[0] if str(exc) else ""
        sys.stderr.write(f"internal error on {scope['method']} {scope['path']}: "
                         f"{type(exc).__name__}: {text}\n")
        if self.debug:
            import traceback

            traceback.print_exc()

    def _log(self, scope: Scope, status: int, size: int, elapsed: float) -> None:
        client = scope.get("client")
        where = f"{client[0]}:{client[1]}" if client else "-"
        user = scope.get("user")
        who = user.display_name if user is not None and user.is_authenticated else "-"
        query = scope.get("query_string", b"").decode("latin-1")
        target = scope["path"] + (f"?{query}" if query else "")
        self.stream.write(f'{where} {who} "{scope["method"]} {target}" {status} {size} '
                          f'{elapsed * 1000:.1f}ms\n')
        self.stream.flush()


def _answer_error(request: Request, error: ApiError) -> Response:
    """JSON for the API, a page for the dashboard."""
    from git_deployments.web import pages

    if pages.is_page(request):
        return pages.error_page(request, error)
    return error_response(error)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _answer_error(request, exc)


async def _deploy_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DeployError)
    return _answer_error(request, from_deploy_error(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    message = {404: f"no such endpoint: {request.url.path}",
               405: f"{request.method} is not allowed on {request.url.path}"}
    return _answer_error(request, ApiError(exc.status_code,
                                           codes.get(exc.status_code, "bad_request"),
                                           message.get(exc.status_code, str(exc.detail)),
                                           dict(exc.headers or {})))


# --- the application ----------------------------------------------------------------------------


def create_app(projects: Projects, *, debug: bool = False, log: Any = None) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        from git_deployments.web import pages
        from git_deployments.web.sessions import SessionStore

        app.state.projects = projects
        app.state.cache = AnswerCache()
        app.state.templates = pages.environment()
        app.state.code_stamp = pages.code_stamp()
        app.state.sessions = SessionStore(projects.tokens.directory / "sessions")
        yield

    return Starlette(
        routes=routes(),
        middleware=[
            Middleware(EveryAnswer, stream=log, debug=debug),
            Middleware(AuthenticationMiddleware, backend=auth.TokenBackend(projects.tokens),
                       on_error=auth.refused),
        ],
        exception_handlers={ApiError: _api_error, DeployError: _deploy_error,
                            HTTPException: _http_error},
        lifespan=lifespan,
    )


@dataclass(frozen=True)
class ServeConfig:
    repo: str | None = None
    root: str | None = None
    debug: bool = False

    def projects(self) -> Projects:
        return Projects(repo=Path(self.repo) if self.repo else None,
                        root=Path(self.root) if self.root else None)

    def to_environment(self) -> str:
        return json.dumps({"repo": self.repo, "root": self.root, "debug": self.debug})

    @classmethod
    def from_environment(cls) -> ServeConfig:
        data = json.loads(os.environ[CONFIG_VARIABLE])
        return cls(repo=data.get("repo"), root=data.get("root"), debug=bool(data.get("debug")))


def from_environment() -> Starlette:
    """The application factory each uvicorn worker calls (the options come from the
    environment `serve` set)."""
    config = ServeConfig.from_environment()
    return create_app(config.projects(), debug=config.debug)
