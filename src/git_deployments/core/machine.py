"""The state machine: `apply(snapshot, request, oracle) -> Change`. Pure: no I/O of its own.

What the repository knows (a commit's `git describe`, ancestry) is asked through an oracle and
every answer is recorded in the change, so replaying the request anywhere gives the same tree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from git_deployments.core.model import (
    IN_FLIGHT,
    MAX_HISTORY,
    ArchiveTarget,
    Comment,
    CommitRef,
    CreateTarget,
    Delete,
    Deploy,
    Deployment,
    Edit,
    EditTarget,
    HealthCheck,
    Incident,
    Index,
    OpenIncident,
    Repository,
    Request,
    ResolveIncident,
    ScheduledEntry,
    SetStatus,
    Status,
    StatusChange,
    Target,
    TargetSettings,
    Timeout,
)
from git_deployments.core.timeutil import format_duration, later
from git_deployments.errors import InternalError, NotFound, RuleViolation

MANUAL_FORBIDDEN = frozenset({Status.HANGING, Status.COMPLETED})


class Snapshot(Protocol):
    """A target's state at one tip of its timeline."""

    @property
    def target(self) -> Target | None: ...

    @property
    def index(self) -> Index | None: ...

    def record(self, number: int) -> Deployment | None: ...

    def incident(self, number: int) -> Incident | None: ...


class Oracle(Protocol):
    def describe(self, repository: str, commit: str) -> str | None: ...

    def is_ancestor(self, repository: str, ancestor: str, descendant: str) -> bool | None: ...


class NoOracle:
    """Answers nothing: versions stay unset, no rollback is detected."""

    def describe(self, repository: str, commit: str) -> str | None:
        return None

    def is_ancestor(self, repository: str, ancestor: str, descendant: str) -> bool | None:
        return None


@dataclass
class Effect:
    number: int
    old: Status | None
    new: Status | None


@dataclass
class Change:
    """What an operation does: the new target, index and records, and how to describe it."""

    target: Target
    index: Index
    records: dict[int, Deployment | None]
    number: int | None
    effects: list[Effect]
    facts: dict[str, str | bool | None]
    subject: str
    body: str = ""
    trailers: list[tuple[str, str]] = field(default_factory=list)
    incidents: dict[int, Incident | None] = field(default_factory=dict)
    incident: int | None = None  # the incident the change opened or resolved


class _Facts:
    """The oracle, answering first from what the request recorded."""

    def __init__(self, oracle: Oracle, recorded: dict[str, str | bool | None]) -> None:
        self.oracle = oracle
        self.recorded = recorded
        self.used: dict[str, str | bool | None] = {}

    def describe(self, repository: str, commit: str) -> str | None:
        key = f"describe:{repository}:{commit}"
        if key not in self.recorded:
            self.recorded = {**self.recorded, key: self.oracle.describe(repository, commit)}
        value = self.recorded[key]
        self.used[key] = value
        return value if isinstance(value, str) else None

    def rule(self, name: str) -> bool:
        """Whether a rule added after the format's first release applies: yes for a change made
        now (and recorded, so replays agree), no for a change recorded before the rule existed
        (a replay must give the tree that change was written with)."""
        key = f"rule:{name}"
        if key not in self.recorded:
            self.recorded = {**self.recorded, key: not getattr(self.oracle, "replaying", False)}
        value = self.recorded[key]
        self.used[key] = value
        return value is True

    def is_ancestor(self, repository: str, ancestor: str, descendant: str) -> bool:
        key = f"ancestor:{repository}:{ancestor}:{descendant}"
        if key not in self.recorded:
            self.recorded = {**self.recorded,
                             key: self.oracle.is_ancestor(repository, ancestor, descendant)}
        value = self.recorded[key]
        self.used[key] = value
        return value is True


# --- the index: derived from the records, kept up to date one record at a time ---------------


