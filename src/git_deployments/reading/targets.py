"""Targets as `--json` and the API show them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from git_deployments.core.model import Index, Target
    from git_deployments.core.store import Store


def target_json(target: Target) -> dict[str, Any]:
    return target.model_dump(mode="json")


def target_show(store: Store, key: str) -> dict[str, Any]:
    """A target's settings, its index, its health as the watcher last found it (None without a
    check) and the timeline commit they were read at."""
    from git_deployments.reading.status import target_health

    snap = store.existing(key)
    target, index = snap.require()
    return {**target_json(target), "index": index.model_dump(mode="json"),
            "health_state": target_health(store, key, target.health),
            "timeline_commit": snap.tip}


def targets(store: Store, include_archived: bool = False) -> list[tuple[Target, Index]]:
    """Every target with its index, by key; archived ones only when asked."""
    rows = []
    for key in store.keys():
        target, index = store.snapshot(key).require()
        if target.archived and not include_archived:
            continue
        rows.append((target, index))
    return rows


def target_entry(target: Target, index: Index) -> dict[str, Any]:
    """One line of `target list --json`."""
    return {**target_json(target), "deployments": index.count}


def target_written(target: Target, commit: str) -> dict[str, Any]:
    """What a target write answers: the settings after it, and its timeline commit."""
    return {**target_json(target), "timeline_commit": commit}
