"""The records: targets, deployments, the index and the operation requests. No I/O.

Declared as pydantic models are, and judged by pydantic (through core/validation.py, which
spares a command importing it for the plain values it would accept as they are). Every limit a
stored record or a recorded request must keep is here, so the command line, the server's hook,
fsck and pull refuse alike.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from git_deployments.core.validation import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    Record,
    Strict,
    model_validator,
    validate,
)

KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}\Z")  # \Z: "$" would take "x\n"
REPOSITORY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")
COMMIT_PATTERN = re.compile(r"^[0-9a-f]{40}\Z")
MAX_TEXT = 4096
MAX_LINE = 256
MAX_COMMITS = 32
MAX_HISTORY = 1000
# deployment numbers and counts: 12 digits, as the command line takes them
MAX_NUMBER = 999_999_999_999
# hanging_after and failed_after, in seconds
MAX_DURATION = 365 * 24 * 3600
# a health check: how often, how long one probe may take, failures (and successes) in a row
MAX_HEALTH_TIMEOUT = 300
MAX_HEALTH_FAILURES = 100
MAX_HEALTH_ARGS = 64
# the times a record may hold: git dates a change in seconds since 1970, and a time plus any
# duration must still be a date (the latest by far below year 9999, where datetime ends)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
URL_SCHEMES = ("http", "https")


class Status(StrEnum):
    SCHEDULED = "scheduled"
    DEPLOYING = "deploying"
    HANGING = "hanging"
    CURRENT = "current"
    FAILED = "failed"
    COMPLETED = "completed"


IN_FLIGHT = frozenset({Status.DEPLOYING, Status.HANGING})
SUCCESSFUL = frozenset({Status.CURRENT, Status.COMPLETED})


def key_problem(key: str) -> str | None:
    """Why `key` cannot name a target, or None."""
    if not KEY_PATTERN.match(key):
        return "use 1-63 of a-z 0-9 . _ - starting with a letter or digit"
    if ".." in key or key.endswith((".", ".lock")):
        return "must not contain '..' or end in '.' or '.lock'"
    return None


def _key(value: str) -> str:
    problem = key_problem(value)
    if problem:
        raise ValueError(f"invalid target key {value!r}: {problem}")
    return value


def _repository(value: str) -> str:
    if not REPOSITORY_PATTERN.match(value):
        raise ValueError(f"invalid repository name {value!r}")
    return value


def _branch(value: str) -> str:
    if not branch_is_valid(value):
        raise ValueError(f"invalid branch name {value!r}")
    return value


def _commit(value: str) -> str:
    if not COMMIT_PATTERN.match(value):
        raise ValueError(f"invalid commit id {value!r}: a full 40-hex id is stored")
    return value


_ISO_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
                       r"(?:Z|[+-][0-9]{2}:[0-9]{2})?")


def moment_problem(value: datetime) -> str | None:
    """Why `value` (aware) cannot be stored as a time, or None."""
    if not EARLIEST <= value < LATEST:
        return f"must be between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} (UTC)"
    return None


def _moment_input(value: Any) -> Any:
    # times are stored as ISO 8601 text: a number is not a time, nor is any other date format
    if isinstance(value, str):
        if not _ISO_TIME.fullmatch(value):
            raise ValueError("must be an ISO 8601 time such as 2026-05-01T14:00:00Z")
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a date") from None
    return value


def _moment(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("times must carry a time zone")
    try:
        value = value.astimezone(UTC).replace(microsecond=0)
    except (OverflowError, ValueError):
        value = EARLIEST - timedelta(days=1)  # out of range either way
    problem = moment_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def duration_problem(seconds: int) -> str | None:
    """Why `seconds` cannot be a timeout, or None."""
    if not 1 <= seconds <= MAX_DURATION:
        return f"must be between 1s and {MAX_DURATION // 86400}d"
    return None


def _duration(value: int) -> int:
    problem = duration_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def timeouts_problem(hanging_after: int | None, failed_after: int | None) -> str | None:
    """Why a target cannot have these timeouts together, or None: it must be able to hang
    before it fails."""
    if hanging_after is not None and failed_after is not None and hanging_after >= failed_after:
        from git_deployments.core.durations import format_duration

        return (f"hanging after ({format_duration(hanging_after)}) must be shorter than failed "
                f"after ({format_duration(failed_after)})")
    return None


def url_problem(url: str) -> str | None:
    """Why `url` cannot be stored as a link people will open, or None."""
    scheme, sep, rest = url.partition("://")
    host = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if not sep or scheme.lower() not in URL_SCHEMES or not host or \
            any(c.isspace() for c in url):
        return "expected an http:// or https:// URL"
    return None


def _url(value: str) -> str:
    problem = url_problem(value) if value else None
    if problem:
        raise ValueError(problem)
    return value


# control characters (C0, DEL, C1): records are printed on other people's terminals, where an
# escape sequence could rewrite what they see
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # newlines and tabs allowed


def _line(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError("must be a single line")
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def _text(value: str) -> str:
    if _CONTROL_IN_TEXT.search(value):
        raise ValueError("must not contain control characters (other than newlines and tabs)")
    return value


def branch_is_valid(name: str) -> bool:
    """git's refname rules for a branch, without asking git (and no ':' ever)."""
    if not name or len(name) > 200 or name.startswith(("-", "/")) or name.endswith(("/", ".")):
        return False
    if any(c in name for c in " ~^:?*[\\") or _CONTROL.search(name):
        return False
    if ".." in name or "//" in name or "@{" in name or name == "@":
        return False
    return not any(part.startswith(".") or part.endswith(".lock") for part in name.split("/"))


