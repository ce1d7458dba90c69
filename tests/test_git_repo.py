"""git/repo.py's ProgramRepo, which reads through the git program until it needs libgit2: it
reads what GitRepo reads through libgit2 (the judge), ref for ref, object for object, path for
path, and finds the repository libgit2 finds."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from conftest import Deploy, git, make_commit
from git_deployments.errors import DeployError
from git_deployments.git.repo import GitRepo, Person, ProgramRepo, open_repository


def outcome(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[str, Any]:
    """What a read gives: its value, or its error's kind and message."""
    try:
        return "value", call(*args, **kwargs)
    except DeployError as exc:
        return type(exc).__name__, str(exc)


def both(path: Path) -> tuple[GitRepo, ProgramRepo]:
    light = open_repository(path, for_reading=True)
    assert isinstance(light, ProgramRepo)
    return open_repository(path), light


@pytest.fixture
def odd(repo: Path) -> dict[str, str]:
    """`repo` with the objects and refs a reader can stumble on, by name."""
    def blob(data: str) -> str:
        return subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input=data,
                              capture_output=True, text=True, check=True).stdout.strip()

    def tree(entries: list[tuple[str, str, str, str]]) -> str:
        lines = "".join(f"{mode} {kind} {oid}\t{name}\n" for mode, kind, oid, name in entries)
        return subprocess.run(["git", "mktree"], cwd=repo, input=lines, capture_output=True,
                              text=True, check=True).stdout.strip()

    deep = tree([("100644", "blob", blob("deep\n"), "deep.txt")])
    sub = tree([("040000", "tree", deep, "sub"), ("100644", "blob", blob(""), "empty")])
    top = tree([("100644", "blob", blob("1\n"), "format"),
                ("100644", "blob", blob("key: a\n"), "target.yaml"),
                ("100755", "blob", blob("#!/bin/sh\n"), "run.sh"),
                ("120000", "blob", blob("format"), "link"),
                ("100644", "blob", blob("dots\n"), "a.b-c_d"),
                ("040000", "tree", sub, "dir")])
    names = {"tree": top, "subtree": sub, "blob": blob("loose\n")}
    names["commit"] = git(repo, "commit-tree", top, "-m", "records")
    names["unknown encoding"] = git(repo, "-c", "i18n.commitEncoding=x-no-such-codec",
                                    "commit-tree", top, "-m", "odd")
    names["latin-1"] = git(repo, "-c", "i18n.commitEncoding=ISO-8859-1", "commit-tree", top,
                           "-m", "caf\u00e9")
    git(repo, "tag", "-a", "annotated", "-m", "a tag", names["commit"])
    names["tag"] = git(repo, "rev-parse", "refs/tags/annotated")
    git(repo, "update-ref", "refs/deployments/packed", names["commit"])
    git(repo, "pack-refs", "--all")
    git(repo, "update-ref", "refs/deployments/loose", names["commit"])
    git(repo, "update-ref", "refs/deployments/tagged", names["tag"])
    git(repo, "symbolic-ref", "refs/deployments/symbolic", "refs/deployments/loose")
    git(repo, "symbolic-ref", "refs/deployments/dangling", "refs/deployments/nothing")
    # what `git cat-file refs/deployments/decoy` would find, though that ref does not exist
    git(repo, "update-ref", "refs/heads/refs/deployments/decoy", names["commit"])
    git(repo, "update-ref", "refs/deployments/under/deeper", names["commit"])
    return names


def test_refs_read_as_libgit2_reads_them(repo: Path, odd: dict[str, str]) -> None:
    judge, light = both(repo)
    names = ["refs/deployments/" + n for n in (
        "packed", "loose", "tagged", "symbolic", "dangling", "decoy", "nothing", "under",
        "under/deeper", "loose.lock")] + ["refs/tags/annotated", "refs/heads/main", "HEAD"]
    for name in names:
        assert outcome(light.read_ref, name) == outcome(judge.read_ref, name), name
    assert light.read_ref("refs/deployments/decoy") is None
    assert light.read_ref("refs/deployments/symbolic") == odd["commit"]


