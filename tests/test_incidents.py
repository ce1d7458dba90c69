"""Incidents: opened and resolved as changes of a target's timeline, attributed to the deployment
that was current; replayed, verified and refused when forged, like every other change."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import Deploy, git
from dashboard_helpers import HOSTILE, Client
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
from test_notify import Hook, Recorder, hook  # noqa: F401
from test_serve import start, token  # noqa: F401
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


# --- the command line -------------------------------------------------------------------------

NOW = {"GIT_DEPLOY_NOW": "2026-03-01T12:00:00Z"}


def at(moment: str) -> dict[str, str]:
    return {"GIT_DEPLOY_NOW": moment}


@pytest.fixture
def prod(deploy: Deploy) -> Deploy:
    """Target `prod` with #1 current (1.0) since 10:00."""
    deploy("target", "create", "prod", env=at("2026-03-01T09:00:00Z"))
    deploy("finish", "prod", "--commit", "app:main:HEAD", "--version", "1.0",
           env=at("2026-03-01T10:00:00Z"))
    return deploy


def one_error(result: Any) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return str(lines[0])


def test_open_and_resolve_from_the_command_line(repo: Path, prod: Deploy) -> None:
    opened = prod("incident", "open", "prod", "-m", "5xx on checkout\nsince the deploy",
                  env=at("2026-03-01T11:00:00Z"))
    assert opened.stdout == "prod: incident 1 opened (#1): 5xx on checkout\n"
    data = json.loads(prod("incident", "open", "prod", "--deployment", "1", "--at",
                           "2026-03-01T10:30:00Z", "--json", env=at("2026-03-01T11:05:00Z"))
                      .stdout)
    assert data["incident"] == {
        "target": "prod", "state": "open", "id": 2, "deployment": 1,
        "opened_at": "2026-03-01T10:30:00Z", "opened_by": "Ada Tester <ada@example.com>",
        "reason": "", "resolved_at": None, "resolved_by": None, "resolution": None}
    assert data["effects"] == [] and "deployment" not in data
    assert data["timeline_commit"] == git(repo, "rev-parse", "refs/deployments/prod")
    several = prod("incident", "resolve", "prod", code=1)
    assert one_error(several) == ("error: target 'prod' has 2 open incidents (1, 2); name the "
                                  "one to resolve")
    resolved = prod("incident", "resolve", "prod", "2", "-m", "rolled back", "--at=-10m",
                    env=at("2026-03-01T11:30:00Z"))
    assert resolved.stdout == "prod: incident 2 resolved\n"
    assert git(repo, "log", "-1", "--format=%b", "refs/deployments/prod").startswith(
        "rolled back\n")
    listed = prod.json("incidents", "prod")
    assert [(i["id"], i["state"], i["resolved_at"]) for i in listed] == [
        (2, "resolved", "2026-03-01T11:20:00Z"), (1, "open", None)]
    assert [i["id"] for i in prod.json("incidents", "--open")] == [1]
    table = prod("incidents", env=at("2026-03-01T14:00:00Z")).stdout.splitlines()
    assert table[0].split() == ["TARGET", "ID", "STATE", "DEPLOYMENT", "OPENED", "LASTED",
                                "REASON"]
    assert table[1].split() == ["prod", "1", "!", "open", "#1", "2026-03-01T11:00:00Z", "3",
                                "hours", "so", "far", "5xx", "on", "checkout"]
    assert table[2].split() == ["prod", "2", "resolved", "#1", "2026-03-01T10:30:00Z", "50m",
                                "-"]
    prod("incident", "resolve", "prod", env=at("2026-03-01T12:00:00Z"))  # the only one open
    assert prod("incidents", "prod", "--open").stdout == "no open incidents on 'prod'\n"
    log = prod.json("log", "prod")
    assert [(e["op"], e["incident"], e["number"]) for e in log[:4]] == [
        ("incident-resolve", 1, 1), ("incident-resolve", 2, 1), ("incident-open", 2, 1),
        ("incident-open", 1, 1)]
    assert log[3]["comment"] == "5xx on checkout\nsince the deploy"
    text = prod("log", "prod").stdout
    assert "prod: incident 1 opened (#1): 5xx on checkout" in text
    assert prod("fsck").stdout == "prod: 6 changes checked, ok\n"
    # the deployment they are attributed to shows them, newest last
    shown = prod.json("show", "prod", "1")
    assert [(i["id"], i["state"]) for i in shown["incidents"]] == [(1, "resolved"),
                                                                  (2, "resolved")]
    lines = [line for line in prod("show", "prod", "1").stdout.splitlines()
             if line.startswith("  incident ")]
    assert lines == [  # a reason's first line
        "  incident     1 opened 2026-03-01T11:00:00Z, resolved 2026-03-01T12:00:00Z — 5xx on "
        "checkout",
        "  incident     2 opened 2026-03-01T10:30:00Z, resolved 2026-03-01T11:20:00Z"]


