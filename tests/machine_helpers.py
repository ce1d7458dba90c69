"""An in-memory snapshot and request builders for driving the pure state machine."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from git_deployments.core import machine
from git_deployments.core.model import (
    CommitRef,
    CreateTarget,
    Deployment,
    Incident,
    Index,
    Request,
    Target,
)

A = "a" * 40
B = "b" * 40
C = "c" * 40
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Memory:
    """A target's state held in memory, changed only through machine.apply."""

    def __init__(self, **settings: Any) -> None:
        self.target: Target | None = None
        self.index: Index | None = None
        self.recs: dict[int, Deployment] = {}
        self.incs: dict[int, Incident] = {}
        self.clock = T0
        self.oracle: machine.Oracle = machine.NoOracle()
        self.apply(CreateTarget, repository="app", settings=settings)

    def record(self, number: int) -> Deployment | None:
        return self.recs.get(number)

    def incident(self, number: int) -> Incident | None:
        return self.incs.get(number)

    def request(self, cls: type[Request], **fields: Any) -> Request:
        self.clock += timedelta(minutes=1)
        base = {"op_id": uuid.uuid4().hex, "at": fields.pop("at", self.clock),
                "by": "Ada <ada@example.com>", "target": "prod"}
        return cls.model_validate({**base, **fields})

    def apply(self, cls: type[Request], **fields: Any) -> machine.Change:
        change = machine.apply(self, self.request(cls, **fields), self.oracle)
        self.target, self.index = change.target, change.index
        for number, record in change.records.items():
            if record is None:
                self.recs.pop(number, None)
            else:
                self.recs[number] = record
        for number, incident in change.incidents.items():
            if incident is None:
                self.incs.pop(number, None)
            else:
                self.incs[number] = incident
        return change

    def deploy(self, op: str, *refs: tuple[str, str | None], **fields: Any) -> Deployment:
        from git_deployments.core.model import Deploy

        commits = [ref(branch, commit) for branch, commit in refs]
        change = self.apply(Deploy, op=op, commits=commits, **fields)
        assert change.number is not None
        return self.recs[change.number]

    def status_of(self, number: int) -> str:
        return str(self.recs[number].status)

    def check(self) -> None:
        assert self.index == machine.derive_index(self.recs.values(), self.index.next_number,
                                                  self.incs.values(), self.index.next_incident)


def ref(branch: str, commit: str | None, repository: str = "app") -> CommitRef:
    return CommitRef(repository=repository, branch=branch, commit=commit)


class AncestryOracle:
    """Ancestry from an explicit list of (ancestor, descendant) pairs."""

    def __init__(self, pairs: set[tuple[str, str]]) -> None:
        self.pairs = pairs

    def describe(self, repository: str, commit: str) -> str | None:
        return f"v-{commit[:4]}"

    def is_ancestor(self, repository: str, ancestor: str, descendant: str) -> bool | None:
        return ancestor == descendant or (ancestor, descendant) in self.pairs
