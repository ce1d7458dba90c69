"""Incidents as `git deploy incidents --json` and the API show them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from git_deployments.errors import DeployError

if TYPE_CHECKING:
    from git_deployments.core.model import Incident
    from git_deployments.core.store import Store, TreeSnapshot


def incident_json(key: str, incident: Incident) -> dict[str, Any]:
    """One incident: its record, the target it belongs to, and its state."""
    data: dict[str, Any] = {"target": key, "state": "open" if incident.is_open else "resolved"}
    data.update(incident.model_dump(mode="json"))
    return data


def target_incidents(snap: TreeSnapshot, open_only: bool = False) -> list[Incident]:
    """A target's incidents, newest first: the open ones through the index (no scan), all of
    them by reading the tree's incidents."""
    found = snap.open_incidents() if open_only else snap.all_incidents()
    return sorted(found, key=lambda i: i.id, reverse=True)


@dataclass
class Listing:
    """Incidents of one target or of all; a target that cannot be read is named in `errors`
    and the others are listed (one bad target never hides the rest)."""

    incidents: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def list_incidents(store: Store, key: str | None = None, open_only: bool = False) -> Listing:
    """Incidents of target `key` (every target when None), newest first."""
    listing = Listing()
    if key is not None:
        snap = store.existing(key)
        listing.incidents = [incident_json(key, i) for i in target_incidents(snap, open_only)]
        return listing
    found: list[tuple[Incident, str]] = []
    for each in store.keys():
        try:
            found += [(i, each) for i in target_incidents(store.snapshot(each), open_only)]
        except DeployError as exc:
            listing.errors.append(f"{each}: {exc}")
    found.sort(key=lambda pair: (pair[0].opened_at, pair[1], pair[0].id), reverse=True)
    listing.incidents = [incident_json(each, incident) for incident, each in found]
    return listing


def attributed_to(snap: TreeSnapshot, number: int) -> list[Incident]:
    """The incidents attributed to deployment `number`, oldest first."""
    return [i for i in snap.all_incidents() if i.deployment == number]