def test_incidents_across_targets(prod: Deploy) -> None:
    prod("target", "create", "staging", env=at("2026-03-01T09:00:00Z"))
    assert prod("incidents").stdout == "no incidents\n"
    prod("incident", "open", "staging", "-m", "flaky", env=at("2026-03-01T11:00:00Z"))
    prod("incident", "open", "prod", "-m", "slow", env=at("2026-03-01T12:00:00Z"))
    listed = prod.json("incidents")
    assert [(i["target"], i["id"], i["deployment"]) for i in listed] == [
        ("prod", 1, 1), ("staging", 1, None)]
    # status flags a target with one open, in its HEALTH column and its JSON
    rows = {row[0]: row for row in (line.split() for line in prod("status").stdout.splitlines())}
    assert rows["staging"][-4:] == ["⚑", "incident", "1", "open"]
    assert [row["open_incidents"] for row in prod.json("status")] == [[1], [1]]
    prod("incident", "resolve", "staging", env=at("2026-03-01T13:00:00Z"))
    assert prod("status").stdout.splitlines()[2].split()[-1] == "-"


@pytest.mark.parametrize("args, message", [
    (["incident", "open", "nope"], "unknown target 'nope'"),
    (["incident", "open", "prod", "--deployment", "9"], "target 'prod' has no deployment #9"),
    (["incident", "open", "prod", "--at", "2026-03-02T00:00:00Z"],
     "an incident cannot have happened after it was recorded"),
    (["incident", "open", "prod", "--at", "yesterday"], "invalid time 'yesterday'"),
    (["incident", "open", "prod", "-m", "bell\x07"], "control characters"),
    (["incident", "resolve", "prod"], "target 'prod' has no open incident"),
    (["incident", "resolve", "prod", "4"], "target 'prod' has no incident 4"),
    (["incident", "resolve", "prod", "x"], "invalid incident id 'x'"),
    (["incidents", "nope"], "unknown target 'nope'"),
])
def test_bad_input_is_one_line_and_writes_nothing(repo: Path, prod: Deploy, args: list[str],
                                                  message: str) -> None:
    before = git(repo, "rev-parse", "refs/deployments/prod")
    assert message in one_error(prod(*args, code=1, env=NOW))
    assert git(repo, "rev-parse", "refs/deployments/prod") == before


def test_usage_errors_exit_2(prod: Deploy) -> None:
    assert "required" in one_error(prod("incident", code=2))
    assert "unrecognized" in one_error(prod("incidents", "--bogus", code=2))


def test_a_synced_incident_reaches_the_server(clone: CloneFactory,  # noqa: F811
                                              server: Path) -> None:  # noqa: F811
    a = clone("a")
    a("target", "create", "production", "--sync")
    a("incident", "open", "production", "-m", "down", "--sync")
    assert ref_of(server) == ref_of(a.cwd)
    b = clone("b")
    b("pull")
    b("incident", "resolve", "production", "1", "--sync")
    check_every_commit(server)
    a("pull")
    assert a.json("incidents", "production")[0]["state"] == "resolved"