def index_add(index: Index, record: Deployment) -> Index:
    in_flight, current = index.in_flight, index.current
    scheduled = list(index.scheduled)
    if record.status in IN_FLIGHT:
        if in_flight is not None and in_flight != record.number:
            raise InternalError(f"two deployments in flight (#{in_flight}, #{record.number})")
        in_flight = record.number
    elif record.status == Status.CURRENT:
        if current is not None and current != record.number:
            raise InternalError(f"two current deployments (#{current}, #{record.number})")
        current = record.number
    elif record.status == Status.SCHEDULED:
        for repo, branch in sorted(record.branch_keys):
            taken = [e.number for e in scheduled if (e.repository, e.branch) == (repo, branch)]
            if taken:
                raise InternalError(f"two scheduled deployments for {repo}:{branch}")
            scheduled.append(ScheduledEntry(repository=repo, branch=branch,
                                            number=record.number))
    scheduled.sort(key=lambda e: (e.repository, e.branch))
    return Index(next_number=max(index.next_number, record.number + 1), count=index.count + 1,
                 in_flight=in_flight, current=current, scheduled=scheduled,
                 open_incidents=index.open_incidents, next_incident=index.next_incident)


def index_remove(index: Index, record: Deployment) -> Index:
    return Index(
        next_number=index.next_number,
        count=index.count - 1,
        in_flight=None if index.in_flight == record.number else index.in_flight,
        current=None if index.current == record.number else index.current,
        scheduled=[e for e in index.scheduled if e.number != record.number],
        open_incidents=index.open_incidents,
        next_incident=index.next_incident,
    )


def derive_index(records: Iterable[Deployment], next_number: int,
                 incidents: Iterable[Incident] = (), next_incident: int = 1) -> Index:
    """The index that a set of records (and incidents) implies (what fsck and the hook compare
    against)."""
    open_ids = sorted(i.id for i in incidents if i.is_open)
    index = Index(next_number=next_number, count=0, open_incidents=open_ids,
                  next_incident=next_incident)
    for record in sorted(records, key=lambda r: r.number):
        index = index_add(index, record)
    return index


# --- applying one request ----------------------------------------------------------------------


