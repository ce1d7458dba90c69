"""What an attacker who can push may try against the server hooks, each against the real hooks
installed by `git deploy install-hooks` in a real bare repository, pushed with the real `git
push`: every update is seen, bookkeeping refs are the server's, post-receive acts with the
pusher's rights, hostile objects meet a refusal with a reason, pushed text stays in its slot."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import Deploy, git, make_commit
from git_deployments.core.model import MAX_LINE
from git_deployments.git.repo import Person, open_repository
from git_deployments.sharing import hooks
from test_hooks import forge, push, refused, shared  # noqa: F401
from test_sync import CloneFactory, check_every_commit, clone, ref_of, server  # noqa: F401

REF = "refs/deployments/production"
KEPT = "refs/deployments-kept/production"
ZERO = "0" * 40
OLD_INPUT_LIMIT = 100_000  # lines the hook read before: everything past them went unchecked


def server_refs(server: Path) -> str:  # noqa: F811
    return git(server, "for-each-ref", "--format=%(objectname) %(refname)")


def no_internal_error(result: subprocess.CompletedProcess[str]) -> None:
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr


def add_packed_refs(repo: Path, names: list[str], commit: str) -> None:
    """Create refs by writing them into packed-refs, git's own file format for many refs: one
    loose file per ref (update-ref) takes minutes for 100,001 refs on a slow disk."""
    git(repo, "pack-refs", "--all")
    packed = repo / git(repo, "rev-parse", "--git-dir") / "packed-refs"
    lines = packed.read_text().splitlines() if packed.exists() else []
    # the new lines are appended unsorted: a header without the 'sorted' trait makes git sort
    header = "# pack-refs with: peeled fully-peeled "
    body = [line for line in lines if not line.startswith("#")]
    packed.write_text("\n".join([header, *body, *(f"{commit} {name}" for name in names)]) + "\n")


def run_installed_hook(server: Path, name: str,  # noqa: F811
                       data: bytes) -> subprocess.CompletedProcess[bytes]:
    """The installed hook script, run as git runs it, on an input git itself would never write
    (a git server in front of it, or a chained hook, might)."""
    return subprocess.run([str(server / "hooks" / name)], cwd=server, input=data, check=False,
                          capture_output=True, env={**os.environ, "GIT_DIR": str(server)})


# --- 1. the hook sees every update ------------------------------------------------------------


def test_a_timeline_update_past_100000_other_refs_is_checked(clone: CloneFactory,  # noqa: F811
                                                             server: Path) -> None:  # noqa: F811
    a = clone("a")
    for key in ("production", "staging", "qa"):
        a("target", "create", key)
    a("finish", "production", "--commit", "app:main:HEAD")
    a("comment", "qa", "-m", "one more change")
    a("push")
    forged = forge(a, {"index.yaml": None})
    # a spy chained before the tool: where the timeline lines sit in the hook's input
    spy = server / "hooks" / "pre-receive.legacy"
    spy.write_text("#!/bin/sh\ngrep -n ' refs/deployments/' > \"$(dirname \"$0\")/../seen\"\n"
                   "exit 0\n")
    spy.chmod(0o755)
    # 100,001 refs the server has, which the push moves: the server lists its refs sorted, so
    # their updates come first in the hook's input
    moved = [f"refs/aaa/{n}" for n in range(OLD_INPUT_LIMIT + 1)]
    add_packed_refs(server, moved, git(a.cwd, "rev-parse", "HEAD~1"))
    add_packed_refs(a.cwd, moved, git(a.cwd, "rev-parse", "HEAD"))
    # the clone's timelines as the attacker wants the server's: forged, gone, rewound
    git(a.cwd, "update-ref", REF, forged)
    git(a.cwd, "update-ref", "-d", "refs/deployments/staging")
    git(a.cwd, "update-ref", "refs/deployments/qa", "refs/deployments/qa~1")
    before = server_refs(server)
    result = push(a, "--prune", "refs/aaa/*:refs/aaa/*", "+refs/deployments/*:refs/deployments/*")
    no_internal_error(result)
    lines = refused(result)
    # the three timeline updates came after the 100,001 others: the old cut never saw them
    seen = (server / "seen").read_text().splitlines()
    assert len(seen) == 3 and all(int(line.split(":")[0]) > OLD_INPUT_LIMIT for line in seen)
    assert sorted(line.split(":")[1].strip() for line in lines) == [
        "refs/deployments/production", "refs/deployments/qa", "refs/deployments/staging"]
    assert any("its tree is not what its recorded comment gives" in line for line in lines)
    assert any("deleting a timeline is refused" in line for line in lines)
    assert any("not a fast-forward" in line for line in lines)
    assert server_refs(server) == before


def test_input_beyond_the_limit_refuses_the_whole_push(shared: Deploy,  # noqa: F811
                                                      server: Path) -> None:  # noqa: F811
    tip = ref_of(server)
    line = f"{ZERO} {tip} refs/heads/mirrored\n".encode()
    data = line * (hooks.MAX_INPUT_BYTES // len(line) + 1) + f"{tip} {tip} {REF}\n".encode()
    result = run_installed_hook(server, "pre-receive", data)
    assert result.returncode == 1
    [message] = result.stderr.decode().splitlines()
    assert message == (f"error: the whole push is refused: it updates more refs than this "
                       f"server checks at once (the hook's input exceeds "
                       f"{hooks.MAX_INPUT_BYTES // 2**20} MiB); push fewer refs at a time")


@pytest.mark.parametrize("bad", [b"", b"not an update", f"{ZERO} {ZERO}".encode(),
                                 f"{ZERO} {'g' * 40} {REF}".encode(),
                                 f"{ZERO}  {'a' * 40} {REF}".encode(),
                                 f"{ZERO} {'a' * 40} {REF}\r".encode()])
def test_a_malformed_input_line_refuses_the_whole_push(shared: Deploy, server: Path,  # noqa: F811
                                                       bad: bytes) -> None:
    tip = ref_of(server)
    data = f"{tip} {tip} {REF}\n".encode() + bad + f"\n{ZERO} {tip} refs/heads/x\n".encode()
    result = run_installed_hook(server, "pre-receive", data)
    assert result.returncode == 1
    assert result.stderr.decode().splitlines() == [
        ("error: the whole push is refused: line 2 of the hook's input is not "
         "'<old id> <new id> <ref>'")]


def test_the_installed_scripts_wake_for_every_ref_they_guard(shared: Deploy,  # noqa: F811
                                                             server: Path) -> None:  # noqa: F811
    pre = (server / "hooks" / "pre-receive").read_text()
    assert "grep -q -e ' refs/deployments' " in pre
    post = (server / "hooks" / "post-receive").read_text()
    assert "grep -q -e ' refs/heads/' -e ' refs/deployments/' " in post


# --- 2. post-receive acts with the pusher's rights --------------------------------------------


def test_scheduling_on_push_needs_the_pushers_rights(clone: CloneFactory,  # noqa: F811
                                                     server: Path) -> None:  # noqa: F811
    git(server, "config", "deploy.modifyDeployments", "alice")
    a = clone("a")
    a("target", "create", "production", "--schedule-on-push", "release", "--sync")
    git(a.cwd, "checkout", "-q", "release")
    bob = {"REMOTE_USER": "bob"}
    # what bob may not do himself...
    denied = clone("b")("schedule", "production", "--commit", "app:release:HEAD", "--sync",
                        code=1, env=bob)
    assert "'bob' may not modify deployments" in denied.stderr
    # ...a push of his does not do for him
    before = ref_of(server)
    make_commit(a.cwd, "bob's fix")
    result = push(a, "release", env=bob)
    assert result.returncode == 0, result.stderr  # the branch itself is not ours to refuse
    assert ("remote: error: production: the push to 'release' schedules nothing: 'bob' may not "
            "modify deployments on this server (not listed in deploy.modifyDeployments)"
            in result.stderr)
    assert "git-deploy: production #" not in result.stderr
    assert ref_of(server) == before
    # alice's push schedules, recorded as hers
    tip = make_commit(a.cwd, "alice's fix")
    result = push(a, "release", env={"REMOTE_USER": "alice"})
    assert result.returncode == 0, result.stderr
    assert "remote: git-deploy: production #1: scheduled" in result.stderr
    a("pull")
    record: Any = a.json("show", "production", "1")
    assert record["commits"][0]["commit"] == tip
    assert [change["by"] for change in record["history"]] == ["alice <alice>"]
    check_every_commit(server)


# --- 3. bookkeeping refs are the server's ---------------------------------------------------


def forged_kept_ref(deploy: Deploy, commit: str) -> str:
    """A keep-alive chain commit whose tree claims `commit` is kept, without keeping it (the
    commit is not a parent): the server's keep step would skip it and gc would lose it."""
    gitrepo = open_repository(deploy.cwd)
    tree = gitrepo.write_tree(None, {f"{commit[:2]}/{commit[2:]}": b""})
    return gitrepo.create_commit(tree, [], "production: keep 1 deployed commit\n",
                                 Person("git-deploy", "git-deploy@localhost"), 0)


