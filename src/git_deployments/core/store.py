"""A target's state at a tip of its timeline, and the one write path: lock, apply, commit, CAS."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from git_deployments.core import records, timeline
from git_deployments.core.locking import target_lock
from git_deployments.core.model import (
    Deployment,
    Incident,
    Index,
    Request,
    Target,
    key_problem,
)
from git_deployments.core.timeline import REF_PREFIX
from git_deployments.errors import ConflictError, CorruptRecord, DeployError, NotFound
from git_deployments.git.repo import CommitInfo, GitRepo, RaceLost, open_repository

if TYPE_CHECKING:
    from typing import Protocol

    from git_deployments.core.machine import Change, Oracle

    class Snapshot(Protocol):
        """What changed_files reads of the state before a change."""

        tree: str | None

        @property
        def target(self) -> Target | None: ...

        @property
        def index(self) -> Index | None: ...

LOCK_TIMEOUT = 60.0
MAX_TRIES = 12


def ref_name(key: str) -> str:
    return REF_PREFIX + key


def record_path(number: int) -> str:
    """`deployments/1/2/123.yaml`: one directory level per leading digit, so every tree on
    the path stays small (at most 20 entries) however long the history grows."""
    digits = str(number)
    return "deployments/" + "".join(f"{d}/" for d in digits[:-1]) + f"{digits}.yaml"


def incident_path(number: int) -> str:
    """`incidents/1/12.yaml`: laid out as the deployments are."""
    return "incidents/" + record_path(number).removeprefix("deployments/")


def check_key(key: str) -> str:
    problem = key_problem(key)
    if problem:
        raise DeployError(f"invalid target key {key!r}: {problem}")
    return key


class TreeSnapshot:
    """The state of one target as stored in one commit of its timeline."""

    def __init__(self, git: GitRepo, key: str, tip: str | None) -> None:
        self.git = git
        self.key = key
        self.tip = tip
        self.where = f"{ref_name(key)}@{tip[:12]}" if tip else ref_name(key)
        self.tree: str | None = None
        if tip is not None:
            self.tree = git.tree_of(tip)
            records.check_format(git.read_path(self.tree, "format"), self.where)

    def _blob(self, path: str) -> bytes | None:
        return self.git.read_path(self.tree, path) if self.tree else None

    @cached_property
    def target(self) -> Target | None:
        raw = self._blob("target.yaml")
        if raw is None:
            if self.tree is not None:
                raise CorruptRecord(f"{self.where}: target.yaml is missing")
            return None
        target = records.load(Target, raw, f"{self.where}:target.yaml")
        if target.key != self.key:
            raise CorruptRecord(f"{self.where}: target.yaml names '{target.key}', not '{self.key}'")
        return target

    @cached_property
    def index(self) -> Index | None:
        raw = self._blob("index.yaml")
        if raw is None:
            if self.tree is not None:
                raise CorruptRecord(f"{self.where}: index.yaml is missing")
            return None
        return records.load(Index, raw, f"{self.where}:index.yaml", records.MAX_INDEX_BYTES)

    def record(self, number: int) -> Deployment | None:
        path = record_path(number)
        raw = self._blob(path)
        if raw is None:
            return None
        record = records.load(Deployment, raw, f"{self.where}:{path}")
        if record.number != number:
            raise CorruptRecord(f"{self.where}:{path} holds deployment #{record.number}")
        return record

    def incident(self, number: int) -> Incident | None:
        path = incident_path(number)
        raw = self._blob(path)
        if raw is None:
            return None
        incident = records.load(Incident, raw, f"{self.where}:{path}")
        if incident.id != number:
            raise CorruptRecord(f"{self.where}:{path} holds incident {incident.id}")
        return incident

    def open_incidents(self) -> list[Incident]:
        """The incidents open now, oldest first (read through the index: no scan)."""
        index = self.index
        if index is None:
            return []
        found = []
        for number in index.open_incidents:
            incident = self.incident(number)
            if incident is None:
                raise CorruptRecord(f"{self.where}: index.yaml names incident {number}, "
                                    "which is missing")
            found.append(incident)
        return found

    def all_incidents(self) -> list[Incident]:
        """Every incident in the tree, by id (a full scan: for listing, metrics and fsck)."""
        tree = self.git.subtree(self.tree, "incidents") if self.tree else None
        if tree is None:
            return []
        found = []
        for path, oid, _mode in self.git.walk_tree(tree, "incidents/"):
            raw = self.git.read_blob(oid)
            incident = records.load(Incident, raw, f"{self.where}:{path}")
            if path != incident_path(incident.id):
                raise CorruptRecord(f"{self.where}:{path} holds incident {incident.id}")
            found.append(incident)
        return sorted(found, key=lambda i: i.id)

    def require(self) -> tuple[Target, Index]:
        if self.target is None or self.index is None:
            raise NotFound(f"unknown target '{self.key}'")
        return self.target, self.index

    def all_records(self) -> list[Deployment]:
        """Every record in the tree, by number (a full scan: for listing and fsck)."""
        if self.tree is None:
            return []
        found = []
        for path, oid, _mode in self.git.walk_tree(self.tree):
            if not path.startswith("deployments/"):
                continue
            raw = self.git.read_blob(oid)
            found.append(records.load(Deployment, raw, f"{self.where}:{path}"))
        return sorted(found, key=lambda r: r.number)


@dataclass
class WriteResult:
    key: str
    commit: str
    change: Change
    request: Request

    @property
    def record(self) -> Deployment | None:
        if self.change.number is None:
            return None
        return self.change.records.get(self.change.number)


class GitOracle:
    """Answers the machine's questions from this repository (and other local repositories the
    target records); None where the commit or repository is not available."""

    def __init__(self, git: GitRepo, target: Target | None) -> None:
        self.git = git
        self.target = target
        self._others: dict[str, GitRepo | None] = {}

    def repo_for(self, name: str) -> GitRepo | None:
        if self.target is None or name == self.target.repository:
            return self.git
        if name not in self._others:
            location = self.target.location_of(name)
            repo = None
            path = self.path_of(location) if location else None
            if path is not None and path.exists():
                try:
                    repo = self.git.open_other(path)
                except DeployError:
                    repo = None
            self._others[name] = repo
        return self._others[name]

    def path_of(self, location: str) -> Path | None:
        """Where a recorded location is here: `~` is the home directory, and a relative one
        is relative to the repository's top level (its git directory when bare), so a team
        can record `../lib` for checkouts side by side."""
        if location.startswith("-"):
            return None
        path = Path(location).expanduser()
        if not path.is_absolute():
            path = (self.git.workdir or self.git.git_dir) / path
        return path

    def describe(self, repository: str, commit: str) -> str | None:
        repo = self.repo_for(repository)
        if repo is None or not repo.has_object(commit):
            return None
        return repo.describe(commit)

    def is_ancestor(self, repository: str, ancestor: str, descendant: str) -> bool | None:
        repo = self.repo_for(repository)
        if repo is None or not (repo.has_object(ancestor) and repo.has_object(descendant)):
            return None
        return repo.is_ancestor(ancestor, descendant)


class Store:
    def __init__(self, git: GitRepo) -> None:
        self.git = git

    # --- reading ---

    def keys(self) -> list[str]:
        keys = []
        for name, _ in self.git.list_refs(REF_PREFIX):
            key = name[len(REF_PREFIX):]
            if key_problem(key) is None:
                keys.append(key)
        return keys

    def snapshot(self, key: str, tip: str | None = None) -> TreeSnapshot:
        check_key(key)
        if tip is None:
            tip = self.git.read_ref(ref_name(key))
        return TreeSnapshot(self.git, key, tip)

    def existing(self, key: str) -> TreeSnapshot:
        snap = self.snapshot(key)
        if snap.tip is None:
            known = ", ".join(self.keys()) or "none yet; create one with 'git deploy target create'"
            raise NotFound(f"unknown target '{key}' (targets: {known})")
        return snap

    def deployment(self, key: str, number: int) -> tuple[TreeSnapshot, Deployment]:
        snap = self.existing(key)
        record = snap.record(number)
        if record is None:
            raise NotFound(f"target '{key}' has no deployment #{number}")
        return snap, record

    def timeline(self, key: str, tip: str | None = None) -> Iterator[CommitInfo]:
        """The commits of a target's timeline, newest first."""
        return timeline.commits(self.git, key, tip)

    # --- writing ---

    def lock_path(self, key: str) -> Path:
        # in the shared git directory: writers in two worktrees of one repository write the
        # same refs, so they must take the same lock
        return self.git.common_dir / "git-deployments" / "locks" / f"{key}.lock"

    def lock(self, key: str) -> Any:
        """The target's write lock (a context manager; `acquire(timeout=)` raises filelock's
        Timeout, as filelock's own FileLock does)."""
        path = self.lock_path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DeployError(f"cannot write to the repository ({path.parent}): "
                              f"{exc.strerror or exc}") from None
        return target_lock(path, LOCK_TIMEOUT)

    def write(self, request: Request, oracle: Oracle | None = None) -> WriteResult:
        """Apply `request` to the tip of its target and move the ref, atomically."""
        key = check_key(request.target)
        lock = self.lock(key)
        try:
            with lock:
                return self._write_locked(key, request, oracle)
        except DeployError:
            raise
        except OSError as exc:  # the lock file: a read-only repository, a full disk
            raise DeployError(f"cannot write to the repository: {exc.strerror or exc}") from None
        except Exception as exc:
            from filelock import Timeout as LockTimeout  # named only when something went wrong

            if not isinstance(exc, LockTimeout):
                raise
            raise ConflictError(
                f"another git deploy has held the lock on target '{key}' for "
                f"{LOCK_TIMEOUT:.0f}s ({self.lock_path(key)}); try again") from None

    def _write_locked(self, key: str, request: Request, oracle: Oracle | None) -> WriteResult:
        ref = ref_name(key)
        for attempt in range(MAX_TRIES):
            tip = self.git.read_ref(ref)
            result = self.prepare(key, tip, request, oracle)
            try:
                self.git.update_ref(ref, result.commit, tip,
                                    f"git-deploy: {result.change.subject}")
            except RaceLost:
                # someone moved the ref without our lock (a fetch, another clone's push)
                import random

                time.sleep(min(2.0, 0.01 * 2 ** attempt) * random.uniform(0.5, 1.5))
                continue
            self._keep_deployed(key, result)
            return result
        raise ConflictError(f"target '{key}' kept changing under this write ({MAX_TRIES} tries); "
                            "try again")

    def _keep_deployed(self, key: str, result: WriteResult) -> None:
        """Make the commits the change's records point at reachable from the keep-alive ref,
        so gc never prunes them; best effort: the write has happened whatever this does."""
        try:
            from git_deployments.core import keepalive

            records = result.change.records.values()
            keepalive.retain(self.git, key, keepalive.home_commits(result.change.target, records))
        except Exception:  # noqa: BLE001 - never fail a recorded write over its keep-alive ref
            pass

    def prepare(self, key: str, tip: str | None, request: Request,
                oracle: Oracle | None = None) -> WriteResult:
        """The timeline commit `request` makes on `tip`, written but on no ref yet: the core of
        every write, and what sync uses to replay an operation onto another tip."""
        from git_deployments.core import machine

        snap = TreeSnapshot(self.git, key, tip)
        change = machine.apply(snap, request, oracle or GitOracle(self.git, snap.target))
        recorded = request.model_copy(update={"facts": change.facts})
        tree = self.build_tree(snap, change)
        commit = self.git.create_commit(tree, [tip] if tip else [],
                                        timeline.compose(recorded, change),
                                        timeline.author_of(recorded),
                                        timeline.author_time(recorded))
        return WriteResult(key=key, commit=commit, change=change, request=recorded)

    def build_tree(self, snap: TreeSnapshot, change: Change) -> str:
        return self.git.write_tree(snap.tree, changed_files(snap, change))


def changed_files(snap: Snapshot, change: Change) -> dict[str, bytes | None]:
    """What `change` writes over the tree of `snap` (None: the path is removed). Shared with
    the benchmark's builder, which streams the same files to `git fast-import`."""
    files: dict[str, bytes | None] = {}
    first = snap.tree is None
    if first:
        files["format"] = records.format_blob()
    if first or change.target != snap.target:
        files["target.yaml"] = records.dump(change.target)
    if first or change.index != snap.index:
        files["index.yaml"] = records.dump(change.index)
    for number, record in change.records.items():
        files[record_path(number)] = records.dump(record) if record is not None else None
    for number, incident in change.incidents.items():
        files[incident_path(number)] = records.dump(incident) if incident is not None else None
    return files


def open_store(path: str | os.PathLike[str] | None = None, *,
               for_reading: bool = False) -> Store:
    """The store of the repository at `path` (see open_repository); `for_reading` for a command
    that only reads."""
    return Store(open_repository(path, for_reading=for_reading))
