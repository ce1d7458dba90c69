"""Care of what is stored: `fsck` checks every commit of every timeline; `doctor` clears what a
killed process can leave behind (stale lock files, temporary objects) without touching anything a
live process holds."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from git_deployments.core.model import key_problem
from git_deployments.core.store import Store, ref_name
from git_deployments.core.timeline import REF_PREFIX
from git_deployments.errors import DeployError

# A lock file younger than this may belong to a git process that is writing right now (git's own
# ref locks are not flock'ed, so age is the only sign): doctor keeps it and says to run again.
FRESH_SECONDS = 5.0

# ---------------------------------------------------------------------------------------------
# fsck
# ---------------------------------------------------------------------------------------------


@dataclass
class Problem:
    where: str  # `refs/deployments/prod`, or with a commit `refs/deployments/prod@1a2b3c4d5e6f`
    message: str
    commit: str | None = None
    position: int | None = None  # 1 = the timeline's first change

    def line(self) -> str:
        at = f" (change {self.position})" if self.position else ""
        return f"{self.where}{at}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"where": self.where, "commit": self.commit, "change": self.position,
                "message": self.message}


@dataclass
class TimelineCheck:
    key: str
    tip: str | None
    changes: int = 0
    problems: list[Problem] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.key, "timeline_commit": self.tip, "changes": self.changes,
                "ok": not self.problems, "problems": [p.as_dict() for p in self.problems]}


def _strip_short(message: str, commit: str) -> str:
    # verify's messages start with the short commit id, which the problem's `where` already names
    prefix = f"{commit[:12]}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def timeline_commits(store: Store, key: str, tip: str) -> tuple[list[str], Problem | None]:
    """The timeline from its first change to `tip` (oldest first), and the problem that cut the
    walk short, if any (a missing commit, a merge)."""
    newest_first: list[str] = []
    commit: str | None = tip
    seen: set[str] = set()
    while commit is not None:
        if commit in seen:  # impossible in git, but a broken object store must not loop forever
            return newest_first[::-1], Problem(f"{ref_name(key)}@{commit[:12]}",
                                               "the timeline loops", commit)
        seen.add(commit)
        try:
            info = store.git.commit_info(commit)
        except DeployError as exc:
            child = f" (parent of {newest_first[-1][:12]})" if newest_first else ""
            return newest_first[::-1], Problem(f"{ref_name(key)}@{commit[:12]}",
                                               f"{exc}{child}", commit)
        newest_first.append(commit)
        if len(info.parents) > 1:
            # verify_commit reports the merge itself; which parent to follow is unknowable
            break
        commit = info.parents[0] if info.parents else None
    return newest_first[::-1], None


def _failure(check: Any, *args: Any) -> str | None:
    """What `check(*args)` found wrong, or None. fsck exists to look at damaged data, so an
    unreadable object is a finding to report, not a crash."""
    try:
        check(*args)
    except DeployError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 - a broken object store raises pygit2's and the OS's
        reason = str(exc).splitlines()[0] if str(exc) else ""
        return f"cannot be read ({type(exc).__name__}: {reason})"
    return None


def check_timeline(store: Store, key: str) -> TimelineCheck:
    """Every commit of one timeline replayed and checked, then the index against the records."""
    from git_deployments.core.verify import verify_commit, verify_index

    git = store.git
    tip = git.read_ref(ref_name(key))
    check = TimelineCheck(key=key, tip=tip)
    if tip is None:
        check.problems.append(Problem(ref_name(key), "the ref does not exist"))
        return check
    commits, cut = timeline_commits(store, key, tip)
    counted = cut is None  # past a cut, how far a change is from the first one is unknown
    if cut is not None:
        check.problems.append(cut)
    for position, commit in enumerate(commits, start=1):
        if cut is not None and position == 1:
            continue  # its parent cannot be read: the cut says so, and nothing can be replayed
        message = _failure(verify_commit, git, key, commit)
        if message is not None:
            check.problems.append(Problem(f"{ref_name(key)}@{commit[:12]}",
                                          _strip_short(message, commit), commit,
                                          position if counted else None))
    check.changes = len(commits)
    message = _failure(verify_index, git, key, tip)
    if message is not None:
        message = _strip_short(message, tip)
        if not any(p.commit == tip and p.message == message for p in check.problems):
            check.problems.append(Problem(f"{ref_name(key)}@{tip[:12]}", message, tip,
                                          len(commits) if counted else None))
    return check


def stray_refs(store: Store) -> list[Problem]:
    """Refs under refs/deployments/ that git deploy ignores: their name is not a target key."""
    found = []
    for name, _ in store.git.list_refs(REF_PREFIX):
        key = name[len(REF_PREFIX):]
        problem = key_problem(key)
        if problem is not None:
            found.append(Problem(name, f"not a target's timeline ({problem}); git deploy "
                                       "ignores it — rename or delete it with git update-ref"))
    return found


@dataclass
class FsckReport:
    timelines: list[TimelineCheck]
    stray: list[Problem]

    @property
    def problems(self) -> list[Problem]:
        return [p for t in self.timelines for p in t.problems] + self.stray

    def as_dict(self) -> dict[str, Any]:
        return {"ok": not self.problems, "timelines": [t.as_dict() for t in self.timelines],
                "problems": [p.as_dict() for p in self.problems]}


def fsck(store: Store, key: str | None = None) -> FsckReport:
    """Check one timeline or all. Replaying a change builds its tree to compare ids: those
    objects go to a scratch directory, so fsck changes nothing and runs on a read-only
    repository."""
    import tempfile

    from git_deployments.git.repo import open_repository

    if key is not None:
        store.existing(key)
    with tempfile.TemporaryDirectory(prefix="git-deploy-fsck-") as scratch:
        checking = Store(open_repository(store.git.repo.path))
        checking.git.divert_writes(scratch)
        if key is not None:
            return FsckReport([check_timeline(checking, key)], [])
        return FsckReport([check_timeline(checking, k) for k in checking.keys()],
                          stray_refs(checking))


# ---------------------------------------------------------------------------------------------
# doctor
# ---------------------------------------------------------------------------------------------


@dataclass
class Finding:
    path: str  # relative to the git directory
    kind: str  # ref-lock, packed-refs-lock, daemon-lock, temp-file
    fixed: bool  # removed (or, in a dry run, would be)
    reason: str

    def line(self, dry_run: bool) -> str:
        verb = ("would remove" if dry_run else "removed") if self.fixed else "kept"
        return f"{verb} {self.path}: {self.reason}"

    def as_dict(self, dry_run: bool) -> dict[str, Any]:
        action = ("would-remove" if dry_run else "removed") if self.fixed else "kept"
        return {"path": self.path, "kind": self.kind, "action": action, "reason": self.reason}


def _age(path: Path) -> float | None:
    try:
        return max(0.0, time.time() - path.stat().st_mtime)
    except OSError:
        return None


def _ago(seconds: float) -> str:
    from git_deployments.core.timeutil import format_duration

    whole = max(1, int(seconds))
    # past a minute, seconds only say how long this process took to look
    return f"{format_duration(whole - whole % 60 if whole >= 60 else whole)} ago"


def open_files() -> set[str] | None:
    """Every file some process has open (Linux /proc), or None where that cannot be known."""
    proc = Path("/proc")
    if not (proc / "self" / "fd").is_dir():
        return None
    found: set[str] = set()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue  # gone, or not ours to look at
        for fd in fds:
            try:
                found.add(os.readlink(fd))
            except OSError:
                continue
    return found


def _flock_held(path: Path) -> bool | None:
    """Whether a process holds a flock on `path` (None: it cannot be looked at). Read from
    /proc/locks where there is one, so the check never takes the lock itself: a daemon starting
    at that instant with a non-blocking acquire would otherwise be refused."""
    try:
        inode = path.stat().st_ino
    except OSError:
        return None
    try:
        table = Path("/proc/locks").read_text()
    except OSError:
        table = None
    if table is not None:
        # `1: FLOCK  ADVISORY  WRITE 27621 fe:00:2146552 0 EOF`: the inode ends the 6th field
        return any(len(f) > 5 and f[1] == "FLOCK" and f[5].rsplit(":", 1)[-1] == str(inode)
                   for f in (line.split() for line in table.splitlines()))
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing releases a flock this probe took
    return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Doctor:
    """Finds leftovers; fixes each only when no live process can be holding it."""

    def __init__(self, store: Store, dry_run: bool = False,
                 fresh_seconds: float = FRESH_SECONDS) -> None:
        self.store = store
        self.git_dir = store.git.common_dir  # where the refs are, from any worktree
        self.dry_run = dry_run
        self.fresh_seconds = fresh_seconds
        self.findings: list[Finding] = []
        self._open: set[str] | None = None
        self._open_known = False

    def run(self) -> list[Finding]:
        for path in self._ref_locks():
            self._ref_lock(path)
        self._packed_refs_lock()
        for path in self._daemon_locks():
            self._daemon_lock(path)
        for path in self._temp_files():
            self._temp_file(path)
        return self.findings

    # --- what a process holds ---

    def _is_open(self, path: Path) -> bool:
        if not self._open_known:
            self._open = open_files()
            self._open_known = True
        return self._open is not None and str(path) in self._open

    def _relative(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.git_dir))
        except ValueError:
            return str(path)

    def _remove(self, path: Path, kind: str, reason: str) -> None:
        if not self.dry_run:
            try:
                path.unlink()
            except FileNotFoundError:
                return  # its owner finished meanwhile: nothing left to fix
            except OSError as exc:
                raise DeployError(f"cannot remove {path}: {exc.strerror or exc}") from None
        self.findings.append(Finding(self._relative(path), kind, True, reason))

    def _keep(self, path: Path, kind: str, reason: str) -> None:
        self.findings.append(Finding(self._relative(path), kind, False, reason))

    def _too_young(self, path: Path, kind: str, what: str) -> bool:
        age = _age(path)
        if age is None:
            return True  # vanished: its owner finished
        if self._is_open(path):
            self._keep(path, kind, f"{what} is open in a running process")
            return True
        if age < self.fresh_seconds:
            self._keep(path, kind, f"{what} changed {age:.0f}s ago and may belong to a git "
                                   "process at work; run 'git deploy doctor' again in a few "
                                   "seconds if it stays")
            return True
        return False

    # --- ref locks: refs/deployments/<key>.lock and their reflogs' locks ---

    def _ref_locks(self) -> Iterator[Path]:
        # the timelines, their keep-alive refs, and the remote-tracking copies sync fetches
        for top in ("refs/deployments", "logs/refs/deployments", "refs/deployments-kept",
                    "logs/refs/deployments-kept", "refs/remotes", "logs/refs/remotes"):
            base = self.git_dir / top
            if not base.is_dir():
                continue
            for path in sorted(base.rglob("*.lock")):
                if top.endswith("remotes") and "/deployments/" not in str(path):
                    continue  # another tool's remote-tracking refs are not ours to judge
                yield path

    def _ref_lock(self, path: Path) -> None:
        from git_deployments.core.keepalive import KEPT_PREFIX

        relative = self._relative(path)
        ref = relative.removeprefix("logs/").removesuffix(".lock")
        key = next((ref[len(prefix):] for prefix in (REF_PREFIX, KEPT_PREFIX)
                    if ref.startswith(prefix)), None)
        if key is not None and key_problem(key) is None:
            # a git deploy writing this target holds its filelock for as long as the ref lock
            # can exist; taking it (without waiting) proves no writer of ours is at work
            lock = self.store.lock(key)
            from filelock import Timeout as LockTimeout

            try:
                lock.acquire(timeout=0)
            except LockTimeout:
                self._keep(path, "ref-lock", f"a git deploy is writing target '{key}' right now")
                return
            try:
                self._fix_ref_lock(path, ref, f" and no git deploy holds target '{key}'")
            finally:
                lock.release()
            return
        self._fix_ref_lock(path, ref, "")

    def _fix_ref_lock(self, path: Path, ref: str, held: str) -> None:
        if self._too_young(path, "ref-lock", "the lock"):
            return
        age = _age(path) or 0.0
        what = "reflog" if self._relative(path).startswith("logs/") else "ref"
        self._remove(path, "ref-lock", f"a {what} lock on {ref} left {_ago(age)} by a process that "
                                       f"stopped mid-write{held}; {ref} keeps its last value")

    # --- packed-refs.lock ---

    def _packed_refs_lock(self) -> None:
        path = self.git_dir / "packed-refs.lock"
        if not path.exists() or self._too_young(path, "packed-refs-lock", "the lock"):
            return
        self._remove(path, "packed-refs-lock",
                     f"left {_ago(_age(path) or 0.0)} by a process that stopped while rewriting "
                     "packed-refs; packed-refs keeps its last content")

    # --- the daemon's pid files under $GIT_DIR/git-deployments ---

    def _daemon_locks(self) -> Iterator[Path]:
        """Pid files (`pid`, `*.pid`): the watcher writes one next to the flock'ed `lock` it
        holds while it runs. The flock'ed files themselves are free the moment their holder
        dies, so nothing about them is ever stale."""
        # a daemon started in a linked worktree keeps its files in that worktree's git directory
        for git_dir in dict.fromkeys((self.git_dir, self.store.git.git_dir)):
            base = git_dir / "git-deployments"
            if base.is_dir():
                for path in sorted(base.rglob("*")):
                    if (path.name == "pid" or path.suffix == ".pid") and path.is_file():
                        yield path

    def _daemon_lock(self, path: Path) -> None:
        try:
            text = path.read_text(encoding="ascii", errors="replace").split()
        except OSError:
            return
        pid = int(text[0]) if text and text[0].isdigit() and len(text[0]) < 10 else None
        companion = path.with_name("lock") if path.name == "pid" else path.with_suffix(".lock")
        if companion.exists():
            held = _flock_held(companion)
            if held is None:
                return
            if held:
                self._keep(path, "daemon-lock", f"its daemon (pid {pid or '?'}) is running "
                                                f"and holds {self._relative(companion)}")
                return
            reason = f"process {pid or '?'} left it and no daemon holds " \
                     f"{self._relative(companion)}: none is running"
        elif pid is not None and not _pid_alive(pid):
            reason = f"names process {pid}, which no longer runs"
        else:
            return
        if self._too_young(path, "daemon-lock", "the file"):
            return
        self._remove(path, "daemon-lock", reason)

    # --- temporary objects libgit2 left in objects/ ---

    def _temp_files(self) -> Iterator[Path]:
        objects = self.git_dir / "objects"
        if objects.is_dir():
            yield from sorted(objects.glob("tmp_object_git2_*"))
        base = self.git_dir / "git-deployments"
        if base.is_dir():
            yield from sorted(base.rglob("*.tmp"))

    def _temp_file(self, path: Path) -> None:
        if self._too_young(path, "temp-file", "the file"):
            return
        self._remove(path, "temp-file", f"a temporary file written {_ago(_age(path) or 0.0)} by "
                                        "a process that stopped before finishing it")