def test_the_server_keeps_what_pushed_timelines_deployed(clone: CloneFactory,  # noqa: F811
                                                         server: Path) -> None:  # noqa: F811
    a = clone("a")
    a("target", "create", "production", "--sync")
    git(a.cwd, "checkout", "-q", "-b", "feature")
    shipped = make_commit(a.cwd, "a commit only this deployment has")
    assert push(a, "feature").returncode == 0
    a("finish", "production", "--commit", f"app:feature:{shipped}", "--sync")
    kept = ref_of(server, KEPT)
    assert kept is not None
    git(server, "merge-base", "--is-ancestor", shipped, KEPT)
    # the branch goes away and gc runs: the deployed commit stays, through the kept ref alone
    assert push(a, ":feature").returncode == 0
    git(server, "gc", "-q", "--prune=now")
    assert git(server, "cat-file", "-t", shipped) == "commit"
    # later pushes add to the chain
    second = make_commit(a.cwd, "the next release")
    assert push(a, "feature").returncode == 0
    a("finish", "production", "--commit", f"app:feature:{second}", "--sync")
    git(server, "merge-base", "--is-ancestor", kept, KEPT)
    git(server, "merge-base", "--is-ancestor", second, KEPT)


def test_pushes_to_bookkeeping_refs_are_refused(clone: CloneFactory,  # noqa: F811
                                                server: Path) -> None:  # noqa: F811
    a = clone("a")
    a("target", "create", "production", "--sync")
    git(a.cwd, "checkout", "-q", "-b", "feature")
    forged = forged_kept_ref(a, make_commit(a.cwd, "to deploy"))
    backup = "refs/deployments-backup/production/20260101T000000Z"

    def attempt(refspec: str, ref: str) -> None:
        before = server_refs(server)
        result = push(a, refspec)
        no_internal_error(result)
        prefix = ref.split("/")[1]
        assert refused(result) == [
            (f"error: {ref}: refs/{prefix}/ is this repository's own bookkeeping, kept by the "
             "repository itself; a push may not create, move or delete it")], refspec
        assert server_refs(server) == before, refspec

    attempt(f"{forged}:{KEPT}", KEPT)
    attempt(f"{REF}:{backup}", backup)
    # a ref named like one of the directories would block every ref under it
    for reserved in ("refs/deployments", "refs/deployments-kept", "refs/deployments-backup"):
        result = push(a, f"{REF}:{reserved}")
        assert refused(result) == [f"error: {reserved}: this name is reserved for the refs "
                                   f"under {reserved}/; a push may not create it"]
        assert ref_of(server, reserved) is None
    a("finish", "production", "--commit", "app:main:HEAD", "--sync")
    assert ref_of(server, KEPT) is not None  # the server's own
    git(server, "update-ref", backup, git(server, "rev-parse", REF))
    attempt(f"+{forged}:{KEPT}", KEPT)
    attempt(f":{KEPT}", KEPT)
    attempt(f"+{forged}:{backup}", backup)
    attempt(f":{backup}", backup)


