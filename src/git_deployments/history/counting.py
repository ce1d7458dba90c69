"""Counting commits without listing them: the pending count `git deploy status` shows, capped
so that a branch far ahead of its deployment never costs a walk of its whole history.

The walk reads commits through pygit2 (GitRepo.commit_links), one at a time: stopping at the
cap is the point, and `git rev-list --count --max-count` still walks everything once a commit
is excluded.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from itertools import count as sequence

from git_deployments.core.model import Deployment, Target
from git_deployments.git.repo import GitRepo

PENDING_CAP = 1000  # what `status` counts at most: past it, "1000+"
SLOP = 5  # git's: steps a walk takes past the point it looks done, against skewed clocks


def count_capped(repo: GitRepo, tip: str, base: str, cap: int) -> tuple[int, bool]:
    """How many commits `tip` has that `base` has not, counted up to `cap`: (count, whether
    there are more). git's own walk (newest first by committer date, base's ancestors marked
    as the walk meets them, done once only marked commits are queued), stopped at the cap: a
    branch 200,000 commits ahead costs `cap` commit reads, not 200,000."""
    marked: dict[str, bool] = {}  # seen commits: is it an ancestor of base (git's UNINTERESTING)
    parents: dict[str, tuple[str, ...]] = {}  # the walked commits' parents
    queue: list[tuple[int, int, int, str]] = []
    order = sequence()
    state = {"queued": 0, "counted": 0}  # unmarked commits queued; walked and counted

    def push(commit: str, is_marked: bool) -> None:
        links = repo.commit_links(commit)
        if links is None:  # past a shallow boundary: nothing to count or to walk
            return
        marked[commit] = is_marked
        state["queued"] += not is_marked
        # newest first; at equal times base's side first, so a tie never counts a commit
        heapq.heappush(queue, (-links[0], not is_marked, next(order), commit))

    def mark(commit: str) -> None:
        """`commit` is base's too: so are its ancestors walked so far; uncount them."""
        stack = [commit]
        while stack:
            found = stack.pop()
            if marked[found]:
                continue
            marked[found] = True
            if found in parents:
                state["counted"] -= 1
                stack.extend(p for p in parents[found] if p in marked)
            else:
                state["queued"] -= 1

    push(base, True)
    if tip not in marked:
        push(tip, False)
    slop = SLOP
    last_counted: int | None = None  # the time of the last commit counted
    while queue:
        newest, _, _, commit = heapq.heappop(queue)
        is_marked = marked[commit]
        links = repo.commit_links(commit)
        parents[commit] = links[1] if links is not None else ()
        if not is_marked:
            state["queued"] -= 1
            state["counted"] += 1
            last_counted = -newest
        for parent in parents[commit]:
            if parent not in marked:
                push(parent, is_marked)
            elif is_marked:
                mark(parent)
        if state["counted"] > cap:
            return cap, True
        if is_marked and not state["queued"]:
            # only base's side is left; as git does, walk on while it is newer than what was
            # counted, then a few steps more, in case a clock was wrong
            if queue and last_counted is not None and last_counted <= -queue[0][0]:
                slop = SLOP
            else:
                slop -= 1
                if not slop or not queue:
                    break
    return state["counted"], False


@dataclass(frozen=True, slots=True)
class PendingCount:
    count: int | None  # None: nothing deployed, or none of its branches is here
    capped: bool = False  # there are more than `count`


def pending_count(git: GitRepo, target: Target, current: Deployment | None,
                  cap: int = PENDING_CAP) -> PendingCount:
    """How many commits the branch tips of this repository have that the current deployment
    does not (what `status` shows), counted up to `cap` in all."""
    if current is None:
        return PendingCount(None)
    total: int | None = None
    for ref in current.commits:
        if ref.repository != target.repository or not ref.commit:
            continue
        tip = git.branch_tip(ref.branch)
        if tip is None or not git.has_object(ref.commit):
            continue
        ahead, more = count_capped(git, tip, ref.commit, cap - (total or 0))
        total = (total or 0) + ahead
        if more:
            return PendingCount(total, capped=True)
    return PendingCount(total)