def test_objects_read_as_libgit2_reads_them(repo: Path, odd: dict[str, str]) -> None:
    judge, light = both(repo)
    ids = [*odd.values(), git(repo, "rev-parse", "HEAD"), "0" * 40, odd["commit"][:12], "zz"]
    for oid in ids:
        assert outcome(light.tree_of, oid) == outcome(judge.tree_of, oid), oid
        assert light.is_commit(oid) == judge.is_commit(oid), oid
    assert "unknown message encoding 'x-no-such-codec'" in \
        outcome(light.tree_of, odd["unknown encoding"])[1]
    tree = light.tree_of(odd["commit"])
    paths = ["format", "target.yaml", "run.sh", "link", "a.b-c_d", "dir", "dir/empty",
             "dir/sub", "dir/sub/deep.txt", "dir/sub/nothing", "nothing", "format/x",
             "dir//empty", "./format", "dir/", "", "deployments/1/12.yaml"]
    for path in paths:
        assert light.read_path(tree, path) == judge.read_path(tree, path), path
        assert light.read_path(odd["subtree"], path) == judge.read_path(odd["subtree"], path)
    assert light.read_path(tree, "dir/sub/deep.txt") == b"deep\n"


PATH_PART = st.text("abz09._-", min_size=1, max_size=6).filter(lambda p: p not in (".", ".."))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.lists(PATH_PART, min_size=1, max_size=3).map("/".join),
                       st.binary(max_size=64), max_size=8))
def test_any_tree_reads_alike(repo: Path, files: dict[str, bytes]) -> None:
    # a path that is also another's directory cannot be stored: keep the first of such pairs
    kept: dict[str, bytes] = {}
    for path, data in files.items():
        if not any(path.startswith(k + "/") or k.startswith(path + "/") for k in kept):
            kept[path] = data
    writer = open_repository(repo)
    tree = writer.write_tree(None, kept) if kept else writer.write_tree(None, {"x": b""})
    commit = writer.create_commit(tree, [], "files", Person("A", "a@example.com"), 0)
    judge, light = both(repo)
    assert light.tree_of(commit) == judge.tree_of(commit) == tree
    asked = {*kept, *(p.rpartition("/")[0] for p in kept), *(p + "/x" for p in kept), "none"}
    for path in asked:
        assert light.read_path(tree, path) == judge.read_path(tree, path), path


def test_the_repository_found_is_libgit2s(repo: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    git(repo, "worktree", "add", "-q", str(tmp_path / "wt"), "HEAD")
    git(tmp_path, "clone", "-q", "--bare", str(repo), "bare.git")
    (repo / "sub" / "deeper").mkdir(parents=True)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for where in (repo, repo / "sub" / "deeper", repo / ".git", tmp_path / "wt",
                  tmp_path / "bare.git"):
        monkeypatch.chdir(where)
        judge, light = both(where)
        assert light.git_dir == judge.git_dir
        assert open_repository(for_reading=True).git_dir == open_repository().git_dir
    # as in a hook: git runs it in the repository's git directory, GIT_DIR set to it
    monkeypatch.chdir(tmp_path / "bare.git")
    monkeypatch.setenv("GIT_DIR", ".")
    assert open_repository(for_reading=True).git_dir == open_repository().git_dir == \
        (tmp_path / "bare.git").resolve()
    assert open_repository(repo, for_reading=True).git_dir == open_repository(repo).git_dir
    monkeypatch.delenv("GIT_DIR")
    # nothing there: the same refusal
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    assert outcome(open_repository, None, for_reading=True) == outcome(open_repository)
    for missing in (empty, tmp_path / "no-such-directory"):
        assert outcome(open_repository, missing, for_reading=True)[1].startswith(
            f"not a git repository: {missing} (")


def test_commits_answers_without_loading_libgit2(repo: Path) -> None:
    deploy = Deploy(repo)
    deploy("target", "create", "production")
    deploy("finish", "production", "--commit", "app:main:HEAD~2")
    make_commit(repo, "more", "2026-02-01T00:00:00Z")
    deploy("finish", "production", "--commit", "app:main:HEAD")
    script = ("import sys\nfrom git_deployments.cli import main\n"
              "code = main(sys.argv[1:])\n"
              "assert 'pygit2' not in sys.modules, 'libgit2 was loaded'\nsys.exit(code)\n")
    for args in (["commits", "production", "--json"], ["commits", "production"],
                 ["commits", "production", "1", "--json"]):
        done = subprocess.run([sys.executable, "-c", script, *args], cwd=repo,
                              capture_output=True, text=True, env=dict(os.environ))
        assert done.returncode == 0, (args, done.stderr)
        assert done.stdout == deploy(*args).stdout