# --- 4. hostile objects meet a refusal with a reason ------------------------------------------


def write_object(deploy: Deploy, kind: str, data: bytes) -> str:
    """An object exactly as given, however malformed (what a hostile client can send)."""
    result = subprocess.run(["git", "hash-object", "-w", "--literally", "-t", kind, "--stdin"],
                            cwd=deploy.cwd, input=data, capture_output=True, check=True)
    return result.stdout.decode().strip()


def raw_commit(deploy: Deploy, commit: str) -> bytes:
    return subprocess.run(["git", "cat-file", "commit", commit], cwd=deploy.cwd,
                          capture_output=True, check=True).stdout


def hostile(deploy: Deploy, case: str) -> tuple[str, str, str]:
    """(refspec, ref, what the refusal says) for one hostile push on top of the server's tip."""
    tip = git(deploy.cwd, "rev-parse", REF)
    deploy("comment", "production", "-m", "a legitimate change")
    legit = git(deploy.cwd, "rev-parse", REF)
    git(deploy.cwd, "update-ref", REF, tip)  # the clone is back where the server is
    raw = raw_commit(deploy, legit)
    header, _, message = raw.partition(b"\n\n")
    tree = git(deploy.cwd, "rev-parse", f"{legit}^{{tree}}")

    def commit(head: bytes = header, body: bytes = message) -> str:
        return write_object(deploy, "commit", head + b"\n\n" + body)

    if case == "tag":
        tag = write_object(deploy, "tag", f"object {legit}\ntype commit\ntag t\n"
                                          "tagger A <a@example.com> 0 +0000\n\nx\n".encode())
        return f"{tag}:{REF}", REF, f"{tag[:12]} is a tag object, not a commit"
    if case == "tree":
        return f"+{tree}:{REF}", REF, f"{tree[:12]} is a tree object, not a commit"
    if case == "blob":
        blob = write_object(deploy, "blob", b"target: x\n")
        return (f"{blob}:refs/deployments/other", "refs/deployments/other",
                f"{blob[:12]} is a blob object, not a commit")
    if case == "no-format":
        gitrepo = open_repository(deploy.cwd)
        bare = gitrepo.write_tree(tree, {"format": None})
        forged = commit(header.replace(f"tree {tree}".encode(), f"tree {bare}".encode()))
        return f"{forged}:{REF}", REF, "no 'format' file; not a git-deployments timeline"
    if case == "deep-request":
        forged = commit(body=b"x\n\nDeploy-Request: " + b"[" * 50_000 + b"\n")
        return f"{forged}:{REF}", REF, f"{forged[:12]}: recorded request is nested too deeply"
    if case == "unknown-encoding":
        forged = commit(header + b"\nencoding no-such-codec")
        return f"{forged}:{REF}", REF, "declares an unknown message encoding 'no-such-codec'"
    if case == "unparseable":
        forged = commit(b"\n".join(line for line in header.split(b"\n")
                                   if not line.startswith(b"author ")))
        return f"{forged}:{REF}", REF, f"commit {forged} cannot be parsed"
    assert case == "garbage-trailers"
    forged = commit(body=b"x\n\nDeploy-Request: {\"op\": [1]}\nDeploy-Op-Id: \xff\n")
    return f"{forged}:{REF}", REF, f"{forged[:12]}: recorded request is invalid"