def test_a_replayed_incident_takes_a_new_id_and_its_resolve_follows_it(
        clone: CloneFactory, server: Path) -> None:  # noqa: F811
    a = clone("a")
    a("target", "create", "production", "--sync")
    a("finish", "production", "--commit", "app:main:HEAD", "--sync")
    b = clone("b")
    b("pull")
    a("start", "production", "--commit", "app:main:HEAD")  # #2 here, offline
    a("incident", "open", "production", "-m", "mine", "--deployment", "2")  # incident 1 here
    a("incident", "resolve", "production", "1", "-m", "fixed mine")
    b("finish", "production", "--commit", "app:main:HEAD", "--sync")  # the server's #2
    b("incident", "open", "production", "-m", "theirs", "--sync")  # the server's incident 1
    a("sync")
    check_every_commit(server)
    shown = {i["reason"]: i for i in a.json("incidents", "production")}
    assert (shown["theirs"]["id"], shown["theirs"]["state"]) == (1, "open")
    # a's incident is 2 now, still on a's deployment (#3 now), and a's resolve closed it
    assert (shown["mine"]["id"], shown["mine"]["state"], shown["mine"]["deployment"]) == (
        2, "resolved", 3)


# --- subscriptions ----------------------------------------------------------------------------


def test_subscribers_on_incident_are_told_of_each_opening_and_resolution(
        tmp_path: Path, repo: Path, prod: Deploy) -> None:
    rec, current = Recorder(tmp_path, "incidents"), Recorder(tmp_path, "current")
    prod("subscribe", "prod", "--exec", rec.command(), "--on", "incident")
    prod("subscribe", "prod", "--exec", current.command())  # the default: current only
    assert prod.json("subscriptions")[0]["on"] == ["incident"]
    prod("incident", "open", "prod", "-m", "errors", env=at("2026-03-01T11:00:00Z"))
    prod("comment", "prod", "-m", "looking", env=at("2026-03-01T11:01:00Z"))
    prod("incident", "resolve", "prod", "-m", "fixed", env=at("2026-03-01T11:30:00Z"))
    prod("sweep")
    events = rec.events()
    tips = git(repo, "rev-list", "-3", "refs/deployments/prod").split()
    assert [(e["event"], e["incident"], e["state"]) for e in events] == [
        ("incident", 1, "open"), ("incident", 1, "resolved")]
    opened, resolved = events
    assert opened["id"] == f"{tips[2]}:incident-1" and opened["timeline_commit"] == tips[2]
    assert (opened["target"], opened["repository"], opened["deployment"]) == ("prod", "app", 1)
    assert (opened["reason"], opened["opened_at"], opened["resolved_at"]) == \
        ("errors", "2026-03-01T11:00:00Z", None)
    assert opened["subject"] == "prod: incident 1 opened (#1): errors"
    assert opened["op"] == "incident-open" and opened["by"] == "Ada Tester <ada@example.com>"
    assert (resolved["resolution"], resolved["resolved_at"], resolved["at"]) == \
        ("fixed", "2026-03-01T11:30:00Z", "2026-03-01T11:30:00Z")
    assert current.events() == []
    prod("sweep")
    assert rec.calls() == 2  # delivered once each


def test_all_includes_incidents_and_a_webhook_is_told_the_kind(repo: Path, prod: Deploy,
                                                               hook: Hook) -> None:  # noqa: F811
    prod("subscribe", "prod", "--webhook", hook.url, "--on", "all")
    prod("incident", "open", "prod", "-m", "slow", env=NOW)
    prod("sweep")
    [(headers, body)] = hook.requests
    assert headers["X-Git-Deploy-Event"] == "incident" and body["event"] == "incident"
    assert headers["X-Git-Deploy-Delivery"] == body["id"]
    assert (body["incident"], body["state"], body["reason"]) == (1, "open", "slow")
    assert "all" in prod("subscriptions").stdout


# --- the server: API and dashboard ------------------------------------------------------------

API = "/api/v1/projects/app"