class _Apply:
    def __init__(self, snap: Snapshot, request: Request, oracle: Oracle) -> None:
        self.snap = snap
        self.req = request
        self.facts = _Facts(oracle, dict(request.facts))
        self.changed: dict[int, Deployment | None] = {}
        self.incidents: dict[int, Incident | None] = {}
        self.effects: list[Effect] = []
        if snap.target is None or snap.index is None:
            raise NotFound(f"unknown target '{request.target}'")
        self.target: Target = snap.target
        self.index: Index = snap.index

    # records as this change sees them
    def get(self, number: int) -> Deployment:
        record = self.changed[number] if number in self.changed else self.snap.record(number)
        if record is None:
            raise NotFound(f"target '{self.target.key}' has no deployment #{number}")
        return record

    def put(self, old: Deployment | None, new: Deployment | None) -> None:
        if old is not None:
            self.index = index_remove(self.index, old)
        if new is not None:
            self.index = index_add(self.index, new)
            self.changed[new.number] = new
        elif old is not None:
            self.changed[old.number] = None

    def move(self, record: Deployment, status: Status, reason: str | None = None,
             **updates: object) -> Deployment:
        """`record` in `status` (with `updates`), written, its history extended."""
        if len(record.history) >= MAX_HISTORY:
            raise RuleViolation(
                f"deployment #{record.number} has {MAX_HISTORY} status changes, the most kept; "
                "create a new deployment instead")
        change = StatusChange(status=status, at=self.moment, by=self.req.by, op=self.op_name,
                              reason=reason)
        new = record.model_copy(update={
            **updates, "status": status, "updated_at": self.moment,
            "history": [*record.history, change],
        })
        new = Deployment.model_validate(new.model_dump())
        self.put(record, None)
        self.put(None, new)
        self.effects.append(Effect(record.number, record.status, status))
        return new

    def update(self, record: Deployment, **updates: object) -> Deployment:
        new = Deployment.model_validate({**record.model_dump(), **updates,
                                         "updated_at": self.moment})
        self.put(record, None)
        self.put(None, new)
        return new

    def create(self, status: Status, commits: list[CommitRef], version: str | None,
               reason: str | None = None, **fields: object) -> Deployment:
        number = self.index.next_number
        record = Deployment(
            number=number, version=version, status=status, commits=commits,
            created_at=self.moment, updated_at=self.moment,
            history=[StatusChange(status=status, at=self.moment, by=self.req.by,
                                  op=self.op_name, reason=reason)],
            **fields,
        )
        self.put(None, record)
        self.effects.append(Effect(number, None, status))
        return record

    @property
    def moment(self) -> datetime:
        """When what the request records happened: when it is recorded, unless a finish or fail
        says it happened earlier (history imported from tags)."""
        happened: datetime | None = getattr(self.req, "happened_at", None)
        return happened or self.req.at

    @property
    def op_name(self) -> str:
        return str(getattr(self.req, "op"))  # noqa: B009 - each operation declares its op

    # --- shared rules ---

    def check_repositories(self, refs: list[CommitRef]) -> None:
        known = self.target.repository_names()
        for ref in refs:
            if ref.repository not in known:
                raise RuleViolation(
                    f"target '{self.target.key}' has no repository '{ref.repository}' "
                    f"(it lists: {', '.join(known)})")
        seen: set[tuple[str, str]] = set()
        for ref in refs:
            if ref.branch_key in seen:
                raise RuleViolation(f"{ref.repository}:{ref.branch} is given twice")
            seen.add(ref.branch_key)

    def check_active(self) -> None:
        if self.target.archived:
            raise RuleViolation(f"target '{self.target.key}' is archived; "
                                f"'git deploy target unarchive {self.target.key}' to use it")

    def default_version(self, commits: list[CommitRef]) -> str | None:
        for ref in commits:
            if ref.commit:
                return self.facts.describe(ref.repository, ref.commit)
        return None

    def follow_version(self, record: Deployment, commits: list[CommitRef],
                       updates: dict[str, Any]) -> None:
        """A version nobody gave (`git describe` of the commit, or none) follows the commit when
        the commit changes; one a person gave is kept."""
        new = next(((ref.repository, ref.commit) for ref in commits if ref.commit), None)
        if "version" in updates or new is None:
            return
        old = next(((ref.repository, ref.commit) for ref in record.commits if ref.commit), None)
        if record.version is not None:
            if old is None or old == new:
                return
            if record.version != self.facts.describe(*old):
                return  # a person's version
            if not self.facts.rule("version-follows-commit"):
                return  # recorded before versions followed commits
        updates["version"] = self.facts.describe(*new)

    def merge_refs(self, old: list[CommitRef], new: list[CommitRef]) -> list[CommitRef]:
        """`old` with each (repo, branch) of `new` replaced; a ref without a commit keeps the
        commit it had."""
        merged = list(old)
        for ref in new:
            for i, have in enumerate(merged):
                if have.branch_key == ref.branch_key:
                    merged[i] = ref if ref.commit else have
                    break
            else:
                merged.append(ref)
        return merged

    def require_commits(self, refs: list[CommitRef], what: str) -> None:
        for ref in refs:
            if ref.commit is None:
                raise RuleViolation(
                    f"no commit id known for {ref.repository}:{ref.branch}; cannot {what} — "
                    f"pass --commit {ref.repository}:{ref.branch}:<commit> (or :HEAD)")

    def one_scheduled(self, refs: list[CommitRef]) -> Deployment | None:
        numbers = self.index.scheduled_for({ref.branch_key for ref in refs})
        if len(numbers) > 1:
            listed = ", ".join(f"#{n}" for n in numbers)
            raise RuleViolation(f"the commit refs match several scheduled deployments ({listed}); "
                                "name one branch per deployment")
        return self.get(numbers[0]) if numbers else None

    def check_scheduled_free(self, record: Deployment) -> None:
        for number in self.index.scheduled_for(record.branch_keys):
            if number != record.number:
                raise RuleViolation(
                    f"deployment #{number} is already scheduled for the same branch; "
                    "a branch has at most one scheduled deployment")

    def check_in_flight_free(self, record_number: int | None) -> None:
        if self.index.in_flight is not None and self.index.in_flight != record_number:
            raise RuleViolation(
                f"deployment #{self.index.in_flight} is already in flight on target "
                f"'{self.target.key}'; finish or fail it first")

    def make_current(self, record: Deployment, reason: str | None, **updates: object) -> Deployment:
        """`record` becomes current; the previous current becomes completed."""
        commits = updates.get("commits", record.commits)
        rollback_of = self.retire_current(commits, record.number)  # type: ignore[arg-type]
        if rollback_of is None and record.status in IN_FLIGHT:
            # a rollback started on purpose stays one when it lands
            rollback_of = record.rollback_of
        return self.move(record, Status.CURRENT, reason, rollback_of=rollback_of, **updates)

    def retire_current(self, commits: list[CommitRef], keep: int | None = None) -> int | None:
        """The current deployment (other than `keep`) becomes completed; returns its number
        when the incoming `commits` roll it back."""
        previous = self.index.current
        if previous is None or previous == keep:
            return None
        old = self.get(previous)
        rollback = self.is_rollback(commits, old)
        self.move(old, Status.COMPLETED)
        return old.number if rollback else None

    def is_rollback(self, commits: list[CommitRef], old: Deployment) -> bool:
        """An incoming commit is a strict ancestor of what ran before it, in some repository."""
        before = {ref.repository: ref.commit for ref in old.commits if ref.commit}
        for ref in commits:
            was = before.get(ref.repository)
            if ref.commit and was and ref.commit != was and \
                    self.facts.is_ancestor(ref.repository, ref.commit, was):
                return True
        return False

    def display_updates(self, req: Deploy | Edit) -> dict[str, object]:
        updates: dict[str, object] = {}
        if req.version is not None:
            updates["version"] = req.version
        if req.description is not None:
            updates["description"] = req.description
        if req.external_link is not None:
            updates["external_link"] = req.external_link
        if req.scheduled_for is not None:
            updates["scheduled_for"] = req.scheduled_for
        return updates

    # --- operations ---

    def deploy(self, req: Deploy) -> Deployment:
        self.check_active()
        self.check_repositories(req.commits)
        if req.number is not None and req.op not in ("finish", "fail"):
            raise RuleViolation(f"{req.op} does not take a deployment number")
        if req.happened_at is not None:
            if req.op not in ("finish", "fail"):
                raise RuleViolation(f"{req.op} records what happens now; only finish and fail "
                                    "record a deployment that happened earlier")
            if req.happened_at > req.at:
                raise RuleViolation("a deployment cannot have happened after it was recorded")
        if req.rollback_to is not None:
            return self.rollback(req)
        if req.op == "schedule":
            return self.schedule(req)
        if req.op == "start":
            return self.start(req)
        return self.finish(req, Status.CURRENT if req.op == "finish" else Status.FAILED)

    def rollback(self, req: Deploy) -> Deployment:
        """Redeploy an earlier successful deployment on purpose: a new deployment with its
        commits and version (`start`: deploying; `finish`: current at once), rolling back the
        current one."""
        if req.op not in ("start", "finish"):
            raise RuleViolation("a rollback starts or finishes a deployment, nothing else")
        if req.commits:
            raise RuleViolation("a rollback deploys the commits of the deployment it returns to; "
                                "give no commit refs")
        assert req.rollback_to is not None
        earlier = self.get(req.rollback_to)
        current = self.index.current
        if current is None:
            raise RuleViolation(f"target '{self.target.key}' has no current deployment to roll "
                                "back")
        if earlier.number == current:
            raise RuleViolation(f"deployment #{earlier.number} is the current one already")
        if earlier.status != Status.COMPLETED:
            raise RuleViolation(f"deployment #{earlier.number} is {earlier.status}; a rollback "
                                "returns to one that completed")
        self.check_in_flight_free(None)
        self.require_commits(earlier.commits, "roll back to it")
        updates = self.display_updates(req)
        updates.pop("scheduled_for", None)
        version = updates.pop("version", None) or earlier.version
        status = Status.DEPLOYING
        if req.op == "finish":
            self.retire_current(earlier.commits)
            status = Status.CURRENT
        return self.create(status, list(earlier.commits), version,  # type: ignore[arg-type]
                           req.reason, rollback_of=current, **updates)

    def schedule(self, req: Deploy) -> Deployment:
        if not req.commits:
            raise RuleViolation("schedule needs a commit ref (--commit REPO:BRANCH[:COMMIT])")
        found = self.one_scheduled(req.commits)
        if found is not None:
            commits = self.merge_refs(found.commits, req.commits)
            updates = self.display_updates(req)
            self.follow_version(found, commits, updates)
            return self.update(found, commits=commits, **updates)
        updates = self.display_updates(req)
        version = updates.pop("version", None) or self.default_version(req.commits)
        return self.create(Status.SCHEDULED, list(req.commits), version,  # type: ignore[arg-type]
                           req.reason, **updates)

    def start(self, req: Deploy) -> Deployment:
        updates = self.display_updates(req)
        updates.pop("scheduled_for", None)
        if self.index.in_flight is not None:
            record = self.get(self.index.in_flight)
            commits = self.merge_refs(record.commits, req.commits)
            self.require_commits(commits, "start")
            self.follow_version(record, commits, updates)
            if record.status == Status.HANGING:
                return self.move(record, Status.DEPLOYING, req.reason, commits=commits, **updates)
            return self.update(record, commits=commits, **updates)
        found = self.one_scheduled(req.commits) if req.commits else None
        if found is not None:
            commits = self.merge_refs(found.commits, req.commits)
            self.require_commits(commits, "start")
            self.follow_version(found, commits, updates)
            return self.move(found, Status.DEPLOYING, req.reason, commits=commits, **updates)
        if self.target.start_requires_schedule:
            branches = ", ".join(f"{r.repository}:{r.branch}" for r in req.commits) or "it"
            raise RuleViolation(
                f"no scheduled deployment for {branches} on target '{self.target.key}' "
                "(the target requires one: start_requires_schedule); schedule it first")
        if not req.commits:
            raise RuleViolation("start needs a commit ref (--commit REPO:BRANCH:COMMIT)")
        self.require_commits(req.commits, "start")
        version = updates.pop("version", None) or self.default_version(req.commits)
        return self.create(Status.DEPLOYING, list(req.commits), version,  # type: ignore[arg-type]
                           req.reason, **updates)

    def finish(self, req: Deploy, status: Status) -> Deployment:
        updates = self.display_updates(req)
        updates.pop("scheduled_for", None)
        verb = "finish" if status == Status.CURRENT else "fail"
        land = self.make_current if status == Status.CURRENT else self.make_failed
        if req.number is not None:
            record = self.get(req.number)
            if record.status not in IN_FLIGHT:
                raise RuleViolation(f"deployment #{record.number} is {record.status}, not in "
                                    f"flight: it cannot be {verb}ed any more")
            commits = self.merge_refs(record.commits, req.commits)
            self.require_commits(commits, verb)
            return land(record, req.reason, commits=commits, **updates)
        if not req.commits:
            if self.index.in_flight is None:
                raise RuleViolation(
                    f"target '{self.target.key}' has no deployment in flight; "
                    f"pass --commit to {verb} a specific one")
            return land(self.get(self.index.in_flight), req.reason, **updates)
        branch_keys = {ref.branch_key for ref in req.commits}
        if self.index.in_flight is not None:
            record = self.get(self.index.in_flight)
            if record.branch_keys & branch_keys:
                commits = self.merge_refs(record.commits, req.commits)
                self.require_commits(commits, verb)
                self.follow_version(record, commits, updates)
                return land(record, req.reason, commits=commits, **updates)
        self.require_commits(req.commits, verb)
        found = self.one_scheduled(req.commits)
        if found is not None:
            wanted = {ref.branch_key: ref.commit for ref in req.commits}
            if all(wanted.get(ref.branch_key, ref.commit) == ref.commit for ref in found.commits):
                commits = self.merge_refs(found.commits, req.commits)
                self.follow_version(found, commits, updates)
                return land(found, req.reason, commits=commits, **updates)
        version = updates.pop("version", None) or self.default_version(req.commits)
        if status == Status.FAILED:
            return self.create(Status.FAILED, list(req.commits), version,  # type: ignore[arg-type]
                               req.reason, **updates)
        rollback_of = self.retire_current(req.commits)
        return self.create(Status.CURRENT, list(req.commits), version,  # type: ignore[arg-type]
                           req.reason, rollback_of=rollback_of, **updates)

    def make_failed(self, record: Deployment, reason: str | None, **updates: object) -> Deployment:
        return self.move(record, Status.FAILED, reason, **updates)

    def set_status(self, req: SetStatus) -> Deployment:
        self.check_active()
        if not self.target.manual_controls:
            raise RuleViolation(
                f"manual status changes are off for target '{self.target.key}'; "
                f"enable them with 'git deploy target edit {self.target.key} --manual-controls'")
        if req.status in MANUAL_FORBIDDEN:
            raise RuleViolation(f"'{req.status}' is set automatically, never by hand")
        record = self.get(req.number)
        if record.status == req.status:
            raise RuleViolation(f"deployment #{record.number} is already {record.status}")
        if req.status == Status.CURRENT:
            self.require_commits(record.commits, "make it current")
            return self.make_current(record, req.reason)
        if req.status == Status.DEPLOYING:
            self.check_in_flight_free(record.number)
            self.require_commits(record.commits, "start it")
        if req.status == Status.SCHEDULED:
            self.check_scheduled_free(record)
        return self.move(record, req.status, req.reason)

    def timeout(self, req: Timeout) -> Deployment:
        record = self.get(req.number)
        if record.status not in IN_FLIGHT:
            raise RuleViolation(f"deployment #{record.number} is {record.status}, not in flight")
        started = record.entered(Status.DEPLOYING) or record.created_at
        if req.status == Status.HANGING:
            limit = self.target.hanging_after
            if record.status != Status.DEPLOYING:
                raise RuleViolation(f"deployment #{record.number} is already {record.status}")
        else:
            limit = self.target.failed_after
        if limit is None:
            raise RuleViolation(f"target '{self.target.key}' has no {req.status} timeout")
        if req.at < later(started, limit):
            raise RuleViolation(f"deployment #{record.number} is not yet due to be {req.status}")
        reason = f"no status change for {_minutes(limit)} after it started deploying"
        return self.move(record, req.status, reason)

    def edit(self, req: Edit) -> Deployment:
        record = self.get(req.number)
        updates = self.display_updates(req)
        if not updates:
            raise RuleViolation("nothing to edit: give --version, --description, --ext-label, "
                                "--ext-url or --at")
        return self.update(record, **updates)

    def delete(self, req: Delete) -> Deployment:
        record = self.get(req.number)
        self.put(record, None)
        self.effects.append(Effect(record.number, record.status, None))
        return record

    def comment(self, req: Comment) -> Deployment | None:
        return self.get(req.number) if req.number is not None else None

    # --- incidents ---

    def check_happened(self, req: OpenIncident | ResolveIncident) -> None:
        if req.happened_at is not None and req.happened_at > req.at:
            raise RuleViolation("an incident cannot have happened after it was recorded")

    def open_incident(self, req: OpenIncident) -> Incident:
        self.check_active()
        self.check_happened(req)
        if req.deployment is not None:
            self.get(req.deployment)  # it must exist
        if len(self.index.open_incidents) >= MAX_HISTORY:
            raise RuleViolation(f"target '{self.target.key}' has {MAX_HISTORY} open incidents, "
                                "the most kept; resolve some first")
        number = self.index.next_incident
        incident = Incident(id=number, deployment=req.deployment or self.index.current,
                            opened_at=self.moment, opened_by=self.req.by,
                            reason=req.reason or "")
        self.incidents[number] = incident
        self.index = self.index.model_copy(update={
            "open_incidents": [*self.index.open_incidents, number],
            "next_incident": number + 1,
        })
        return incident

    def resolve_incident(self, req: ResolveIncident) -> Incident:
        self.check_happened(req)
        key = self.target.key
        open_ids = self.index.open_incidents
        if req.id is None:
            if not open_ids:
                raise RuleViolation(f"target '{key}' has no open incident")
            if len(open_ids) > 1:
                listed = ", ".join(str(n) for n in open_ids)
                raise RuleViolation(f"target '{key}' has {len(open_ids)} open incidents "
                                    f"({listed}); name the one to resolve")
            number = open_ids[0]
        else:
            number = req.id
        incident = self.snap.incident(number)
        if incident is None:
            raise NotFound(f"target '{key}' has no incident {number}")
        if number not in open_ids or not incident.is_open:
            raise RuleViolation(f"incident {number} of target '{key}' is already resolved")
        if self.moment < incident.opened_at:
            from git_deployments.core.timeutil import iso

            raise RuleViolation(f"incident {number} opened at {iso(incident.opened_at)}; it "
                                "cannot be resolved before that")
        resolved = incident.model_copy(update={
            "resolved_at": self.moment, "resolved_by": self.req.by, "resolution": req.reason,
        })
        resolved = Incident.model_validate(resolved.model_dump())
        self.incidents[number] = resolved
        self.index = self.index.model_copy(update={
            "open_incidents": [n for n in open_ids if n != number],
        })
        return resolved


