"""`status` counts pending commits up to a cap (history/counting.py), never a whole history; the
capped walk answers as `git rev-list --count` does."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Deploy, git
from git_deployments.git.repo import open_repository
from git_deployments.history.counting import PENDING_CAP, count_capped


def fast_import(repo: Path, stream: Iterator[str]) -> None:
    done = subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, capture_output=True,
                          input="".join(stream).encode())
    assert done.returncode == 0, done.stderr


def commit_block(ref: str, mark: int, when: int, parents: list[int]) -> str:
    who = f"Ada Tester <ada@example.com> {when} +0000"
    message = f"change {mark}"
    lines = [f"commit {ref}", f"mark :{mark}", f"author {who}", f"committer {who}",
             f"data {len(message)}", message]
    if parents:
        lines.append(f"from :{parents[0]}")
        lines += [f"merge :{parent}" for parent in parents[1:]]
    return "\n".join(lines) + "\n\n"


def linear(count: int) -> Iterator[str]:
    for n in range(1, count + 1):
        yield commit_block("refs/heads/main", n, 1_767_225_600 + 60 * n, [n - 1] if n > 1 else [])


@pytest.fixture
def long_branch(tmp_path: Path) -> Path:
    """`app`, whose main branch is 1,002 commits long (written by git fast-import)."""
    path = tmp_path / "app"
    path.mkdir()
    git(path, "init", "-q")
    fast_import(path, linear(PENDING_CAP + 2))
    git(path, "reset", "-q", "--hard", "main")
    return path


def test_status_caps_the_pending_count(long_branch: Path) -> None:
    deploy = Deploy(long_branch)
    deploy("target", "create", "production")
    first = git(long_branch, "rev-list", "--max-parents=0", "main")
    deploy("finish", "production", "--commit", f"app:main:{first}")  # 1,001 behind
    row = only(deploy.json("status"))
    assert (row["pending"], row["pending_capped"]) == (1000, True)
    assert status_pending_column(deploy) == "1000+"

    deploy("finish", "production", "--commit", "app:main:main~1000")  # 1,000 behind exactly
    row = only(deploy.json("status"))
    assert (row["pending"], row["pending_capped"]) == (1000, False)
    assert status_pending_column(deploy) == "1000"
    deploy("finish", "production", "--commit", "app:main:HEAD")
    row = only(deploy.json("status"))
    assert (row["pending"], row["pending_capped"]) == (0, False)


def only(rows: Any) -> Any:
    assert isinstance(rows, list) and len(rows) == 1
    return rows[0]


def status_pending_column(deploy: Deploy) -> str:
    header, line = deploy("status").stdout.splitlines()
    at = header.index("PENDING")  # the columns are aligned: PENDING's starts there
    return line[at:].split()[0]


def test_a_target_without_a_current_deployment_has_no_pending_count(deploy: Deploy) -> None:
    deploy("target", "create", "production")
    row = only(deploy.json("status"))
    assert (row["pending"], row["pending_capped"]) == (None, False)


def dag(seed: int, count: int, skew: bool) -> Iterator[str]:
    """Branches that fork and merge at random, with equal commit times (and, with `skew`,
    clocks that go back)."""
    rng = random.Random(seed)
    when = 1_767_225_600
    for n in range(1, count + 1):
        earlier = range(max(1, n - 25), n)
        parents = rng.sample(earlier, min(len(earlier), rng.choice([1, 1, 1, 2])))
        when += rng.choice([60, 0, 0, -30] if skew else [60, 0, 0, 120])
        yield commit_block(f"refs/heads/b{n % 6}", n, when, parents)


@pytest.mark.parametrize("skew", [False, True])
def test_the_capped_walk_counts_as_git_does(tmp_path: Path, skew: bool) -> None:
    git(tmp_path, "init", "-q", "dag")
    repo = tmp_path / "dag"
    fast_import(repo, dag(seed=11, count=300, skew=skew))
    commits = git(repo, "rev-list", "--all").split()
    walker = open_repository(repo)
    rng = random.Random(5)
    for _ in range(60):
        tip, base = rng.choice(commits), rng.choice(commits)
        expected = int(git(repo, "rev-list", "--count", tip, f"^{base}"))
        assert count_capped(walker, tip, base, 10**6) == (expected, False), (tip, base)
        if not skew:  # a wrong clock may stop a capped walk early: only the full count is exact
            assert count_capped(walker, tip, base, 7) == (min(expected, 7), expected > 7)
