"""Mutation property test of the trust anchor: a valid change, altered anywhere (tree entries and
modes, YAML bytes, message lines and trailers, author and dates, request fields), pushed to a
real bare repository with the real hooks. Either the push is refused and the server does not
move, or it is accepted and every reader says what the records say."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pygit2
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from conftest import Deploy, make_commit
from git_deployments.core import timeline
from git_deployments.core.intake import new_request
from git_deployments.core.model import Comment, Edit
from git_deployments.core.model import Deploy as DeployOp
from git_deployments.core.store import Store
from git_deployments.git.repo import open_repository
from git_deployments.watch.notify import events_in
from test_sync import CloneFactory, clone, server  # noqa: F401

KEY = "production"
REF = f"refs/deployments/{KEY}"


def valid_change(deploy: Deploy, choice: int) -> tuple[str, str]:
    """(the server's tip, a legitimate change on it), written in the clone but on no ref."""
    subprocess.run(["git", "fetch", "-q", "origin", f"+{REF}:refs/remotes/origin/tip"],
                   cwd=deploy.cwd, check=True)
    git = open_repository(deploy.cwd)
    tip = git.read_ref("refs/remotes/origin/tip")
    assert tip is not None
    head = git.resolve_commit("HEAD")
    commit = {"repository": "app", "branch": "main", "commit": head}
    requests = [
        lambda: new_request(Comment, git, KEY, text=f"note {choice}"),
        lambda: new_request(DeployOp, git, KEY, op="start", version=f"1.{choice}",
                            commits=[commit]),
        lambda: new_request(DeployOp, git, KEY, op="finish", version=f"1.{choice}",
                            commits=[commit]),
        lambda: new_request(DeployOp, git, KEY, op="fail", version=f"1.{choice}",
                            commits=[commit]),
        lambda: new_request(DeployOp, git, KEY, op="schedule", version=f"2.{choice}",
                            commits=[{**commit, "branch": f"topic-{choice % 3}"}]),
        lambda: new_request(Edit, git, KEY, number=1, description=f"edited {choice}"),
    ]
    made = Store(git).prepare(KEY, tip, requests[choice % len(requests)]())
    return tip, made.commit


# --- mutations: each takes the repository and a valid commit, and returns another commit ---------


def _rewrite(repo: pygit2.Repository, commit: pygit2.Commit, *, tree: Any = None,
             message: str | None = None, author: pygit2.Signature | None = None) -> str:
    return str(repo.create_commit(None, author or commit.author, commit.committer,
                                  commit.message if message is None else message,
                                  commit.tree_id if tree is None else tree, commit.parent_ids))


def _with_file(repo: pygit2.Repository, tree: pygit2.Tree, path: str, oid: Any,
               mode: int) -> pygit2.Oid:
    """`tree` with `path` set to (oid, mode), or removed when oid is None."""
    head, _, rest = path.partition("/")
    builder = repo.TreeBuilder(tree)
    if rest:
        sub = repo[tree[head].id] if head in tree else None
        inner = sub if isinstance(sub, pygit2.Tree) else repo[repo.TreeBuilder().write()]
        builder.insert(head, _with_file(repo, inner, rest, oid, mode), pygit2.GIT_FILEMODE_TREE)
    elif oid is None:
        if head in tree:
            builder.remove(head)
    else:
        builder.insert(head, oid, mode)
    return builder.write()


def changed_paths(repo: pygit2.Repository, commit: pygit2.Commit) -> list[str]:
    diff = repo.diff(commit.parents[0].tree, commit.tree)
    return [d.new_file.path for d in diff.deltas] or ["index.yaml"]


def mutate(repo: pygit2.Repository, oid: str, kind: str, pick: int, text: str) -> str:
    commit = repo[oid]
    tree = commit.tree
    paths = changed_paths(repo, commit)
    path = paths[pick % len(paths)]
    lines = commit.message.splitlines(keepends=True)
    if kind == "none":
        return oid
    if kind == "add-file":
        blob = repo.create_blob(text.encode())
        return _rewrite(repo, commit, tree=_with_file(repo, tree, f"extra/{pick}.yaml", blob,
                                                      pygit2.GIT_FILEMODE_BLOB))
    if kind == "remove-file":
        return _rewrite(repo, commit, tree=_with_file(repo, tree, path, None, 0))
    if kind in ("mode-exec", "mode-link", "gitlink"):
        entry_id = tree[path].id
        if kind == "gitlink":
            entry_id, mode = commit.parents[0].id, pygit2.GIT_FILEMODE_COMMIT
        else:
            mode = pygit2.GIT_FILEMODE_BLOB_EXECUTABLE if kind == "mode-exec" \
                else pygit2.GIT_FILEMODE_LINK
        return _rewrite(repo, commit, tree=_with_file(repo, tree, path, entry_id, mode))
    if kind.startswith("yaml-"):
        data = repo[tree[path].id].data.decode()
        if kind == "yaml-status":
            statuses = ["scheduled", "deploying", "hanging", "current", "failed", "completed"]
            data = re.sub(r"\b(" + "|".join(statuses) + r")\b", statuses[pick % 6], data, count=1)
        elif kind == "yaml-anchor":
            data = data.replace(": ", ": &a ", 1)
        elif kind == "yaml-comment":
            data = f"# {text}\n{data}"
        elif kind == "yaml-spacing":
            data = data.replace(": ", ":  ", 1)
        elif kind == "yaml-tag":
            data = data.replace(": ", ": !!str ", 1)
        else:  # yaml-byte
            at = pick % max(len(data), 1)
            data = data[:at] + (text[:1] or "x") + data[at + 1:]
        blob = repo.create_blob(data.encode())
        return _rewrite(repo, commit, tree=_with_file(repo, tree, path, blob,
                                                      pygit2.GIT_FILEMODE_BLOB))
    if kind == "subject":
        return _rewrite(repo, commit, message=f"{text or 'x'}\n" + "".join(lines[1:]))
    if kind == "drop-line":
        at = pick % len(lines)
        return _rewrite(repo, commit, message="".join(lines[:at] + lines[at + 1:]))
    if kind == "add-trailer":
        return _rewrite(repo, commit, message=commit.message +
                        "Deploy-Status: deploying -> current\n")
    if kind == "edit-trailer":
        fields = [i for i, line in enumerate(lines) if line.startswith("Deploy-")
                  and not line.startswith("Deploy-Request")]
        if not fields:
            return oid
        at = fields[pick % len(fields)]
        name = lines[at].split(": ", 1)[0]
        lines[at] = f"{name}: {text or 'x'}\n"
        return _rewrite(repo, commit, message="".join(lines))
    if kind in ("author", "author-date", "author-offset"):
        a = commit.author
        if kind == "author":
            signature = pygit2.Signature(text.strip() or "Mallory", "mallory@example.com",
                                         a.time, a.offset)
        elif kind == "author-date":
            shift = [1, -1, 3600, -86400 * 2, 86400 * 365 * 70][pick % 5]
            signature = pygit2.Signature(a.name, a.email, a.time + shift, a.offset)
        else:
            signature = pygit2.Signature(a.name, a.email, a.time, 60)
        return _rewrite(repo, commit, author=signature)
    if kind.startswith("request-"):
        at = next(i for i, line in enumerate(lines) if line.startswith("Deploy-Request: "))
        data = json.loads(lines[at].split(": ", 1)[1])
        field = {"request-number": "number", "request-by": "by", "request-at": "at",
                 "request-op": "op", "request-version": "version",
                 "request-op-id": "op_id"}[kind]
        values = {"number": ["2", 99, -1, None], "by": ["Mallory <m@example.com>", ""],
                  "at": ["2099-01-01T00:00:00Z", "1969-12-31T00:00:00Z", "soon"],
                  "op": ["finish", "fail", "set-status"], "version": [text, 7],
                  "op_id": ["0" * 32, text]}[field]
        data[field] = values[pick % len(values)]
        lines[at] = "Deploy-Request: " + json.dumps(data, sort_keys=True,
                                                    separators=(",", ":")) + "\n"
        return _rewrite(repo, commit, message="".join(lines))
    raise AssertionError(kind)


KINDS = ["none", "add-file", "remove-file", "mode-exec", "mode-link", "gitlink", "yaml-status",
         "yaml-anchor", "yaml-comment", "yaml-spacing", "yaml-tag", "yaml-byte", "subject",
         "drop-line", "add-trailer", "edit-trailer", "author", "author-date", "author-offset",
         "request-number", "request-by", "request-at", "request-op", "request-version",
         "request-op-id"]


# --- what every reader must agree on once a push is accepted -------------------------------------


def cli(server: Path, *args: str) -> Any:  # noqa: F811
    done = subprocess.run(["git", "deploy", *args, "--json"], cwd=server, capture_output=True,
                          text=True, env=os.environ.copy())
    assert done.returncode == 0, (args, done.stderr)
    return json.loads(done.stdout)


def readers_agree(server: Path, pushed: str) -> None:  # noqa: F811
    git = open_repository(server)
    store = Store(git)
    snap = store.snapshot(KEY)
    records = {r.number: r for r in snap.all_records()}
    fsck = subprocess.run(["git", "deploy", "fsck"], cwd=server, capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    # status and list
    status = next(t for t in cli(server, "status") if t["target"] == KEY)
    current = [n for n, r in records.items() if r.status == "current"]
    assert (status["current"] or {}).get("number") == (current[0] if current else None)
    listed = {d["number"]: d["status"] for d in cli(server, "list", KEY, "-n", "0")}
    assert listed == {n: r.status.value for n, r in records.items()}
    # show
    for number, record in records.items():
        shown = cli(server, "show", KEY, str(number))
        assert shown["status"] == record.status.value and shown["version"] == record.version
    # log: the pushed change's transitions are the records' own, at the request's time
    info = git.commit_info(pushed)
    before = store.snapshot(KEY, info.parents[0])
    logged = cli(server, "log", KEY, "-n", "1")[0]
    assert logged["timeline_commit"] == pushed
    entry = timeline.entry(KEY, info)
    for transition in entry.transitions:
        was, now = before.record(transition.number), records.get(transition.number)
        assert transition.old == (was.status.value if was else None)
        assert transition.new == (now.status.value if now else None)
        if now is not None:
            assert now.history[-1].at == entry.at
    assert logged["by"] == str(entry.author) == entry.request().by
    # the notification event: the same transitions
    events = {(e.number, e.old_status, e.new_status) for e in events_in(store, KEY, info)}
    assert events == {(t.number, t.old, t.new) for t in entry.transitions if t.old != t.new}
    # contains: the current deployment's commit is live in it
    if current:
        commit = records[current[0]].commits[0].commit
        found = next(a for a in cli(server, "contains", commit) if a["target"] == KEY)
        assert found["live"] is True and found["current"] == current[0]


@pytest.fixture
def world(clone: CloneFactory, server: Path) -> tuple[Deploy, Path]:  # noqa: F811
    a = clone("a")
    a("target", "create", KEY, "--manual-controls", "--sync")
    a("finish", KEY, "--commit", "app:main:HEAD", "--version", "1.0", "--sync")
    make_commit(a.cwd, "second", "2026-01-02T00:00:00Z")
    subprocess.run(["git", "push", "-q", "origin", "HEAD:main"], cwd=a.cwd, check=True)
    return a, server


@settings(max_examples=45, deadline=None, derandomize=True, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), choice=st.integers(0, 11), pick=st.integers(0, 50),
       text=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]),
                    max_size=12))
