"""Reads answered from memory: each GET answer is kept under the ref tips it was computed from
(and the repository's config stamp), which are read again on every request. A ref moved by any
writer — this server, `git deploy`, a push, the watcher, another server process — gives a new
key, so the next answer is computed afresh; an unchanged one is served from here, and an
`If-None-Match` naming its ETag is answered 304 without computing anything."""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Sequence
from threading import Lock
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from git_deployments.web.http import JSON_TYPE, encode
from git_deployments.web.queries import HEALTH

if TYPE_CHECKING:
    from git_deployments.web.projects import Project
    from git_deployments.web.queries import Query

MAX_ENTRIES = 2048
MAX_BYTES = 64 << 20
STABLE_TRIES = 3
# what every answer may be served again under: revalidate with the ETag each time
CACHE_HEADERS = {"Cache-Control": "no-cache", "Vary": "Authorization, Cookie"}

class Answer:
    """A kept answer: its body and headers, as one response sent again to everyone who asks
    (a Starlette Response is not changed by being sent), and the data the body encodes, for a
    page to render."""

    def __init__(self, etag: str, body: bytes, headers: tuple[tuple[str, str], ...] = (),
                 data: Any = None) -> None:
        self.etag = etag
        self.body = body
        self.headers = headers
        self.data = data
        self._response = Response(body, media_type=JSON_TYPE,
                                  headers={**CACHE_HEADERS, "ETag": etag, **dict(headers)})

    def response(self) -> Response:
        return self._response


class AnswerCache:
    """Answers by key, the least recently used dropped first beyond a count or a size; and the
    ETags of the states last seen."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._answers: OrderedDict[str, Answer] = OrderedDict()
        self._bytes = 0
        self._lock = Lock()
        self.hits = 0
        self.misses = 0
        self._etags: dict[tuple[Any, ...], str] = {}

    def etag(self, project: Project, query: Query, state: tuple[Any, ...]) -> str:
        """etag_of(project, query.path, query.params, state), remembered by its arguments: an
        unchanged state is hashed and compared, not written out and digested again."""
        key = (project.name, query.path, query.params, state)
        found = self._etags.get(key)
        if found is None:
            found = etag_of(project, query.path, query.params, state)
            if len(self._etags) >= self.max_entries:
                self._etags.clear()  # states come and go: forget them all now and then
            self._etags[key] = found
        return found

    def get(self, etag: str) -> Answer | None:
        with self._lock:
            answer = self._answers.get(etag)
            if answer is None:
                self.misses += 1
                return None
            self._answers.move_to_end(etag)
            self.hits += 1
            return answer

    def put(self, answer: Answer) -> None:
        if len(answer.body) > self.max_bytes // 4:
            return  # one huge answer would push out everything else
        with self._lock:
            old = self._answers.pop(answer.etag, None)
            if old is not None:
                self._bytes -= len(old.body)
            self._answers[answer.etag] = answer
            self._bytes += len(answer.body)
            while len(self._answers) > self.max_entries or self._bytes > self.max_bytes:
                _, dropped = self._answers.popitem(last=False)
                self._bytes -= len(dropped.body)


def fingerprint(project: Project, sources: Sequence[str]) -> tuple[Any, ...]:
    """The tips of the refs an answer depends on, the config stamp, and the health checks'
    results where the answer shows them."""
    packed = project.refs.packed()  # one look at packed-refs for every source
    parts: list[Any] = [project.config_stamp()]
    for source in sources:
        if source == HEALTH:
            parts.append(project.health_stamp())
        elif source.endswith("/"):
            parts.append(project.refs.tips(source, packed))
        else:
            parts.append((source, project.refs.tip(source, packed)))
    return tuple(parts)


def etag_of(project: Project, path: str, params: Sequence[tuple[str, str]],
            state: tuple[Any, ...]) -> str:
    key = repr((project.name, path, sorted(params), state))
    return '"' + hashlib.blake2b(key.encode("utf-8", "surrogateescape"),
                                 digest_size=16).hexdigest() + '"'


def _matches(request: Request, etag: str) -> bool:
    given = request.headers.get("if-none-match")
    if given is None:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in given.split(",")]
    return etag in tags or "*" in tags


def not_modified(etag: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=304, headers={**(headers or CACHE_HEADERS), "ETag": etag})


async def fetch(cache: AnswerCache, project: Project, query: Query,
                seen: tuple[tuple[Any, ...], str] | None = None) -> Answer:
    """A query's answer: from memory when the tips are unchanged, else computed (in a worker
    thread) and kept — only when the tips did not move meanwhile, so a kept answer always
    belongs to its key. `seen`: the tips and their ETag the caller has just read."""
    for _ in range(STABLE_TRIES):
        if seen is not None:
            (before, etag), seen = seen, None
        else:
            before = fingerprint(project, query.sources)
            etag = cache.etag(project, query, before)
        kept = cache.get(etag)
        if kept is not None:
            return kept

        def work() -> tuple[Any, bytes, tuple[tuple[str, str], ...]]:
            data = query.compute(project.store())  # a long answer is encoded off the loop too
            found = tuple((query.next_page(data) if query.next_page else {}).items())
            return data, encode(data), found

        data, body, extra_headers = await run_in_threadpool(work)
        if fingerprint(project, query.sources) == before:
            fresh = Answer(etag, body, extra_headers, data)
            cache.put(fresh)
            return fresh
    # still moving after every try: what was read is answered, under a tag no later request
    # can match (it belongs to no one state of the refs)
    once = etag_of(project, query.path, query.params, (os.urandom(16),))
    return Answer(once, body, extra_headers, data)


async def answer(request: Request, project: Project, query: Query) -> Response:
    """A GET's answer: 304 when the client has it (nothing computed), else `fetch`'s."""
    kept: AnswerCache = request.app.state.cache
    state = fingerprint(project, query.sources)
    etag = kept.etag(project, query, state)
    if _matches(request, etag):
        return not_modified(etag)
    found = await fetch(kept, project, query, (state, etag))
    return found.response()


def answer_now(request: Request, state: Any, data: Any) -> Response:
    """An answer computed on the spot from `state` (the tips it was read from), with the same
    ETag and 304 as the kept ones."""
    key = repr((request.scope["path"], request.scope["query_string"], state))
    etag = '"' + hashlib.blake2b(key.encode("utf-8", "surrogateescape"),
                                 digest_size=16).hexdigest() + '"'
    if _matches(request, etag):
        return Response(status_code=304, headers={**CACHE_HEADERS, "ETag": etag})
    return Answer(etag, encode(data)).response()