@pytest.mark.parametrize("case", ["tag", "tree", "blob", "no-format", "deep-request",
                                  "unknown-encoding", "unparseable", "garbage-trailers"])
def test_hostile_objects_are_refused_with_a_reason(shared: Deploy, server: Path,  # noqa: F811
                                                   case: str) -> None:
    refspec, ref, reason = hostile(shared, case)
    before = server_refs(server)
    result = push(shared, refspec)
    no_internal_error(result)
    [line] = refused(result)
    assert line.startswith(f"error: {ref}: ") and reason in line, line
    assert server_refs(server) == before


def test_a_change_dated_days_ahead_is_refused(shared: Deploy, server: Path) -> None:  # noqa: F811
    # written by git deploy itself, legitimate but for its clock, set ahead
    shared("comment", "production", "-m", "from the future", env={"GIT_DEPLOY_NOW": "+3d"})
    ahead = ref_of(shared.cwd)
    assert ahead is not None
    before = ref_of(server)
    [line] = refused(push(shared, REF))
    assert line.startswith(f"error: {REF}: {ahead[:12]}: it is dated ") and \
        "ahead of this clock" in line
    assert ref_of(server) == before


def test_a_ref_name_that_is_not_utf8_is_refused(shared: Deploy, server: Path) -> None:  # noqa: F811
    ref = b"refs/deployments/\xff".decode("utf-8", "surrogateescape")
    result = subprocess.run(["git", "push", "origin", f"{REF}:{ref}"], cwd=shared.cwd,
                            check=False, capture_output=True,
                            env={**os.environ, "LC_ALL": "C.UTF-8"})
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode != 0 and "internal error" not in stderr
    assert "remote: error: refs/deployments/\\udcff: not a target key" in stderr


