"""Keep-alive refs: deployed commits stay reachable, so `git gc` never prunes what a record
points at, even after its branch was force-pushed or deleted. Every write keeps what its
records point at (store.write calls `retain`); history/keep.py rebuilds a ref from a timeline.

`refs/deployments-kept/<key>` is a chain of commits whose other parents are the deployed
commits. Each chain commit's tree lists the commits kept so far as empty files named by id
(`ab/cdef…`, fanned out like git notes), so "is it kept already?" is one tree lookup instead of
a walk of the chain. The ref lives outside `refs/deployments/`, so sync neither fetches nor
pushes it: every clone keeps what its own records point at.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from git_deployments.core.model import COMMIT_PATTERN, Deployment, Target
from git_deployments.errors import DeployError
from git_deployments.git.repo import TOOL_EMAIL, TOOL_NAME, GitRepo, Person, RaceLost

KEPT_PREFIX = "refs/deployments-kept/"
# parents per chain commit when rebuilding: octopus commits with thousands of parents are legal
# but slow some tools down
PARENTS_PER_COMMIT = 16
TRIES = 5


@dataclass
class Kept:
    """What one retain or rebuild did."""

    added: list[str] = field(default_factory=list)
    already: int = 0
    # deployed commits this repository does not have (never fetched, or pruned before they were
    # kept): reported by id, never fatal
    missing: list[str] = field(default_factory=list)
    tip: str | None = None


def kept_ref(key: str) -> str:
    return KEPT_PREFIX + key


def _path(commit: str) -> str:
    return f"{commit[:2]}/{commit[2:]}"


def home_commits(target: Target, records: Iterable[Deployment | None]) -> list[str]:
    """The commit ids `records` point at in the repository holding the target's ref."""
    found: dict[str, None] = {}
    for record in records:
        if record is None:
            continue
        for ref in record.commits:
            if ref.commit and ref.repository == target.repository:
                found[ref.commit] = None
    return list(found)


def _tool() -> Person:
    return Person(TOOL_NAME, TOOL_EMAIL)


def _tree_of(git: GitRepo, tip: str | None) -> str | None:
    if tip is None:
        return None
    try:
        return git.commit_info(tip).tree
    except DeployError:
        return None


def retain(git: GitRepo, key: str, commit_ids: Iterable[str]) -> Kept:
    """Make the deployed `commit_ids` reachable from the target's keep-alive ref.

    Commits kept already are skipped (a tree lookup each); commits this repository lacks are
    returned in `missing`.
    """
    wanted = [c for c in dict.fromkeys(commit_ids) if COMMIT_PATTERN.match(c)]
    ref = kept_ref(key)
    result = Kept()
    for _ in range(TRIES):
        tip = git.read_ref(ref)
        tree = _tree_of(git, tip)
        result = Kept(tip=tip)
        for commit in wanted:
            if tree is not None and git.read_path(tree, _path(commit)) is not None:
                result.already += 1
            elif git.is_commit(commit):
                result.added.append(commit)
            else:
                result.missing.append(commit)
        if not result.added:
            return result
        new_tree = git.write_tree(tree, {_path(c): b"" for c in result.added})
        parents = ([tip] if tip else []) + result.added
        subject = f"{key}: keep {len(result.added)} deployed commit" \
                  f"{'s' if len(result.added) != 1 else ''}"
        commit = git.create_commit(new_tree, parents, subject + "\n", _tool(), int(time.time()))
        try:
            git.update_ref(ref, commit, tip, "git-deploy: keep deployed commits")
        except RaceLost:
            continue  # another writer kept something meanwhile: look again
        result.tip = commit
        return result
    raise DeployError(f"{ref} kept changing; run 'git deploy keep {key}' to rebuild it")


def replace(git: GitRepo, key: str, commit_ids: Iterable[str]) -> Kept:
    """Replace the keep-alive ref by a chain that keeps exactly `commit_ids` (those this
    repository has; the others are returned in `missing`)."""
    ids = list(dict.fromkeys(c for c in commit_ids if COMMIT_PATTERN.match(c)))
    present = [c for c in ids if git.is_commit(c)]
    kept = set(present)
    missing = [c for c in ids if c not in kept]
    ref = kept_ref(key)
    for _ in range(TRIES):
        old = git.read_ref(ref)
        tip: str | None = None
        tree: str | None = None
        chunks = [present[i:i + PARENTS_PER_COMMIT]
                  for i in range(0, len(present), PARENTS_PER_COMMIT)] or [[]]
        for chunk in chunks:
            tree = git.write_tree(tree, {_path(c): b"" for c in chunk})
            subject = f"{key}: keep {len(chunk)} deployed commit{'s' if len(chunk) != 1 else ''}"
            tip = git.create_commit(tree, ([tip] if tip else []) + chunk, subject + "\n",
                                    _tool(), int(time.time()))
        assert tip is not None
        try:
            git.update_ref(ref, tip, old, "git-deploy: rebuild keep-alive ref")
        except RaceLost:
            continue
        return Kept(added=present, missing=missing, tip=tip)
    raise DeployError(f"{ref} kept changing while it was rebuilt; try again")
