"""The state machine's rules, one by one, on an in-memory target."""

from __future__ import annotations

from datetime import timedelta

import pytest

from git_deployments.core import machine
from git_deployments.core.model import (
    ArchiveTarget,
    Comment,
    Delete,
    Deploy,
    Edit,
    EditTarget,
    ExternalLink,
    SetStatus,
    Status,
    Timeout,
)
from git_deployments.errors import InternalError, NotFound, RuleViolation
from machine_helpers import A, AncestryOracle, B, C, Memory, ref


@pytest.fixture
def mem() -> Memory:
    return Memory()


# --- schedule ----------------------------------------------------------------------------------


def test_schedule_creates_then_updates_the_same_branch(mem: Memory) -> None:
    first = mem.deploy("schedule", ("release", A), version="1.0")
    assert (first.number, first.status) == (1, Status.SCHEDULED)
    again = mem.deploy("schedule", ("release", B), version="1.1", description="hotfix")
    assert again.number == 1
    assert (again.version, again.commits[0].commit, again.description) == ("1.1", B, "hotfix")
    assert len(again.history) == 1
    other = mem.deploy("schedule", ("main", C))
    assert other.number == 2
    assert [(e.branch, e.number) for e in mem.index.scheduled] == [("main", 2), ("release", 1)]
    mem.check()


def test_schedule_without_commit_means_latest_and_keeps_a_known_commit(mem: Memory) -> None:
    latest = mem.deploy("schedule", ("release", None))
    assert latest.commits[0].commit is None and latest.version is None
    mem.deploy("schedule", ("release", A))
    kept = mem.deploy("schedule", ("release", None), version="2.0")
    assert kept.commits[0].commit == A and kept.version == "2.0"


def test_schedule_needs_a_commit_ref(mem: Memory) -> None:
    with pytest.raises(RuleViolation, match="needs a commit ref"):
        mem.apply(Deploy, op="schedule", commits=[])


def test_schedule_refuses_refs_matching_two_scheduled(mem: Memory) -> None:
    mem.deploy("schedule", ("release", A))
    mem.deploy("schedule", ("main", B))
    with pytest.raises(RuleViolation, match="several scheduled"):
        mem.deploy("schedule", ("release", A), ("main", B))


def test_schedule_records_the_planned_time_and_link(mem: Memory) -> None:
    when = mem.clock + timedelta(days=1)
    record = mem.deploy("schedule", ("release", A), scheduled_for=when,
                        external_link=ExternalLink(label="CI", url="https://ci/1"))
    assert record.scheduled_for == when and record.external_link.url == "https://ci/1"


# --- start -------------------------------------------------------------------------------------


def test_start_promotes_the_scheduled_one_replacing_commit_and_version(mem: Memory) -> None:
    mem.deploy("schedule", ("release", A), version="1.0.0")
    started = mem.deploy("start", ("release", B), version="1.0.1")
    assert (started.number, started.status, started.version) == (1, Status.DEPLOYING, "1.0.1")
    assert started.commits[0].commit == B
    assert [h.status for h in started.history] == [Status.SCHEDULED, Status.DEPLOYING]
    assert mem.index.in_flight == 1 and mem.index.scheduled == []


def test_start_keeps_the_scheduled_commit_when_none_is_given(mem: Memory) -> None:
    mem.deploy("schedule", ("release", A), version="1.0.0")
    started = mem.deploy("start", ("release", None))
    assert started.commits[0].commit == A and started.version == "1.0.0"


def test_start_fails_when_no_commit_id_is_known(mem: Memory) -> None:
    mem.deploy("schedule", ("release", None))
    with pytest.raises(RuleViolation, match="no commit id known for app:release"):
        mem.deploy("start", ("release", None))
    assert mem.status_of(1) == "scheduled"


def test_start_updates_the_deployment_in_flight(mem: Memory) -> None:
    mem.deploy("start", ("release", A), version="1.0")
    again = mem.deploy("start", ("release", B), version="1.1")
    assert again.number == 1 and again.version == "1.1" and again.commits[0].commit == B
    assert len(again.history) == 1
    assert mem.index.count == 1


def test_start_turns_a_hanging_deployment_back_to_deploying(mem: Memory) -> None:
    mem = Memory(hanging_after=60)
    mem.deploy("start", ("release", A))
    mem.apply(Timeout, number=1, status="hanging", at=mem.clock + timedelta(minutes=5))
    assert mem.status_of(1) == "hanging"
    back = mem.deploy("start", ("release", A))
    assert back.status == Status.DEPLOYING
    assert [h.status for h in back.history][-2:] == [Status.HANGING, Status.DEPLOYING]