def _minutes(seconds: int) -> str:
    from git_deployments.core.timeutil import format_duration

    return format_duration(seconds)


# what a health check's settings are called where they are given one at a time
HEALTH_SETTINGS = ("url", "expect", "exec", "every", "timeout", "failures")


def health_edited(current: HealthCheck | None, given: dict[str, Any]) -> HealthCheck:
    """The health check `given` (some of HEALTH_SETTINGS) makes of `current`. A URL or a program
    names a new probe (the expected text goes with a URL, given beside it or not at all); the
    interval, timeout and failures not given are kept from `current`, or take their defaults.
    The request then records the whole check, so a replay anywhere gives the same target."""
    unknown = set(given) - set(HEALTH_SETTINGS)
    if unknown:
        raise InternalError(f"unknown health check settings: {', '.join(sorted(unknown))}")
    if given.get("url") is not None and given.get("exec") is not None:
        raise RuleViolation("a health check probes a URL or runs a program, not both")
    new_probe = given.get("url") is not None or given.get("exec") is not None
    if current is None and not new_probe:
        raise RuleViolation("the target has no health check to change: give it a URL or a "
                            "program to probe")
    data: dict[str, Any] = current.model_dump() if current is not None else {}
    if new_probe:
        data.update(url=given.get("url"), exec=given.get("exec"), expect=None)
    for name in ("expect", "every", "timeout", "failures"):
        if given.get(name) is not None:
            data[name] = given[name]
    if data.get("expect") == "":
        data["expect"] = None  # nothing to look for: any 2xx answer will do
    every = data.get("every", HealthCheck.fields()["every"].default)
    if current is None and given.get("timeout") is None and isinstance(every, int):
        # a new check probing more often than the default timeout is cut off at its interval
        data["timeout"] = min(every, HealthCheck.fields()["timeout"].default)
    timeout = data.get("timeout", HealthCheck.fields()["timeout"].default)
    if isinstance(every, int) and isinstance(timeout, int) and timeout > every:
        raise RuleViolation(f"a health check's timeout ({format_duration(timeout)}) must not be "
                            f"longer than its interval ({format_duration(every)})")
    return HealthCheck.model_validate(data)


