"""Deployment history from release tags (`git deploy import-tags`): one `finish` per matching tag,
oldest first, each written through the one write path like any other change.

A timeline is dated in order: no change is dated before its parent. Into a target the import
creates, the create is dated by the oldest tag and every change by its tag. A target that exists
but has no deployment yet (created a moment before, say) takes tags older than its newest change
as well: their changes are dated when they are written, and each carries its tag's time as
`happened_at`, the time its records give the deployment — so `list` and `show` tell when each
release went out, and `git log` when it was recorded. A target with deployments takes only tags
newer than its newest change: an older one would change what it says ran where, after the fact.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from git_deployments.core import intake
from git_deployments.core.model import CommitRef, CreateTarget, Deploy, branch_is_valid
from git_deployments.core.store import Store
from git_deployments.core.timeutil import iso
from git_deployments.errors import DeployError
from git_deployments.git.repo import GitRepo, TagInfo
from git_deployments.history.questions import scan_timeline


@dataclass
class TagImport:
    """What an import will write, decided before anything is."""

    key: str
    branch: str
    repository: str  # the target's repository, where the tags are
    create: bool  # the target does not exist: the import creates it
    todo: list[TagInfo]
    skipped: list[TagInfo]  # imported before
    newest: int | None  # the time of the target's newest change; None when it is created

    def create_request(self, git: GitRepo) -> CreateTarget | None:
        if not self.create:
            return None
        return intake.new_request(CreateTarget, git, self.key, repository=self.repository,
                                  settings={}, at=_moment(self.todo[0].time))

    def requests(self, git: GitRepo) -> Iterator[tuple[TagInfo, Deploy]]:
        """Each tag's request, built when it is about to be written (after the one before)."""
        floor = self.todo[0].time if self.create else self.newest
        for tag in self.todo:
            dated: dict[str, datetime] = {"at": _moment(tag.time)}
            if floor is not None and tag.time < floor:
                # older than the timeline's newest change: recorded now, happened then
                dated = {"at": max(intake.clock(), _moment(floor)),
                         "happened_at": _moment(tag.time)}
            floor = int(dated["at"].timestamp())
            yield tag, intake.new_request(
                Deploy, git, self.key, op="finish", version=tag.name,
                commits=[CommitRef(repository=self.repository, branch=self.branch,
                                   commit=tag.commit)],
                by=str(tag.person), reason=f"imported from tag {tag.name}", **dated)


def _moment(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


def _natural(text: str) -> list[tuple[int, int, str]]:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in re.split(r"(\d+)", text) if part]


def plan_import(store: Store, key: str, pattern: str = "v*",
                branch: str | None = None) -> TagImport:
    """The tags matching `pattern` (a glob), oldest first, that `key` has not imported yet;
    refused (DeployError) when they cannot be appended to its timeline."""
    git = store.git
    tags = []
    for name, _ in git.list_refs("refs/tags/"):
        if fnmatch.fnmatchcase(name[len("refs/tags/"):], pattern):
            info = git.tag_info(name)
            if info is not None:
                tags.append(info)
    if not tags:
        raise DeployError(f"no tag matches {pattern!r} (tags that lead to a commit)")
    tags.sort(key=lambda t: (t.time, _natural(t.name)))
    branch = branch or git.head()[0]
    if branch is None:
        raise DeployError("HEAD is detached: pass --branch, the branch the releases were made on")
    if not branch_is_valid(branch):
        raise DeployError(f"invalid branch name {branch!r}")
    snap = store.snapshot(key)
    if snap.tip is None:
        return TagImport(key, branch, git.default_repository_name(), create=True, todo=tags,
                         skipped=[], newest=None)
    target, index = snap.require()
    if target.archived:
        raise DeployError(f"target '{key}' is archived; 'git deploy target unarchive {key}' "
                          "to use it")
    scan = scan_timeline(git, key)
    seen = {(t.version, c) for t in scan.deployments.values() if t.status != "deleted"
            for r, _, c in t.commits or [] if r == target.repository}
    todo = [t for t in tags if (t.name, t.commit) not in seen]
    newest = git.commit_info(snap.tip).author_time
    older = [t for t in todo if t.time < newest]
    if older and index.next_number > 1:
        raise DeployError(
            f"tag {older[0].name} ({iso(_moment(older[0].time))}) is older than the newest "
            f"change of target '{key}' ({iso(_moment(newest))}), which has deployments: its "
            "history is appended in time order; import into a new target, or narrow --pattern")
    return TagImport(key, branch, target.repository, create=False, todo=todo,
                     skipped=[t for t in tags if (t.name, t.commit) in seen], newest=newest)
