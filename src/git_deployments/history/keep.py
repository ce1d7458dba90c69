"""Rebuilding a keep-alive ref (core/keepalive.py) from what a target's timeline recorded: after
a pull replaced the timeline, or to repair the ref (`git deploy keep`)."""

from __future__ import annotations

from git_deployments.core import keepalive
from git_deployments.git.repo import GitRepo
from git_deployments.history.questions import TimelineScan, scan_timeline


def timeline_commits(git: GitRepo, key: str) -> list[str]:
    """Every commit of this repository that any change of the target's timeline recorded,
    oldest first (deleted and superseded deployments included)."""
    return scan_timeline(git, key).home_commits()


def rebuild(git: GitRepo, key: str, scan: TimelineScan | None = None) -> keepalive.Kept:
    """Regenerate the keep-alive ref from the timeline; the old chain is replaced by one that
    keeps exactly what the timeline records. `scan`: the timeline's, when the caller has read
    it already."""
    ids = scan.home_commits() if scan is not None else timeline_commits(git, key)
    return keepalive.replace(git, key, ids)
