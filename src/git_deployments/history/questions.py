"""What deployments brought: commit lists, pending work, where a commit went, issues and merges.

Commit walks run the `git` program (`rev-list` with a fixed format; ids, never user text, on its
command line; see git/program.py): git walks history faster than libgit2 through pygit2, and its
output is parsed as it comes, while git walks on (a caller may use each batch at once: `listed`).
Deployment records come from the store; questions about many deployments at once (`contains`,
the keep-alive ref) read the timeline's commit trailers instead of every record, which is what
keeps them fast on a target with thousands of deployments.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from git_deployments.core import timeline
from git_deployments.core.model import (
    COMMIT_PATTERN,
    REPOSITORY_PATTERN,
    SUCCESSFUL,
    Deployment,
    Status,
    Target,
    branch_is_valid,
)
from git_deployments.core.store import GitOracle, Store, TreeSnapshot
from git_deployments.errors import CorruptRecord, DeployError, NotFound
from git_deployments.git import program
from git_deployments.git.repo import GitRepo

FIRST_MAX_COUNT = 100  # how much of a first deployment's history is listed by default
_DATE = "--date=format-local:%Y-%m-%dT%H:%M:%SZ"
# mark (<, >, -), id, author, date, subject: NUL-separated, so no text can break a record
_BASIC = "%m%x00%H%x00%an <%ae>%x00%ad%x00%s%x00"
# ... then parents, trailers (unfolded, one per \x1f) and the body, for issues and merges
_FULL = _BASIC + "%P%x00%(trailers:only=true,unfold=true,separator=%x1f)%x00%b%x00"


# --- listed commits ------------------------------------------------------------------------------


# not frozen: a frozen dataclass is made at twice the cost, and a long walk makes 40,000
@dataclass(slots=True)
class Commit:
    commit: str
    author: str
    date: str
    subject: str

    def as_json(self, repository: str | None = None) -> dict[str, str]:
        data = {"commit": self.commit, "author": self.author, "date": self.date,
                "subject": self.subject}
        if repository is not None:
            data["repository"] = repository
        return data


@dataclass(slots=True)
class Message(Commit):
    """A commit with what issues and merges are read from."""

    parents: tuple[str, ...]
    trailers: tuple[tuple[str, str], ...]
    body: str


Rows = list[tuple[str, Commit]]  # (mark, commit) as a walk lists them
# a batch of a walk: the marks (see walk) and the commits, in the same order
Batch = tuple[list[str], list[Commit]]
# told the commits of a range as they are listed, batch by batch, in order: together they are
# exactly the range's `commits` (see fill_range)
Listed = Callable[["RepoRange", list[Commit]], None]


def walk(repo: GitRepo, include: Sequence[str], exclude: Sequence[str] = (), *,
         max_count: int | None = None, full: bool = False, boundary: bool = False,
         symmetric: bool = False, home: bool = True) -> Rows:
    """(mark, commit) for the commits reachable from `include` and not from `exclude`, newest
    first; mark is `-` for a boundary commit, else `>`. With `symmetric`, `include` is [a, b]
    and the walk is `a...b`: mark `<` for a commit only a has, `>` for one only b has."""
    rows: Rows = []
    for marks, commits in walk_batches(repo, include, exclude, max_count=max_count, full=full,
                                       boundary=boundary, symmetric=symmetric, home=home):
        rows.extend(zip(marks, commits, strict=True))
    return rows


def walk_batches(repo: GitRepo, include: Sequence[str], exclude: Sequence[str] = (), *,
                 max_count: int | None = None, full: bool = False, boundary: bool = False,
                 symmetric: bool = False, home: bool = True) -> Iterator[Batch]:
    """`walk`'s marks and commits, a batch at a time as git prints them (git walks on while a
    batch is used). A DeployError from a failing git comes after the last batch."""
    for oid in (*include, *exclude):
        if not COMMIT_PATTERN.match(oid):  # only ids reach git's command line
            raise DeployError(f"invalid commit id {oid!r}")
    args = ["rev-list", "--no-commit-header", "--encoding=UTF-8", _DATE,
            f"--format={_FULL if full else _BASIC}"]
    if max_count is not None:
        args.append(f"--max-count={max_count}")
    if boundary:
        args.append("--boundary")
    lines = [*include, *(f"^{oid}" for oid in exclude)]
    if symmetric:
        args.append("--left-right")
        lines = [f"{include[0]}...{include[1]}"]
    revisions = "\n".join(lines) + "\n"
    width = 8 if full else 5  # fields per commit
    parse = _messages if full else _commits
    # a NUL ends every field, so a piece of output ends inside at most one field (`partial`),
    # and the fields of a commit not yet complete wait in `waiting`
    partial = ""
    waiting: list[str] = []
    with closing(program.stream(repo.git_dir, [*args, "--stdin"], stdin=revisions,
                                home=home)) as pieces:
        for piece in pieces:
            fields = (partial + piece).split("\0")
            partial = fields.pop()
            if waiting:
                fields[:0] = waiting
            whole = len(fields) - len(fields) % width
            waiting = fields[whole:]
            if whole:
                del fields[whole:]
                yield parse(fields)
    # the output ends with the newline after a commit's last NUL: a field of no commit
    waiting.append(partial)
    if len(waiting) == width:
        yield parse(waiting)


def _commits(fields: list[str]) -> Batch:
    # each record ends with "\0\n", so every mark but the first carries a leading newline
    return ([mark[-1:] for mark in fields[0::5]],
            list(map(Commit, fields[1::5], fields[2::5], fields[3::5], fields[4::5])))


def _messages(fields: list[str]) -> Batch:
    it = iter(fields)
    marks: list[str] = []
    found: list[Commit] = []
    for mark, oid, author, date, subject, parents, trailers, body in zip(
            it, it, it, it, it, it, it, it, strict=True):
        pairs = tuple(_trailer(t) for t in trailers.split("\x1f") if ": " in t)
        marks.append(mark[-1:])
        found.append(Message(oid, author, date, subject, tuple(parents.split()), pairs, body))
    return marks, found


def count(repo: GitRepo, include: Sequence[str], exclude: Sequence[str] = (), *,
          home: bool = True) -> int:
    """`git rev-list --count` (faster than libgit2's walk on long ranges)."""
    lines = [*include, *(f"^{oid}" for oid in exclude)]
    if not all(COMMIT_PATTERN.match(line.lstrip("^")) for line in lines):
        raise DeployError("invalid commit id in a range")
    text = program.output(repo.git_dir, ["rev-list", "--count", "--stdin"],
                          stdin="\n".join(lines) + "\n", home=home)
    return int(text.strip() or 0)


def _trailer(text: str) -> tuple[str, str]:
    name, _, value = text.strip().partition(": ")
    return name.strip(), value.strip()


@dataclass
class RepoRange:
    """One repository's part of an answer: the commits from `base` (exclusive) to `head`."""

    repository: str
    branch: str
    base: str | None = None
    head: str | None = None
    base_number: int | None = None
    commits: list[Commit] = field(default_factory=list)
    # in `base` but not in `head`: what a rollback takes out, or what a force-push dropped
    removed: list[Commit] = field(default_factory=list)
    truncated: bool = False  # more commits than listed (-n)
    removed_truncated: bool = False
    problem: str | None = None
    missing: list[str] = field(default_factory=list)

    def as_json(self, with_commits: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "repository": self.repository, "branch": self.branch, "from": self.base,
            "to": self.head, "from_deployment": self.base_number, "count": len(self.commits),
            "truncated": self.truncated, "removed_truncated": self.removed_truncated,
            "available": self.problem is None,
            "problem": self.problem, "missing": self.missing,
        }
        if with_commits:
            data["commits"] = [c.as_json(self.repository) for c in self.commits]
        data["removed"] = [c.as_json(self.repository) for c in self.removed]
        return data


class Repositories:
    """The repositories a target records, opened where they are available locally."""

    def __init__(self, git: GitRepo, target: Target) -> None:
        self.git = git
        self.target = target
        self.oracle = GitOracle(git, target)

    def open(self, name: str) -> tuple[GitRepo | None, str | None]:
        """(repository, None) or (None, why it cannot be read here)."""
        repo = self.oracle.repo_for(name)
        if repo is not None:
            return repo, None
        location = self.target.location_of(name)
        if not location:
            return None, (f"repository '{name}' is not available here: no location recorded "
                          f"('git deploy target edit {self.target.key} --repository "
                          f"{name}=PATH')")
        return None, (f"repository '{name}' is not available here (no repository at "
                      f"{self.oracle.path_of(location) or location})")

    def is_home(self, repo: GitRepo) -> bool:
        return repo is self.git


def _readable(span: RepoRange, repos: Repositories) -> GitRepo | None:
    """The repository `span`'s commits are listed from, or None with `span.problem` saying
    why they cannot be (the repository is not here, no commit is recorded, one is missing)."""
    repo, problem = repos.open(span.repository)
    if repo is None:
        span.problem = problem
        return None
    if span.head is None:
        span.problem = "no commit recorded yet (latest)"
        return None
    span.missing = [c for c in (span.base, span.head) if c and not repo.is_commit(c)]
    if span.missing:
        ids = ", ".join(span.missing)
        span.problem = (f"commit {ids} is missing from repository '{span.repository}' "
                        "(not fetched, or pruned after its branch was force-pushed or deleted)")
        return None
    return repo


def fill_range(span: RepoRange, repos: Repositories, *, max_count: int | None = None,
               full: bool = False, listed: Listed | None = None) -> RepoRange:
    """List `span`'s commits: base..head, or head's history when there is no base. `listed`,
    if given, is told them batch by batch while git still walks."""
    repo = _readable(span, repos)
    if repo is None:
        return span
    home = repos.is_home(repo)
    if span.head is None:  # checked by _readable: said again for the type checker
        return span
    if span.base is None:
        limit = FIRST_MAX_COUNT if max_count is None else max_count
        batches = walk_batches(repo, [span.head], max_count=limit + 1, full=full, home=home)
        span.truncated, _ = _list(span, batches, limit, listed)
        return span
    if span.base == span.head:
        return span
    batches = walk_batches(repo, [span.head], [span.base], boundary=max_count is None,
                           max_count=None if max_count is None else max_count + 1, full=full,
                           home=home)
    span.truncated, boundary = _list(span, batches, max_count, listed)
    if max_count is not None:
        # a limited walk's boundary is where the listing stopped: ask about ancestry instead
        forward = repo.is_ancestor(span.base, span.head)
    else:
        # base is an ancestor of head exactly when it borders the walked range
        forward = span.base in boundary
    if not forward:
        removed = [c for _, c in walk(repo, [span.base], [span.head], full=full,
                                      max_count=None if max_count is None else max_count + 1,
                                      home=home)]
        span.removed_truncated = max_count is not None and len(removed) > max_count
        span.removed = removed[:max_count] if max_count is not None else removed
    return span


def _list(span: RepoRange, batches: Iterator[Batch], limit: int | None,
          listed: Listed | None) -> tuple[bool, list[str]]:
    """Put a walk's commits, at most `limit`, in `span.commits`, telling `listed` each batch
    kept: (whether the walk had more, the ids of its boundary commits)."""
    span.commits = []
    more = False
    boundary: list[str] = []
    for marks, commits in batches:
        kept = commits
        if "-" in marks:
            kept = [c for mark, c in zip(marks, commits, strict=True) if mark != "-"]
            boundary.extend(c.commit for mark, c in zip(marks, commits, strict=True)
                            if mark == "-")
        if limit is not None and len(span.commits) + len(kept) > limit:
            more = True
            del kept[limit - len(span.commits):]
        if kept:
            span.commits.extend(kept)
            if listed is not None:
                listed(span, kept)
    return more, boundary


def author_times(span: RepoRange, repos: Repositories) -> list[tuple[str, int]]:
    """(id, author time in seconds since 1970) of every commit `span` brings: the set
    `fill_range` lists, without a limit (a first deployment: its whole history), newest first;
    one `git rev-list`, which prints nothing but the two. Empty, with `span.problem` set, when
    the commits cannot be read here."""
    repo = _readable(span, repos)
    if repo is None or span.head is None or span.base == span.head:
        return []
    exclude = [span.base] if span.base is not None else []
    for oid in (span.head, *exclude):
        if not COMMIT_PATTERN.match(oid):  # only ids reach git's command line
            raise DeployError(f"invalid commit id {oid!r}")
    revisions = "\n".join([span.head, *(f"^{oid}" for oid in exclude)]) + "\n"
    text = program.output(repo.git_dir, ["rev-list", "--no-commit-header", "--format=%H %at",
                                         "--stdin"], stdin=revisions, home=repos.is_home(repo))
    found = []
    for line in text.splitlines():
        oid, _, when = line.partition(" ")
        if when:
            found.append((oid, int(when)))
    return found


# --- what a deployment brought -------------------------------------------------------------------


@dataclass
class Brought:
    key: str
    record: Deployment
    ranges: list[RepoRange]

    @property
    def first(self) -> bool:
        return all(span.base is None for span in self.ranges)


def pick(snap: TreeSnapshot, number: int | None) -> Deployment:
    """Deployment `number`; by default the current one, else the newest."""
    target, index = snap.require()
    if number is not None:
        record = snap.record(number)
        if record is None:
            raise NotFound(f"target '{target.key}' has no deployment #{number}")
        return record
    if index.current is not None:
        record = snap.record(index.current)
        if record is not None:
            return record
    for n in range(index.next_number - 1, 0, -1):
        record = snap.record(n)
        if record is not None:
            return record
    raise NotFound(no_deployments(target.key, index))


def no_deployments(key: str, index: Any) -> str:
    if index.next_number == 1:
        return f"target '{key}' has no deployments yet"
    return (f"target '{key}' has no deployments any more (the timeline keeps the deleted "
            f"ones: git log refs/deployments/{key})")


def previous_successful(record_of: Callable[[int], Deployment | None], record: Deployment
                        ) -> dict[str, tuple[int, str, str]]:
    """For each repository of `record`: (number, branch, commit) of the newest successful
    deployment numbered below it that deployed that repository. `record_of` reads a record
    by number (`TreeSnapshot.record`, or a lookup in records already read)."""
    wanted = {ref.repository for ref in record.commits if ref.commit}
    found: dict[str, tuple[int, str, str]] = {}
    for n in range(record.number - 1, 0, -1):
        if not wanted - found.keys():
            break
        earlier = record_of(n)
        if earlier is None or earlier.status not in SUCCESSFUL:
            continue
        by_branch = {(ref.repository, ref.branch): ref.commit for ref in earlier.commits}
        for repository in wanted - found.keys():
            mine = [ref for ref in record.commits if ref.repository == repository]
            # the same branch if it deployed it, else any branch of that repository
            same = by_branch.get((repository, mine[0].branch)) if mine else None
            other = next((ref for ref in earlier.commits
                          if ref.repository == repository and ref.commit), None)
            if same:
                found[repository] = (n, mine[0].branch, same)
            elif other is not None and other.commit:
                found[repository] = (n, other.branch, other.commit)
    return found


def brought(store: Store, key: str, number: int | None = None, *,
            max_count: int | None = None, full: bool = False,
            listed: Listed | None = None) -> Brought:
    """The commits deployment `number` brought: new since the previous successful deployment
    of each repository, or (for a first deployment) its history up to `max_count`. `listed`
    is told each range's commits as git lists them (see fill_range)."""
    snap = store.existing(key)
    target, _ = snap.require()
    record = pick(snap, number)
    repos = Repositories(store.git, target)
    ranges = [fill_range(span, repos, max_count=max_count, full=full, listed=listed)
              for span in spans(snap.record, record)]
    return Brought(key=key, record=record, ranges=ranges)


def spans(record_of: Callable[[int], Deployment | None], record: Deployment
          ) -> list[RepoRange]:
    """One range per commit ref of `record`, each from the previous successful deployment of
    its repository (none for a first deployment), not yet listed."""
    before = previous_successful(record_of, record)
    found = []
    for ref in record.commits:
        base = before.get(ref.repository)
        found.append(RepoRange(repository=ref.repository, branch=ref.branch, head=ref.commit,
                               base=base[2] if base else None,
                               base_number=base[0] if base else None))
    return found


def brought_counts(store: Store, key: str, record: Deployment) -> list[dict[str, Any]]:
    """How many commits each repository's part of `record` brought, counted without listing
    them (what `show` prints as the way to the list)."""
    snap = store.existing(key)
    target, _ = snap.require()
    before = previous_successful(snap.record, record)
    repos = Repositories(store.git, target)
    counts = []
    for ref in record.commits:
        base = before.get(ref.repository)
        entry: dict[str, Any] = {"repository": ref.repository, "branch": ref.branch,
                                 "from_deployment": base[0] if base else None, "count": None}
        repo, _problem = repos.open(ref.repository)
        if repo is not None and ref.commit and repo.is_commit(ref.commit) and base and \
                repo.is_commit(base[2]):
            entry["count"] = count(repo, [ref.commit], [base[2]], home=repos.is_home(repo))
        counts.append(entry)
    return counts


# --- pending and compare -------------------------------------------------------------------------


@dataclass
class Pending:
    key: str
    current: Deployment | None
    ranges: list[RepoRange]


def pending(store: Store, key: str, branch: str | None = None, *,
            max_count: int | None = None, listed: Listed | None = None) -> Pending:
    """Commits on the branch tips that the target's current deployment does not contain yet;
    `listed` is told each range's commits as git lists them (see fill_range).

    `branch` is a branch of the target's own repository, or REPO:BRANCH for another one.
    """
    snap = store.existing(key)
    target, index = snap.require()
    current = snap.record(index.current) if index.current is not None else None
    override_repo, override_branch = target.repository, branch
    if branch is not None and ":" in branch:
        override_repo, _, override_branch = branch.partition(":")
        if override_repo not in target.repository_names():
            raise DeployError(f"target '{key}' has no repository '{override_repo}' "
                              f"(it lists: {', '.join(target.repository_names())})")
    if override_branch is not None and not branch_is_valid(override_branch):
        raise DeployError(f"invalid branch name {override_branch!r}")
    repos = Repositories(store.git, target)
    wanted: list[tuple[str, str, str | None]] = []  # (repository, branch, deployed commit)
    for ref in current.commits if current is not None else []:
        chosen = override_branch if override_branch and ref.repository == override_repo \
            else ref.branch
        wanted.append((ref.repository, chosen, ref.commit))
    if override_branch and all(r != override_repo for r, _, _ in wanted):
        wanted.append((override_repo, override_branch, None))
    if not wanted:
        head_branch = store.git.head()[0]
        if head_branch is None:
            raise DeployError(f"target '{key}' has no current deployment and HEAD is detached; "
                              "pass --branch BRANCH")
        wanted.append((target.repository, head_branch, None))
    ranges = []
    for repository, name, deployed in wanted:
        span = RepoRange(repository=repository, branch=name, base=deployed,
                         base_number=current.number if current is not None and deployed
                         else None)
        repo, problem = repos.open(repository)
        tip = repo.branch_tip(name) if repo is not None else None
        if repo is None:
            span.problem = problem
        elif tip is None:
            span.problem = f"branch '{name}' not found in repository '{repository}'"
            if override_branch is not None and repository == override_repo:
                raise NotFound(span.problem)  # the one asked for by name
        else:
            span.head = tip
            fill_range(span, repos, max_count=max_count, listed=listed)
        ranges.append(span)
    return Pending(key=key, current=current, ranges=ranges)


@dataclass
class Side:
    key: str
    current: Deployment | None


@dataclass
class Comparison:
    a: Side
    b: Side
    # per repository: (repository, commits only b has, commits only a has, problem)
    repositories: list[tuple[str, list[Commit], list[Commit], str | None]]


def compare(store: Store, key_a: str, key_b: str) -> Comparison:
    """What b's current deployment has that a's has not, and the reverse (one symmetric walk
    per repository)."""
    sides = []
    targets = []
    for key in (key_a, key_b):
        snap = store.existing(key)
        target, index = snap.require()
        targets.append(target)
        sides.append(Side(key, snap.record(index.current) if index.current else None))
    a, b = sides
    heads_a = {ref.repository: ref.commit for ref in (a.current.commits if a.current else [])
               if ref.commit}
    heads_b = {ref.repository: ref.commit for ref in (b.current.commits if b.current else [])
               if ref.commit}
    repos_a, repos_b = Repositories(store.git, targets[0]), Repositories(store.git, targets[1])
    result: list[tuple[str, list[Commit], list[Commit], str | None]] = []
    for repository in [*heads_b, *(r for r in heads_a if r not in heads_b)]:
        if repository not in heads_a or repository not in heads_b:
            who = key_a if repository not in heads_a else key_b
            result.append((repository, [], [], f"'{who}' has no current deployment of "
                                                f"repository '{repository}'"))
            continue
        repo, problem = repos_b.open(repository)
        if repo is None:
            repo, problem = repos_a.open(repository)
        if repo is None:
            result.append((repository, [], [], problem))
            continue
        left, right = heads_a[repository], heads_b[repository]
        missing = [c for c in (left, right) if not repo.is_commit(c)]
        if missing:
            result.append((repository, [], [], f"commit {', '.join(missing)} is missing from "
                                               f"repository '{repository}'"))
            continue
        only_a: list[Commit] = []
        only_b: list[Commit] = []
        if left != right:
            home = repos_a.is_home(repo) or repos_b.is_home(repo)
            for mark, commit in walk(repo, [left, right], symmetric=True, home=home):
                (only_a if mark == "<" else only_b).append(commit)
        result.append((repository, only_b, only_a, None))
    return Comparison(a=a, b=b, repositories=result)


# --- the timeline, read from its trailers --------------------------------------------------------


@dataclass
class Trace:
    """What the timeline says about one deployment."""

    number: int
    status: str | None = None  # its present status; "deleted" when it was deleted
    commits: list[tuple[str, str, str]] | None = None  # (repository, branch, commit id)
    version: str | None = None
    shipped_at: int | None = None  # when it first became current (unix time)

    @property
    def successful(self) -> bool:
        return self.status in SUCCESSFUL


@dataclass
class TimelineScan:
    key: str
    repository: str  # the repository holding the target's ref
    deployments: dict[int, Trace]
    # every commit any change recorded, oldest first: (repository, commit id)
    recorded: list[tuple[str, str]]

    def home_commits(self) -> list[str]:
        return self.commits_of(self.repository)

    def commits_of(self, repository: str) -> list[str]:
        """Every commit of `repository` any change recorded, oldest first, once each."""
        return list(dict.fromkeys(c for r, c in self.recorded if r == repository))

    @property
    def current(self) -> Trace | None:
        return next((t for t in self.deployments.values() if t.status == Status.CURRENT), None)


DELETED = "deleted"  # a trace's status once its record was deleted


def scan_timeline(git: GitRepo, key: str) -> TimelineScan:
    """Every deployment's status, commits and version, from the target's timeline entries: one
    pass over small commit messages instead of a YAML load per record. Every entry is derived
    from its records and request, and required so by the hook, fsck and pull
    (timeline.derived_mismatch)."""
    traces: dict[int, Trace] = {}
    recorded: list[tuple[str, str]] = []
    repository: str | None = None
    for entry in timeline.entries(git, key):
        changes = {t.number: t.new or DELETED for t in entry.transitions}
        for n, status in changes.items():
            trace = traces.setdefault(n, Trace(n))
            if trace.status is None:
                trace.status = status
        number = entry.number
        if number is not None and changes.get(number) == Status.CURRENT:
            traces[number].shipped_at = entry.time  # walking back: ends at the first
        refs = list(entry.commits)
        recorded[:0] = [(r, c) for r, _, c in refs]
        if number is not None and (refs or entry.version):
            trace = traces.setdefault(number, Trace(number))
            if trace.commits is None and refs:
                trace.commits = refs
            if trace.version is None and entry.version:
                trace.version = entry.version
        if entry.parent is None:
            repository = _created_in(entry)
    if repository is None:
        raise CorruptRecord(f"the timeline of '{key}' does not start with a target-create")
    return TimelineScan(key=key, repository=repository, deployments=traces, recorded=recorded)


def _created_in(entry: timeline.Entry) -> str:
    """The repository a target-create change names (read without validating the whole request
    model: building its schema would cost more than the rest of the scan)."""
    where = entry.commit[:12]
    try:
        data = entry.request_data()
    except CorruptRecord:
        data = {}
    repository = data.get("repository")
    if data.get("op") != "target-create" or not isinstance(repository, str) \
            or not REPOSITORY_PATTERN.match(repository):
        raise CorruptRecord(f"{where}: the first change of a timeline must create the target")
    return repository


# --- where is this commit ------------------------------------------------------------------------


def containing(repo: GitRepo, commit: str, tips: Iterable[str]) -> set[str]:
    """The `tips` that have `commit` in their history (itself included), found in one pass.

    git's `tag --contains` walk is the fastest exact answer git has for many tips at once (one
    memoised walk, cut short by generation numbers when a commit-graph exists). It runs over
    throwaway tags in a temporary repository that borrows this one's objects, so nothing is
    written here.
    """
    import shutil
    import tempfile

    unique = sorted({t for t in tips if COMMIT_PATTERN.match(t)})
    if not unique:
        return set()
    with tempfile.TemporaryDirectory(prefix="git-deploy-contains-") as tmp:
        root = Path(tmp)
        (root / "objects" / "info").mkdir(parents=True)
        (root / "refs").mkdir()
        (root / "HEAD").write_text("ref: refs/heads/main\n")
        (root / "objects" / "info" / "alternates").write_text(f"{repo.objects_dir}\n")
        shallow = repo.objects_dir.parent / "shallow"
        if shallow.is_file():  # a shallow clone's cut-off commits have no parents to read
            shutil.copyfile(shallow, root / "shallow")
        # names that are not ids themselves, so git never finds a name ambiguous
        (root / "packed-refs").write_text(
            "# pack-refs with: peeled fully-peeled sorted \n"
            + "".join(f"{tip} refs/tags/d{tip}\n" for tip in unique))
        text = program.output(root, ["tag", "--no-column", "--contains", commit,
                                     "--format=%(objectname)"], home=True)
    return set(text.split())


@dataclass
class Containment:
    key: str
    commit: str
    live: bool
    current: Trace | None
    first: Trace | None
    # successful deployments whose commit this repository lacks: containment unknown
    unknown: list[int]
    repository: str = ""  # the repository the commit is in, by the target's name for it
    problem: str | None = None  # why the target could not be asked (its copy is not here)

    def as_json(self) -> dict[str, Any]:
        from datetime import UTC, datetime

        from git_deployments.core.timeutil import iso

        first = self.first
        return {
            "target": self.key, "commit": self.commit, "repository": self.repository,
            "live": self.live,
            "current": self.current.number if self.current else None,
            "first_deployment": first.number if first else None,
            "first_version": first.version if first else None,
            "first_shipped_at": iso(datetime.fromtimestamp(first.shipped_at, UTC))
            if first and first.shipped_at is not None else None,
            "unknown": self.unknown,
            "problem": self.problem,
        }


@dataclass
class _Asked:
    """One target's part of a `contains` question: where the commit is looked for."""

    scan: TimelineScan
    repository: str  # the repository's name in this target
    repo: GitRepo | None = None
    problem: str | None = None


@dataclass
class Contained:
    commit: str  # the full id
    summary: str  # its subject
    answers: list[Containment]
    elsewhere: str | None = None  # the repository it is in, when not this one


def contains(store: Store, spec: str, keys: Sequence[str] | None = None,
             repository: str | None = None) -> Contained:
    """For each target: whether its current deployment contains the commit (by ancestry), and
    the first deployment that shipped it. One walk per repository for all targets together.

    The commit is looked for in this repository, or in `repository` (a name targets give one
    of their repositories, read from the location each records). Without `repository`, a
    commit this repository lacks is looked for in the other repositories the targets record.
    """
    git = store.git
    for key in keys or []:
        store.existing(key)
    scans = [scan_timeline(git, key) for key in (keys or store.keys())]
    try:
        commit = git.resolve_commit(spec) if repository is None else None
        asked = [_Asked(scan, scan.repository, git) for scan in scans]
    except NotFound:
        commit, asked = None, []
    if commit is None:
        commit, asked, where = _elsewhere(store, scans, spec, repository)
    else:
        where = git
    elsewhere = None if where is git else \
        ", ".join(sorted({part.repository for part in asked if part.repo is not None}))
    groups: dict[str, list[_Asked]] = {}
    for part in asked:
        if part.repo is not None:
            groups.setdefault(str(part.repo.git_dir), []).append(part)
    found: set[str] = set()
    unknown: dict[str, list[int]] = {}
    for parts in groups.values():
        repo = parts[0].repo
        assert repo is not None
        tips: set[str] = set()
        for part in parts:
            for trace in part.scan.deployments.values():
                if not trace.successful:
                    continue
                for name, _, oid in trace.commits or []:
                    if name != part.repository:
                        continue
                    if repo.is_commit(oid):
                        tips.add(oid)
                    else:
                        unknown.setdefault(part.scan.key, []).append(trace.number)
        found |= containing(repo, commit, tips)
    answers = []
    for part in asked:
        scan = part.scan

        def ships(trace: Trace, home: str = part.repository) -> bool:
            return any(r == home and c in found for r, _, c in trace.commits or [])

        shipped = sorted((t for t in scan.deployments.values() if t.successful and ships(t)),
                         key=lambda t: t.number) if part.repo is not None else []
        current = scan.current
        answers.append(Containment(
            key=scan.key, commit=commit, live=current is not None and ships(current)
            and part.repo is not None, current=current, first=shipped[0] if shipped else None,
            unknown=sorted(set(unknown.get(scan.key, []))), repository=part.repository,
            problem=part.problem))
    try:
        summary = commit_summary(where, commit)
    except NotFound:
        summary = "(the commit is not available here)"
    return Contained(commit, summary, answers, elsewhere or None)


def _elsewhere(store: Store, scans: list[TimelineScan], spec: str, wanted: str | None
               ) -> tuple[str, list[_Asked], GitRepo]:
    """The commit `spec` names in another repository the targets record (`wanted`, or any
    where it resolves), each target's part of the question, and a repository that has it."""
    per_target: list[tuple[TimelineScan, str, GitRepo | None, str | None]] = []
    for scan in scans:
        target, _ = store.existing(scan.key).require()
        repos = Repositories(store.git, target)
        names = [wanted] if wanted else [n for n in target.repository_names()
                                         if n != scan.repository]
        for name in names:
            if name not in target.repository_names():
                continue
            repo, problem = repos.open(name)
            per_target.append((scan, name, repo, problem))
    resolved: dict[str, set[str]] = {}  # commit id -> names it was found under
    holder: dict[str, GitRepo] = {}
    for _, name, repo, _ in per_target:
        if repo is None:
            continue
        try:
            found = repo.resolve_commit(spec)
        except NotFound:
            continue
        resolved.setdefault(found, set()).add(name)
        holder.setdefault(found, repo)
    if not resolved:
        if wanted is not None and not per_target:
            raise NotFound(f"no target records a repository '{wanted}'")
        unavailable = [problem for _, _, repo, problem in per_target if repo is None]
        if wanted is not None and unavailable and COMMIT_PATTERN.match(spec):
            # a full id needs no repository to be named: each target says why it cannot tell
            asked = [_Asked(scan, name, None, problem) for scan, name, _, problem in per_target]
            seen = {part.scan.key for part in asked}
            asked += [_Asked(scan, wanted, None, None) for scan in scans if scan.key not in seen]
            return spec, sorted(asked, key=lambda p: scans.index(p.scan)), store.git
        if wanted is not None and len(unavailable) == len(per_target):
            raise NotFound(str(unavailable[0]))
        where = f"repository '{wanted}'" if wanted else \
            "this repository or any repository the targets record"
        raise NotFound(f"unknown commit {spec!r} in {where}")
    if len(resolved) > 1:
        names = sorted({n for found in resolved.values() for n in found})
        if len(names) == 1:  # copies of one repository at different locations disagree
            raise DeployError(f"{spec!r} names different commits in the copies of repository "
                              f"'{names[0]}' the targets record; pass a full commit id, or "
                              "--target to ask one target")
        raise DeployError(f"{spec!r} names different commits in repositories "
                          f"{', '.join(names)}; pass --repository NAME")
    (commit, found_under), = resolved.items()
    by_key: dict[str, _Asked] = {}
    for scan, name, repo, problem in per_target:
        if name not in found_under or scan.key in by_key:
            continue
        if repo is not None and not repo.is_commit(commit):
            repo, problem = None, (f"commit {commit[:12]} is missing from this target's "
                                   f"repository '{name}' at its recorded location")
        by_key[scan.key] = _Asked(scan, name, repo, problem)
    for scan in scans:  # targets without that repository never shipped the commit
        by_key.setdefault(scan.key, _Asked(scan, sorted(found_under)[0], None, None))
    return commit, [by_key[scan.key] for scan in scans], holder[commit]


def commit_summary(git: GitRepo, commit: str) -> str:
    info = git.commit_info(commit)
    return info.message.split("\n", 1)[0]


# --- issues and merges ---------------------------------------------------------------------------

CLOSING_TRAILERS = frozenset({"fixes", "fixed", "fix", "closes", "closed", "close", "resolves",
                              "resolved", "resolve"})
REFERRING_TRAILERS = frozenset({"refs", "ref", "references", "related", "related-to",
                                "relates-to", "issue", "issues", "see-also", "part-of"})
DEFAULT_ISSUE_PATTERNS = (
    # #123, and owner/repo#123 across repositories (not &#123; or a URL's fragment)
    r"(?<![\w&#/])(?:[\w.-]+/[\w.-]+)?#\d+\b",
    # Jira/YouTrack keys: ABC-123
    r"\b[A-Z][A-Z0-9_]+-[1-9][0-9]*\b",
)
# look like ABC-123 but name standards, not issues (defaults only)
NOT_ISSUES = frozenset({"UTF", "SHA", "ISO", "RFC", "CVE", "PEP", "TLS", "SSL", "MD", "AES",
                        "RSA", "CRC", "GPL", "LGPL", "ECMA", "IEEE", "HTTP", "X"})
CLOSING_WORDS = re.compile(r"\b(?:fix(?:e[sd])?|close[sd]?|resolve[sd]?)[:\s]+$", re.IGNORECASE)
MERGE_REQUESTS = (
    # (pattern on the whole message, kind, how the request is named from its groups)
    (re.compile(r"\AMerge pull request #(\d+) from (\S+)"), "pull request", "#{0}"),
    (re.compile(r"^See merge request (\S*?)!(\d+)\s*$", re.MULTILINE), "merge request",
     "{0}!{1}"),
    (re.compile(r"\AMerged in (\S+) \(pull request #(\d+)\)"), "pull request", "#{1}"),
    (re.compile(r"\AMerged PR (\d+):"), "pull request", "#{0}"),
)


def issue_patterns(git: GitRepo) -> tuple[list[re.Pattern[str]], bool]:
    """The patterns issue keys are found with: `deploy.issuePattern` (repeatable), else the
    defaults; and whether they are the defaults."""
    configured = git.config_get_all("deploy.issuePattern")
    compiled = []
    for text in configured:
        try:
            compiled.append(re.compile(text))
        except re.error as exc:
            raise DeployError(f"invalid deploy.issuePattern {text!r}: {exc}") from None
    if compiled:
        return compiled, False
    return [re.compile(p) for p in DEFAULT_ISSUE_PATTERNS], True


def find_keys(text: str, patterns: list[re.Pattern[str]], defaults: bool
              ) -> list[tuple[str, int]]:
    """(key, offset) of every issue key in `text`; a pattern's first group is the key when it
    has one."""
    found = []
    for pattern in patterns:
        for match in pattern.finditer(text):
            key = match.group(1) if pattern.groups else match.group(0)
            if not key:
                continue
            if defaults and "-" in key and key.split("-", 1)[0] in NOT_ISSUES:
                continue
            found.append((key, match.start()))
    return found


@dataclass
class Issue:
    key: str
    closing: bool = False
    trailers: list[str] = field(default_factory=list)
    commits: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "closing": self.closing, "trailers": self.trailers,
                "commits": self.commits}


