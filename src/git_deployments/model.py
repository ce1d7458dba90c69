"""The records: targets, deployments, the index and the operation requests. No I/O."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
REPOSITORY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
COMMIT_PATTERN = re.compile(r"^[0-9a-f]{40}$")
MAX_TEXT = 4096
MAX_LINE = 256
MAX_COMMITS = 32
MAX_HISTORY = 1000


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
    if ".." in key or key.endswith(".lock"):
        return "must not contain '..' or end in '.lock'"
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


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("times must carry a time zone")
    return value.astimezone(UTC).replace(microsecond=0)


def _line(value: str) -> str:
    if "\n" in value or "\r" in value or "\x00" in value:
        raise ValueError("must be a single line")
    return value


def branch_is_valid(name: str) -> bool:
    """git's refname rules for a branch, without asking git (and no ':' ever)."""
    if not name or len(name) > 200 or name.startswith(("-", "/")) or name.endswith(("/", ".")):
        return False
    if any(c in name for c in " ~^:?*[\\") or any(ord(c) < 32 or ord(c) == 127 for c in name):
        return False
    if ".." in name or "//" in name or "@{" in name or name == "@":
        return False
    return not any(part.startswith(".") or part.endswith(".lock") for part in name.split("/"))


Key = Annotated[str, AfterValidator(_key)]
RepositoryName = Annotated[str, AfterValidator(_repository)]
Branch = Annotated[str, AfterValidator(_branch)]
CommitId = Annotated[str, AfterValidator(_commit)]
Moment = Annotated[datetime, AfterValidator(_utc)]
Line = Annotated[str, Field(max_length=MAX_LINE), AfterValidator(_line)]
Text = Annotated[str, Field(max_length=MAX_TEXT)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, defer_build=True)


class CommitRef(Strict):
    repository: RepositoryName
    branch: Branch
    commit: CommitId | None = None

    @property
    def branch_key(self) -> tuple[str, str]:
        return (self.repository, self.branch)

    def label(self, short: bool = True) -> str:
        commit = (self.commit[:7] if short else self.commit) if self.commit else "latest"
        return f"{self.repository}:{self.branch}:{commit}"


class ExternalLink(Strict):
    label: Line = ""
    url: Line = ""


class StatusChange(Strict):
    status: Status
    at: Moment
    by: Line
    op: Line
    reason: Text | None = None


class Deployment(Strict):
    number: int = Field(ge=1)
    version: Line | None = None
    status: Status
    commits: list[CommitRef] = Field(max_length=MAX_COMMITS)
    description: Text = ""
    external_link: ExternalLink | None = None
    scheduled_for: Moment | None = None
    rollback_of: int | None = Field(default=None, ge=1)
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
        refs = ", ".join(f"{ref.branch}@{ref.commit[:7] if ref.commit else 'latest'}"
                         for ref in self.commits)
        return f"{version} ({refs})" if refs else version


class Repository(Strict):
    name: RepositoryName
    location: Line | None = None


class Target(Strict):
    key: Key
    name: Line
    description: Text = ""
    repository: RepositoryName
    repositories: list[Repository] = Field(min_length=1, max_length=MAX_COMMITS)
    manual_controls: bool = False
    hanging_after: int | None = Field(default=None, ge=1)
    failed_after: int | None = Field(default=None, ge=1)
    start_requires_schedule: bool = False
    schedule_on_push: list[Branch] = Field(default_factory=list, max_length=64)
    archived: bool = False
    created_at: Moment

    def repository_names(self) -> list[str]:
        return [repo.name for repo in self.repositories]

    def location_of(self, name: str) -> str | None:
        for repo in self.repositories:
            if repo.name == name:
                return repo.location
        return None


class ScheduledEntry(Strict):
    repository: RepositoryName
    branch: Branch
    number: int = Field(ge=1)


class Index(Strict):
    """Derived summary of the records, so reads and writes never scan history."""

    next_number: int = Field(ge=1)
    count: int = Field(ge=0)
    in_flight: int | None = None
    current: int | None = None
    scheduled: list[ScheduledEntry] = Field(default_factory=list)

    def scheduled_for(self, branch_keys: set[tuple[str, str]]) -> list[int]:
        """Numbers of scheduled deployments sharing a (repository, branch) with `branch_keys`."""
        found = {e.number for e in self.scheduled if (e.repository, e.branch) in branch_keys}
        return sorted(found)


# --- operation requests: what a change asked for, recorded in its commit ---------------------


class Request(Strict):
    op_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    at: Moment
    by: Line
    target: Key
    # answers the repository gave while the operation was applied (describe, ancestry), so that
    # replaying the request elsewhere gives the same tree
    facts: dict[str, str | bool | None] = Field(default_factory=dict, max_length=256)


class TargetSettings(Strict):
    name: Line | None = None
    description: Text | None = None
    repositories: list[Repository] | None = Field(default=None, max_length=MAX_COMMITS)
    manual_controls: bool | None = None
    hanging_after: int | Literal["off"] | None = None
    failed_after: int | Literal["off"] | None = None
    start_requires_schedule: bool | None = None
    schedule_on_push: list[Branch] | None = Field(default=None, max_length=64)


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
    rollback_to: int | None = Field(default=None, ge=1)


class SetStatus(Request):
    op: Literal["set-status"] = "set-status"
    number: int = Field(ge=1)
    status: Status
    reason: Text | None = None


class Timeout(Request):
    """The watcher's automatic change: deploying -> hanging, or in flight -> failed."""

    op: Literal["timeout"] = "timeout"
    number: int = Field(ge=1)
    status: Literal[Status.HANGING, Status.FAILED]


class Edit(Request):
    op: Literal["edit"] = "edit"
    number: int = Field(ge=1)
    version: Line | None = None
    description: Text | None = None
    external_link: ExternalLink | None = None
    scheduled_for: Moment | None = None


class Delete(Request):
    op: Literal["delete"] = "delete"
    number: int = Field(ge=1)


class Comment(Request):
    op: Literal["comment"] = "comment"
    number: int | None = Field(default=None, ge=1)
    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]


Operation = Annotated[
    Union[CreateTarget, EditTarget, ArchiveTarget, Deploy, SetStatus, Timeout, Edit, Delete,
          Comment],
    Field(discriminator="op"),
]
