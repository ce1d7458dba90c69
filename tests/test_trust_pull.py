"""Pulling from a remote that checks nothing: a bare repository without the server hooks, whose
timelines are forged with git plumbing. Pull verifies every incoming commit as the hook would,
refuses the target whose history does not verify (naming it, the commit and the reason), keeps
that target's local ref where it was, and still brings in the targets that do verify."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import Deploy, git
from git_deployments.core import verify
from git_deployments.core.store import open_store
from git_deployments.sharing import sync as sharing
from test_sync import CloneFactory, clone, ref_of, server  # noqa: F401

PRODUCTION = "refs/deployments/production"
STAGING = "refs/deployments/staging"
LEGIT = "refs/forge/legit"


@pytest.fixture
def hostile(server: Path) -> Path:  # noqa: F811
    """The server with its hooks removed: it takes whatever is pushed to it."""
    for name in ("pre-receive", "post-receive"):
        (server / "hooks" / name).unlink()
    return server


# --- forging with plumbing, in the remote itself -------------------------------------------------


def plumb(repo: Path, *args: str, data: bytes | None = None) -> str:
    """`git <args>` in `repo`, `data` on stdin; its stdout, stripped."""
    result = subprocess.run(["git", *args], cwd=repo, input=data, capture_output=True,
                            check=False, env=os.environ.copy())
    assert result.returncode == 0, (args, result.stderr.decode())
    return result.stdout.decode().strip()


def raw_commit(repo: Path, commit: str) -> tuple[list[str], bytes]:
    """A commit's header lines and its message, exactly as stored."""
    raw = subprocess.run(["git", "cat-file", "commit", commit], cwd=repo, capture_output=True,
                         check=True).stdout
    header, _, message = raw.partition(b"\n\n")
    return header.decode().split("\n"), message


def write_commit(repo: Path, header: list[str], message: bytes) -> str:
    return plumb(repo, "hash-object", "-t", "commit", "-w", "--stdin",
                 data="\n".join(header).encode() + b"\n\n" + message)


def with_entry(repo: Path, tree: str, path: str, entry: str | None) -> str:
    """`tree` with the entry at `path` replaced by `entry` ("<mode> <type> <id>"), or removed."""
    head, _, rest = path.partition("/")
    lines = [line for line in plumb(repo, "ls-tree", tree).splitlines()
             if line.split("\t", 1)[1] != head]
    if rest:
        old = plumb(repo, "ls-tree", tree, head)
        sub = old.split()[2] if old else plumb(repo, "mktree", data=b"")
        lines.append(f"040000 tree {with_entry(repo, sub, rest, entry)}\t{head}")
    elif entry is not None:
        lines.append(f"{entry}\t{head}")
    return plumb(repo, "mktree", data="".join(line + "\n" for line in lines).encode())


def with_blob(repo: Path, tree: str, path: str, data: bytes) -> str:
    blob = plumb(repo, "hash-object", "-w", "--stdin", data=data)
    return with_entry(repo, tree, path, f"100644 blob {blob}")


def retree(repo: Path, commit: str, tree: str) -> str:
    """`commit` with another tree: same parent, author, dates and message."""
    header, message = raw_commit(repo, commit)
    return write_commit(repo, [f"tree {tree}" if line.startswith("tree ") else line
                               for line in header], message)


def edit_record(repo: Path, commit: str, edit: Callable[[bytes], bytes]) -> str:
    """`commit` with its record of deployment #1 rewritten by `edit`."""
    tree = plumb(repo, "rev-parse", f"{commit}^{{tree}}")
    [path] = [p for p in plumb(repo, "ls-tree", "-r", "--name-only", tree).splitlines()
              if p.startswith("deployments/") and p.rpartition("/")[2] == "1.yaml"]
    text = subprocess.run(["git", "cat-file", "blob", f"{tree}:{path}"], cwd=repo,
                          capture_output=True, check=True).stdout
    changed = edit(text)
    assert changed != text
    return retree(repo, commit, with_blob(repo, tree, path, changed))


# Each forgery takes the remote and a legitimate `fail` of staging #1 (a commit the remote has
# but not on its timeline) and returns what refs/deployments/staging is made to point at.

def record_made_current(repo: Path, legit: str) -> str:
    return edit_record(repo, legit, lambda text: text.replace(b"\nstatus: failed\n",
                                                              b"\nstatus: current\n", 1))


