"""`git deploy fsck` and `git deploy doctor`, against timelines damaged with the real git binary."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from conftest import Deploy, git

# --- planting commits with git plumbing (shared with the reliability suite) -------------------


def plant(repo: Path, key: str, files: dict[str, bytes | None], *, message: str | None = None,
          parents: list[str] | None = None, base: str | None = None,
          move_ref: bool = True) -> str:
    """A commit on refs/deployments/<key> made with git plumbing, not with git deploy: `base`'s
    tree (default: the tip's) with `files` set (bytes) or removed (None). The message defaults to
    the tip's and the parents to the tip's parents, so the commit replaces the tip."""
    ref = f"refs/deployments/{key}"
    tip = git(repo, "rev-parse", "--verify", "-q", ref) if _has_ref(repo, ref) else None
    base = base if base is not None else tip
    if message is None:
        assert tip is not None
        message = git(repo, "log", "-1", "--format=%B", tip) + "\n"
    if parents is None:
        parents = git(repo, "log", "-1", "--format=%P", tip).split() if tip else []
    index = repo / ".git" / f"plant-{os.getpid()}.index"
    env = {"GIT_INDEX_FILE": str(index)}
    try:
        if base:
            git(repo, "read-tree", f"{base}^{{tree}}", env=env)
        else:
            git(repo, "read-tree", "--empty", env=env)
        for path, data in files.items():
            if data is None:
                git(repo, "update-index", "--force-remove", path, env=env)
                continue
            blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input=data,
                                  capture_output=True, check=True).stdout.decode().strip()
            git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
        tree = git(repo, "write-tree", env=env)
    finally:
        index.unlink(missing_ok=True)
    # written as a raw object: commit-tree would refuse a parent that is not there
    who = "Ada Tester <ada@example.com> 1767225600 +0000"
    text = f"tree {tree}\n" + "".join(f"parent {p}\n" for p in parents) + \
        f"author {who}\ncommitter {who}\n\n{message}"
    commit = subprocess.run(["git", "hash-object", "-t", "commit", "-w", "--literally", "--stdin"],
                            cwd=repo, input=text.encode(), capture_output=True,
                            check=True).stdout.decode().strip()
    if move_ref:
        git(repo, "update-ref", ref, commit)
    return commit


def _has_ref(repo: Path, ref: str) -> bool:
    return subprocess.run(["git", "rev-parse", "--verify", "-q", ref], cwd=repo,
                          capture_output=True).returncode == 0


def refs_state(repo: Path) -> str:
    return subprocess.run(["git", "for-each-ref", "refs/deployments/"], cwd=repo,
                          capture_output=True, text=True, check=True).stdout


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stdout
    return lines[0]


@pytest.fixture
def timeline(repo: Path, deploy: Deploy) -> Path:
    """Target `prod` with a short history: schedule, start, finish, comment, start."""
    deploy("target", "create", "prod", "--manual-controls")
    deploy("schedule", "prod", "--commit", "app:main:HEAD", "--version", "1.0")
    deploy("start", "prod", "--commit", "app:main:HEAD")
    deploy("finish", "prod")
    deploy("comment", "prod", "1", "-m", "went well")
    deploy("start", "prod", "--commit", "app:release:HEAD")
    return repo


# --- fsck -------------------------------------------------------------------------------------


def test_fsck_of_a_sound_history(timeline: Path, deploy: Deploy) -> None:
    deploy("target", "create", "staging")
    result = deploy("fsck")
    assert result.stdout.splitlines() == ["prod: 6 changes checked, ok",
                                          "staging: 1 change checked, ok"]
    data = deploy.json("fsck")
    assert data["ok"] is True and data["problems"] == []
    assert [(t["target"], t["changes"]) for t in data["timelines"]] == [("prod", 6),
                                                                       ("staging", 1)]
    assert deploy("fsck", "staging").stdout == "staging: 1 change checked, ok\n"


def test_fsck_without_timelines(repo: Path, deploy: Deploy) -> None:
    assert deploy("fsck").stdout == "no timelines to check\n"


def test_fsck_of_an_unknown_target(repo: Path, deploy: Deploy) -> None:
    result = deploy("fsck", "nope", code=1)
    assert "unknown target 'nope'" in one_error_line(result)
    one_error_line(deploy("fsck", "Bad Key", code=1))


def fsck_problems(deploy: Deploy) -> list[dict[str, object]]:
    result = deploy("fsck", "--json", code=1)
    one_error_line(result)
    data = json.loads(result.stdout)
    assert data["ok"] is False
    return list(data["problems"])


def test_fsck_finds_an_edited_index(timeline: Path, deploy: Deploy) -> None:
    tip = git(timeline, "rev-parse", "refs/deployments/prod")
    index = git(timeline, "show", f"{tip}:index.yaml") + "\n"
    bad = plant(timeline, "prod", {"index.yaml": index.replace("next_number: 3",
                                                               "next_number: 9").encode()})
    result = deploy("fsck", code=1)
    assert f"refs/deployments/prod@{bad[:12]} (change 6): its tree is not what its recorded " \
           "start gives on its parent" in result.stdout
    assert "prod: 6 changes checked, 1 problem" in result.stdout
    line = one_error_line(result)
    assert line.startswith("error: fsck found 1 problem; the first: "
                           f"refs/deployments/prod@{bad[:12]}")
    [problem] = fsck_problems(deploy)
    assert problem["commit"] == bad and problem["change"] == 6


def test_fsck_finds_a_file_outside_the_layout(timeline: Path, deploy: Deploy) -> None:
    bad = plant(timeline, "prod", {"deployments/notes.txt": b"hello\n"})
    replay, scan = fsck_problems(deploy)
    assert replay["commit"] == bad and "files outside the layout" in str(replay["message"])
    assert scan["commit"] == bad and "deployments/notes.txt: invalid record" in str(scan["message"])


def test_fsck_finds_a_record_that_is_not_yaml(timeline: Path, deploy: Deploy) -> None:
    tip = git(timeline, "rev-parse", "refs/deployments/prod")
    parent = git(timeline, "rev-parse", f"{tip}^")
    # damage the record in the middle of the timeline: every later change is built on it
    plant(timeline, "prod", {"deployments/1.yaml": b"number: [1\n"}, base=parent,
          message=git(timeline, "log", "-1", "--format=%B", parent) + "\n",
          parents=[git(timeline, "rev-parse", f"{parent}^")])
    problems = fsck_problems(deploy)
    assert any("deployments/1.yaml: record is not valid YAML" in str(p["message"])
               for p in problems), problems


def test_fsck_finds_an_unknown_format(timeline: Path, deploy: Deploy) -> None:
    bad = plant(timeline, "prod", {"format": b"git-deployments/99\n"})
    problems = fsck_problems(deploy)
    assert problems[0]["commit"] == bad
    assert "unknown format 'git-deployments/99'" in str(problems[0]["message"])


def test_fsck_finds_a_commit_without_a_recorded_request(timeline: Path, deploy: Deploy) -> None:
    tip = git(timeline, "rev-parse", "refs/deployments/prod")
    bad = plant(timeline, "prod", {}, message="hand-made\n", parents=[tip])
    [problem] = fsck_problems(deploy)
    assert problem["commit"] == bad and problem["change"] == 7
    assert "no Deploy-Request trailer" in str(problem["message"])


def test_fsck_finds_an_illegal_transition(timeline: Path, deploy: Deploy) -> None:
    # a recorded set-status to `hanging`, which only the watcher may set, on top of the tip
    tip = git(timeline, "rev-parse", "refs/deployments/prod")
    message = git(timeline, "log", "-1", "--format=%B", tip)
    request = json.loads(message.rsplit("Deploy-Request: ", 1)[1])
    forged = {"op": "set-status", "op_id": "f" * 32, "at": request["at"], "by": request["by"],
              "target": "prod", "number": 2, "status": "hanging"}
    bad = plant(timeline, "prod", {}, parents=[tip],
                message=f"prod #2: hanging\n\nDeploy-Request: {json.dumps(forged)}\n")
    [problem] = fsck_problems(deploy)
    assert problem["commit"] == bad
    assert "illegal set-status: 'hanging' is set automatically" in str(problem["message"])


def test_fsck_finds_a_merge_and_a_stray_ref(timeline: Path, deploy: Deploy) -> None:
    tip = git(timeline, "rev-parse", "refs/deployments/prod")
    parent = git(timeline, "rev-parse", f"{tip}^")
    bad = plant(timeline, "prod", {}, parents=[tip, parent])
    git(timeline, "update-ref", "refs/deployments/Not-A-Key", tip)
    problems = fsck_problems(deploy)
    assert problems[0]["commit"] == bad and "this is a merge" in str(problems[0]["message"])
    assert problems[-1]["where"] == "refs/deployments/Not-A-Key"
    assert "not a target's timeline" in str(problems[-1]["message"])


def test_fsck_finds_a_missing_parent(timeline: Path, deploy: Deploy) -> None:
    tip = git(timeline, "rev-parse", "refs/deployments/prod")
    missing = "1234567890" * 4
    bad = plant(timeline, "prod", {}, parents=[missing],
                message=git(timeline, "log", "-1", "--format=%B", tip) + "\n")
    [problem] = fsck_problems(deploy)
    assert problem["where"] == f"refs/deployments/prod@{missing[:12]}"
    assert problem["message"] == f"commit {missing} is missing from the repository " \
                                 f"(parent of {bad[:12]})"


# --- doctor -----------------------------------------------------------------------------------


def age(path: Path, seconds: float) -> None:
    """Make `path` look as if it was last written `seconds` ago."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_doctor_with_nothing_to_fix(timeline: Path, deploy: Deploy) -> None:
    assert deploy("doctor").stdout == "nothing to fix: no stale locks or temporary files\n"
    assert deploy.json("doctor") == {"dry_run": False, "findings": []}


def test_a_stale_ref_lock_blocks_writes_with_a_message_and_doctor_fixes_it(
        timeline: Path, deploy: Deploy) -> None:
    before = refs_state(timeline)
    lock = timeline / ".git" / "refs" / "deployments" / "prod.lock"
    lock.write_text("0" * 40 + "\n")
    result = deploy("finish", "prod", code=1)
    line = one_error_line(result)
    assert "ref refs/deployments/prod is locked" in line and "git deploy doctor" in line
    assert refs_state(timeline) == before

    # young: a git process may be writing it right now
    result = deploy("doctor")
    assert result.stdout.startswith("kept refs/deployments/prod.lock: the lock changed ")
    assert "may belong to a git process at work" in result.stdout
    assert lock.exists()

    age(lock, 120)
    result = deploy("doctor", "--dry-run")
    assert result.stdout.splitlines() == [
        "would remove refs/deployments/prod.lock: a ref lock on refs/deployments/prod left 2m "
        "ago by a process that stopped mid-write and no git deploy holds target 'prod'; "
        "refs/deployments/prod keeps its last value",
        "(dry run: nothing was changed; run 'git deploy doctor' to fix)"]
    assert lock.exists()
    data = deploy.json("doctor")
    assert data["findings"] == [{
        "path": "refs/deployments/prod.lock", "kind": "ref-lock", "action": "removed",
        "reason": data["findings"][0]["reason"]}]
    assert not lock.exists()
    assert refs_state(timeline) == before
    deploy("finish", "prod")
    deploy("fsck")


def test_doctor_keeps_the_ref_lock_of_a_target_being_written(timeline: Path,
                                                             deploy: Deploy) -> None:
    from git_deployments.core.store import open_store

    lock = timeline / ".git" / "refs" / "deployments" / "prod.lock"
    lock.write_text("")
    age(lock, 600)
    with open_store(timeline).lock("prod"):  # what a git deploy writing `prod` holds
        result = deploy("doctor")
    assert result.stdout == ("kept refs/deployments/prod.lock: a git deploy is writing target "
                             "'prod' right now\n")
    assert lock.exists()
    assert "removed refs/deployments/prod.lock" in deploy("doctor").stdout


def test_doctor_keeps_a_lock_file_a_process_has_open(timeline: Path, deploy: Deploy) -> None:
    lock = timeline / ".git" / "packed-refs.lock"
    with lock.open("w"):
        age(lock, 600)
        result = deploy("doctor")
        assert result.stdout == "kept packed-refs.lock: the lock is open in a running process\n"
    result = deploy("doctor")
    # aged 10 minutes; a busy machine may take a few seconds more to get here
    assert re.match(r"removed packed-refs\.lock: left 10m(\d+s)? ago by a process that stopped "
                    r"while rewriting packed-refs", result.stdout), result.stdout
    assert not lock.exists()
    git(timeline, "pack-refs", "--all")


def test_doctor_removes_temporary_objects(timeline: Path, deploy: Deploy) -> None:
    objects = timeline / ".git" / "objects"
    temp = objects / "tmp_object_git2_a1B2c3"
    temp.write_bytes(b"x\x9c")
    fresh = objects / "tmp_object_git2_d4E5f6"
    fresh.write_bytes(b"x\x9c")
    ours = timeline / ".git" / "git-deployments" / "watch"
    ours.mkdir(parents=True)
    cursor = ours / ".cursor.json.4242.1.tmp"
    cursor.write_text("{")
    for path in (temp, cursor):
        age(path, 3600)
    lines = deploy("doctor").stdout.splitlines()
    assert lines[0].startswith("removed objects/tmp_object_git2_a1B2c3: a temporary file "
                               "written 1h ago by a process that stopped")
    assert lines[1].startswith("kept objects/tmp_object_git2_d4E5f6: the file changed ")
    assert lines[2].startswith("removed git-deployments/watch/.cursor.json.4242.1.tmp: ")
    assert len(lines) == 3
    assert not temp.exists() and not cursor.exists() and fresh.exists()
    deploy("fsck")


def test_doctor_after_a_killed_watcher(timeline: Path, deploy: Deploy) -> None:
    from conftest import BIN

    pid_file = timeline / ".git" / "git-deployments" / "watch" / "pid"
    watcher = subprocess.Popen([str(BIN / "git-deploy"), "watch", "-q"], cwd=timeline,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(600):
            if pid_file.exists() and pid_file.read_text().strip() == str(watcher.pid):
                break
            assert watcher.poll() is None, watcher.stderr.read() if watcher.stderr else ""
            time.sleep(0.05)
        age(pid_file, 3600)
        assert deploy("doctor").stdout == (
            f"kept git-deployments/watch/pid: its daemon (pid {watcher.pid}) is running and "
            "holds git-deployments/watch/lock\n")
    finally:
        watcher.kill()
        watcher.wait()
    assert pid_file.exists()  # SIGKILL leaves it behind
    age(pid_file, 3600)
    result = deploy("doctor", "--dry-run")
    assert result.stdout.startswith(
        f"would remove git-deployments/watch/pid: process {watcher.pid} left it and no daemon "
        "holds git-deployments/watch/lock: none is running\n")
    assert pid_file.exists()
    deploy("doctor")
    assert not pid_file.exists()
    assert deploy("doctor").stdout == "nothing to fix: no stale locks or temporary files\n"
    deploy("sweep")


def test_from_a_linked_worktree(timeline: Path, deploy: Deploy, tmp_path: Path) -> None:
    """Worktrees share the refs, so they share the write lock, and doctor finds a stale ref lock
    (in the shared git directory) from any of them."""
    from git_deployments.core.store import open_store

    other = tmp_path / "other-worktree"
    git(timeline, "worktree", "add", "-q", "--detach", str(other))
    assert open_store(other).lock_path("prod") == open_store(timeline).lock_path("prod")
    lock = timeline / ".git" / "refs" / "deployments" / "prod.lock"
    lock.write_text("")
    age(lock, 300)
    elsewhere = Deploy(other)
    one_error_line(elsewhere("finish", "prod", code=1))
    assert elsewhere("doctor").stdout.startswith("removed refs/deployments/prod.lock: ")
    elsewhere("finish", "prod")
    elsewhere("fsck")
