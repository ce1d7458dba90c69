"""Deployments as `--json` and the API show them: one record, a page of a target's records, the
newest one, and what a write changed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from git_deployments.errors import NotFound

if TYPE_CHECKING:
    from git_deployments.core.model import Deployment, Index
    from git_deployments.core.store import Store, TreeSnapshot, WriteResult


def deployment_json(key: str, record: Deployment) -> dict[str, Any]:
    data: dict[str, Any] = {"target": key}
    data.update(record.model_dump(mode="json"))
    return data


def newest_first(snap: TreeSnapshot, index: Index, statuses: set[str] | None, limit: int,
                 before: int | None = None, *, branch: str | None = None) -> list[Deployment]:
    """Records from the newest number down (below `before` when given), reading only as many
    as needed; `limit` 0 means all. `branch` keeps those with a commit on that branch."""
    start = index.next_number - 1 if before is None else min(before - 1, index.next_number - 1)
    found: list[Deployment] = []
    for n in range(start, 0, -1):
        if limit and len(found) >= limit:
            break
        record = snap.record(n)
        if record is None or (statuses and record.status not in statuses):
            continue
        if branch is not None and all(ref.branch != branch for ref in record.commits):
            continue
        found.append(record)
    return found


def newest(snap: TreeSnapshot, index: Index, key: str) -> Deployment:
    """The deployment with the highest number that still exists."""
    found = newest_first(snap, index, None, 1)
    if not found:
        from git_deployments.history.questions import no_deployments

        raise NotFound(no_deployments(key, index))
    return found[0]


@dataclass
class Shown:
    """One deployment in full, with how many commits it brought per repository and the
    incidents attributed to it."""

    key: str
    record: Deployment
    brought: list[dict[str, Any]]
    incidents: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        return {**deployment_json(self.key, self.record), "brought": self.brought,
                "incidents": self.incidents}


def show(store: Store, key: str, number: int | None = None) -> Shown:
    """Deployment `number` of target `key` (default: the newest), as `git deploy show` has it."""
    snap = store.existing(key)
    _, index = snap.require()
    if number is None:
        record = newest(snap, index, key)
    else:
        found = snap.record(number)
        if found is None:
            raise NotFound(f"target '{key}' has no deployment #{number}")
        record = found
    return shown(store, snap, record)


def shown(store: Store, snap: TreeSnapshot, record: Deployment) -> Shown:
    """`record` of the timeline state `snap`, in full, as `show` answers it."""
    from git_deployments.history.questions import brought_counts
    from git_deployments.reading.incidents import attributed_to, incident_json

    incidents = [incident_json(snap.key, i) for i in attributed_to(snap, record.number)]
    return Shown(snap.key, record, brought_counts(store, snap.key, record), incidents)


def write_json(result: WriteResult) -> dict[str, Any]:
    """What a write changed: its timeline commit, every status change, and the deployment (or
    the incident)."""
    data: dict[str, Any] = {"timeline_commit": result.commit,
                            "effects": [{"number": e.number,
                                         "from": str(e.old) if e.old else None,
                                         "to": str(e.new) if e.new else None}
                                        for e in result.change.effects]}
    record = result.record
    if record is not None:
        data["deployment"] = deployment_json(result.key, record)
    incident = result.change.incidents.get(result.change.incident) \
        if result.change.incident is not None else None
    if incident is not None:
        from git_deployments.reading.incidents import incident_json

        data["incident"] = incident_json(result.key, incident)
    return data