def yaml_anchors(repo: Path, legit: str) -> str:
    # the same data, but through an anchor and an alias
    def edit(text: bytes) -> bytes:
        head, sep, rest = text.partition(b"\n  by: ")
        value, newline, tail = rest.partition(b"\n")
        return head + sep + b"&who " + value + newline + tail.replace(b"  by: " + value,
                                                                      b"  by: *who")
    return edit_record(repo, legit, edit)


def yaml_tag(repo: Path, legit: str) -> str:
    return edit_record(repo, legit, lambda text: text.replace(
        b"\ndescription: ''\n",
        b"\ndescription: !!python/object/apply:os.system ['touch PWNED']\n", 1))


def yaml_not_canonical(repo: Path, legit: str) -> str:
    # the same data, other bytes
    return edit_record(repo, legit, lambda text: text.replace(b"\ndescription: ''\n",
                                                              b"\ndescription: \"\"\n", 1))


def gitlink(repo: Path, legit: str) -> str:
    tree = plumb(repo, "rev-parse", f"{legit}^{{tree}}")
    return retree(repo, legit, with_entry(repo, tree, "deployments/2.yaml",
                                          f"160000 commit {legit}"))


def merge(repo: Path, legit: str) -> str:
    header, message = raw_commit(repo, legit)
    parent = next(line for line in header if line.startswith("parent "))
    at = header.index(parent)
    return write_commit(repo, [*header[:at + 1], f"parent {legit}", *header[at + 1:]], message)


def tag_object(repo: Path, legit: str) -> str:
    return plumb(repo, "mktag", data=(
        f"object {legit}\ntype commit\ntag staging\n"
        "tagger Mallory <mallory@example.com> 1767225600 +0000\n\nlooks like a timeline\n"
    ).encode())


def tree_object(repo: Path, legit: str) -> str:
    return plumb(repo, "rev-parse", f"{legit}^{{tree}}")


def nested_request(repo: Path, legit: str) -> str:
    header, message = raw_commit(repo, legit)
    depth = 20000  # within the size limit of a recorded request, far beyond any parser's stack
    lines = [b"Deploy-Request: " + b"[" * depth + b"]" * depth
             if line.startswith(b"Deploy-Request: ") else line
             for line in message.split(b"\n")]
    return write_commit(repo, header, b"\n".join(lines))


def message_claims_current(repo: Path, legit: str) -> str:
    header, message = raw_commit(repo, legit)
    assert b"Deploy-Status: deploying -> failed" in message
    return write_commit(repo, header, message.replace(b"deploying -> failed",
                                                      b"deploying -> current"))


FORGERIES = [
    pytest.param(record_made_current, "its tree is not what", id="record-edited-to-current"),
    pytest.param(yaml_anchors, "its tree is not what", id="yaml-anchors-aliases"),
    pytest.param(yaml_tag, "its tree is not what", id="yaml-python-tag"),
    pytest.param(yaml_not_canonical, "its tree is not what", id="yaml-not-canonical"),
    pytest.param(gitlink, "its tree is not what", id="gitlink"),
    pytest.param(merge, "merge", id="merge"),
    pytest.param(tag_object, "a tag object, not a commit", id="tag-object"),
    pytest.param(tree_object, "a tree, not a commit", id="tree-object"),
    pytest.param(nested_request, "nested too deeply", id="nested-request-json"),
    pytest.param(message_claims_current, "its message is not the one its recorded request gives",
                 id="edited-message"),
]


# --- the scene: a good target and a forged one on the same remote --------------------------------


@dataclass
class Scene:
    remote: Path
    writer: Deploy
    staging_before: str  # the remote's legitimate staging tip, under the forgery
    legit: str  # a legitimate `fail` of staging #1, on no timeline of the remote

    def forge(self, forgery: Callable[[Path, str], str]) -> str:
        forged = forgery(self.remote, self.legit)
        plumb(self.remote, "update-ref", STAGING, forged)
        return forged


@pytest.fixture
def scene(clone: CloneFactory, hostile: Path) -> Scene:  # noqa: F811
    a = clone("a")
    a("target", "create", "production", "--sync")
    a("target", "create", "staging", "--sync")
    a("start", "staging", "--commit", "app:main:HEAD", "--sync")
    before = ref_of(hostile, STAGING)
    assert before is not None
    a("fail", "staging")  # legitimate, and kept off the remote's timeline
    plumb(hostile, "fetch", "-q", str(a.cwd), f"+{STAGING}:{LEGIT}")
    legit = ref_of(hostile, LEGIT)
    assert legit is not None
    return Scene(hostile, a, before, legit)


