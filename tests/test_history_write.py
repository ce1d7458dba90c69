"""Writing history: rollbacks on purpose, importing release tags, and keep-alive refs that keep
deployed commits through `git gc`."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import Deploy, git, make_commit
from git_deployments.core import keepalive
from git_deployments.core.store import open_store
from git_deployments.core.verify import verify_commit
from git_deployments.git.repo import open_repository
from git_deployments.history import keep


def one_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def timeline_verifies(repo: Path, key: str) -> int:
    """Replay every change of the timeline; returns how many there are."""
    git_repo = open_repository(repo)
    commits = git(repo, "rev-list", f"refs/deployments/{key}").split()
    for commit in commits:
        verify_commit(git_repo, key, commit)
    return len(commits)


def exists(repo: Path, commit: str) -> bool:
    return subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=repo,
                          capture_output=True).returncode == 0


def prune_everything(repo: Path) -> None:
    git(repo, "reflog", "expire", "--expire=now", "--all")
    git(repo, "gc", "-q", "--prune=now")


@pytest.fixture
def app(tmp_path: Path) -> Path:
    path = tmp_path / "app"
    path.mkdir()
    git(path, "init", "-q")
    for i in range(4):
        make_commit(path, f"main {i}", f"2026-01-0{i + 1}T00:00:00Z")
    Deploy(path)("target", "create", "production")
    return path


# --- rollback ------------------------------------------------------------------------------------


def test_rollback_starts_the_newest_earlier_completed_deployment_again(app: Path) -> None:
    deploy = Deploy(app)
    for rev in ("HEAD~3", "HEAD~1", "HEAD~1", "HEAD"):  # #3 repeats #2's commit
        deploy("finish", "production", "--commit", f"app:main:{rev}", "--version", rev)
    result = deploy("rollback", "production")
    # the newest completed one with other commits than the current: #3 = #2's commit
    assert "production #5: deploying HEAD~1" in result.stdout
    assert "(rollback)" in result.stdout and "rolls back #4" in result.stdout
    record: Any = deploy.json("show", "production", "5")
    assert record["status"] == "deploying" and record["rollback_of"] == 4
    assert record["commits"][0]["commit"] == git(app, "rev-parse", "HEAD~1")
    assert record["history"][0]["reason"] == "rollback to #3"
    # the CI finishes it like any deployment; it stays marked as a rollback
    deploy("finish", "production")
    record = deploy.json("show", "production", "5")
    assert record["status"] == "current" and record["rollback_of"] == 4
    assert deploy.json("show", "production", "4")["status"] == "completed"  # type: ignore[index]
    assert "(rollback)" in deploy("log", "production", "-n", "2").stdout
    assert timeline_verifies(app, "production") == 7


def test_rollback_to_a_chosen_deployment_finished_at_once(app: Path) -> None:
    deploy = Deploy(app)
    git(app, "checkout", "-q", "-b", "other", "HEAD~2")
    side = make_commit(app, "other side", "2026-01-09T00:00:00Z")
    git(app, "checkout", "-q", "main")
    deploy("finish", "production", "--commit", f"app:other:{side}", "--version", "side")
    deploy("finish", "production", "--commit", "app:main:HEAD", "--version", "2.0")
    # #1 is no ancestor of #2: ancestry alone would not call this a rollback, the command does
    data: Any = deploy.json("rollback", "production", "--to", "1", "--finish",
                            "--reason", "2.0 breaks logins")
    record = data["deployment"]
    assert record["number"] == 3 and record["status"] == "current"
    assert record["rollback_of"] == 2 and record["version"] == "side"
    assert record["commits"] == [{"repository": "app", "branch": "other", "commit": side}]
    assert record["history"][0]["reason"] == "2.0 breaks logins"
    assert {"number": 2, "from": "current", "to": "completed"} in data["effects"]
    commits: Any = deploy.json("commits", "production")
    assert commits["rollback_of"] == 2
    assert timeline_verifies(app, "production") == 4


def test_rollback_refusals_write_nothing(app: Path) -> None:
    deploy = Deploy(app)
    assert "no current deployment" in one_error(deploy("rollback", "production", code=1))
    deploy("finish", "production", "--commit", "app:main:HEAD~1")
    assert "no earlier completed deployment" in one_error(
        deploy("rollback", "production", code=1))
    deploy("fail", "production", "--commit", "app:main:HEAD~2")
    deploy("finish", "production", "--commit", "app:main:HEAD")
    tip = git(app, "rev-parse", "refs/deployments/production")
    assert "is the current one already" in one_error(
        deploy("rollback", "production", "--to", "3", code=1))
    assert "is failed" in one_error(deploy("rollback", "production", "--to", "2", code=1))
    assert "has no deployment #9" in one_error(
        deploy("rollback", "production", "--to", "9", code=1))
    assert "invalid deployment number" in one_error(
        deploy("rollback", "production", "--to", "0", code=1))
    deploy("start", "production", "--commit", "app:main:HEAD~3")
    tip = git(app, "rev-parse", "refs/deployments/production")
    assert "already in flight" in one_error(deploy("rollback", "production", "--to", "1",
                                                   code=1))
    assert git(app, "rev-parse", "refs/deployments/production") == tip


# --- import-tags ---------------------------------------------------------------------------------


def tag(repo: Path, name: str, rev: str, date: str | None = None) -> None:
    """An annotated tag dated `date`, or a lightweight one (dated by its commit)."""
    if date is None:
        git(repo, "tag", name, rev)
    else:
        git(repo, "tag", "-a", name, "-m", f"release {name}", rev,
            env={"GIT_COMMITTER_DATE": date})


def test_import_tags_builds_a_timeline_that_verifies(app: Path) -> None:
    deploy = Deploy(app)
    tag(app, "v1.0", "HEAD~3", "2025-01-10T10:00:00Z")
    tag(app, "v1.1", "HEAD~2")  # lightweight: the commit's date, 2026-01-02
    tag(app, "v2.0", "HEAD", "2026-03-01T09:30:00Z")
    tag(app, "v1.0.1", "HEAD~3", "2025-06-01T00:00:00Z")  # re-tag of an old commit
    tag(app, "other", "HEAD~1", "2026-02-01T00:00:00Z")  # does not match v*
    plan: Any = deploy.json("import-tags", "releases", "--dry-run")
    assert [e["tag"] for e in plan["imported"]] == ["v1.0", "v1.0.1", "v1.1", "v2.0"]
    assert plan["create_target"] is True
    assert subprocess.run(["git", "rev-parse", "--verify", "-q", "refs/deployments/releases"],
                          cwd=app).returncode == 1  # a dry run writes nothing

    result = deploy("import-tags", "releases")
    assert result.stderr == ""  # no progress when stderr is not a terminal
    assert "imported 4 tags into 'releases' (created)" in result.stdout
    listed: Any = deploy.json("list", "releases")
    by_number = {r["number"]: r for r in listed}
    assert [by_number[n]["version"] for n in (1, 2, 3, 4)] == ["v1.0", "v1.0.1", "v1.1", "v2.0"]
    assert [by_number[n]["created_at"] for n in (1, 2, 3, 4)] == [
        "2025-01-10T10:00:00Z", "2025-06-01T00:00:00Z", "2026-01-02T00:00:00Z",
        "2026-03-01T09:30:00Z"]
    for n, name in ((1, "v1.0"), (3, "v1.1"), (4, "v2.0")):
        assert by_number[n]["commits"][0]["commit"] == git(app, "rev-parse", f"{name}^{{}}")
    assert by_number[4]["status"] == "current"
    assert {by_number[n]["status"] for n in (1, 2, 3)} == {"completed"}
    # the timeline is dated by the tags and replays exactly
    dates = git(app, "log", "--format=%aI", "refs/deployments/releases").split()
    assert dates[0] == "2026-03-01T09:30:00+00:00" and dates[-1] == "2025-01-10T10:00:00+00:00"
    assert timeline_verifies(app, "releases") == 5
    # history built from tags answers the other questions too
    [answer] = deploy.json("contains", "HEAD~2", "--target", "releases")  # type: ignore[misc]
    assert answer["first_deployment"] == 3 and answer["live"] is True

    # again: nothing new; a new tag later: just that one
    assert "imported 0 tags into 'releases'; 4 imported already" in \
        deploy("import-tags", "releases").stdout
    make_commit(app, "later", "2026-04-01T00:00:00Z")
    tag(app, "v2.1", "HEAD", "2026-04-02T00:00:00Z")
    data: Any = deploy.json("import-tags", "releases")
    assert [e["tag"] for e in data["imported"]] == ["v2.1"] and data["imported"][0]["number"] == 5
    assert timeline_verifies(app, "releases") == 6


def test_import_tags_shows_progress_on_a_terminal(app: Path) -> None:
    import os
    import pty

    for i in range(3):
        tag(app, f"v0.{i}", f"HEAD~{3 - i}", f"2025-0{i + 1}-01T00:00:00Z")
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(["git", "deploy", "import-tags", "releases"], cwd=app,
                              stdout=subprocess.PIPE, stderr=follower, text=True, timeout=120)
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal's other end is closed: all read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
    assert done.returncode == 0 and "imported 3 tags" in done.stdout
    assert b"importing tags: 3/3" in shown


def test_import_tags_into_a_target_created_a_moment_before(app: Path) -> None:
    deploy = Deploy(app)  # the fixture created production just now; it has no deployment
    deploy("comment", "production", "-m", "its history comes from the release tags")
    before = int(git(app, "log", "-1", "--format=%at", "refs/deployments/production"))
    tag(app, "v1.0", "HEAD~3", "2025-01-10T10:00:00Z")
    tag(app, "v1.1", "HEAD~1", "2025-06-01T00:00:00Z")
    plan: Any = deploy.json("import-tags", "production", "--dry-run")
    assert plan["create_target"] is False
    assert [(e["tag"], e["at"]) for e in plan["imported"]] == [
        ("v1.0", "2025-01-10T10:00:00Z"), ("v1.1", "2025-06-01T00:00:00Z")]

    data: Any = deploy.json("import-tags", "production")
    assert [(e["tag"], e["number"]) for e in data["imported"]] == [("v1.0", 1), ("v1.1", 2)]
    listed: Any = deploy.json("list", "production")
    # the records say when each release went out ...
    assert [(r["number"], r["status"], r["created_at"]) for r in listed] == [
        (2, "current", "2025-06-01T00:00:00Z"), (1, "completed", "2025-01-10T10:00:00Z")]
    assert listed[1]["history"][-1]["at"] == "2025-06-01T00:00:00Z"  # completed by v1.1
    # ... and the timeline when it was recorded: in time order, after what it had already
    times = [int(t) for t in git(app, "log", "--format=%at",
                                 "refs/deployments/production").split()]
    assert times == sorted(times, reverse=True) and min(times[:2]) >= before
    assert timeline_verifies(app, "production") == 4
    deploy("fsck", "production")

    # with deployments now, a tag older than its newest change is refused, as before
    tag(app, "v1.0.1", "HEAD~2", "2025-03-01T00:00:00Z")
    tip = git(app, "rev-parse", "refs/deployments/production")
    assert "older than the newest change of target 'production'" in one_error(
        deploy("import-tags", "production", code=1))
    assert git(app, "rev-parse", "refs/deployments/production") == tip


def test_import_tags_refusals_write_nothing(app: Path) -> None:
    deploy = Deploy(app)
    assert "no tag matches 'v*'" in one_error(deploy("import-tags", "releases", code=1))
    tag(app, "v1.0", "HEAD~3", "2025-01-10T10:00:00Z")
    deploy("finish", "production", "--commit", "app:main:HEAD")
    tip = git(app, "rev-parse", "refs/deployments/production")
    # production already has changes newer than the tag: its history is not rewritten
    assert "older than the newest change of target 'production'" in one_error(
        deploy("import-tags", "production", code=1))
    assert git(app, "rev-parse", "refs/deployments/production") == tip
    git(app, "checkout", "-q", "--detach")
    assert "HEAD is detached" in one_error(deploy("import-tags", "releases", code=1))
    assert "invalid branch name" in one_error(
        deploy("import-tags", "releases", "--branch", "a..b", code=1))
    assert subprocess.run(["git", "rev-parse", "--verify", "-q", "refs/deployments/releases"],
                          cwd=app).returncode == 1


# --- keep-alive refs -----------------------------------------------------------------------------


def test_gc_after_a_branch_deletion_keeps_deployed_commits(app: Path) -> None:
    deploy = Deploy(app)
    deploy("finish", "production", "--commit", "app:main:HEAD~1")
    git(app, "checkout", "-q", "-b", "hotfix")
    fix = make_commit(app, "hotfix", "2026-01-10T00:00:00Z")
    deploy("finish", "production", "--commit", f"app:hotfix:{fix}")
    undeployed = make_commit(app, "never deployed", "2026-01-11T00:00:00Z")
    git(app, "checkout", "-q", "main")
    git(app, "branch", "-q", "-D", "hotfix")
    prune_everything(app)
    assert exists(app, fix) and not exists(app, undeployed)
    kept = git(app, "rev-list", "refs/deployments-kept/production").split()
    assert fix in kept
    data: Any = deploy.json("commits", "production")
    assert [c["commit"] for c in data["commits"]] == \
        git(app, "rev-list", f"HEAD~1..{fix}").split() == [fix, git(app, "rev-parse", "HEAD")]


def test_keeping_skips_what_is_kept_and_never_fails_a_write(app: Path) -> None:
    deploy = Deploy(app)
    deploy("finish", "production", "--commit", "app:main:HEAD")
    chain = git(app, "rev-list", "--first-parent", "refs/deployments-kept/production").split()
    deploy("finish", "production", "--commit", "app:main:HEAD")  # the same commit again
    deploy("comment", "production", "-m", "a comment keeps nothing new")
    assert git(app, "rev-list", "--first-parent",
               "refs/deployments-kept/production").split() == chain
    # a broken keep-alive ref (a ref in the way of its name) does not stop deployments
    git(app, "update-ref", "-d", "refs/deployments-kept/production")
    git(app, "update-ref", "refs/deployments-kept/production/blocker", "HEAD")
    deploy("finish", "production", "--commit", "app:main:HEAD~1")
    assert deploy.json("show", "production")["status"] == "current"  # type: ignore[index]

    store = open_store(app)
    result = keepalive.retain(store.git, "staging", ["0" * 40])
    assert result.missing == ["0" * 40] and result.added == []


def test_deployed_commits_gone_after_a_force_push_are_reported_by_id(
        app: Path, tmp_path: Path) -> None:
    deploy = Deploy(app)
    deploy("target", "create", "staging")
    deploy("finish", "production", "--commit", "app:main:HEAD~2")
    deploy("finish", "production", "--commit", "app:main:HEAD")
    deploy("finish", "staging", "--commit", "app:main:HEAD")
    gone = git(app, "rev-parse", "HEAD")
    # the branch is force-pushed back and, as in a clone that never kept them, nothing else
    # holds the deployed commit
    git(app, "reset", "-q", "--hard", "HEAD~2")
    make_commit(app, "rewritten", "2026-02-01T00:00:00Z")
    for key in ("production", "staging"):
        git(app, "update-ref", "-d", f"refs/deployments-kept/{key}")
    prune_everything(app)
    assert not exists(app, gone)

    data: Any = deploy.json("commits", "production")
    span = data["repositories"][0]
    assert span["available"] is False and span["missing"] == [gone]
    assert gone in span["problem"]
    assert gone in deploy("commits", "production").stdout
    answers: Any = deploy.json("contains", "HEAD~1")
    production = next(a for a in answers if a["target"] == "production")
    assert production["unknown"] == [2] and production["first_deployment"] == 1
    assert production["live"] is False  # what the current runs cannot be checked here
    assert "missing here" in deploy("contains", "HEAD~1").stdout
    pending: Any = deploy.json("pending", "production")
    assert pending["repositories"][0]["missing"] == [gone]
    compared: Any = deploy.json("compare", "production", "staging")
    assert gone in compared["repositories"][0]["problem"]
    # rebuilding the keep-alive refs keeps what is left and names what is gone
    rebuilt: Any = deploy.json("keep")
    assert rebuilt == [
        {"target": "production", "ref": "refs/deployments-kept/production", "kept": 1,
         "missing": [gone], "other_repositories": []},
        {"target": "staging", "ref": "refs/deployments-kept/staging", "kept": 0,
         "missing": [gone], "other_repositories": []},
    ]
    assert f"missing {gone}" in deploy("keep", "production").stdout
    first = git(app, "rev-parse", "HEAD~2")
    assert first in git(app, "rev-list", "refs/deployments-kept/production").split()


def test_rebuild_regenerates_the_keep_alive_ref_from_the_timeline(app: Path) -> None:
    store = open_store(app)
    deployed = [make_commit(app, f"release {i}", f"2026-02-{i + 1:02d}T00:00:00Z")
                for i in range(20)]
    for commit in deployed:  # through the write path, in process: 20 processes would be slow
        store.write(_finish(commit))
    git(app, "update-ref", "-d", "refs/deployments-kept/production")
    result = keep.rebuild(store.git, "production")
    assert result.missing == [] and result.added == deployed
    # chained commits of a bounded number of parents each
    for line in git(app, "rev-list", "--parents", "--first-parent",
                    "refs/deployments-kept/production").splitlines():
        assert len(line.split()) - 1 <= keepalive.PARENTS_PER_COMMIT + 1
    git(app, "reset", "-q", "--hard", "HEAD~20")
    prune_everything(app)
    assert all(exists(app, c) for c in deployed)
    # rebuilding again gives a ref that keeps the same commits
    again = keep.rebuild(store.git, "production")
    assert again.added == deployed


def _finish(commit: str) -> Any:
    from git_deployments.core import intake
    from git_deployments.core.model import Deploy as DeployRequest

    return intake.new_request(DeployRequest, None, "production", op="finish",
                              commits=[{"repository": "app", "branch": "main",
                                        "commit": commit}], by="Ada <ada@example.com>")
