"""Sharing timelines between clones through a real bare repository (file transport and `git
daemon`) with the server hooks installed by `git deploy install-hooks`."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Deploy, git, make_commit
from git_deployments.core.store import Store
from git_deployments.core.timeline import recorded_request
from git_deployments.core.timeline import trailers as parse_trailers
from git_deployments.core.verify import verify_commit, verify_index
from git_deployments.git.repo import open_repository

REF = "refs/deployments/production"


# --- fixtures: a server, clones of it, a git daemon serving it ---------------------------------


@pytest.fixture
def server(tmp_path: Path, repo: Path) -> Path:
    """A bare repository with the hooks installed (the shape of a git server)."""
    path = tmp_path / "srv" / "app.git"
    path.parent.mkdir()
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(path))
    Deploy(path)("install-hooks")
    return path


CloneFactory = Callable[..., Deploy]


@pytest.fixture
def clone(tmp_path: Path, server: Path) -> CloneFactory:
    """`clone("a")`: a clone of the server (or of `url`) with init's refspec configured."""

    def make(name: str, url: str | None = None) -> Deploy:
        path = tmp_path / "clones" / name
        path.parent.mkdir(exist_ok=True)
        git(tmp_path, "clone", "-q", url or server.as_uri(), str(path))
        # every clone names the tracked repository as the server does
        git(path, "config", "deploy.repository", "app")
        deploy = Deploy(path)
        deploy("init")
        return deploy

    return make


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def daemon(server: Path) -> Iterator[str]:
    """`git daemon` serving the server on 127.0.0.1, pushes enabled; yields the URL."""
    base = server.parent
    for _ in range(5):
        port = free_port()
        process = subprocess.Popen(
            ["git", "daemon", "--reuseaddr", "--listen=127.0.0.1", f"--port={port}",
             f"--base-path={base}", "--export-all", "--enable=receive-pack",
             "--informative-errors", str(base)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        url = f"git://127.0.0.1:{port}/{server.name}"
        for _ in range(200):
            if process.poll() is not None:
                break
            probe = subprocess.run(["git", "ls-remote", url], capture_output=True)
            if probe.returncode == 0:
                break
            time.sleep(0.05)
        if process.poll() is None:
            break
    else:
        pytest.fail("git daemon did not start")
    try:
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def remote_timeline(server: Path, key: str = "production") -> list[str]:
    """The server's timeline of `key`, oldest first."""
    store = Store(open_repository(server))
    return [info.id for info in store.timeline(key)][::-1]


def check_every_commit(server: Path, key: str = "production") -> list[str]:
    """Verify each commit of the server's timeline; return their op ids, oldest first."""
    gitrepo = open_repository(server)
    commits = remote_timeline(server, key)
    op_ids = []
    for commit in commits:
        op_ids.append(verify_commit(gitrepo, key, commit).request.op_id)
    verify_index(gitrepo, key, commits[-1])
    return op_ids


def ref_of(path: Path, ref: str = REF) -> str | None:
    result = subprocess.run(["git", "rev-parse", "--verify", "-q", ref], cwd=path,
                            capture_output=True, text=True)
    return result.stdout.strip() or None


# --- init, pull, push, sync ----------------------------------------------------------------------


def test_init_adds_the_fetch_refspec_once(clone: CloneFactory, tmp_path: Path) -> None:
    a = clone("a")
    out = a("init").stdout
    assert "already" in out
    specs = git(a.cwd, "config", "--get-all", "remote.origin.fetch").splitlines()
    assert specs.count("+refs/deployments/*:refs/remotes/origin/deployments/*") == 1
    a("target", "create", "production")
    a("push")
    b = clone("b")
    git(b.cwd, "fetch", "-q")  # a plain git fetch brings the timelines
    assert ref_of(b.cwd, "refs/remotes/origin/deployments/production") == ref_of(a.cwd)


def test_init_names_a_missing_remote(deploy: Deploy) -> None:
    result = deploy("init", "--remote", "nowhere", code=1)
    assert result.stderr.startswith("error: no remote 'nowhere'")
    assert len(result.stderr.splitlines()) == 1


def test_push_creates_and_pull_creates(clone: CloneFactory, server: Path) -> None:
    a, b = clone("a"), clone("b")
    a("target", "create", "production", "--description", "live")
    a("finish", "production", "--commit", "app:main:HEAD")
    assert "production: created on origin" in a("push").stdout
    assert ref_of(server) == ref_of(a.cwd)
    assert "production: new from origin" in b("pull").stdout
    assert ref_of(b.cwd) == ref_of(server)
    if importlib.util.find_spec("git_deployments.history.keep") is not None:
        # the pulled records' commits are kept from gc in this clone too
        assert ref_of(b.cwd, "refs/deployments-kept/production") is not None
    shown: Any = b.json("target", "show", "production")
    assert shown["description"] == "live"
    assert "up to date with origin" in b("sync").stdout


def test_diverged_clones_replay_in_order_and_numbers_move(clone: CloneFactory,
                                                           server: Path) -> None:
    a = clone("a")
    a("target", "create", "production", "--sync")
    b = clone("b")
    b("pull")
    a("schedule", "production", "--commit", "app:main:HEAD", "--description", "from a")
    b("schedule", "production", "--commit", "app:release:HEAD", "--description", "from b 1")
    b("comment", "production", "1", "-m", "about b's first")
    a("push")
    result = b("sync")
    assert "1 new change from origin; 2 local changes replayed onto them" in result.stdout
    # b's deployment was #1 locally; the remote's #1 came first, so it is #2 now
    assert "now production #2: scheduled" in result.stdout
    listed: Any = b.json("list", "production")
    by_number = {d["number"]: d["description"] for d in listed}
    assert by_number == {1: "from a", 2: "from b 1"}
    log = git(b.cwd, "log", "--format=%s", REF)
    assert log.splitlines()[0] == "production #2: comment"  # the comment followed its deployment
    assert len(git(b.cwd, "rev-list", "--merges", REF)) == 0
    check_every_commit(server)


def test_a_refused_replay_is_reported_and_kept(clone: CloneFactory, server: Path) -> None:
    a = clone("a")
    a("target", "create", "production", "--sync")
    a("finish", "production", "--commit", "app:main:HEAD", "--sync")
    b = clone("b")
    b("pull")
    a("delete", "production", "1", "--sync")
    b("comment", "production", "1", "-m", "about #1")
    old_tip = ref_of(b.cwd)
    result = b("sync", code=1)
    [line] = result.stderr.splitlines()
    assert line.startswith("error: production: comment (op ")
    assert "no longer applies after syncing with 'origin'" in line
    assert "has no deployment #1" in line
    backups = git(b.cwd, "for-each-ref", "--format=%(refname) %(objectname)",
                  "refs/deployments-backup/").splitlines()
    assert len(backups) == 1 and backups[0].endswith(str(old_tip))
    assert backups[0].split()[0] in line
    assert ref_of(b.cwd) == ref_of(server)

    # git deploy backups: the refused comment never landed, so --prune keeps the backup
    name = backups[0].split()[0].removeprefix("refs/deployments-backup/")
    listed: Any = b.json("backups")
    assert [(e["name"], e["tip"], [u["subject"] for u in e["unlanded"]]) for e in listed] == \
        [(name, old_tip, ["production #1: comment"])]
    assert "1 change never landed" in b("backups").stdout
    assert b("backups", "--prune").stdout.startswith(f"{name}  1 change never landed")
    assert git(b.cwd, "for-each-ref", "refs/deployments-backup/") != ""
    # a backup whose changes all landed goes with --prune; --drop takes any one by name
    git(b.cwd, "update-ref", "refs/deployments-backup/production/20200101T000000Z",
        ref_of(b.cwd))
    assert b("backups", "--prune").stdout.splitlines()[0] == \
        "dropped production/20200101T000000Z"
    assert "no backup named 'nope'" in b("backups", "--drop", "nope", code=1).stderr
    assert b("backups", "--drop", name).stdout.startswith(
        f"dropped {name} (1 change that never landed)")
    assert git(b.cwd, "for-each-ref", "refs/deployments-backup/") == ""
    assert b("backups").stdout == "no backups\n"


def test_an_operation_the_remote_already_has_is_not_replayed_twice(clone: CloneFactory,
                                                                    server: Path) -> None:
    a = clone("a")
    a("target", "create", "production", "--sync")
    b, c = clone("b"), clone("c")
    a("comment", "production", "-m", "only once")
    # c picks up a's unpushed change straight from a, and pushes it after b's
    git(c.cwd, "fetch", "-q", str(a.cwd), f"{REF}:{REF}")
    b("comment", "production", "-m", "from b", "--sync")
    assert "1 local change replayed" in c("sync").stdout
    result = a("sync")
    assert "0 local changes replayed onto them (1 already there)" in result.stdout
    assert ref_of(a.cwd) == ref_of(server)
    op_ids = check_every_commit(server)
    assert len(op_ids) == len(set(op_ids)) == 3


def test_later_changes_follow_a_replayed_deployment(clone: CloneFactory, server: Path) -> None:
    a = clone("a")
    a("target", "create", "production", "--sync")
    b = clone("b")
    b("schedule", "production", "--commit", "app:release:HEAD", "--sync")
    b("schedule", "production", "--commit", "app:main:HEAD", "--description", "b's", "--sync")
    # a schedules main too (its #1 here), then comments on it and edits it
    a("schedule", "production", "--commit", "app:main:HEAD")
    a("comment", "production", "1", "-m", "about main")
    a("edit", "production", "1", "--version", "9.9")
    a("sync")
    # on the remote, a's schedule updated b's #2 (one scheduled per branch): so did the rest
    listed: Any = a.json("list", "production")
    assert [(d["number"], d["version"], d["description"]) for d in listed] == [
        (2, "9.9", "b's"), (1, listed[1]["version"], "")]
    log = git(a.cwd, "log", "--format=%s", "-2", REF).splitlines()
    assert log == ["production #2: updated 9.9 (main@" + git(a.cwd, "rev-parse", "--short=7",
                                                             "origin/main") + ")",
                   "production #2: comment"]
    check_every_commit(server)


def test_changes_to_a_deployment_whose_creation_is_refused_are_refused(
        clone: CloneFactory, server: Path) -> None:
    a = clone("a")
    a("target", "create", "production", "--sync")
    b = clone("b")
    b("target", "archive", "production", "--sync")
    a("start", "production", "--commit", "app:main:HEAD")
    a("comment", "production", "1", "-m", "about it")
    result = a("sync", code=1)
    first, second = result.stderr.splitlines()
    assert first.startswith("error: production: start (op ") and "is archived" in first
    assert second.startswith("error: production: comment (op ")
    assert "it names deployment #1, whose creation here no longer applies either" in second
    assert ref_of(a.cwd) == ref_of(server)


def test_sync_on_a_write_replays_and_prints_the_final_number(clone: CloneFactory,
                                                             server: Path) -> None:
    a = clone("a")
    a("target", "create", "production", "--sync")
    b = clone("b")
    b("pull")
    a("start", "production", "--commit", "app:main:HEAD", "--sync")
    # b has not pulled: its #1 would clash; --sync fetches first, so it becomes #2
    result = b("fail", "production", "--commit", "app:release:HEAD", "--sync")
    assert result.stdout.startswith("production #2: failed")
    data: Any = b.json("show", "production", "2")
    assert data["status"] == "failed"
    assert ref_of(b.cwd) == ref_of(server)
    check_every_commit(server)


def test_a_fresh_clone_writes_with_sync(clone: CloneFactory, server: Path, tmp_path: Path) -> None:
    a = clone("a")
    a("target", "create", "production", "--sync")
    path = tmp_path / "ci"
    git(tmp_path, "clone", "-q", server.as_uri(), str(path))
    ci = Deploy(path)
    result = ci("start", "production", "--sync")
    assert result.stdout.startswith("production #1: deploying")
    assert ref_of(server) == ref_of(path)


def test_sync_needs_a_remote(clone: CloneFactory) -> None:
    a = clone("a")
    a("target", "create", "production")
    result = a("comment", "production", "-m", "x", "--sync=upstream", code=1)
    assert result.stderr.startswith("error: no remote 'upstream'")
    assert len(result.stderr.splitlines()) == 1
    assert "comment" not in git(a.cwd, "log", "--format=%s", REF)


def test_an_unreachable_remote_is_one_line(clone: CloneFactory, tmp_path: Path) -> None:
    a = clone("a")
    a("target", "create", "production")
    git(a.cwd, "remote", "add", "gone", str(tmp_path / "nowhere.git"))
    for args in (["pull", "gone"], ["sync", "gone"], ["comment", "production", "-m", "x",
                                                     "--sync=gone"]):
        result = a(*args, code=1)
        [line] = result.stderr.splitlines()
        assert line.startswith("error: cannot fetch from 'gone': ")
        assert "does not appear to be a git repository" in line
    assert "comment" not in git(a.cwd, "log", "--format=%s", REF)


def test_a_refused_push_says_what_the_server_said(clone: CloneFactory, server: Path) -> None:
    a = clone("a")
    a("target", "create", "production", "--sync")
    git(server, "config", "deploy.modifyDeployments", "alice")
    result = a("comment", "production", "-m", "x", "--sync", env={"REMOTE_USER": "mallory"},
               code=1)
    [line] = result.stderr.splitlines()
    assert line.startswith("error: 'origin' refused the change to 'production': ")
    assert "'mallory' may not modify deployments" in line
    assert ref_of(server) != ref_of(a.cwd)
    # the server's policy said no; the change is still here to push by someone allowed
    a("sync", env={"REMOTE_USER": "alice"})
    assert ref_of(server) == ref_of(a.cwd)


def test_a_remote_that_keeps_moving_gives_up_with_a_message(clone: CloneFactory,
                                                            server: Path) -> None:
    a = clone("a")
    a("target", "create", "production", "--sync")
    git(a.cwd, "config", "deploy.syncTries", "2")
    # a stuck lock on the server makes every push lose the race
    lock = server / "refs" / "deployments" / "production.lock"
    lock.write_text("")
    result = a("comment", "production", "-m", "x", "--sync", code=1)
    [line] = result.stderr.splitlines()
    assert line.startswith("error: 'origin' kept moving: could not push the change to "
                           "'production' after 2 tries")
    assert "run 'git deploy sync'" in line
    lock.unlink()
    a("sync")
    assert ref_of(server) == ref_of(a.cwd)


def test_push_alone_reports_a_remote_that_moved(clone: CloneFactory) -> None:
    a = clone("a")
    a("target", "create", "production", "--sync")
    b = clone("b")
    b("pull")
    a("comment", "production", "-m", "a", "--sync")
    b("comment", "production", "-m", "b")
    result = b("push", code=1)
    [line] = result.stderr.splitlines()
    assert line.startswith("error: production: not pushed to 'origin'")
    assert "run 'git deploy sync'" in line


# --- three clones, 150 operations, at once -------------------------------------------------------

DRIVER = textwrap.dedent("""\
    import json, subprocess, sys

    name, branch, count, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    with open(out, "w") as results:
        for i in range(count):
            marker = f"{name}-{i}"
            commit = ["--commit", f"app:{branch}:HEAD", "--description", marker]
            args = [["schedule", "production", *commit], ["start", "production", *commit],
                    ["finish", "production", *commit],
                    ["comment", "production", "-m", marker]][i % 4]
            run = subprocess.run(["git", "deploy", *args, "--sync", "--json"],
                                 capture_output=True, text=True)
            results.write(json.dumps({"marker": marker, "code": run.returncode,
                                      "stdout": run.stdout, "stderr": run.stderr}) + "\\n")
""")


@pytest.mark.reliability
def test_three_clones_racing_synced_writes(clone: CloneFactory, server: Path, daemon: str,
                                           tmp_path: Path) -> None:
    # 15 writes a clone race often enough in the default run; `make reliability` asks for 50
    count = int(os.environ.get("GIT_DEPLOY_RACING_WRITES", "15"))
    first = clone("a", daemon)
    first("target", "create", "production", "--sync")
    clones = [first, clone("b", daemon), clone("c", daemon)]
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    branches = ["main", "release", "main"]
    processes = []
    outputs = []
    for deploy, branch in zip(clones, branches, strict=True):
        out = tmp_path / f"results-{deploy.cwd.name}.jsonl"
        outputs.append(out)
        processes.append(subprocess.Popen(
            [sys.executable, str(driver), deploy.cwd.name, branch, str(count), str(out)],
            cwd=deploy.cwd, env=os.environ.copy()))
    for process in processes:
        assert process.wait(timeout=600) == 0
    results = [json.loads(line) for out in outputs for line in out.read_text().splitlines()]
    failed = [r for r in results if r["code"] != 0]
    assert not failed, failed[:3]
    assert len(results) == 3 * count

    op_ids = check_every_commit(server)  # every commit is a legal replay of its parent
    # target-create and every write, none twice
    assert len(op_ids) == len(set(op_ids)) == 1 + 3 * count
    gitrepo = open_repository(server)
    timeline = set(remote_timeline(server))
    reported = set()
    for result in results:
        printed = json.loads(result["stdout"])
        commit = printed["timeline_commit"]
        assert commit in timeline  # what each command printed is what the server kept
        trailers = parse_trailers(gitrepo.commit_info(commit).message)
        reported.add(trailers["Deploy-Op-Id"][-1])
        if "deployment" in printed:  # the final number, after any replay
            assert printed["deployment"]["number"] == int(trailers["Deploy-Number"][-1])
    assert len(reported) == 3 * count and reported <= set(op_ids)
    markers = []
    for commit in timeline:
        request = recorded_request(gitrepo.commit_info(commit).message)
        markers.append(getattr(request, "description", None) or getattr(request, "text", None))
    expected = {f"{d.cwd.name}-{i}" for d in clones for i in range(count)}
    assert sorted(m for m in markers if m) == sorted(expected)
    # and every clone converges on the server's timeline
    for deploy in clones:
        deploy("sync")
        assert ref_of(deploy.cwd) == ref_of(server)


def test_daemon_transport_push_and_pull(clone: CloneFactory, server: Path, daemon: str) -> None:
    a, b = clone("a", daemon), clone("b", daemon)
    a("target", "create", "production", "--schedule-on-push", "release", "--sync")
    b("schedule", "production", "--commit", "app:main:HEAD", "--sync")
    a("pull")
    assert ref_of(a.cwd) == ref_of(b.cwd) == ref_of(server)
    make_commit(b.cwd, "hotfix")
    pushed = subprocess.run(["git", "push", "origin", "HEAD:release"], cwd=b.cwd,
                            capture_output=True, text=True)
    assert pushed.returncode == 0, pushed.stderr
    assert "production #2: scheduled" in pushed.stderr
    check_every_commit(server)