def good_change(scene: Scene) -> None:
    """A legitimate change to production, pushed through the same remote."""
    scene.writer("finish", "production", "--commit", "app:main:HEAD", "--sync")


def assert_refused(result: subprocess.CompletedProcess[str], forged: str, reason: str) -> str:
    lines = result.stderr.splitlines()
    [line] = [line for line in lines if "staging" in line]
    assert line.startswith("error: staging: ")
    assert forged[:12] in line
    assert reason in line
    assert "Traceback" not in result.stderr
    return line


def assert_readable(reader: Deploy, remote: Path) -> None:
    """The good target came in, and every reader and fsck are content with this clone."""
    assert ref_of(reader.cwd, PRODUCTION) == ref_of(remote, PRODUCTION)
    status: Any = reader.json("status")
    assert "production" in json.dumps(status)
    listed: Any = reader.json("list", "production")
    assert [d["status"] for d in listed] == ["current"]
    shown: Any = reader.json("show", "production", "1")
    assert shown["status"] == "current"
    reader("target", "show", "production")
    checked: Any = reader.json("fsck")
    assert checked["ok"] is True, checked
    assert not (reader.cwd / "PWNED").exists() and not (remote / "PWNED").exists()


@pytest.mark.parametrize(("forgery", "reason"), FORGERIES)
def test_a_forged_timeline_is_refused_and_the_good_one_comes_in(
        scene: Scene, clone: CloneFactory,  # noqa: F811
        forgery: Callable[[Path, str], str], reason: str) -> None:
    reader = clone("reader")
    reader("pull")
    mine = ref_of(reader.cwd, STAGING)
    assert mine == scene.staging_before
    good_change(scene)
    forged = scene.forge(forgery)

    result = reader("pull", code=1)
    assert_refused(result, forged, reason)
    assert "production: 1 new change from origin" in result.stdout
    assert ref_of(reader.cwd, STAGING) == mine
    assert_readable(reader, scene.remote)
    # asking again refuses again, and changes nothing
    assert_refused(reader("pull", code=1), forged, reason)
    assert ref_of(reader.cwd, STAGING) == mine


@pytest.mark.parametrize(("forgery", "reason"), FORGERIES)
def test_a_forged_timeline_new_to_the_clone_is_not_created(
        scene: Scene, clone: CloneFactory,  # noqa: F811
        forgery: Callable[[Path, str], str], reason: str) -> None:
    good_change(scene)
    forged = scene.forge(forgery)
    reader = clone("reader")
    result = reader("pull", code=1)
    assert_refused(result, forged, reason)
    assert "production: new from origin" in result.stdout
    assert ref_of(reader.cwd, STAGING) is None
    assert_readable(reader, scene.remote)
    assert "staging" not in json.dumps(reader.json("status"))


def test_json_names_the_refused_target(scene: Scene, clone: CloneFactory) -> None:  # noqa: F811
    reader = clone("reader")
    forged = scene.forge(record_made_current)
    result = reader("pull", "--json", code=1)
    data = json.loads(result.stdout)["targets"]
    assert data["staging"]["action"] == "unverified"
    assert data["staging"]["unverified"]["commit"] == forged
    assert "its tree is not what" in data["staging"]["unverified"]["reason"]
    assert data["staging"]["timeline_commit"] is None
    assert data["production"]["action"] == "created"


def test_a_forgery_under_the_tip_is_named(scene: Scene,
                                          clone: CloneFactory) -> None:  # noqa: F811
    # verification goes oldest first: the refusal names the first commit that does not verify,
    # not the tip that hides it
    reader = clone("reader")
    reader("pull")
    forged = scene.forge(record_made_current)
    header, message = raw_commit(scene.remote, scene.legit)
    on_top = write_commit(scene.remote, [f"parent {forged}" if line.startswith("parent ")
                                         else line for line in header], message)
    plumb(scene.remote, "update-ref", STAGING, on_top)
    assert_refused(reader("pull", code=1), forged, "its tree is not what")
    assert ref_of(reader.cwd, STAGING) == scene.staging_before


