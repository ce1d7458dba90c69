"""Checking stored history: each timeline commit must be exactly what replaying its recorded
request on its parent produces. Used by fsck and by the server's pre-receive hook."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from git_deployments.core import machine, records, timeline
from git_deployments.core.model import CreateTarget, Request
from git_deployments.core.store import GitOracle, TreeSnapshot
from git_deployments.core.timeutil import format_duration, iso
from git_deployments.errors import CorruptRecord, DeployError
from git_deployments.git.repo import GitRepo

# how far a change that arrives from elsewhere may be dated from the clock, or before the
# change it follows: clocks disagree, and a clone may replay changes made while offline
CLOCK_SKEW = timedelta(days=1)


class _Recorded:
    """The facts a request recorded; anything else asked of the repository."""

    replaying = True  # rules a request did not record did not exist when it was made

    def __init__(self, fallback: machine.Oracle) -> None:
        self.fallback = fallback

    def describe(self, repository: str, commit: str) -> str | None:
        return self.fallback.describe(repository, commit)

    def is_ancestor(self, repository: str, ancestor: str, descendant: str) -> bool | None:
        return self.fallback.is_ancestor(repository, ancestor, descendant)


@dataclass
class Verified:
    commit: str
    request: Request
    change: machine.Change


def verify_commit(git: GitRepo, key: str, commit: str, now: datetime | None = None) -> Verified:
    """Raise CorruptRecord naming `commit` and the reason when it is not a legal change.

    With `now` (what the server hook and pull pass: changes that arrive from elsewhere), a
    change dated more than CLOCK_SKEW ahead of it, or before its parent by more than that, is
    refused too: its time becomes the records' times and the author date everyone reads."""
    short = commit[:12]
    try:
        info = git.commit_info(commit)
    except DeployError as exc:
        raise CorruptRecord(f"{short}: {exc}") from None
    if len(info.parents) > 1:
        raise CorruptRecord(f"{short}: a timeline commit has one parent; this is a merge")
    parent = info.parents[0] if info.parents else None
    request = timeline.recorded_request(info.message, short)
    if request.target != key:
        raise CorruptRecord(f"{short}: records a change to '{request.target}', not '{key}'")
    if (parent is None) != isinstance(request, CreateTarget):
        raise CorruptRecord(f"{short}: a timeline starts with target-create and only there")
    try:
        before = TreeSnapshot(git, key, parent)
    except CorruptRecord as exc:
        raise CorruptRecord(f"{short}: its parent is unreadable: {exc}") from None
    records.check_format(git.read_path(info.tree, "format"), f"{short}")
    try:
        oracle = GitOracle(git, before.target)
        change = machine.apply(before, request, _Recorded(oracle))
    except CorruptRecord as exc:
        raise CorruptRecord(f"{short}: {exc}") from None
    except DeployError as exc:
        raise CorruptRecord(f"{short}: illegal {getattr(request, 'op', '?')}: {exc}") from None
    from git_deployments.core.store import Store

    expected = Store(git).build_tree(before, change)
    if expected != info.tree:
        raise CorruptRecord(f"{short}: its tree is not what its recorded "
                            f"{getattr(request, 'op', '?')} gives on its parent "
                            "(edited records or index, or files outside the layout)")
    # the message, author and author date are derived: recomposed and required exactly
    mismatch = timeline.derived_mismatch(info, request.model_copy(update={"facts": change.facts}),
                                         change)
    if mismatch:
        raise CorruptRecord(f"{short}: {mismatch}")
    if now is not None:
        _check_time(git, short, request, parent, now)
    return Verified(commit=commit, request=request, change=change)


def _check_time(git: GitRepo, short: str, request: Request, parent: str | None,
                now: datetime) -> None:
    if request.at > now + CLOCK_SKEW:
        raise CorruptRecord(f"{short}: it is dated {iso(request.at)}, more than "
                            f"{format_duration(int(CLOCK_SKEW.total_seconds()))} ahead of this "
                            f"clock ({iso(now)})")
    if parent is not None:
        before = datetime.fromtimestamp(git.commit_info(parent).author_time, UTC)
        if request.at < before - CLOCK_SKEW:
            raise CorruptRecord(f"{short}: it is dated {iso(request.at)}, more than "
                                f"{format_duration(int(CLOCK_SKEW.total_seconds()))} before the "
                                "change it follows "
                                f"({iso(before)})")


def verify_index(git: GitRepo, key: str, tip: str) -> None:
    """The full check the replay makes inductive: the index equals what all records say."""
    snap = TreeSnapshot(git, key, tip)
    target, index = snap.require()
    found = snap.all_records()
    if found and index.next_number <= found[-1].number:
        raise CorruptRecord(f"{tip[:12]}: index next_number {index.next_number} is not above "
                            f"the highest record #{found[-1].number}")
    incidents = snap.all_incidents()
    if incidents and index.next_incident <= incidents[-1].id:
        raise CorruptRecord(f"{tip[:12]}: index next_incident {index.next_incident} is not "
                            f"above the highest incident {incidents[-1].id}")
    open_ids = sorted(i.id for i in incidents if i.is_open)
    if index.open_incidents != open_ids:
        missing = sorted(set(index.open_incidents) - set(open_ids))
        raise CorruptRecord(
            f"{tip[:12]}: index.yaml names open incidents {_ids(index.open_incidents)}, the "
            f"records say {_ids(open_ids)}"
            + (f" (missing or resolved: {_ids(missing)})" if missing else ""))
    try:
        expected = machine.derive_index(found, index.next_number, incidents,
                                        index.next_incident)
    except DeployError as exc:
        raise CorruptRecord(f"{tip[:12]}: the records break an invariant: {exc}") from None
    if expected != index:
        raise CorruptRecord(f"{tip[:12]}: index.yaml does not match the records")
    del target


def _ids(ids: list[int]) -> str:
    return ", ".join(str(n) for n in ids) or "none"
