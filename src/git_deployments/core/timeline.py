"""The timeline's message format, in one place: composing a change's message from its request
and its effects, reading a timeline commit back as a typed entry, and scanning a timeline.

A change's message is derived, never believed: the server hook, fsck and pull recompose it from
the replayed request and require it byte for byte (`derived_mismatch`), author and author date
included. So an entry read here says what the records and the request say.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from git_deployments.core import records
from git_deployments.errors import CorruptRecord
from git_deployments.git.repo import CommitInfo, GitRepo, Person

if TYPE_CHECKING:
    from git_deployments.core.machine import Change, Effect
    from git_deployments.core.model import Request

REF_PREFIX = "refs/deployments/"
TRAILER_REQUEST = "Deploy-Request"
SUBJECT_LIMIT = 200
MAX_JSON_DEPTH = 32  # a recorded request is a few levels deep; deeper is hostile


def _arrow(effect: Effect) -> str:
    return f"{effect.old or 'none'} -> {effect.new or 'deleted'}"


def compose(request: Request, change: Change) -> str:
    """Subject, body, then trailers a person and `git log --format=%(trailers)` can read."""
    lines = [change.subject.replace("\n", " ")[:SUBJECT_LIMIT], ""]
    if change.body:
        lines += [change.body.strip(), ""]
    fields = [("Deploy-Op", str(getattr(request, "op")))]  # noqa: B009 - each op declares it
    record = change.records.get(change.number) if change.number is not None else None
    if change.number is not None:
        fields.append(("Deploy-Number", str(change.number)))
    if change.incident is not None:
        fields.append(("Deploy-Incident", str(change.incident)))
    fields += [("Deploy-Status", _arrow(e)) for e in change.effects if e.number == change.number]
    fields += [("Deploy-Also", f"#{e.number} {_arrow(e)}") for e in change.effects
               if e.number != change.number]
    if record is not None:
        if record.version:
            fields.append(("Deploy-Version", record.version.replace("\n", " ")))
        for ref in record.commits:
            fields.append(("Deploy-Commit", ref.label(short=False)))
        if record.rollback_of:
            fields.append(("Deploy-Rollback-Of", str(record.rollback_of)))
    fields.append(("Deploy-Op-Id", request.op_id))
    payload = request.model_dump(mode="json", exclude_none=True)
    fields.append((TRAILER_REQUEST, json.dumps(payload, separators=(",", ":"),
                                               ensure_ascii=True, sort_keys=True)))
    lines += [f"{name}: {value}" for name, value in fields]
    return "\n".join(lines) + "\n"


def author_of(request: Request) -> Person:
    """Who a change is by: the request's `by`, as the commit's author."""
    return Person.parse(request.by)


def author_time(request: Request) -> int:
    """When a change was asked for: the request's time, as the commit's author date (UTC)."""
    return int(request.at.timestamp())


def derived_mismatch(info: CommitInfo, request: Request, change: Change) -> str | None:
    """Why the commit's message, author or author date is not the one its recorded request and
    its effects give, or None when it is exactly that."""
    if info.message != compose(request, change):
        return "its message is not the one its recorded request gives (edited subject or trailers)"
    if info.author != author_of(request):
        return f"its author is not the request's ({request.by})"
    if info.author_time != author_time(request) or info.author_offset != 0:
        return "its author date is not the request's time"
    return None


# --- reading a commit back ---------------------------------------------------------------------


def trailers(message: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    paragraphs = message.rstrip("\n").split("\n\n")
    for line in paragraphs[-1].splitlines():
        name, sep, value = line.partition(": ")
        if sep and name.startswith("Deploy-"):
            found.setdefault(name, []).append(value)
    return found


def _json_depth_ok(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text nests at most `limit` levels (checked before parsing: a deep document
    would exhaust the parser's recursion)."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return False
        elif char in "]}":
            depth -= 1
    return True


def request_data(message: str, where: str) -> dict[str, Any]:
    """The recorded request of a message as plain JSON data (not yet validated)."""
    values = trailers(message).get(TRAILER_REQUEST)
    if not values:
        raise CorruptRecord(f"{where}: no {TRAILER_REQUEST} trailer")
    text = values[-1]
    if len(text) > records.MAX_RECORD_BYTES:
        raise CorruptRecord(f"{where}: recorded request too large")
    if not _json_depth_ok(text):
        raise CorruptRecord(f"{where}: recorded request is nested too deeply")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CorruptRecord(f"{where}: recorded request is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CorruptRecord(f"{where}: recorded request is not a JSON object")
    return data


def recorded_request(message: str, where: str = "timeline commit") -> Request:
    """The request a timeline commit recorded, validated by the model."""
    from git_deployments.core.model import parse_operation

    data = request_data(message, where)
    try:
        request: Request = parse_operation(data)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise CorruptRecord(f"{where}: recorded request is invalid "
                            f"({str(exc).splitlines()[0]})") from None
    return request


@dataclass(frozen=True)
class Transition:
    """One deployment's status change in one timeline commit (None: created / deleted)."""

    number: int
    old: str | None
    new: str | None

    @classmethod
    def parse(cls, number: int, arrow: str) -> Transition | None:
        old, sep, new = arrow.partition(" -> ")
        if not sep:
            return None
        return cls(number, None if old == "none" else old.strip(),
                   None if new.strip() == "deleted" else new.strip())

    def arrow(self) -> str:
        return f"{self.old or 'none'} -> {self.new or 'deleted'}"


