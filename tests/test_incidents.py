"""Incidents: opened and resolved as changes of a target's timeline, attributed to the deployment
that was current; replayed, verified and refused when forged, like every other change."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import Deploy, git
from git_deployments.core import machine, records, timeline
from git_deployments.core.intake import new_request
from git_deployments.core.model import (
    ArchiveTarget,
    Comment,
    Incident,
    OpenIncident,
    ResolveIncident,
    Status,
)
from git_deployments.core.store import Store, incident_path, open_store
from git_deployments.core.verify import verify_commit, verify_index
from git_deployments.errors import CorruptRecord, NotFound, RuleViolation
from git_deployments.git.repo import open_repository
from machine_helpers import A, B, Memory
from test_care import fsck_problems, plant
from test_hooks import forge, push, refused, shared  # noqa: F401
from test_sync import CloneFactory, check_every_commit, clone, ref_of, server  # noqa: F401

REF = "refs/deployments/production"


@pytest.fixture
def mem() -> Memory:
    return Memory()


def open_incident(mem: Memory, **fields: Any) -> tuple[machine.Change, Incident]:
    change = mem.apply(OpenIncident, **fields)
    assert change.incident is not None
    return change, mem.incs[change.incident]


# --- the rules --------------------------------------------------------------------------------


def test_an_incident_is_attributed_to_the_current_deployment(mem: Memory) -> None:
    mem.deploy("finish", ("main", A), version="1.0")
    change, incident = open_incident(mem, reason="checkout errors\nsince 14:02")
    assert (incident.id, incident.deployment, incident.reason) == (1, 1, "checkout errors\n"
                                                                   "since 14:02")
    assert incident.opened_at == change_time(mem) and incident.opened_by == "Ada <ada@example.com>"
    assert incident.is_open and incident.resolved_at is None
    assert change.subject == "prod: incident 1 opened (#1): checkout errors"
    assert change.body == "checkout errors\nsince 14:02"
    assert change.number == 1 and change.effects == [] and change.records == {}
    assert mem.index.open_incidents == [1] and mem.index.next_incident == 2
    assert mem.status_of(1) == Status.CURRENT
    mem.check()


def change_time(mem: Memory) -> Any:
    return mem.clock  # the request's time: Memory advances its clock for each request


def test_an_incident_names_a_deployment_or_none(mem: Memory) -> None:
    _, none = open_incident(mem)
    assert none.deployment is None
    assert mem.apply(ResolveIncident).subject == "prod: incident 1 resolved"
    mem.deploy("finish", ("main", A))
    mem.deploy("finish", ("main", B))
    change, named = open_incident(mem, deployment=1, reason="found in 1.0 only")
    assert (named.id, named.deployment) == (2, 1)
    assert change.subject == "prod: incident 2 opened (#1): found in 1.0 only"
    with pytest.raises(NotFound, match="no deployment #9"):
        mem.apply(OpenIncident, deployment=9)
    _, third = open_incident(mem)
    assert third.deployment == 2  # the current one
    assert mem.index.open_incidents == [2, 3]
    mem.check()


def test_an_incident_opened_without_a_current_deployment(mem: Memory) -> None:
    change, incident = open_incident(mem)
    assert incident.deployment is None and change.number is None
    assert change.subject == "prod: incident 1 opened"


def test_an_incident_recorded_after_the_fact(mem: Memory) -> None:
    earlier = mem.clock - timedelta(hours=2)
    _, incident = open_incident(mem, happened_at=earlier)
    assert incident.opened_at == earlier
    with pytest.raises(RuleViolation, match="cannot have happened after it was recorded"):
        mem.apply(OpenIncident, happened_at=mem.clock + timedelta(hours=1))
    with pytest.raises(RuleViolation, match="cannot be resolved before that"):
        mem.apply(ResolveIncident, happened_at=earlier - timedelta(minutes=1))
    later = earlier + timedelta(minutes=30)
    mem.apply(ResolveIncident, happened_at=later, reason="restarted")
    assert mem.incs[1].resolved_at == later and mem.incs[1].resolution == "restarted"


def test_resolving_the_only_open_incident_or_a_named_one(mem: Memory) -> None:
    with pytest.raises(RuleViolation, match="target 'prod' has no open incident"):
        mem.apply(ResolveIncident)
    open_incident(mem)
    open_incident(mem)
    with pytest.raises(RuleViolation,
                       match=r"target 'prod' has 2 open incidents \(1, 2\); name the one"):
        mem.apply(ResolveIncident)
    change = mem.apply(ResolveIncident, id=2, reason="rolled back")
    assert change.incident == 2 and change.subject == "prod: incident 2 resolved"
    assert change.body == "rolled back" and change.effects == []
    resolved = mem.incs[2]
    assert (resolved.resolved_by, resolved.resolution) == ("Ada <ada@example.com>", "rolled back")
    assert resolved.resolved_at == mem.clock and not resolved.is_open
    with pytest.raises(RuleViolation, match="incident 2 of target 'prod' is already resolved"):
        mem.apply(ResolveIncident, id=2)
    with pytest.raises(NotFound, match="target 'prod' has no incident 7"):
        mem.apply(ResolveIncident, id=7)
    mem.apply(ResolveIncident)  # the only one open now
    assert mem.index.open_incidents == [] and mem.index.next_incident == 3
    mem.check()


def test_deployments_keep_the_open_incidents_in_the_index(mem: Memory) -> None:
    open_incident(mem)
    mem.deploy("schedule", ("main", A))
    mem.deploy("finish", ("main", A))
    mem.apply(Comment, number=1, text="still open")
    assert mem.index.open_incidents == [1] and mem.index.next_incident == 2
    mem.check()


def test_an_archived_target_opens_no_incident_but_resolves_one(mem: Memory) -> None:
    open_incident(mem)
    mem.apply(ArchiveTarget)
    with pytest.raises(RuleViolation, match="is archived"):
        mem.apply(OpenIncident)
    mem.apply(ResolveIncident)
    assert mem.index.open_incidents == []


def test_an_index_without_incidents_keeps_its_bytes(mem: Memory) -> None:
    assert b"incident" not in records.dump(mem.index)
    open_incident(mem)
    assert b"open_incidents:\n- 1\nnext_incident: 2\n" in records.dump(mem.index)
    mem.apply(ResolveIncident)
    assert b"open_incidents" not in records.dump(mem.index)
    assert b"next_incident: 2" in records.dump(mem.index)


# --- stored, replayed, verified ----------------------------------------------------------------


def write(repo: Path, cls: type[Any], key: str = "prod", **fields: Any) -> Any:
    store = open_store(repo)
    return store.write(new_request(cls, store.git, key, **fields))


def test_an_incident_is_a_verified_change_of_the_timeline(repo: Path, deploy: Deploy) -> None:
    deploy("target", "create", "prod")
    deploy("finish", "prod", "--commit", "app:main:HEAD", "--version", "1.0")
    opened = write(repo, OpenIncident, reason="errors up\nfrom the load balancer")
    resolved = write(repo, ResolveIncident, reason="restarted the pool")
    message = git(repo, "log", "-1", "--format=%B", opened.commit)
    lines = message.splitlines()
    assert lines[:5] == ["prod: incident 1 opened (#1): errors up", "", "errors up",
                         "from the load balancer", ""]
    assert lines[5:8] == ["Deploy-Op: incident-open", "Deploy-Number: 1", "Deploy-Incident: 1"]
    entry = timeline.entry("prod", open_repository(repo).commit_info(resolved.commit))
    assert (entry.op, entry.incident, entry.number) == ("incident-resolve", 1, 1)
    assert entry.comment() == "restarted the pool"
    assert entry.as_json()["incident"] == 1
    stored = git(repo, "show", f"refs/deployments/prod:{incident_path(1)}")
    assert "resolution: restarted the pool" in stored and "deployment: 1" in stored
    gitrepo = open_repository(repo)
    for info in timeline.commits(gitrepo, "prod"):
        verify_commit(gitrepo, "prod", info.id)
    verify_index(gitrepo, "prod", resolved.commit)
    assert deploy("fsck").stdout == "prod: 4 changes checked, ok\n"


def test_fsck_flags_a_forged_incident_written_locally(repo: Path, deploy: Deploy) -> None:
    deploy("target", "create", "prod")
    deploy("finish", "prod", "--commit", "app:main:HEAD")
    write(repo, OpenIncident, reason="slow")
    stored = git(repo, "show", f"refs/deployments/prod:{incident_path(1)}") + "\n"
    bad = plant(repo, "prod", {incident_path(1): stored.replace("slow", "fine").encode()})
    [problem] = fsck_problems(deploy)
    assert problem["commit"] == bad
    assert "its tree is not what its recorded incident-open gives" in str(problem["message"])


def test_fsck_flags_an_index_naming_a_missing_incident(repo: Path, deploy: Deploy) -> None:
    deploy("target", "create", "prod")
    deploy("comment", "prod", "-m", "calm")
    index = git(repo, "show", "refs/deployments/prod:index.yaml") + "\n"
    bad = plant(repo, "prod", {"index.yaml": (index + "open_incidents:\n- 4\nnext_incident: 5\n")
                               .encode()})
    replay, scan = fsck_problems(deploy)
    assert replay["commit"] == bad and "its tree is not what" in str(replay["message"])
    assert scan["commit"] == bad
    assert "index.yaml names open incidents 4, the records say none (missing or resolved: 4)" \
        in str(scan["message"])
    with pytest.raises(CorruptRecord, match="names open incidents 4"):
        verify_index(open_repository(repo), "prod", bad)


def test_fsck_flags_an_open_incident_the_index_forgot(repo: Path, deploy: Deploy) -> None:
    deploy("target", "create", "prod")
    write(repo, OpenIncident, reason="down")
    index = git(repo, "show", "refs/deployments/prod:index.yaml") + "\n"
    bad = plant(repo, "prod", {"index.yaml": index.replace("open_incidents:\n- 1\n", "")
                               .encode()})
    replay, scan = fsck_problems(deploy)
    assert replay["commit"] == bad and scan["commit"] == bad
    assert "names open incidents none, the records say 1" in str(scan["message"])


def incident_request(deploy: Deploy, cls: type[Any], **fields: Any) -> Any:
    return new_request(cls, open_repository(deploy.cwd), "production", **fields)


def test_a_real_incident_is_pushed_and_pulled(clone: CloneFactory,  # noqa: F811
                                              server: Path) -> None:  # noqa: F811
    a = clone("a")
    a("target", "create", "production", "--sync")
    a("finish", "production", "--commit", "app:main:HEAD", "--sync")
    Store(open_repository(a.cwd)).write(incident_request(a, OpenIncident, reason="red"))
    Store(open_repository(a.cwd)).write(incident_request(a, ResolveIncident))
    assert push(a, REF).returncode == 0
    assert ref_of(server) == ref_of(a.cwd)
    check_every_commit(server)
    b = clone("b")
    assert "production: new from origin" in b("pull").stdout
    assert ref_of(b.cwd) == ref_of(server)


@pytest.mark.parametrize("damage", ["record", "message", "index"])
def test_a_forged_incident_is_refused_by_the_hook(shared: Deploy, server: Path,  # noqa: F811
                                                  damage: str) -> None:
    request = incident_request(shared, OpenIncident, reason="disk full")
    gitrepo = open_repository(shared.cwd)
    legit = Store(gitrepo).prepare("production", gitrepo.read_ref(REF), request)
    info = gitrepo.commit_info(legit.commit)
    if damage == "record":
        stored = gitrepo.read_path(info.tree, incident_path(1))
        assert stored is not None
        commit = forge(shared, {incident_path(1): stored.replace(b"deployment: 1",
                                                                 b"deployment: 2")},
                       request=request)
        reason = "its tree is not what its recorded incident-open gives"
    elif damage == "message":
        commit = forge(shared, message=info.message.replace("disk full", "all fine", 1),
                       request=request)
        reason = "its message is not the one its recorded request gives"
    else:
        index = gitrepo.read_path(info.tree, "index.yaml")
        assert index is not None
        commit = forge(shared, {"index.yaml": index + b"open_incidents:\n- 3\nnext_incident: 4\n"})
        reason = "its tree is not what its recorded comment gives"
    before = ref_of(server)
    [line] = refused(push(shared, f"{commit}:{REF}"))
    assert line.startswith(f"error: {REF}: {commit[:12]}: {reason}")
    assert ref_of(server) == before
    assert git(server, "ls-tree", "-r", "--name-only", REF).count("incidents/") == 0