def settings_applied(target: Target | None, settings: TargetSettings, **base: object) -> Target:
    """A target with `settings` applied over `target` (or over defaults when creating)."""
    data: dict[str, object] = target.model_dump() if target is not None else dict(base)
    for name, value in settings.model_dump(exclude_none=True).items():
        if name in ("hanging_after", "failed_after", "health") and value == "off":
            value = None
        data[name] = value
    if settings.repositories is not None:
        # the repository holding the ref always stays listed
        home = str(data["repository"])
        listed = data["repositories"]
        assert isinstance(listed, list)  # settings.repositories was just copied in
        if home not in [repo["name"] for repo in listed]:
            data["repositories"] = [Repository(name=home).model_dump(), *listed]
    target_new = Target.model_validate(data)
    names = target_new.repository_names()
    if len(set(names)) != len(names):
        raise RuleViolation("a repository is listed twice")
    return target_new


def apply(snap: Snapshot, request: Request, oracle: Oracle | None = None) -> Change:
    """Apply one request to a snapshot; raise a DeployError when a rule refuses it."""
    oracle = oracle or NoOracle()
    if isinstance(request, CreateTarget):
        if snap.target is not None:
            raise RuleViolation(f"target '{request.target}' already exists")
        target = settings_applied(
            None, request.settings, key=request.target, name=request.target,
            repository=request.repository,
            repositories=[Repository(name=request.repository).model_dump()],
            created_at=request.at,
        )
        return Change(target=target, index=Index(next_number=1, count=0), records={},
                      number=None, effects=[], facts={},
                      subject=f"{target.key}: target created",
                      body=target.description)
    run = _Apply(snap, request, oracle)
    key = run.target.key
    record: Deployment | None
    if isinstance(request, OpenIncident | ResolveIncident):
        if isinstance(request, OpenIncident):
            incident = run.open_incident(request)
        else:
            incident = run.resolve_incident(request)
        return Change(target=run.target, index=run.index, records={},
                      number=incident.deployment, effects=[], facts=run.facts.used,
                      subject=_incident_subject(key, request, incident), body=_body(request),
                      incidents=dict(run.incidents), incident=incident.id)
    if isinstance(request, EditTarget):
        target = settings_applied(run.target, request.settings)
        if target == run.target:
            raise RuleViolation("nothing to change: the target already has these settings")
        return Change(target=target, index=run.index, records={}, number=None, effects=[],
                      facts={}, subject=f"{key}: target settings changed")
    if isinstance(request, ArchiveTarget):
        if run.target.archived == request.archived:
            raise RuleViolation(f"target '{key}' is already "
                                f"{'archived' if request.archived else 'active'}")
        target = run.target.model_copy(update={"archived": request.archived})
        verb = "archived" if request.archived else "unarchived"
        return Change(target=target, index=run.index, records={}, number=None, effects=[],
                      facts={}, subject=f"{key}: target {verb}")
    if isinstance(request, Deploy):
        record = run.deploy(request)
    elif isinstance(request, SetStatus):
        record = run.set_status(request)
    elif isinstance(request, Timeout):
        record = run.timeout(request)
    elif isinstance(request, Edit):
        record = run.edit(request)
    elif isinstance(request, Delete):
        record = run.delete(request)
    elif isinstance(request, Comment):
        record = run.comment(request)
    else:  # pragma: no cover - the union is closed
        raise InternalError(f"unknown operation {type(request).__name__}")
    return Change(
        target=run.target, index=run.index, records=run.changed,
        number=record.number if record is not None else None, effects=run.effects,
        facts=run.facts.used, subject=_subject(key, request, record, run.effects),
        body=_body(request),
    )