def test_start_creates_a_deployment_when_none_is_scheduled(mem: Memory) -> None:
    created = mem.deploy("start", ("release", A), version="3.0")
    assert (created.number, created.status) == (1, Status.DEPLOYING)
    assert created.history[0].status == Status.DEPLOYING


def test_start_requires_schedule_when_the_target_says_so() -> None:
    mem = Memory(start_requires_schedule=True)
    with pytest.raises(RuleViolation, match="start_requires_schedule"):
        mem.deploy("start", ("release", A))
    mem.deploy("schedule", ("release", A))
    assert mem.deploy("start", ("release", None)).status == Status.DEPLOYING


def test_start_with_a_new_deployment_needs_a_commit(mem: Memory) -> None:
    with pytest.raises(RuleViolation, match="no commit id known"):
        mem.deploy("start", ("release", None))
    assert mem.index.count == 0


def test_version_defaults_to_describe_of_the_commit() -> None:
    mem = Memory()
    mem.oracle = AncestryOracle(set())
    change = mem.apply(Deploy, op="start", commits=[ref("release", A)])
    assert mem.recs[1].version == "v-aaaa"
    assert change.facts == {f"describe:app:{A}": "v-aaaa"}


# --- finish and fail ---------------------------------------------------------------------------


def test_finish_without_commit_acts_on_the_deployment_in_flight(mem: Memory) -> None:
    mem.deploy("start", ("release", A))
    done = mem.apply(Deploy, op="finish", commits=[], version="1.0")
    assert mem.status_of(1) == "current" and mem.recs[1].version == "1.0"
    assert mem.index.current == 1 and mem.index.in_flight is None
    assert done.effects[-1].old == Status.DEPLOYING


def test_finish_without_commit_and_nothing_in_flight_is_refused(mem: Memory) -> None:
    with pytest.raises(RuleViolation, match="has no deployment in flight; pass --commit"):
        mem.apply(Deploy, op="finish", commits=[])
    with pytest.raises(RuleViolation, match="no deployment in flight"):
        mem.apply(Deploy, op="fail", commits=[])


def test_finish_matches_the_in_flight_deployment_of_the_same_branch(mem: Memory) -> None:
    mem.deploy("start", ("release", A))
    done = mem.deploy("finish", ("release", B))
    assert done.number == 1 and done.status == Status.CURRENT and done.commits[0].commit == B


def test_finish_then_matches_a_scheduled_one_with_the_same_commit(mem: Memory) -> None:
    mem.deploy("start", ("main", C))
    mem.deploy("schedule", ("release", A), version="2.0")
    done = mem.deploy("finish", ("release", A))
    assert done.number == 2 and done.version == "2.0" and done.status == Status.CURRENT
    assert mem.status_of(1) == "deploying"


def test_finish_creates_a_current_one_when_the_scheduled_commit_differs(mem: Memory) -> None:
    mem.deploy("schedule", ("release", A))
    done = mem.deploy("finish", ("release", B))
    assert done.number == 2 and done.status == Status.CURRENT
    assert mem.status_of(1) == "scheduled"
    assert done.history[0].status == Status.CURRENT and len(done.history) == 1


def test_finish_creates_a_current_one_from_nothing(mem: Memory) -> None:
    done = mem.deploy("finish", ("release", A), version="1.0")
    assert (done.number, done.status) == (1, Status.CURRENT)


def test_the_previous_current_becomes_completed(mem: Memory) -> None:
    mem.deploy("finish", ("release", A))
    change = mem.apply(Deploy, op="finish", commits=[ref("release", B)])
    assert mem.status_of(1) == "completed" and mem.status_of(2) == "current"
    assert [(e.number, e.old, e.new) for e in change.effects] == [
        (1, Status.CURRENT, Status.COMPLETED), (2, None, Status.CURRENT)]
    assert mem.index.current == 2
    mem.check()


def test_fail_acts_like_finish_but_leaves_current_alone(mem: Memory) -> None:
    mem.deploy("finish", ("release", A))
    mem.deploy("start", ("release", B))
    failed = mem.apply(Deploy, op="fail", commits=[], reason="tests broke")
    assert mem.status_of(2) == "failed" and mem.status_of(1) == "current"
    assert mem.recs[2].history[-1].reason == "tests broke"
    assert failed.subject.startswith("prod #2: failed")