def test_a_change_dated_days_ahead_is_refused(scene: Scene,
                                              clone: CloneFactory) -> None:  # noqa: F811
    # legitimate in every other way: written by git deploy itself, with its clock set ahead
    reader = clone("reader")
    reader("pull")
    scene.writer("comment", "staging", "-m", "from the future", env={"GIT_DEPLOY_NOW": "+3d"})
    plumb(scene.remote, "fetch", "-q", str(scene.writer.cwd), f"+{STAGING}:{STAGING}")
    ahead = ref_of(scene.remote, STAGING)
    assert ahead is not None
    assert_refused(reader("pull", code=1), ahead, "ahead of this clock")
    assert ref_of(reader.cwd, STAGING) == scene.staging_before


# --- sync and --sync: the good target still goes out, the forged one never comes in ---------------


def test_sync_pushes_the_good_target_and_refuses_the_forged_one(
        scene: Scene, clone: CloneFactory) -> None:  # noqa: F811
    reader = clone("reader")
    reader("pull")
    forged = scene.forge(record_made_current)
    reader("comment", "production", "-m", "from the reader")
    reader("comment", "staging", "-m", "also from the reader")
    mine = ref_of(reader.cwd, STAGING)

    result = reader("sync", code=1)
    assert_refused(result, forged, "its tree is not what")
    assert "production: pushed to origin" in result.stdout
    assert ref_of(scene.remote, PRODUCTION) == ref_of(reader.cwd, PRODUCTION)
    assert "from the reader" in git(scene.remote, "log", "-1", "--format=%B", PRODUCTION)
    # nothing of staging went either way: the remote keeps its forgery, the clone its change
    assert ref_of(scene.remote, STAGING) == forged
    assert ref_of(reader.cwd, STAGING) == mine
    assert git(reader.cwd, "for-each-ref", "refs/deployments-backup/") == ""
    assert reader.json("fsck")["ok"] is True  # type: ignore[index]


def test_push_never_overwrites_a_forged_remote(scene: Scene,
                                               clone: CloneFactory) -> None:  # noqa: F811
    reader = clone("reader")
    reader("pull")
    forged = scene.forge(record_made_current)
    reader("comment", "staging", "-m", "mine")
    result = reader("push", code=1)
    assert "error: staging: not pushed to 'origin'" in result.stderr
    assert ref_of(scene.remote, STAGING) == forged


def test_a_synced_write_to_the_forged_target_writes_nothing(
        scene: Scene, clone: CloneFactory) -> None:  # noqa: F811
    reader = clone("reader")
    reader("pull")
    forged = scene.forge(record_made_current)
    result = reader("comment", "staging", "-m", "x", "--sync", code=1)
    [line] = result.stderr.splitlines()
    assert line.startswith("error: staging: ") and forged[:12] in line
    assert "nothing written" in line
    assert ref_of(reader.cwd, STAGING) == scene.staging_before
    assert ref_of(scene.remote, STAGING) == forged


def test_a_synced_write_to_the_good_target_goes_through(
        scene: Scene, clone: CloneFactory) -> None:  # noqa: F811
    reader = clone("reader")
    forged = scene.forge(record_made_current)
    result = reader("comment", "production", "-m", "fine", "--sync")
    assert result.stdout.startswith("production: comment")
    [line] = result.stderr.splitlines()
    assert line.startswith("warning: staging: ") and forged[:12] in line
    assert ref_of(scene.remote, PRODUCTION) == ref_of(reader.cwd, PRODUCTION)
    assert ref_of(reader.cwd, STAGING) is None


# --- verification is incremental ---------------------------------------------------------------


def test_only_commits_new_to_the_clone_are_verified(
        scene: Scene, clone: CloneFactory, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    reader = clone("reader")
    verified: list[str] = []
    real = verify.verify_commit

    def counting(git_repo: Any, key: str, commit: str, now: Any = None) -> Any:
        verified.append(f"{key}@{commit}")
        return real(git_repo, key, commit, now)

    monkeypatch.setattr(verify, "verify_commit", counting)
    store = open_store(reader.cwd)
    sharing.pull(store, "origin")
    # the whole of both timelines, once: production (1 change), staging (2)
    assert len(verified) == 3
    verified.clear()
    sharing.pull(store, "origin")
    assert verified == []  # every remote tip is already in this clone's timelines
    scene.writer("comment", "production", "-m", "one more", "--sync")
    sharing.pull(store, "origin")
    assert verified == [f"production@{ref_of(scene.remote, PRODUCTION)}"]
