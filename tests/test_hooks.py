"""The server hooks, installed by `git deploy install-hooks` into real bare repositories and run
by git's receive-pack: forged history is refused, pushed branches schedule deployments."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import Deploy, git, make_commit
from git_deployments.core.intake import new_request
from git_deployments.core.model import Comment, Request, SetStatus
from git_deployments.core.store import Store
from git_deployments.git.repo import open_repository
from git_deployments.sharing import hooks
from test_sync import CloneFactory, check_every_commit, clone, ref_of, server  # noqa: F401

REF = "refs/deployments/production"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def shared(clone: CloneFactory, server: Path) -> Deploy:  # noqa: F811
    """A clone whose target `production` (manual controls on, #1 current) is on the server."""
    a = clone("a")
    a("target", "create", "production", "--manual-controls", "--sync")
    a("finish", "production", "--commit", "app:main:HEAD", "--sync")
    return a


def push(deploy: Deploy, *refspecs: str, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "push", "origin", *refspecs], cwd=deploy.cwd,
                          capture_output=True, text=True, env={**os.environ, **(env or {})})


def refused(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The hook's refusal lines, as the pusher sees them."""
    assert result.returncode != 0, result.stderr
    assert "pre-receive hook declined" in result.stderr
    return [line.removeprefix("remote: ").strip() for line in result.stderr.splitlines()
            if line.startswith("remote: error: ")]


def forge(deploy: Deploy, files: dict[str, bytes | None] | None = None,
          message: str | None = None, request: Request | None = None) -> str:
    """A commit on the local tip: a legitimate comment, then its tree or message altered."""
    gitrepo = open_repository(deploy.cwd)
    store = Store(gitrepo)
    tip = gitrepo.read_ref(REF)
    legit = store.prepare("production", tip, request or new_request(
        Comment, gitrepo, "production", text="hello"))
    info = gitrepo.commit_info(legit.commit)
    tree = gitrepo.write_tree(info.tree, files) if files else info.tree
    return gitrepo.create_commit(tree, [tip] if tip else [], message or info.message,
                                 info.author, info.author_time)


def request_message(request: Request) -> str:
    payload = request.model_dump(mode="json", exclude_none=True)
    return (f"forged\n\nDeploy-Op-Id: {payload['op_id']}\n"
            f"Deploy-Request: {json.dumps(payload, sort_keys=True)}\n")


# --- pre-receive: forged history is refused and the server does not move -------------------------


def test_a_valid_push_from_quarantine_is_accepted(clone: CloneFactory,  # noqa: F811
                                                  server: Path) -> None:  # noqa: F811
    spy = server / "hooks" / "pre-receive.legacy"
    spy.write_text('#!/bin/sh\necho "$GIT_QUARANTINE_PATH" > "$(dirname "$0")/../quarantine"\n')
    spy.chmod(0o755)
    a = clone("a")
    a("target", "create", "production")
    a("start", "production", "--commit", "app:main:HEAD")
    result = push(a, REF)
    assert result.returncode == 0, result.stderr
    # the pushed objects were only in quarantine while the hook verified them
    assert (server / "quarantine").read_text().strip()
    assert ref_of(server) == ref_of(a.cwd)
    check_every_commit(server)


def test_deleting_a_timeline_is_refused(shared: Deploy, server: Path) -> None:  # noqa: F811
    before = ref_of(server)
    [line] = refused(push(shared, f":{REF}"))
    assert line == (f"error: {REF}: deleting a timeline is refused; archive the target instead "
                    "(git deploy target archive production)")
    assert ref_of(server) == before


def test_rewinding_a_timeline_is_refused(shared: Deploy, server: Path) -> None:  # noqa: F811
    before = ref_of(server)
    [line] = refused(push(shared, f"+{REF}~1:{REF}"))
    assert "not a fast-forward" in line and line.startswith(f"error: {REF}: ")
    assert ref_of(server) == before


def test_an_illegal_transition_is_refused(shared: Deploy, server: Path) -> None:  # noqa: F811
    gitrepo = open_repository(shared.cwd)
    forged_request = new_request(SetStatus, gitrepo, "production", number=1, status="completed")
    commit = forge(shared, {"deployments/1.yaml": b"number: 1\n"},
                   message=request_message(forged_request))
    before = ref_of(server)
    [line] = refused(push(shared, f"{commit}:{REF}"))
    assert line == (f"error: {REF}: {commit[:12]}: illegal set-status: 'completed' is set "
                    "automatically, never by hand")
    assert ref_of(server) == before


@pytest.mark.parametrize("files", [
    pytest.param({"index.yaml": b"next_number: 2\ncount: 1\nin_flight: null\ncurrent: 7\n"
                                b"scheduled: []\n"}, id="tampered-index"),
    pytest.param({"deployments/1.yaml": b"version: " + b"x" * 200_000 + b"\n"}, id="oversized"),
    pytest.param({"target.yaml": b"a: &a [*a, *a, *a]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\n"},
                 id="hostile-yaml"),
    pytest.param({"notes/run.sh": b"#!/bin/sh\nrm -rf /\n"}, id="outside-the-layout"),
    pytest.param({"deployments/9/99.yaml": b"number: 99\n"}, id="extra-record"),
])
def test_a_tree_that_is_not_the_replay_is_refused(shared: Deploy, server: Path,  # noqa: F811
                                                  files: dict[str, bytes]) -> None:
    commit = forge(shared, files)
    before = ref_of(server)
    [line] = refused(push(shared, f"{commit}:{REF}"))
    assert line == (f"error: {REF}: {commit[:12]}: its tree is not what its recorded comment "
                    "gives on its parent (edited records or index, or files outside the layout)")
    assert ref_of(server) == before


def test_a_hostile_recorded_request_is_refused(shared: Deploy, server: Path) -> None:  # noqa: F811
    huge = "Deploy-Request: {\"op\": \"comment\", \"text\": \"" + "x" * 100_000 + "\"}\n"
    commit = forge(shared, message="forged\n\n" + huge)
    before = ref_of(server)
    [line] = refused(push(shared, f"{commit}:{REF}"))
    assert line == f"error: {REF}: {commit[:12]}: recorded request too large"
    assert ref_of(server) == before


def test_merges_and_foreign_commits_are_refused(shared: Deploy, server: Path) -> None:  # noqa: F811
    gitrepo = open_repository(shared.cwd)
    tip = gitrepo.read_ref(REF)
    assert tip is not None
    info = gitrepo.commit_info(tip)
    code = git(shared.cwd, "rev-parse", "HEAD")
    merge = gitrepo.create_commit(info.tree, [tip, code], info.message, info.author, 0)
    [line] = refused(push(shared, f"{merge}:{REF}"))
    assert line == f"error: {REF}: {merge[:12]}: a timeline commit has one parent; this is a merge"
    [line] = refused(push(shared, f"{code}:refs/deployments/other"))
    # the oldest new commit is named: the root of the code history
    root = git(shared.cwd, "rev-list", "--max-parents=0", code)
    assert line == f"error: refs/deployments/other: {root[:12]}: no Deploy-Request trailer"
    assert ref_of(server, "refs/deployments/other") is None


@pytest.mark.parametrize("ref", ["refs/deployments/Production", "refs/deployments/a/b",
                                 "refs/deployments/_x"])
def test_refs_that_are_not_target_keys_are_refused(shared: Deploy, server: Path,  # noqa: F811
                                                   ref: str) -> None:
    [line] = refused(push(shared, f"{REF}:{ref}"))
    assert line.startswith(f"error: {ref}: not a target key (")
    assert ref_of(server, ref) is None


def test_a_whole_push_is_refused_with_one_forged_timeline(shared: Deploy,
                                                          server: Path) -> None:  # noqa: F811
    make_commit(shared.cwd, "code change")
    commit = forge(shared, {"index.yaml": None})
    before = (ref_of(server), ref_of(server, "refs/heads/release"))
    lines = refused(push(shared, "HEAD:release", f"{commit}:{REF}"))
    assert len(lines) == 1
    assert (ref_of(server), ref_of(server, "refs/heads/release")) == before


def test_permissions_from_the_servers_config(shared: Deploy, server: Path) -> None:  # noqa: F811
    git(server, "config", "deploy.pusherVariable", "GL_USERNAME")
    git(server, "config", "--add", "deploy.modifyTargets", "alice")
    git(server, "config", "--add", "deploy.modifyTargets", "root")
    git(server, "config", "deploy.modifyDeployments", "*")
    shared("target", "edit", "production", "--description", "changed")
    edit = ref_of(shared.cwd)
    assert edit is not None
    before = ref_of(server)
    [line] = refused(push(shared, REF, env={"GL_USERNAME": "mallory"}))
    assert line == (f"error: {REF}: {edit[:12]}: 'mallory' may not modify targets on this "
                    "server (not listed in deploy.modifyTargets)")
    [line] = refused(push(shared, REF))
    assert "an unidentified pusher ($GL_USERNAME is not set) may not modify targets" in line
    assert ref_of(server) == before
    assert push(shared, REF, env={"GL_USERNAME": "alice"}).returncode == 0
    # deployments are open to anyone here
    shared("comment", "production", "-m", "by mallory")
    assert push(shared, REF, env={"GL_USERNAME": "mallory"}).returncode == 0
    git(server, "config", "deploy.modifyDeployments", "alice")
    shared("comment", "production", "-m", "again")
    [line] = refused(push(shared, REF, env={"GL_USERNAME": "mallory"}))
    assert "'mallory' may not modify deployments" in line


# --- post-receive: a pushed branch schedules a deployment ---------------------------------------


def test_a_push_to_release_schedules_a_deployment(clone: CloneFactory,  # noqa: F811
                                                   server: Path) -> None:  # noqa: F811
    git(server, "config", "deploy.pushLinkLabel", "build {short}")
    git(server, "config", "deploy.pushLinkUrl", "https://ci.example/{target}/{branch}/{commit}")
    a = clone("a")
    a("target", "create", "production", "--schedule-on-push", "release", "--sync")
    a("target", "create", "staging", "--schedule-on-push", "main", "--sync")
    git(a.cwd, "checkout", "-q", "release")
    tip = make_commit(a.cwd, "release fix 2")
    result = push(a, "release")
    assert result.returncode == 0, result.stderr
    assert "remote: git-deploy: production #1: scheduled v1.0.0-2-g" in result.stderr
    a("pull")
    record: Any = a.json("show", "production", "1")
    assert record["status"] == "scheduled"
    assert record["commits"] == [{"repository": "app", "branch": "release", "commit": tip}]
    assert record["version"] == git(a.cwd, "describe", "--tags", "--always", tip)
    assert record["external_link"] == {
        "label": f"build {tip[:7]}", "url": f"https://ci.example/production/release/{tip}"}
    assert a.json("list", "staging") == []
    # the next push updates the deployment scheduled for the branch
    tip2 = make_commit(a.cwd, "release fix 3")
    assert push(a, "release").returncode == 0
    a("pull")
    listed: Any = a.json("list", "production")
    assert [(d["number"], d["commits"][0]["commit"]) for d in listed] == [(1, tip2)]
    check_every_commit(server)


def test_branch_names_are_data(clone: CloneFactory, server: Path,  # noqa: F811
                               tmp_path: Path) -> None:
    names = ["rel$(touch${IFS}HACKED1)", "x;touch${IFS}HACKED2", "`touch${IFS}HACKED3`",
             "a'b\"c|d&e>f"]
    a = clone("a")
    a("target", "create", "production", *[f"--schedule-on-push={n}" for n in names], "--sync")
    for name in names:
        git(a.cwd, "branch", name)
    result = push(a, *[f"refs/heads/{n}" for n in names])
    assert result.returncode == 0, result.stderr
    a("pull")
    listed: Any = a.json("list", "production")
    assert sorted(d["commits"][0]["branch"] for d in listed) == sorted(names)
    assert not list(tmp_path.rglob("HACKED*"))
    assert not list(Path.cwd().glob("HACKED*"))


def test_archived_targets_and_other_branches_schedule_nothing(clone: CloneFactory,  # noqa: F811
                                                               server: Path) -> None:  # noqa: F811
    a = clone("a")
    a("target", "create", "production", "--schedule-on-push", "release", "--sync")
    a("target", "archive", "production", "--sync")
    before = ref_of(server)
    git(a.cwd, "checkout", "-q", "release")
    make_commit(a.cwd, "fix")
    git(a.cwd, "branch", "feature")
    result = push(a, "release", "feature")
    assert result.returncode == 0, result.stderr
    assert "git-deploy" not in result.stderr
    assert ref_of(server) == before


# --- install-hooks ------------------------------------------------------------------------------


def test_install_writes_both_hooks_and_is_idempotent(bare: Path) -> None:
    deploy = Deploy(bare)
    out = deploy("install-hooks").stdout.splitlines()
    assert out == [f"pre-receive: installed in {bare}/hooks",
                   f"post-receive: installed in {bare}/hooks"]
    for name in hooks.HOOKS:
        path = bare / "hooks" / name
        assert os.access(path, os.X_OK)
        [python] = [line.removeprefix("python=") for line in path.read_text().splitlines()
                    if line.startswith("python=")]
        # the fallback interpreter is the one git-deploy runs in
        assert path.read_text() == hooks.render_script(name, python)
        check = subprocess.run([python, "-c", "import git_deployments"], capture_output=True)
        assert check.returncode == 0 and Path(python).is_absolute()
    again = deploy("install-hooks").stdout.splitlines()
    assert again == [f"pre-receive: already installed in {bare}/hooks",
                     f"post-receive: already installed in {bare}/hooks"]
    assert not list((bare / "hooks").glob("*.legacy"))


def test_an_existing_hook_is_kept_and_chained(clone: CloneFactory, bare: Path,  # noqa: F811
                                              tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    legacy = bare / "hooks" / "pre-receive"
    legacy.write_text(f'#!/bin/sh\ncat >> "{seen}"\nif [ -e "{tmp_path}/deny" ]; then '
                      'echo "no deployments on Fridays" >&2; exit 1; fi\n')
    legacy.chmod(0o755)
    original = legacy.read_text()
    out = Deploy(bare)("install-hooks").stdout
    assert "pre-receive: installed (the hook that was there is kept as pre-receive.legacy" in out
    assert (bare / "hooks" / "pre-receive.legacy").read_text() == original
    assert "already installed" in Deploy(bare)("install-hooks").stdout.splitlines()[0]
    assert (bare / "hooks" / "pre-receive.legacy").read_text() == original
    assert not (bare / "hooks" / "pre-receive.legacy.legacy").exists()
    a = clone("a", bare.as_uri())
    a("target", "create", "production")
    result = push(a, REF)
    assert result.returncode == 0, result.stderr
    # the legacy hook got exactly the input git gave
    assert seen.read_text() == f"{'0' * 40} {ref_of(a.cwd)} {REF}\n"
    # and its refusal refuses the push, even one the tool would accept
    (tmp_path / "deny").touch()
    a("comment", "production", "-m", "x")
    result = push(a, REF)
    assert result.returncode != 0 and "pre-receive hook declined" in result.stderr
    assert ref_of(bare) != ref_of(a.cwd)
    # git deploy push says what the chained hook said, and never "up to date"
    done = a("push", code=1)
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert "no deployments on Fridays" in line and "pre-receive hook declined" in line
    # the tool's own checks still run after a legacy hook that agrees
    (tmp_path / "deny").unlink()
    assert refused(push(a, f":{REF}"))


def test_a_foreign_hook_with_a_legacy_already_there_is_not_clobbered(bare: Path) -> None:
    (bare / "hooks" / "post-receive").write_text("#!/bin/sh\nexit 0\n")
    (bare / "hooks" / "post-receive.legacy").write_text("#!/bin/sh\nexit 0\n")
    result = Deploy(bare)("install-hooks", code=1)
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and "post-receive.legacy exists too" in line
    assert not (bare / "hooks" / "pre-receive").exists()


def test_install_follows_core_hooks_path(clone: CloneFactory, bare: Path) -> None:  # noqa: F811
    git(bare, "config", "core.hooksPath", "custom-hooks")
    out = Deploy(bare)("install-hooks").stdout
    assert f"{bare}/custom-hooks" in out
    assert (bare / "custom-hooks" / "pre-receive").exists()
    assert not (bare / "hooks" / "pre-receive").exists()
    a = clone("a", bare.as_uri())
    a("target", "create", "production", "--sync")
    assert refused(push(a, f":{REF}"))


def test_a_work_tree_needs_server(deploy: Deploy, repo: Path) -> None:
    result = deploy("install-hooks", code=1)
    [line] = result.stderr.splitlines()
    assert line.startswith("error: this repository has a work tree") and "--server" in line
    assert not (repo / ".git" / "hooks" / "pre-receive").exists()
    assert "installed" in deploy("install-hooks", "--server").stdout
    assert (repo / ".git" / "hooks" / "pre-receive").exists()


def test_hooks_run_with_a_minimal_path(shared: Deploy, server: Path) -> None:  # noqa: F811
    # as under a git server's service account: no git-deploy on PATH, so the installed script
    # falls back to the interpreter it was installed with
    minimal = {"PATH": "/usr/bin:/bin"}
    assert subprocess.run(["sh", "-c", "command -v git-deploy"], env=minimal).returncode != 0
    assert refused(push(shared, f":{REF}", env=minimal))


def test_the_shipped_scripts_are_the_thin_ones() -> None:
    for name in hooks.HOOKS:
        path = ROOT / "hooks" / name
        assert path.read_text() == hooks.render_script(name, None)
        assert os.access(path, os.X_OK)


def test_hook_input_is_parsed_as_data() -> None:
    ref = "refs/heads/x;rm${IFS}-rf${IFS}/"
    updates = hooks.read_updates(f"{'0' * 40} {'a' * 40} {ref}\n".encode())
    assert updates == [hooks.RefUpdate(None, "a" * 40, ref)]