def test_fail_with_a_commit_and_nothing_to_match_creates_a_failed_one(mem: Memory) -> None:
    failed = mem.deploy("fail", ("release", A))
    assert (failed.number, failed.status) == (1, Status.FAILED)


def test_finish_needs_commit_ids(mem: Memory) -> None:
    with pytest.raises(RuleViolation, match="no commit id known"):
        mem.deploy("finish", ("release", None))


def test_refs_must_name_a_listed_repository_once(mem: Memory) -> None:
    with pytest.raises(RuleViolation, match="has no repository 'other' \\(it lists: app\\)"):
        mem.apply(Deploy, op="start", commits=[ref("main", A, "other")])
    with pytest.raises(RuleViolation, match="given twice"):
        mem.deploy("start", ("main", A), ("main", B))


def test_several_repositories_in_one_deployment() -> None:
    mem = Memory(repositories=[{"name": "app"}, {"name": "infra"}])
    mem.apply(Deploy, op="start", commits=[ref("main", A), ref("main", B, "infra")])
    assert {(r.repository, r.commit) for r in mem.recs[1].commits} == {("app", A), ("infra", B)}
    assert {(e.repository, e.branch) for e in mem.index.scheduled} == set()


# --- rollbacks ---------------------------------------------------------------------------------


def test_a_current_whose_commit_is_an_ancestor_of_the_previous_is_a_rollback() -> None:
    mem = Memory()
    mem.oracle = AncestryOracle({(A, B)})
    mem.deploy("finish", ("release", A))
    mem.deploy("finish", ("release", B))
    assert mem.recs[2].rollback_of is None
    change = mem.apply(Deploy, op="finish", commits=[ref("release", A)])
    assert mem.recs[3].rollback_of == 2
    assert "(rollback)" in change.subject
    assert change.facts[f"ancestor:app:{A}:{B}"] is True


def test_moving_forward_is_not_a_rollback_and_unknown_ancestry_is_not_either() -> None:
    mem = Memory()
    mem.deploy("finish", ("release", A))
    mem.deploy("finish", ("release", B))
    assert mem.recs[2].rollback_of is None  # NoOracle knows nothing


def test_recorded_facts_make_replay_deterministic() -> None:
    first = Memory()
    first.oracle = AncestryOracle({(A, B)})
    first.deploy("finish", ("release", B))
    request = first.request(Deploy, op="finish", commits=[ref("release", A)])
    live = machine.apply(first, request, first.oracle)
    replayed = machine.apply(first, request.model_copy(update={"facts": live.facts}),
                             machine.NoOracle())
    assert replayed.records == live.records and replayed.index == live.index


# --- manual status changes ---------------------------------------------------------------------


def test_manual_changes_need_manual_controls(mem: Memory) -> None:
    mem.deploy("schedule", ("release", A))
    with pytest.raises(RuleViolation, match="manual status changes are off"):
        mem.apply(SetStatus, number=1, status="deploying")


@pytest.mark.parametrize("status", ["hanging", "completed"])
def test_manual_changes_never_set_automatic_statuses(status: str) -> None:
    mem = Memory(manual_controls=True)
    mem.deploy("start", ("release", A))
    with pytest.raises(RuleViolation, match="set automatically"):
        mem.apply(SetStatus, number=1, status=status)


def test_manual_changes_keep_the_invariants() -> None:
    mem = Memory(manual_controls=True)
    mem.deploy("start", ("release", A))
    mem.deploy("schedule", ("main", B))
    with pytest.raises(RuleViolation, match="already in flight"):
        mem.apply(SetStatus, number=2, status="deploying")
    mem.apply(SetStatus, number=1, status="current")
    mem.apply(SetStatus, number=2, status="current", reason="hand-deployed")
    assert mem.status_of(1) == "completed" and mem.status_of(2) == "current"
    mem.deploy("schedule", ("main", C))
    mem.apply(SetStatus, number=1, status="failed")
    with pytest.raises(RuleViolation, match="already scheduled for the same branch"):
        mem.apply(SetStatus, number=2, status="scheduled")
    with pytest.raises(RuleViolation, match="already current"):
        mem.apply(SetStatus, number=2, status="current")
    mem.check()


def test_manual_change_of_an_unknown_deployment() -> None:
    mem = Memory(manual_controls=True)
    with pytest.raises(NotFound, match="no deployment #7"):
        mem.apply(SetStatus, number=7, status="failed")


