"""Who is asking, and whether they may: the one place permissions are checked.

A request carries `Authorization: Bearer <secret>`. The middleware (Starlette's, with the
backend below) turns a valid token into the request's user and its permissions as scopes; an
unknown, expired or revoked token is refused there (401). Each route names the permission it
needs, and `guard` checks it: the reference's three permissions, a token's project, and
anonymous reading where a project's operator turned it on."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    BaseUser,
)
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from git_deployments.access.tokens import PERMISSION_NAMES, VIEW, Token, TokenStore
from git_deployments.core.intake import clock
from git_deployments.errors import DeployError, NotFound
from git_deployments.web.http import ApiError, error_response, from_deploy_error
from git_deployments.web.sessions import COOKIE, Session

if TYPE_CHECKING:
    from git_deployments.web.projects import Project, Projects

Endpoint = Callable[[Request, "Project | None"], Awaitable[Response]]
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="git-deploy"'}


class TokenUser(BaseUser):
    def __init__(self, token: Token, session: Session | None = None) -> None:
        self.token = token
        self.session = session  # set when the token came from a dashboard session

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return f"token:{self.token.name}"

    @property
    def identity(self) -> str:
        """Who a change made through this request is recorded as."""
        return self.token.identity


class TokenBackend(AuthenticationBackend):
    def __init__(self, tokens: TokenStore) -> None:
        self.tokens = tokens

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        header = conn.headers.get("authorization")
        if header is None:
            return self._from_session(conn)
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise AuthenticationError("the Authorization header must be 'Bearer <token>'")
        try:
            token = self.tokens.find(secret.strip())
        except DeployError as exc:  # the token file cannot be read: nobody gets in
            raise AuthenticationError(f"tokens cannot be checked: {exc}") from None
        if token is None:
            raise AuthenticationError("unknown token")
        if token.revoked_at is not None or token.expires_at is not None:  # else always active
            state = token.state(clock())
            if state != "active":
                raise AuthenticationError(f"token '{token.name}' is {state}")
        return AuthCredentials(list(token.permissions)), TokenUser(token)


    def _from_session(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        """A dashboard session's token, while the token is active. A session opens pages and
        reads; a write through the API needs the token itself (a form's CSRF token is checked
        by the page that takes it, and the API takes no forms)."""
        from git_deployments.web.sessions import session_of

        if conn.scope["type"] != "http" or COOKIE not in conn.cookies:
            return None
        if conn.url.path.startswith("/api/") and conn.scope["method"] not in ("GET", "HEAD"):
            return None
        session = session_of(conn)
        if session is None:
            return None
        try:
            tokens = self.tokens.tokens()
        except DeployError:
            return None
        for token in tokens:
            if token.name == session.token and hmac.compare_digest(token.digest, session.digest):
                if token.state(clock()) != "active":
                    return None
                return AuthCredentials(list(token.permissions)), TokenUser(token, session)
        return None


def refused(conn: HTTPConnection, exc: AuthenticationError) -> Response:
    return error_response(ApiError(401, "unauthorized", str(exc), CHALLENGE))


def _unauthorized() -> ApiError:
    return ApiError(401, "unauthorized", "this needs a token: send 'Authorization: Bearer "
                                         "<secret>' (see git deploy token create)", CHALLENGE)


def check(request: Request, permission: str, project: Project | None) -> None:
    """Allow the request, or raise 401 (no token) or 403 (not this permission or project)."""
    user = request.user
    if not isinstance(user, TokenUser):
        if permission == VIEW and project is not None and project.anonymous_read():
            return
        raise _unauthorized()
    where = f" on project '{project.name}'" if project is not None else ""
    if permission not in request.auth.scopes:
        raise ApiError(403, "forbidden", f"token '{user.token.name}' may not "
                                         f"{PERMISSION_NAMES[permission]}{where}")
    if not user.token.allows(permission, project.name if project is not None else None):
        raise ApiError(403, "forbidden", f"token '{user.token.name}' is for project "
                                         f"'{user.token.project}' only")


def allowed(request: Request, permission: str, project: Project | None) -> bool:
    """Whether the asker may do what `permission` names on `project` (pages show a control
    only where it is)."""
    try:
        check(request, permission, project)
    except ApiError:
        return False
    return True


def visible(request: Request, project: Project) -> bool:
    """Whether the asker may read `project` (for listings that span projects)."""
    try:
        check(request, VIEW, project)
    except ApiError:
        return False
    return True


def guard(permission: str | None, endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    """`endpoint` behind `permission` (None: open to everyone), with its project found."""

    async def guarded(request: Request) -> Response:
        projects: Projects = request.app.state.projects
        project = None
        text = request.path_params.get("project")
        if text is not None:
            try:
                project = projects.find(text)
            except NotFound as exc:
                if permission is not None and not isinstance(request.user, TokenUser):
                    raise _unauthorized() from None  # names of projects are not told to strangers
                raise from_deploy_error(exc) from None
        if permission is not None:
            check(request, permission, project)
        return await endpoint(request, project)

    guarded.__name__ = getattr(endpoint, "__name__", "endpoint")
    return guarded


def readable_projects(request: Request) -> list[Project]:
    """The projects the asker may read: a token's (all, or its one project), or without a
    token those open to anonymous reading; 401/403 when that is none at all."""
    projects: Projects = request.app.state.projects
    user = request.user
    if isinstance(user, TokenUser):
        check(request, VIEW, None)
        return [p for p in projects.all() if user.token.allows(VIEW, p.name)]
    found = [p for p in projects.all() if p.anonymous_read()]
    if not found:
        raise _unauthorized()
    return found