@dataclass
class Merge:
    repository: str
    commit: Message
    kind: str  # "pull request", "merge request" or "merge"
    request: str | None

    def as_json(self) -> dict[str, Any]:
        return {**self.commit.as_json(self.repository), "kind": self.kind,
                "request": self.request}


def merge_of(repository: str, commit: Message) -> Merge | None:
    if len(commit.parents) < 2:
        return None
    message = f"{commit.subject}\n\n{commit.body}"
    for pattern, kind, name in MERGE_REQUESTS:
        match = pattern.search(message)
        if match:
            return Merge(repository, commit, kind, name.format(*match.groups()))
    return Merge(repository, commit, "merge", None)


def issues_in(commits: Iterable[tuple[str, Message]], patterns: list[re.Pattern[str]],
              defaults: bool) -> tuple[list[Merge], list[Issue]]:
    """Merges, and issues keyed by name in the order first met, from (repository, message)."""
    merges: list[Merge] = []
    issues: dict[str, Issue] = {}

    def note(key: str, commit: str, closing: bool, trailer: str | None = None) -> None:
        issue = issues.setdefault(key, Issue(key))
        issue.closing = issue.closing or closing
        if trailer and trailer not in issue.trailers:
            issue.trailers.append(trailer)
        if commit not in issue.commits:
            issue.commits.append(commit)

    for repository, message in commits:
        merge = merge_of(repository, message)
        if merge is not None:
            merges.append(merge)
        text = f"{message.subject}\n\n{message.body}"
        for key, offset in find_keys(text, patterns, defaults):
            note(key, message.commit, bool(CLOSING_WORDS.search(text[max(0, offset - 16):
                                                                     offset])))
        for name, value in message.trailers:
            lowered = name.lower()
            if lowered not in CLOSING_TRAILERS and lowered not in REFERRING_TRAILERS:
                continue
            keys = [k for k, _ in find_keys(value, patterns, defaults)]
            if not keys:
                keys = _bare_reference(value)
            for key in keys:
                note(key, message.commit, lowered in CLOSING_TRAILERS, name)
    return merges, list(issues.values())


def _bare_reference(value: str) -> list[str]:
    """A trailer value no pattern matched: a URL or a bare number names an issue; a commit id
    (the kernel's `Fixes: <id> ("subject")`) does not."""
    word = value.split()[0] if value.split() else ""
    if word.startswith(("http://", "https://")):
        return [word]
    if word.isdigit():
        return [f"#{word}"]
    return []
