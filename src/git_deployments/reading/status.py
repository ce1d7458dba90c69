"""Every target at a glance: what is current since when, what is in flight, what is pending.
One target that cannot be read is named with its error; the others are answered."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from git_deployments.core.store import ref_name
from git_deployments.core.timeutil import iso
from git_deployments.errors import DeployError
from git_deployments.reading.deployments import deployment_json

if TYPE_CHECKING:
    from datetime import datetime

    from git_deployments.core.model import HealthCheck
    from git_deployments.core.store import Store


def target_health(store: Store, key: str, check: HealthCheck | None,
                  now: datetime | None = None) -> dict[str, Any] | None:
    """A target's health: None without a check; else what the watcher's last probe found (one
    small file in the repository's local state), or `unknown`."""
    if check is None:
        return None
    from git_deployments.core.intake import clock
    from git_deployments.watch.health import health_summary, read_state

    return health_summary(check, read_state(store.git.common_dir, key), now or clock())


def target_status(store: Store, key: str) -> dict[str, Any]:
    """One target's summary, from its index and at most a few records: O(1) in history (the
    pending count walks at most PENDING_CAP commits)."""
    from git_deployments.history.counting import pending_count

    snap = store.snapshot(key)
    target, index = snap.require()
    current = snap.record(index.current) if index.current else None
    in_flight = snap.record(index.in_flight) if index.in_flight else None
    scheduled = [r for r in (snap.record(n) for n in sorted({e.number for e in index.scheduled}))
                 if r is not None]
    pending = pending_count(store.git, target, current)
    return {
        "target": key, "name": target.name, "archived": target.archived,
        "current": deployment_json(key, current) if current else None,
        "current_since": iso(current.since) if current else None,
        "in_flight": deployment_json(key, in_flight) if in_flight else None,
        "scheduled": [deployment_json(key, r) for r in scheduled],
        "pending": pending.count, "pending_capped": pending.capped,
        "deployments": index.count,
        "health": target_health(store, key, target.health),
        "open_incidents": list(index.open_incidents),
        "timeline_commit": snap.tip,
    }


def unreadable(key: str, exc: Exception) -> dict[str, Any]:
    """The entry of a target whose records cannot be read: its key and why."""
    if isinstance(exc, DeployError):
        reason = str(exc)  # it names the ref and the record
    else:  # a missing object, an unreadable file: the repository's damage, named plainly
        text = str(exc).splitlines()[0] if str(exc) else ""
        reason = f"{ref_name(key)} cannot be read: {type(exc).__name__}" + \
            (f": {text}" if text else "")
    return {"target": key, "error": reason}


def status(store: Store, include_archived: bool = False) -> list[dict[str, Any]]:
    """Every target's summary, by key; archived ones only when asked. A target that cannot be
    read gets an entry with an `error` instead, and never stops the others."""
    rows = []
    for key in store.keys():
        try:
            row = target_status(store, key)
        except (DeployError, LookupError, ValueError, OSError) as exc:
            rows.append(unreadable(key, exc))
            continue
        if include_archived or not row["archived"]:
            rows.append(row)
    return rows