@dataclass(frozen=True)
class Entry:
    """One change of a target's timeline, as its (verified) commit states it."""

    key: str
    commit: str
    parent: str | None
    subject: str
    body: str
    op: str | None
    op_id: str | None
    number: int | None  # the deployment the change is about
    transitions: tuple[Transition, ...]  # the deployment's own first, then the others it moved
    version: str | None
    commits: tuple[tuple[str, str, str], ...]  # (repository, branch, commit id) of the record
    rollback_of: int | None
    author: Person
    time: int  # when it was asked for (unix time)
    message: str
    incident: int | None = None  # the incident the change opened or resolved

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.time, UTC)

    @property
    def created(self) -> int | None:
        """The number of the deployment this change created, if it created one."""
        for transition in self.transitions:
            if transition.number == self.number and transition.old is None:
                return transition.number
        return None

    def request(self) -> Request:
        return recorded_request(self.message, self.commit[:12])

    def request_data(self) -> dict[str, Any]:
        return request_data(self.message, self.commit[:12])

    def as_json(self) -> dict[str, Any]:
        """The shape of `git deploy log --json`."""
        from git_deployments.core.timeutil import iso

        own = [t for t in self.transitions if t.number == self.number]
        return {
            "target": self.key,
            "timeline_commit": self.commit,
            "at": iso(self.at),
            "by": str(self.author),
            "subject": self.subject,
            "op": self.op,
            "number": self.number,
            "status": own[0].arrow() if own else None,
            "also": [f"#{t.number} {t.arrow()}" for t in self.transitions
                     if t.number != self.number],
            "comment": self.comment(),
            "incident": self.incident,
        }

    def comment(self) -> str | None:
        """What a person said with the change: a comment's text, or the reason given with a
        status change; read from the recorded request, never from the message's text."""
        try:
            data = self.request_data()
        except CorruptRecord:
            return None
        said = data.get("text") if data.get("op") == "comment" else data.get("reason")
        return said if isinstance(said, str) and said else None


def _number(text: str | None) -> int | None:
    return int(text) if text and text.isascii() and text.isdigit() and len(text) < 16 else None


def entry(key: str, info: CommitInfo) -> Entry:
    """A timeline commit read back as an entry."""
    from git_deployments.core.model import COMMIT_PATTERN

    found = trailers(info.message)

    def first(name: str) -> str | None:
        values = found.get(name)
        return values[0] if values else None

    number = _number(first("Deploy-Number"))
    transitions: list[Transition] = []
    if number is not None:
        for value in found.get("Deploy-Status", []):
            if (transition := Transition.parse(number, value)) is not None:
                transitions.append(transition)
    for value in found.get("Deploy-Also", []):
        head, _, arrow = value.partition(" ")
        also = _number(head[1:]) if head.startswith("#") else None
        if also is not None and (transition := Transition.parse(also, arrow)) is not None:
            transitions.append(transition)
    refs = []
    for label in found.get("Deploy-Commit", []):
        parts = label.split(":")
        if len(parts) == 3 and COMMIT_PATTERN.match(parts[2]):
            refs.append((parts[0], parts[1], parts[2]))
    versions = found.get("Deploy-Version")
    op_ids = found.get("Deploy-Op-Id")
    subject, _, rest = info.message.partition("\n")
    body = rest.strip("\n").rsplit("\n\n", 1)[0] if "\n\n" in rest.strip("\n") else ""
    return Entry(
        key=key, commit=info.id, parent=info.parents[0] if info.parents else None,
        subject=subject, body=body, op=first("Deploy-Op"), op_id=op_ids[-1] if op_ids else None,
        number=number, transitions=tuple(transitions),
        version=versions[-1] if versions else None, commits=tuple(refs),
        rollback_of=_number(first("Deploy-Rollback-Of")), author=info.author,
        time=info.author_time, message=info.message, incident=_number(first("Deploy-Incident")),
    )


def commits(git: GitRepo, key: str, tip: str | None = None) -> Iterator[CommitInfo]:
    """The commits of a target's timeline, newest first."""
    tip = tip or git.read_ref(REF_PREFIX + key)
    while tip:
        info = git.commit_info(tip)
        yield info
        tip = info.parents[0] if info.parents else None


def entries(git: GitRepo, key: str, tip: str | None = None) -> Iterator[Entry]:
    """The changes of a target's timeline, newest first."""
    for info in commits(git, key, tip):
        yield entry(key, info)
