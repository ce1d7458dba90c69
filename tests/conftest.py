"""Hermetic git: own HOME, no system config, fixed identities; fixtures for repositories."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import settings

# every run draws its examples afresh (the derandomized tests the same ones each time), never
# from examples an earlier run left in .hypothesis/: a fresh clone and a used one agree
settings.register_profile("project", database=None)
settings.load_profile("project")

BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def hermetic(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    hermetic_environment(monkeypatch, tmp_path_factory.mktemp("home"))


def hermetic_environment(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """The environment every test runs in (also for a fixture shared by a module's tests)."""
    for name in list(os.environ):
        if name.startswith(("GIT_", "GITHUB_", "GITLAB_", "CI_", "JENKINS_", "TEAMCITY_",
                            "BUILD_")) or name in ("CI",):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Ada Tester")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "ada@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Ada Tester")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "ada@example.com")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Ada Tester\n\temail = ada@example.com\n"
        "[init]\n\tdefaultBranch = main\n[protocol \"file\"]\n\tallow = always\n"
    )


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, **(env or {})})
    if result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout.strip()


class Deploy:
    """Runs the real `git deploy` through git in a repository."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd

    def __call__(self, *args: str, ok: bool = True, code: int | None = None,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["git", "deploy", *args], cwd=self.cwd, capture_output=True,
                                text=True, env={**os.environ, **(env or {})}, timeout=120)
        if code is not None:
            assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
        elif ok:
            assert result.returncode == 0, (result.stdout, result.stderr)
        return result

    def json(self, *args: str) -> object:
        import json

        return json.loads(self(*args, "--json").stdout)


def make_commit(repo: Path, message: str, date: str = "2026-01-01T00:00:00Z") -> str:
    env = {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    git(repo, "commit", "--allow-empty", "-q", "-m", message, env=env)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A checkout named `app` with a few commits on main and release."""
    path = tmp_path / "app"
    path.mkdir()
    git(path, "init", "-q")
    for i in range(3):
        make_commit(path, f"main {i}", f"2026-01-0{i + 1}T00:00:00Z")
    git(path, "tag", "v1.0.0")
    git(path, "checkout", "-q", "-b", "release")
    make_commit(path, "release fix", "2026-01-05T00:00:00Z")
    return path


@pytest.fixture
def deploy(repo: Path) -> Deploy:
    return Deploy(repo)


@pytest.fixture
def bare(tmp_path: Path, repo: Path) -> Path:
    """A bare clone of `repo` (the shape of a server repository)."""
    path = tmp_path / "server" / "app.git"
    path.parent.mkdir()
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(path))
    return path


@pytest.fixture
def store(repo: Path) -> Iterator[object]:
    from git_deployments.core.store import open_store

    yield open_store(repo)


def copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, symlinks=True)


T = TypeVar("T")


def wait_for(condition: Callable[[], T], what: str, timeout: float = 30.0) -> T:
    """`condition()`'s first true value, asked every 50 ms; a deadline only so that a test that
    will never see it fails instead of hanging (never a measure of speed)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)
