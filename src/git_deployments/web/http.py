"""HTTP as clients expect it: JSON answers, errors as `{"error": {"code", "message"}}` with the
status a client can act on, and request bodies read within bounds."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from git_deployments.errors import (
    ConflictError,
    CorruptRecord,
    DeployError,
    InternalError,
    NotFound,
    RuleViolation,
)

MAX_BODY = 64 * 1024
JSON_TYPE = "application/json"


class ApiError(Exception):
    """An answer other than success: its status, a code for programs, a message for people."""

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def from_deploy_error(exc: DeployError) -> ApiError:
    """The refusals of the services, as the CLI words them, with the status that fits."""
    message = str(exc)
    if isinstance(exc, NotFound):
        return ApiError(404, "not_found", message)
    if isinstance(exc, RuleViolation):
        return ApiError(409, "refused", message)
    if isinstance(exc, ConflictError):
        return ApiError(409, "conflict", message)
    if isinstance(exc, CorruptRecord):
        return ApiError(500, "corrupt_record", message)
    if isinstance(exc, InternalError):
        return ApiError(500, "internal_error", message)
    return ApiError(400, "invalid_value", message)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        from git_deployments.core.timeutil import iso

        return iso(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def encode(data: Any) -> bytes:
    return (json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=_default)
            + "\n").encode("utf-8")


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> Response:
    return Response(encode(data), status_code=status, headers=headers, media_type=JSON_TYPE)


def error_response(error: ApiError) -> Response:
    return json_response({"error": {"code": error.code, "message": error.message}},
                         error.status, error.headers)


async def read_json(request: Request) -> dict[str, Any]:
    """The request's body as a JSON object: none at all is `{}`; over 64 KiB is 413, another
    content type 415, anything but an object 400."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        raise ApiError(413, "too_large", f"the request body is over {MAX_BODY // 1024} KiB")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise ApiError(413, "too_large", f"the request body is over {MAX_BODY // 1024} KiB")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != JSON_TYPE and not (media.startswith("application/") and media.endswith("+json")):
        raise ApiError(415, "not_json", f"the request body must be JSON (Content-Type: "
                                        f"{JSON_TYPE}), not {media or 'untyped'}")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(400, "invalid_json", "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the request body must be a JSON object")
    return data