# --- the records ---------------------------------------------------------------------------------

Key = Annotated[str, AfterValidator(_key)]
RepositoryName = Annotated[str, AfterValidator(_repository)]
Branch = Annotated[str, AfterValidator(_branch)]
CommitId = Annotated[str, AfterValidator(_commit)]
# an ISO 8601 text or a time, with its zone, between EARLIEST and LATEST; kept in UTC
Moment = Annotated[datetime, BeforeValidator(_moment_input), AfterValidator(_moment)]
Line = Annotated[str, Field(max_length=MAX_LINE), AfterValidator(_line)]
Text = Annotated[str, Field(max_length=MAX_TEXT), AfterValidator(_text)]
Url = Annotated[str, Field(max_length=MAX_LINE), AfterValidator(_line), AfterValidator(_url)]
Number = Annotated[int, Field(ge=1, le=MAX_NUMBER)]
Count = Annotated[int, Field(ge=0, le=MAX_NUMBER)]
Seconds = Annotated[int, AfterValidator(_duration)]
# stored as its name: the one value strict mode lets be converted
StatusName = Annotated[Status, Strict(False)]


class Stored(Record):
    """Every record: unknown fields refused, values of exactly their type (a number written as
    text is not a number), frozen once made."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    # fields added after the format's first release: left out of the canonical text while they
    # hold their default, so a record written before them keeps its bytes (and its replay)
    OMITTED_AT_DEFAULT: ClassVar[frozenset[str]] = frozenset()


class CommitRef(Stored):
    repository: RepositoryName
    branch: Branch
    commit: CommitId | None = None

    @property
    def branch_key(self) -> tuple[str, str]:
        return (self.repository, self.branch)

    def label(self, short: bool = True) -> str:
        commit = (self.commit[:7] if short else self.commit) if self.commit else "latest"
        return f"{self.repository}:{self.branch}:{commit}"


class ExternalLink(Stored):
    label: Line = ""
    url: Url = ""


class StatusChange(Stored):
    status: StatusName
    at: Moment
    by: Line
    op: Line
    reason: Text | None = None


class Deployment(Stored):
    number: Number
    version: Line | None = None
    status: StatusName
    commits: list[CommitRef] = Field(max_length=MAX_COMMITS)
    description: Text = ""
    external_link: ExternalLink | None = None
    scheduled_for: Moment | None = None
    rollback_of: Number | None = None
    created_at: Moment
    updated_at: Moment
    history: list[StatusChange] = Field(min_length=1, max_length=MAX_HISTORY)

    @property
    def branch_keys(self) -> set[tuple[str, str]]:
        return {ref.branch_key for ref in self.commits}

    @property
    def since(self) -> datetime:
        """When the deployment entered its present status."""
        return self.history[-1].at

    def entered(self, status: Status) -> datetime | None:
        """When the deployment last entered `status` (None if it never did)."""
        for change in reversed(self.history):
            if change.status == status:
                return change.at
        return None

    def title(self) -> str:
        version = self.version or "(no version)"
        several = len(self.commits) > 1  # then each names its repository
        refs = ", ".join(f"{f'{ref.repository}:' if several else ''}{ref.branch}@"
                         f"{ref.commit[:7] if ref.commit else 'latest'}"
                         for ref in self.commits)
        return f"{version} ({refs})" if refs else version


class HealthCheck(Stored):
    """How the watcher probes a target: an http(s) URL (answering 2xx, with `expect` in its
    body if given) or a program run without a shell (exit status 0), every `every` seconds, cut
    off after `timeout`; `failures` in a row open an incident, as many successes resolve it."""

    url: Url | None = None
    expect: Line | None = None
    exec: list[Line] | None = Field(default=None, min_length=1, max_length=MAX_HEALTH_ARGS)
    every: Seconds = 30
    timeout: Annotated[int, Field(ge=1, le=MAX_HEALTH_TIMEOUT)] = 5
    failures: Annotated[int, Field(ge=1, le=MAX_HEALTH_FAILURES)] = 3

    @model_validator(mode="after")
    def one_probe(self) -> Any:
        if (self.url is None) == (self.exec is None):
            raise ValueError("a health check has either a URL or a program, not both")
        if self.expect is not None and self.url is None:
            raise ValueError("expected text is looked for in a URL's answer only")
        if self.timeout > self.every:
            raise ValueError("a health check's timeout must not be longer than its interval")
        return self

    def describe(self) -> str:
        probe = self.url if self.url is not None else " ".join(self.exec or [])
        return f"{probe} every {self.every}s"


class Incident(Stored):
    """Something wrong with what a target runs, from when it opened until it was resolved;
    attributed to a deployment (the current one when it opened, unless one was named)."""

    id: Number
    deployment: Number | None = None
    opened_at: Moment
    opened_by: Line
    reason: Text = ""
    resolved_at: Moment | None = None
    resolved_by: Line | None = None
    resolution: Text | None = None

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class Repository(Stored):
    name: RepositoryName
    location: Line | None = None


class Target(Stored):
    key: Key
    name: Line
    description: Text = ""
    repository: RepositoryName
    repositories: list[Repository] = Field(min_length=1, max_length=MAX_COMMITS)
    manual_controls: bool = False
    hanging_after: Seconds | None = None
    failed_after: Seconds | None = None
    start_requires_schedule: bool = False
    schedule_on_push: list[Branch] = Field(default_factory=list, max_length=64)
    archived: bool = False
    created_at: Moment
    health: HealthCheck | None = None

    OMITTED_AT_DEFAULT = frozenset({"health"})

    @model_validator(mode="after")
    def timeouts_in_order(self) -> Any:
        problem = timeouts_problem(self.hanging_after, self.failed_after)
        if problem:
            raise ValueError(f"invalid timeouts: {problem}")
        return self

    def repository_names(self) -> list[str]:
        return [repo.name for repo in self.repositories]

    def location_of(self, name: str) -> str | None:
        for repo in self.repositories:
            if repo.name == name:
                return repo.location
        return None


class ScheduledEntry(Stored):
    repository: RepositoryName
    branch: Branch
    number: Number


class Index(Stored):
    """Derived summary of the records, so reads and writes never scan history."""

    next_number: Number
    count: Count
    in_flight: Number | None = None
    current: Number | None = None
    scheduled: list[ScheduledEntry] = Field(default_factory=list)
    # incidents: the ids of those open, oldest first, and the id the next one gets
    open_incidents: list[Number] = Field(default_factory=list, max_length=MAX_HISTORY)
    next_incident: Number = 1

    OMITTED_AT_DEFAULT = frozenset({"open_incidents", "next_incident"})

    def scheduled_for(self, branch_keys: set[tuple[str, str]]) -> list[int]:
        """Numbers of scheduled deployments sharing a (repository, branch) with `branch_keys`."""
        found = {e.number for e in self.scheduled if (e.repository, e.branch) in branch_keys}
        return sorted(found)


# --- operation requests: what a change asked for, recorded in its commit ---------------------


class Request(Stored):
    op_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    at: Moment
    by: Line
    target: Key
    # answers the repository gave while the operation was applied (describe, ancestry), so that
    # replaying the request elsewhere gives the same tree
    facts: dict[Line, Line | bool | None] = Field(default_factory=dict, max_length=256)


class TargetSettings(Stored):
    name: Line | None = None
    description: Text | None = None
    repositories: list[Repository] | None = Field(default=None, max_length=MAX_COMMITS)
    manual_controls: bool | None = None
    hanging_after: Seconds | Literal["off"] | None = None
    failed_after: Seconds | Literal["off"] | None = None
    start_requires_schedule: bool | None = None
    schedule_on_push: list[Branch] | None = Field(default=None, max_length=64)
    health: HealthCheck | Literal["off"] | None = None


class CreateTarget(Request):
    op: Literal["target-create"] = "target-create"
    repository: RepositoryName
    settings: TargetSettings


class EditTarget(Request):
    op: Literal["target-edit"] = "target-edit"
    settings: TargetSettings


class ArchiveTarget(Request):
    op: Literal["target-archive"] = "target-archive"
    archived: bool = True


DEPLOY_OPS = ("schedule", "start", "finish", "fail")


class Deploy(Request):
    """schedule, start, finish or fail (and rollback, which starts or finishes an old version)."""

    op: Literal["schedule", "start", "finish", "fail"]
    commits: list[CommitRef] = Field(default_factory=list, max_length=MAX_COMMITS)
    version: Line | None = None
    external_link: ExternalLink | None = None
    description: Text | None = None
    scheduled_for: Moment | None = None
    reason: Text | None = None
    rollback_to: Number | None = None
    # finish/fail: exactly this deployment, which must be in flight (what `run` started)
    number: Number | None = None
    # finish/fail recorded after the fact (history imported from tags): the records' time
    happened_at: Moment | None = None


class SetStatus(Request):
    op: Literal["set-status"] = "set-status"
    number: Number
    status: StatusName
    reason: Text | None = None


class Timeout(Request):
    """The watcher's automatic change: deploying -> hanging, or in flight -> failed."""

    op: Literal["timeout"] = "timeout"
    number: Number
    status: Literal[Status.HANGING, Status.FAILED]


