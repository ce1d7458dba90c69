"""Rebuilding a keep-alive ref (core/keepalive.py) from what a target's timeline recorded: after
a pull replaced the timeline, or to repair the ref (`git deploy keep`)."""

from __future__ import annotations

from git_deployments.core import keepalive
from git_deployments.core.model import Deployment
from git_deployments.git.repo import GitRepo
from git_deployments.history.questions import TimelineScan, scan_timeline


def recorded_between(git: GitRepo, key: str, old: str | None, new: str) -> list[str]:
    """The commits of this repository that the changes after `old` up to `new` of the target's
    timeline point at, read from the records each change wrote (deleted and superseded
    deployments included): what a server keeps after a push moved the timeline."""
    from git_deployments.core import records
    from git_deployments.core.store import TreeSnapshot

    infos = []  # newest first
    tip: str | None = new
    while tip is not None and tip != old:
        infos.append(git.commit_info(tip))
        tip = infos[-1].parents[0] if infos[-1].parents else None
    target = TreeSnapshot(git, key, new).target
    if target is None:
        return []
    trees = [info.tree for info in infos] + [git.commit_info(old).tree if old else None]
    found: list[Deployment] = []
    for i in reversed(range(len(infos))):
        tree, before = infos[i].tree, trees[i + 1]
        for path in git.changed_paths(before, tree):
            raw = git.read_path(tree, path) if path.startswith("deployments/") else None
            if raw is not None:
                found.append(records.load(Deployment, raw, f"{infos[i].id[:12]}:{path}"))
    return keepalive.home_commits(target, found)


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
