"""One route of the server, declared as data: the route list (app.py) and the OpenAPI document
(openapi.py) are both made from these."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from git_deployments.web.bodies import Body

Handler = Callable[[Request, Any], Awaitable[Response]]


@dataclass(frozen=True)
class Endpoint:
    """One route: what it answers, and the permission it needs (None: open to all)."""

    method: str
    path: str
    handler: Handler
    permission: str | None
    summary: str
    body: Body | None = None
    query: tuple[tuple[str, str], ...] = ()
    status: int = 200
    needs: str | None = None  # what the document says it needs, when it checks by itself