def _subject(key: str, request: Request, record: Deployment | None,
             effects: list[Effect]) -> str:
    op = str(getattr(request, "op"))  # noqa: B009 - each operation declares its op
    if record is None:
        return f"{key}: comment"
    head = f"{key} #{record.number}"
    if op == "delete":
        return f"{head}: deleted, was {record.title()}"
    if op == "comment":
        return f"{head}: comment"
    mine = [e for e in effects if e.number == record.number]
    if mine:
        status = mine[-1].new
        rollback = " (rollback)" if record.rollback_of else ""
        return f"{head}: {status} {record.title()}{rollback}"
    return f"{head}: updated {record.title()}"


def _incident_subject(key: str, request: OpenIncident | ResolveIncident,
                      incident: Incident) -> str:
    head = f"{key}: incident {incident.id}"
    if isinstance(request, ResolveIncident):
        return f"{head} resolved"
    attributed = f" (#{incident.deployment})" if incident.deployment is not None else ""
    reason = incident.reason.strip().split("\n", 1)[0].strip()
    return f"{head} opened{attributed}{': ' + reason if reason else ''}"


def _body(request: Request) -> str:
    for name in ("text", "description", "reason"):
        value = getattr(request, name, None)
        if value:
            return str(value)
    return ""


def is_due(record: Deployment, target: Target, moment: datetime) -> Status | None:
    """The automatic status a deployment in flight is due at `moment`, if any."""
    if record.status not in IN_FLIGHT:
        return None
    started = record.entered(Status.DEPLOYING) or record.created_at
    if target.failed_after is not None and moment >= later(started, target.failed_after):
        return Status.FAILED
    if record.status == Status.DEPLOYING and target.hanging_after is not None and \
            moment >= later(started, target.hanging_after):
        return Status.HANGING
    return None


def next_deadline(record: Deployment, target: Target) -> datetime | None:
    """When the deployment in flight will next be due for an automatic change."""
    if record.status not in IN_FLIGHT:
        return None
    started = record.entered(Status.DEPLOYING) or record.created_at
    times = []
    if record.status == Status.DEPLOYING and target.hanging_after is not None:
        times.append(later(started, target.hanging_after))
    if target.failed_after is not None:
        times.append(later(started, target.failed_after))
    return min(times) if times else None
