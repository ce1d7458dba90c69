"""Signing in to the dashboard: a pasted token opens a session kept on the server, named in the
browser by an HttpOnly, SameSite=Strict cookie that holds only a random id (never the token).
Sessions are files beside the tokens (`sessions/<sha256 of the id>`), so every worker process
sees the same ones and a restart keeps them; signing out deletes the file. A session is as good
as its token: a revoked or expired token ends it.

Every form carries a CSRF token: the session's own (kept with it on the server) once signed in;
before that, the sign-in form's, which must equal a random HttpOnly cookie set with the form.
`check_form` is the one place a form's token is checked."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from git_deployments.web.http import ApiError

COOKIE = "gd_session"
SIGN_IN_COOKIE = "gd_signin"
CSRF_FIELD = "csrf"
LIFETIME = 12 * 3600
MAX_SESSIONS = 10_000
MAX_FILE = 4096
MAX_FORM = 64 * 1024


@dataclass(frozen=True)
class Session:
    """One signed-in browser: the token it was opened with, and its CSRF token."""

    id: str
    token: str  # the token's name
    digest: str  # the token's digest: a token made again under the name does not inherit it
    csrf: str
    expires: int


def _name(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("ascii", "replace")).hexdigest()


class SessionStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def create(self, token: str, digest: str, expires_at: float | None = None) -> Session:
        """A new session for token `token` (the id is new each time: no fixation)."""
        now = time.time()
        expires = int(min(now + LIFETIME, expires_at if expires_at is not None else now + LIFETIME))
        session = Session(secrets.token_urlsafe(32), token, digest, secrets.token_urlsafe(32),
                          expires)
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._prune(now)
            path = self.directory / _name(session.id)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"token": token, "digest": digest, "csrf": session.csrf,
                           "expires": expires}, handle)
        except OSError as exc:
            raise ApiError(500, "internal_error",
                           f"cannot keep the session in {self.directory}: "
                           f"{exc.strerror or exc}") from None
        return session

    def find(self, session_id: str) -> Session | None:
        """The live session of this id, or None (unknown, malformed or expired)."""
        if not session_id or len(session_id) > 100 or not session_id.isascii():
            return None
        path = self.directory / _name(session_id)
        try:
            with open(path, "rb") as handle:
                raw = handle.read(MAX_FILE + 1)
            data = json.loads(raw) if len(raw) <= MAX_FILE else None
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        token, digest, csrf, expires = (data.get("token"), data.get("digest"), data.get("csrf"),
                                        data.get("expires"))
        if not (isinstance(token, str) and isinstance(digest, str) and isinstance(csrf, str)
                and isinstance(expires, int)):
            return None
        if expires <= time.time():
            path.unlink(missing_ok=True)
            return None
        return Session(session_id, token, digest, csrf, expires)

    def end(self, session_id: str) -> None:
        if session_id and len(session_id) <= 100 and session_id.isascii():
            (self.directory / _name(session_id)).unlink(missing_ok=True)

    def _prune(self, now: float) -> None:
        """Expired sessions go; beyond MAX_SESSIONS the oldest go too."""
        try:
            entries = [(e.stat().st_mtime, Path(e.path)) for e in os.scandir(self.directory)
                       if e.is_file()]
        except OSError:
            return
        entries.sort()
        excess = max(0, len(entries) - MAX_SESSIONS + 1)
        for n, (mtime, path) in enumerate(entries):
            if n < excess or mtime + LIFETIME < now:
                path.unlink(missing_ok=True)


def session_of(conn: HTTPConnection) -> Session | None:
    """The session the request's cookie names (looked up once per request)."""
    if "session" in conn.scope.get("state", {}):
        found: Session | None = conn.scope["state"]["session"]
        return found
    store: SessionStore = conn.app.state.sessions
    cookie = conn.cookies.get(COOKIE)
    found = store.find(cookie) if cookie else None
    conn.scope.setdefault("state", {})["session"] = found
    return found


def _secure(conn: HTTPConnection) -> bool:
    return conn.url.scheme == "https"


def set_session_cookie(response: Response, conn: HTTPConnection, session: Session) -> None:
    response.set_cookie(COOKIE, session.id, max_age=max(0, session.expires - int(time.time())),
                        path="/", httponly=True, samesite="strict", secure=_secure(conn))


def clear_session_cookie(response: Response, conn: HTTPConnection) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                           secure=_secure(conn))


def sign_in_token(conn: HTTPConnection) -> tuple[str, bool]:
    """The CSRF token of the sign-in form: the browser's cookie, or a new one (True: set it)."""
    given = conn.cookies.get(SIGN_IN_COOKIE, "")
    if 20 <= len(given) <= 100 and given.isascii():
        return given, False
    return secrets.token_urlsafe(32), True


def set_sign_in_cookie(response: Response, conn: HTTPConnection, value: str) -> None:
    response.set_cookie(SIGN_IN_COOKIE, value, max_age=3600, path="/", httponly=True,
                        samesite="strict", secure=_secure(conn))


def csrf_token(conn: HTTPConnection) -> str:
    """What this page's forms carry: the session's CSRF token, else the sign-in form's."""
    session = session_of(conn)
    if session is not None:
        return session.csrf
    token: str = conn.scope.setdefault("state", {}).setdefault("csrf", sign_in_token(conn)[0])
    return token


async def check_form(request: Request) -> dict[str, str]:
    """The request's form fields, when its CSRF token is the one its page was given; else
    403. Read within bounds: 64 KiB, 64 fields, each name given once."""
    from urllib.parse import parse_qsl

    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_FORM):
        raise ApiError(413, "too_large", f"the form is over {MAX_FORM // 1024} KiB")
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        raise ApiError(415, "not_a_form", "send the page's form (application/x-www-form-"
                                          "urlencoded)")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM:
            raise ApiError(413, "too_large", f"the form is over {MAX_FORM // 1024} KiB")
        chunks.append(chunk)
    try:
        pairs = parse_qsl(b"".join(chunks).decode("utf-8"), keep_blank_values=True,
                          strict_parsing=False, max_num_fields=64)
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "invalid_form", "the form could not be read") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise ApiError(400, "invalid_form", f"the form gives {name[:40]!r} twice")
        form[name] = value
    given = form.get(CSRF_FIELD, "")
    session = session_of(request)
    expected = session.csrf if session is not None else request.cookies.get(SIGN_IN_COOKIE)
    if not given or not expected or \
            not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        raise ApiError(403, "csrf", "this form is stale or came from another site: reload the "
                                    "page and try again")
    return form


def form_values(form: dict[str, str], names: tuple[str, ...]) -> dict[str, Any]:
    """The non-empty fields of `form` among `names` (an empty field is not given)."""
    return {name: form[name].strip() for name in names if form.get(name, "").strip()}