# --- timeouts ----------------------------------------------------------------------------------


def test_timeouts_are_refused_while_disabled(mem: Memory) -> None:
    mem.deploy("start", ("release", A))
    with pytest.raises(RuleViolation, match="no hanging timeout"):
        mem.apply(Timeout, number=1, status="hanging", at=mem.clock + timedelta(days=3))
    assert machine.is_due(mem.recs[1], mem.target, mem.clock + timedelta(days=3)) is None


def test_hanging_then_failed_when_due() -> None:
    mem = Memory(hanging_after=1800, failed_after=7200)
    started = mem.deploy("start", ("release", A))
    began = started.since
    assert machine.next_deadline(started, mem.target) == began + timedelta(minutes=30)
    with pytest.raises(RuleViolation, match="not yet due"):
        mem.apply(Timeout, number=1, status="hanging", at=began + timedelta(minutes=29))
    assert machine.is_due(started, mem.target, began + timedelta(minutes=30)) == Status.HANGING
    mem.apply(Timeout, number=1, status="hanging", at=began + timedelta(minutes=30))
    hanging = mem.recs[1]
    assert machine.next_deadline(hanging, mem.target) == began + timedelta(hours=2)
    with pytest.raises(RuleViolation, match="not yet due"):
        mem.apply(Timeout, number=1, status="failed", at=began + timedelta(minutes=90))
    mem.apply(Timeout, number=1, status="failed", at=began + timedelta(hours=2))
    assert mem.status_of(1) == "failed"
    assert "2h" in (mem.recs[1].history[-1].reason or "")


def test_a_deployment_that_finished_is_never_timed_out() -> None:
    mem = Memory(hanging_after=60)
    mem.deploy("start", ("release", A))
    mem.apply(Deploy, op="finish", commits=[])
    with pytest.raises(RuleViolation, match="not in flight"):
        mem.apply(Timeout, number=1, status="hanging", at=mem.clock + timedelta(hours=1))


def test_timeouts_are_measured_from_entering_deploying() -> None:
    mem = Memory(hanging_after=600)
    mem.deploy("schedule", ("release", A))
    mem.clock += timedelta(hours=5)
    started = mem.deploy("start", ("release", None))
    assert machine.is_due(started, mem.target, started.since + timedelta(minutes=9)) is None
    assert machine.is_due(started, mem.target, started.since + timedelta(minutes=10)) == \
        Status.HANGING


# --- edit, delete, comment, targets ------------------------------------------------------------


def test_edit_changes_display_fields_only(mem: Memory) -> None:
    mem.deploy("start", ("release", A), version="1.0")
    mem.apply(Edit, number=1, version="1.0-final", description="big one")
    record = mem.recs[1]
    assert (record.version, record.description, record.status) == \
        ("1.0-final", "big one", Status.DEPLOYING)
    with pytest.raises(RuleViolation, match="nothing to edit"):
        mem.apply(Edit, number=1)


def test_delete_removes_the_record_and_its_place_in_the_index(mem: Memory) -> None:
    mem.deploy("finish", ("release", A))
    mem.deploy("start", ("release", B))
    mem.apply(Delete, number=2)
    assert 2 not in mem.recs and mem.index.in_flight is None and mem.index.count == 1
    assert mem.deploy("start", ("release", C)).number == 3  # numbers are never reused
    with pytest.raises(NotFound):
        mem.apply(Delete, number=2)
    mem.check()


def test_comment_changes_nothing(mem: Memory) -> None:
    mem.deploy("start", ("release", A))
    before = (mem.index, dict(mem.recs))
    change = mem.apply(Comment, number=1, text="waiting for the DB migration")
    assert (mem.index, mem.recs) == before and change.records == {}
    assert change.body == "waiting for the DB migration"
    with pytest.raises(NotFound):
        mem.apply(Comment, number=9, text="?")


def test_target_edit_and_archive(mem: Memory) -> None:
    mem.apply(EditTarget, settings={"hanging_after": 60, "name": "Production"})
    assert mem.target.hanging_after == 60 and mem.target.name == "Production"
    mem.apply(EditTarget, settings={"hanging_after": "off"})
    assert mem.target.hanging_after is None
    with pytest.raises(RuleViolation, match="nothing to change"):
        mem.apply(EditTarget, settings={"name": "Production"})
    mem.apply(ArchiveTarget, archived=True)
    with pytest.raises(RuleViolation, match="archived"):
        mem.deploy("start", ("release", A))
    mem.apply(ArchiveTarget, archived=False)
    mem.deploy("start", ("release", A))