def test_the_api_lists_opens_and_resolves(repo: Path, prod: Deploy,
                                          start: Any) -> None:  # noqa: F811
    reader, ci = token(repo, "reader", "view"), token(repo, "ci", "view,modify-deployments")
    served = start(repo)
    path = f"{API}/targets/prod/incidents"
    assert served.get(path).status == 401
    assert served.get(path, reader).json == []
    refused = served.post(path, {"message": "down"}, reader)
    assert refused.status == 403
    opened = served.post(path, {"message": "down", "at": "-5m"}, ci)
    assert opened.status == 201, opened.body
    incident = opened.json["incident"]
    assert (incident["id"], incident["state"], incident["deployment"]) == (1, "open", 1)
    assert incident["opened_by"] == "token:ci <ci@git-deploy.invalid>"
    assert opened.json["timeline_commit"] == git(repo, "rev-parse", "refs/deployments/prod")
    # the same shape as the command line's
    assert served.get(path, reader).json == prod.json("incidents", "prod")
    assert served.get(f"{path}?open=1", reader).json == prod.json("incidents", "prod", "--open")
    assert served.get(f"{API}/incidents?open=true", reader).json == prod.json("incidents")
    for body, status, code in [({"bogus": 1}, 400, "invalid_value"),
                               ({"deployment": 9}, 404, "not_found"),
                               ({"deployment": "one"}, 400, "invalid_value"),
                               ({"at": "+1h"}, 409, "refused")]:
        reply = served.post(path, body, ci)
        assert (reply.status, reply.error["code"]) == (status, code), reply.body
    assert served.post(f"{path}/x/resolve", {}, ci).status == 400
    assert served.post(f"{path}/7/resolve", {}, ci).error["code"] == "not_found"
    resolved = served.post(f"{path}/1/resolve", {"message": "back"}, ci)
    assert resolved.status == 200 and resolved.json["incident"]["resolution"] == "back"
    again = served.post(f"{path}/1/resolve", {}, ci)
    assert again.status == 409 and "already resolved" in again.error["message"]
    assert served.get(f"{path}?open=1", reader).json == []
    described = served.get("/api/v1/openapi.json").json["paths"]
    assert "post" in described["/api/v1/projects/{project}/targets/{key}/incidents"]
    assert prod("fsck").stdout == "prod: 4 changes checked, ok\n"


def test_the_dashboard_marks_targets_and_deployments_with_incidents(
        repo: Path, prod: Deploy, start: Any) -> None:  # noqa: F811
    prod("target", "create", "staging")
    prod("incident", "open", "prod", "-m", HOSTILE)
    client = Client(start(repo))
    client.sign_in(token(repo, "reader", "view"))
    base = "/projects/app"

    overview = client.get(base).body.decode()
    card = overview[overview.index('data-target="prod"') - 40:]
    card = card[:card.index("</li>")]
    assert "has-incident" in card and "⚑</span> 1 open incident" in card
    other = overview[overview.index('data-target="staging"') - 40:]
    assert "incident" not in other[:other.index("</li>")]
    assert f"{API}/incidents?open=true" in overview

    target = client.get(f"{base}/targets/prod").body.decode()
    assert "⚑</span> 1 open incident" in target and "Incident 1 <strong>open</strong>" in target
    assert HOSTILE not in target and "&lt;script&gt;" in target
    assert 'href="/projects/app/targets/prod/deployments/1"' in target

    page = client.get(f"{base}/targets/prod/deployments/1").body.decode()
    assert "1 incident attributed to it" in page and "1 open incident" in page
    assert HOSTILE not in page

    prod("incident", "resolve", "prod", "-m", "calm again")
    assert "has-incident" not in client.get(base).body.decode()
    assert "open incident" not in client.get(f"{base}/targets/prod").body.decode()
    page = client.get(f"{base}/targets/prod/deployments/1").body.decode()
    assert "1 incident attributed to it" in page and "Incident 1 <strong>resolved</strong>" in page
    assert "open incident" not in page