class Edit(Request):
    op: Literal["edit"] = "edit"
    number: Number
    version: Line | None = None
    description: Text | None = None
    external_link: ExternalLink | None = None
    scheduled_for: Moment | None = None


class Delete(Request):
    op: Literal["delete"] = "delete"
    number: Number


class Comment(Request):
    op: Literal["comment"] = "comment"
    number: Number | None = None
    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT), AfterValidator(_text)]


class OpenIncident(Request):
    """An incident opens (by a person, or by the watcher after failed health checks)."""

    op: Literal["incident-open"] = "incident-open"
    # the deployment it is attributed to; None: the current one when it opened
    deployment: Number | None = None
    reason: Text | None = None
    # when it opened, if earlier than the request (recorded after the fact: --at)
    happened_at: Moment | None = None


class ResolveIncident(Request):
    """An open incident is resolved; `id` None: the only one open."""

    op: Literal["incident-resolve"] = "incident-resolve"
    id: Number | None = None
    reason: Text | None = None
    happened_at: Moment | None = None


Operation = Annotated[
    CreateTarget | EditTarget | ArchiveTarget | Deploy | SetStatus | Timeout | Edit | Delete
    | Comment | OpenIncident | ResolveIncident,
    Field(discriminator="op"),
]


def parse_operation(data: Any) -> Request:
    """`data` validated as one of the operations, chosen by its `op` (a recorded request);
    InvalidValue when it is none."""
    request: Request = validate(Operation, data)
    return request