def test_the_home_repository_stays_listed(mem: Memory) -> None:
    mem.apply(EditTarget, settings={"repositories": [{"name": "infra", "location": "/x"}]})
    assert mem.target.repository_names() == ["app", "infra"]


def test_index_refuses_a_second_in_flight_deployment() -> None:
    mem = Memory()
    mem.deploy("start", ("release", A))
    other = mem.recs[1].model_copy(update={"number": 2})
    with pytest.raises(InternalError, match="two deployments in flight"):
        machine.index_add(mem.index, other)


def test_unknown_target() -> None:
    class Empty:
        target = None
        index = None

        def record(self, number: int) -> None:
            return None

    mem = Memory()
    with pytest.raises(NotFound, match="unknown target"):
        machine.apply(Empty(), mem.request(Deploy, op="start", commits=[ref("main", A)]))


def test_an_automatic_version_follows_a_new_commit() -> None:
    """A version nobody gave is git describe of the commit: when start, finish or a new
    schedule moves the deployment to another commit, the version moves with it."""
    mem = Memory()
    mem.oracle = AncestryOracle(set())
    mem.apply(Deploy, op="schedule", commits=[ref("release", A)])
    assert mem.recs[1].version == "v-aaaa"
    mem.apply(Deploy, op="schedule", commits=[ref("release", B)])
    assert mem.recs[1].version == "v-bbbb"
    mem.apply(Deploy, op="start", commits=[ref("release", C)])
    assert (mem.recs[1].status, mem.recs[1].version) == (Status.DEPLOYING, "v-cccc")
    mem.apply(Deploy, op="finish", commits=[ref("release", A)])
    assert (mem.recs[1].status, mem.recs[1].version) == (Status.CURRENT, "v-aaaa")


def test_a_version_a_person_gave_stays_with_a_new_commit() -> None:
    mem = Memory()
    mem.oracle = AncestryOracle(set())
    mem.apply(Deploy, op="schedule", commits=[ref("release", A)], version="2.0")
    change = mem.apply(Deploy, op="start", commits=[ref("release", B)])
    assert (mem.recs[1].version, mem.recs[1].commits[0].commit) == ("2.0", B)
    assert change.facts == {f"describe:app:{A}": "v-aaaa"}  # asked, and kept for replays


def test_a_change_recorded_before_versions_followed_commits_replays_as_it_was() -> None:
    """fsck and the server hook replay old changes: a request that did not record the rule
    keeps the version it was written with."""
    class Replaying(AncestryOracle):
        replaying = True

    live = Memory()
    live.oracle = AncestryOracle(set())
    live.apply(Deploy, op="schedule", commits=[ref("release", A)])
    change = live.apply(Deploy, op="start", commits=[ref("release", B)])
    assert change.facts["rule:version-follows-commit"] is True
    old = Memory()
    old.oracle = Replaying(set())
    old.apply(Deploy, op="schedule", commits=[ref("release", A)])
    old.apply(Deploy, op="start", commits=[ref("release", B)])
    assert (old.recs[1].version, old.recs[1].commits[0].commit) == ("v-aaaa", B)


# --- recorded after the fact -------------------------------------------------------------------


def test_a_finish_that_happened_earlier_dates_its_records_then(mem: Memory) -> None:
    earlier = mem.clock - timedelta(days=300)
    first = mem.deploy("finish", ("main", A), happened_at=earlier)
    assert first.created_at == first.updated_at == first.history[0].at == earlier
    later = earlier + timedelta(days=30)
    second = mem.deploy("finish", ("main", B), happened_at=later)
    assert second.created_at == later
    # the deployment it replaced was completed when the later one happened
    assert mem.recs[1].history[-1].status == Status.COMPLETED
    assert mem.recs[1].updated_at == mem.recs[1].history[-1].at == later
    mem.check()


def test_only_a_finish_or_fail_happens_earlier_and_never_after_it_is_recorded(
        mem: Memory) -> None:
    with pytest.raises(RuleViolation, match="only finish and fail"):
        mem.deploy("start", ("main", A), happened_at=mem.clock - timedelta(days=1))
    with pytest.raises(RuleViolation, match="cannot have happened after it was recorded"):
        mem.deploy("finish", ("main", A), happened_at=mem.clock + timedelta(days=1))
    assert mem.recs == {}