# --- 5. pushed text stays in its slot of the link ----------------------------------------------


def scheduled_link(a: Deploy, branch: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    git(a.cwd, "checkout", "-q", "-b", branch)
    make_commit(a.cwd, f"on {branch}")
    result = push(a, f"refs/heads/{branch}")
    assert result.returncode == 0, result.stderr
    a("pull")
    return result, a.json("show", "production", "1")


def test_a_branch_name_is_never_read_as_a_template(clone: CloneFactory,  # noqa: F811
                                                   server: Path) -> None:  # noqa: F811
    git(server, "config", "deploy.pushLinkLabel", "build {branch} at {short}")
    git(server, "config", "deploy.pushLinkUrl", "https://ci.example/{branch}?c={short}")
    branch = "r{short}&x=1#{target}"
    a = clone("a")
    a("target", "create", "production", f"--schedule-on-push={branch}", "--sync")
    _result, record = scheduled_link(a, branch)
    short = record["commits"][0]["commit"][:7]
    assert record["external_link"] == {
        "label": f"build {branch} at {short}",
        "url": f"https://ci.example/r%7Bshort%7D%26x%3D1%23%7Btarget%7D?c={short}"}


def test_a_long_branch_name_is_scheduled(clone: CloneFactory, server: Path) -> None:  # noqa: F811
    git(server, "config", "deploy.pushLinkLabel", "build of {branch} for {target} at {commit}")
    git(server, "config", "deploy.pushLinkUrl", "https://ci.example/{target}/{branch}/{commit}")
    branch = "feature/" + "x" * 192
    a = clone("a")
    a("target", "create", "production", f"--schedule-on-push={branch}", "--sync")
    result, record = scheduled_link(a, branch)
    assert record["commits"][0]["branch"] == branch
    # the URL would not fit a record: scheduled without the link, and the pusher is told
    assert record["external_link"] is None
    url_length = len("https://ci.example/production/feature%2F" + "x" * 192 + "/") + 40
    assert (f"remote: git-deploy: production: its link is left out: the URL would be "
            f"{url_length} characters, more than a record holds ({MAX_LINE})") in result.stderr
    # a label alone is shortened to what a record holds
    git(server, "config", "--unset", "deploy.pushLinkUrl")
    make_commit(a.cwd, "again")
    assert push(a, f"refs/heads/{branch}").returncode == 0
    a("pull")
    record = a.json("show", "production", "1")
    label = record["external_link"]["label"]
    full = f"build of {branch} for production at {record['commits'][0]['commit']}"
    assert len(label) == MAX_LINE and label == full[:MAX_LINE - 1] + "…"
    assert record["external_link"]["url"] == ""