def test_a_mutated_push_is_refused_or_every_reader_agrees(world: tuple[Deploy, Path],
                                                          kind: str, choice: int, pick: int,
                                                          text: str) -> None:
    a, server = world  # noqa: F811
    tip, valid = valid_change(a, choice)
    repo = pygit2.Repository(str(a.cwd))
    forged = mutate(repo, valid, kind, pick, text)
    pushed = subprocess.run(["git", "push", "origin", f"{forged}:{REF}"], cwd=a.cwd,
                            capture_output=True, text=True)
    now = open_repository(server).read_ref(REF)
    if pushed.returncode != 0:
        assert now == tip, "a refused push moved the server"
        assert "internal error" not in pushed.stderr, pushed.stderr
        return
    assert now == forged
    readers_agree(server, forged)


def test_the_probe_s_forged_fail_claiming_current_is_refused(world: tuple[Deploy, Path]) -> None:
    """A real `fail` whose message claims `deploying -> current`, authored by someone else and
    dated 2099: refused, and the server does not move."""
    a, server = world  # noqa: F811
    a("start", KEY, "--commit", "app:main:HEAD", "--version", "1.1", "--sync")
    tip, valid = valid_change(a, 3)  # fail
    repo = pygit2.Repository(str(a.cwd))
    commit = repo[valid]
    message = commit.message.replace("deploying -> failed", "deploying -> current")
    assert message != commit.message
    forged = str(repo.create_commit(
        None, pygit2.Signature("Mallory", "mallory@example.com", 4070908800, 0),
        commit.committer, message, commit.tree_id, commit.parent_ids))
    pushed = subprocess.run(["git", "push", "origin", f"{forged}:{REF}"], cwd=a.cwd,
                            capture_output=True, text=True)
    assert pushed.returncode != 0
    assert "message is not the one its recorded request gives" in pushed.stderr
    assert open_repository(server).read_ref(REF) == tip
    # the honest change goes through, and fsck agrees
    assert subprocess.run(["git", "push", "origin", f"{valid}:{REF}"], cwd=a.cwd,
                          capture_output=True).returncode == 0
    readers_agree(server, valid)


def test_fsck_flags_an_edited_message_written_locally(deploy: Deploy) -> None:
    deploy("target", "create", KEY)
    deploy("finish", KEY, "--commit", "app:main:HEAD")
    repo = pygit2.Repository(str(deploy.cwd))
    tip = repo.references[REF].peel(pygit2.Commit)
    forged = repo.create_commit(None, tip.author, tip.committer,
                                tip.message.replace("none -> current", "none -> failed"),
                                tip.tree_id, tip.parent_ids)
    repo.references[REF].set_target(forged)
    result = deploy("fsck", code=1)
    assert "message is not the one its recorded request gives" in result.stdout + result.stderr
