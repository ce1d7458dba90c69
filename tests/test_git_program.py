"""The one runner of the git program (git/program.py): its environment policy, its errors."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import BIN, git, make_commit
from git_deployments.errors import DeployError
from git_deployments.git import program


def test_the_repository_is_the_one_named_whatever_the_environment_says(
        repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other"
    git(tmp_path, "init", "-q", str(other))
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    git_dir = (repo / ".git").resolve()
    assert Path(program.output(git_dir, ["rev-parse", "--absolute-git-dir"]).strip()) == git_dir
    head = program.output(git_dir, ["rev-parse", "HEAD"]).strip()
    assert head == git(repo, "rev-parse", "HEAD", env={"GIT_DIR": str(git_dir),
                                                       "GIT_WORK_TREE": str(repo)})


def test_a_quarantine_belongs_to_the_home_repository_only(
        repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # as inside a server hook: git points the object store at its quarantine
    empty = tmp_path / "quarantine"
    (empty / "pack").mkdir(parents=True)
    monkeypatch.setenv("GIT_OBJECT_DIRECTORY", str(empty))
    head = git(repo, "rev-parse", "HEAD", env={"GIT_OBJECT_DIRECTORY": str(repo / ".git" /
                                                                           "objects")})
    git_dir = repo / ".git"
    assert not program.run(git_dir, ["cat-file", "-e", head], home=True).ok
    assert program.run(git_dir, ["cat-file", "-e", head], home=False).ok


def test_git_speaks_in_the_c_locale_and_utc(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")
    done = program.run(repo / ".git", ["rev-parse", "--verify", "no-such-branch"])
    assert not done.ok and done.reason() == "Needed a single revision"
    date = program.output(repo / ".git", ["log", "-1", "--date=format-local:%H:%M %z",
                                          "--format=%ad", "HEAD"])
    assert date.strip() == "00:00 +0000"


def test_a_failure_carries_gits_own_reason(repo: Path) -> None:
    with pytest.raises(DeployError) as caught:
        program.output(repo / ".git", ["rev-parse", "--verify", "no-such-branch"])
    assert str(caught.value) == \
        f"git rev-parse failed in {repo / '.git'}: Needed a single revision"


def test_a_missing_git_is_one_clear_line(repo: Path) -> None:
    # git deploy started without git on PATH (its own script called directly)
    env = {**os.environ, "PATH": str(BIN)}
    assert not (BIN / "git").exists()
    done = subprocess.run([str(BIN / "git-deploy"), "subscriptions"], cwd=repo, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr == ("error: the 'git' program is not on PATH: install git, or add the "
                           "directory that holds it to PATH\n")


def test_a_stream_is_the_output_in_pieces_as_git_prints_it(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_commit(repo, "ünïcödé ✓ 🚀", "2026-02-01T00:00:00Z")
    git_dir = repo / ".git"
    args = ["rev-list", "--format=%H %an %s", "--stdin"]
    whole = program.output(git_dir, args, stdin="HEAD\n")
    assert "ünïcödé ✓ 🚀" in whole
    for size in (1, 2, 5, program.STREAM_CHUNK):
        monkeypatch.setattr(program, "STREAM_CHUNK", size)
        pieces = list(program.stream(git_dir, args, stdin="HEAD\n"))
        assert "".join(pieces) == whole
        assert len(pieces) > 1 or size == program.STREAM_CHUNK


def test_a_failing_stream_ends_with_gits_reason(repo: Path) -> None:
    git_dir = repo / ".git"
    with pytest.raises(DeployError) as streamed:
        list(program.stream(git_dir, ["rev-parse", "--verify", "no-such-branch"]))
    with pytest.raises(DeployError) as whole:
        program.output(git_dir, ["rev-parse", "--verify", "no-such-branch"])
    assert str(streamed.value) == str(whole.value) == \
        f"git rev-parse failed in {git_dir}: Needed a single revision"

