"""Builders of large repositories for the benchmarks, through `git fast-import`.

    python bench/build.py code DIR --commits 200000       # a code history
    python bench/build.py timeline DIR --key prod --deployments 100000

A code history is a main branch of tiny commits with a lightweight tag every TAG_EVERY commits
(so `git describe` finds one nearby, as in a real project). A deployment timeline is made by the
tool's own state machine applied in memory, with each change's files (`store.changed_files`), its
commit message (`timeline.compose`) and author the same as `git deploy` writes them; only the
tree building and ref moving are left to fast-import, which does them for a whole timeline at once.
So the result is exactly a timeline `git deploy` could have written, and `git deploy fsck` checks
it like any other.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

T0 = 1_600_000_000  # the first code commit's time; one more minute per commit
TAG_EVERY = 500
REPOSITORY = "app"  # the name every benchmark repository records (git config deploy.repository)
BY = "Bench Runner <bench@example.com>"


def git(cwd: Path, *args: str, stdin: bytes | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True)
    if done.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed in {cwd}: "
                         f"{done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode().strip()


def fast_import(repo: Path, chunks: Iterator[bytes]) -> None:
    """Stream `chunks` into `git fast-import` without holding the whole stream in memory."""
    proc = subprocess.Popen(["git", "fast-import", "--quiet", "--done"], cwd=repo,
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    stdin: IO[bytes] = proc.stdin
    try:
        for chunk in chunks:
            stdin.write(chunk)
        stdin.write(b"done\n")
        stdin.close()
    except BrokenPipeError:
        pass
    error = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.wait() != 0:
        raise SystemExit(f"git fast-import failed in {repo}: {error.strip()}")


def _data(payload: bytes) -> bytes:
    return b"data %d\n%s\n" % (len(payload), payload)


# --- a code history ---------------------------------------------------------------------------


def code_stream(commits: int, start: int = T0, step: int = 60) -> Iterator[bytes]:
    """Commit n (from 1) is dated `start + step * n`."""
    yield b"blob\nmark :1\n" + _data(b"hello\n")
    for n in range(1, commits + 1):
        when = start + step * n
        who = f"Dev {n % 13} <dev{n % 13}@example.com> {when} +0000".encode()
        out = [b"commit refs/heads/main\nmark :%d\nauthor %s\ncommitter %s\n" % (n + 1, who, who),
               _data(b"change %d" % n)]
        if n == 1:
            out.append(b"M 100644 :1 README\n")
        else:
            out.append(b"from :%d\n" % n)
        out.append(b"M 100644 inline counter\n" + _data(b"%d\n" % n))
        if n % TAG_EVERY == 0:
            out.append(b"reset refs/tags/v0.%d.0\nfrom :%d\n" % (n // TAG_EVERY, n + 1))
        yield b"".join(out)


def build_code(repo: Path, commits: int, start: int = T0, step: int = 60) -> Path:
    """A non-bare repository named REPOSITORY for git deploy, its main branch `commits` long
    (commit n dated `start + step * n`)."""
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "deploy.repository", REPOSITORY)
    fast_import(repo, code_stream(commits, start, step))
    git(repo, "reset", "-q", "--hard", "main")
    return repo


def share(code: Path, dest: Path) -> Path:
    """A clone of `code` borrowing its objects (alternates): cheap, and the clone's own object
    directory holds only what git deploy adds to it."""
    git(dest.parent, "clone", "-q", "--shared", str(code), str(dest))
    git(dest, "config", "deploy.repository", REPOSITORY)
    for name, value in (("user.name", "Bench Runner"), ("user.email", "bench@example.com"),
                        ("gc.auto", "0")):
        git(dest, "config", name, value)
    return dest


# --- a deployment timeline --------------------------------------------------------------------


class MemorySnapshot:
    """A target's state held in memory between changes, as machine.apply reads it. With
    `everything`, every record is kept (a rollback reads the one it returns to); else only
    those the index names."""

    def __init__(self, everything: bool = False) -> None:
        self.tree: str | None = None
        self.target: Any = None
        self.index: Any = None
        self.records: dict[int, Any] = {}
        self.incidents: dict[int, Any] = {}
        self.everything = everything

    def record(self, number: int) -> Any:
        return self.records.get(number)

    def incident(self, number: int) -> Any:
        return self.incidents.get(number)

    def advance(self, change: Any) -> None:
        self.tree = "built"  # any value: the first change is the only one without a tree
        self.target, self.index = change.target, change.index
        for number, record in change.records.items():
            if record is None:
                self.records.pop(number, None)
            else:
                self.records[number] = record
        for number, incident in change.incidents.items():
            if incident is None or not incident.is_open:
                self.incidents.pop(number, None)  # only an open one is read again
            else:
                self.incidents[number] = incident
        if self.everything:
            return
        # machine.apply reads the current, in-flight and scheduled records only (via the index)
        live = {self.index.current, self.index.in_flight,
                *(entry.number for entry in self.index.scheduled)}
        self.records = {n: r for n, r in self.records.items() if n in live}


class LinearHistory:
    """The oracle for a main branch listed oldest first: ancestry is order."""

    def __init__(self, commits: list[str]) -> None:
        self.position = {commit: n for n, commit in enumerate(commits)}

    def describe(self, repository: str, commit: str) -> str | None:
        return None

    def is_ancestor(self, repository: str, ancestor: str, descendant: str) -> bool | None:
        if ancestor not in self.position or descendant not in self.position:
            return None
        return self.position[ancestor] <= self.position[descendant]


def timeline_stream(key: str, deployments: int, commits: list[str],
                    start: datetime) -> Iterator[bytes]:
    """`target create`, then `deployments` deployments, each `finish --commit` of the next code
    commit, cycling through `commits` (a new current; the previous one becomes completed): one
    change per deployment."""
    from git_deployments.core.model import CommitRef, CreateTarget, Deploy, TargetSettings

    def requests() -> Iterator[Any]:
        for n in range(deployments + 1):
            at = start + timedelta(minutes=n)
            base = {"op_id": f"{n:032x}", "at": at, "by": BY, "target": key}
            if n == 0:
                yield CreateTarget(**base, repository=REPOSITORY, settings=TargetSettings())
                continue
            # the newest deployment gets the newest commit, whatever the count: then every
            # timeline ends in the same state, and `status` has the same nothing pending
            commit = commits[(len(commits) - 1 - (deployments - n)) % len(commits)]
            yield Deploy(**base, op="finish", version=f"1.{n}.0", commits=[
                CommitRef(repository=REPOSITORY, branch="main", commit=commit)])

    return changes_stream(key, requests(), LinearHistory(commits), MemorySnapshot())


def changes_stream(key: str, requests: Iterable[Any], oracle: Any,
                   snap: MemorySnapshot) -> Iterator[bytes]:
    """The timeline commits `requests` make, one after the other, applied by the tool's own
    state machine to `snap`, as fast-import commands."""
    from git_deployments.core import machine, timeline
    from git_deployments.core.store import changed_files, ref_name
    from git_deployments.git.repo import TOOL_EMAIL, TOOL_NAME

    ref = ref_name(key).encode()
    committer = f"{TOOL_NAME} <{TOOL_EMAIL}>"
    for n, request in enumerate(requests):
        change = machine.apply(snap, request, oracle)
        recorded = request.model_copy(update={"facts": change.facts})
        files = changed_files(snap, change)
        message = timeline.compose(recorded, change).encode()
        author = timeline.author_of(recorded)
        when = timeline.author_time(recorded)
        out = [b"commit %s\nmark :%d\n" % (ref, n + 1),
               f"author {author} {when} +0000\ncommitter {committer} {when} +0000\n".encode(),
               _data(message)]
        if n:
            out.append(b"from :%d\n" % n)
        for path, data in files.items():
            if data is None:
                out.append(f"D {path}\n".encode())
            else:
                out.append(f"M 100644 inline {path}\n".encode() + _data(data))
        yield b"".join(out)
        snap.advance(change)


def build_timeline(repo: Path, key: str, deployments: int, *, code_commits: int = 1000) -> None:
    """Target `key` in `repo` with `deployments` deployments of the newest `code_commits` commits
    of main (oldest first), one a minute, ending now."""
    listed = git(repo, "rev-list", "--reverse", f"--max-count={code_commits}", "main").split()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=deployments + 1)
    fast_import(repo, timeline_stream(key, deployments, listed, start))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("code", help="a new repository with a long main branch")
    p.add_argument("dir", type=Path)
    p.add_argument("--commits", type=int, default=200_000)
    p = sub.add_parser("timeline", help="a target with many deployments, in an existing repository")
    p.add_argument("dir", type=Path)
    p.add_argument("--key", default="prod")
    p.add_argument("--deployments", type=int, default=10_000)
    args = parser.parse_args()
    started = time.perf_counter()
    if args.what == "code":
        build_code(args.dir, args.commits)
        what = f"{args.commits} commits"
    else:
        build_timeline(args.dir, args.key, args.deployments)
        what = f"{args.deployments} deployments on '{args.key}'"
    print(f"{args.dir}: {what} in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("GIT_CONFIG_NOSYSTEM", "1")
    raise SystemExit(main())
