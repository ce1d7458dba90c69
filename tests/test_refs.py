"""git/refs.py reads ref tips straight from the files a server checks on each request; pygit2
(GitRepo.list_refs) is the judge: after any sequence of what git does to refs — update, delete,
symbolic refs (dangling ones too), pack-refs, nested names — both say the same. Also when a
prefix's listing stands on its directories' stats (they changed long enough ago): the very next
call after git changes a ref sees the change."""

from __future__ import annotations

import os
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import git, make_commit, wait_for
from git_deployments.git.refs import RefFiles
from git_deployments.git.repo import open_repository

NAMES = ["refs/deployments/production", "refs/deployments/staging", "refs/deployments/a.b",
         "refs/heads/main", "refs/heads/feature/x", "refs/remotes/origin/main",
         "refs/tags/v1", "refs/deployments-kept/production"]
PREFIXES = ["refs/", "refs/deployments/", "refs/heads/", "refs/remotes/", "refs/tags/"]

operation = st.one_of(
    st.tuples(st.just("update"), st.sampled_from(NAMES), st.integers(0, 2)),
    st.tuples(st.just("delete"), st.sampled_from(NAMES), st.just(0)),
    st.tuples(st.just("pack"), st.just(""), st.just(0)),
    st.tuples(st.just("symbolic"), st.sampled_from(NAMES), st.just(0)),
    st.tuples(st.just("dangling"), st.sampled_from(NAMES), st.just(0)),
)


def _agree(path: Path, files: RefFiles) -> None:
    repo = open_repository(path)
    for prefix in PREFIXES:
        mine = [(name, value) for name, value in files.tips(prefix)
                if not value.startswith("ref: ")]
        judged = [(name, value) for name, value in repo.list_refs(prefix)
                  if name not in {n for n, v in files.tips(prefix) if v.startswith("ref: ")}]
        assert mine == judged, prefix
    for name in NAMES:
        value = files.tip(name)
        if value is None or not value.startswith("ref: "):
            assert value == repo.read_ref(name), name


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(operation, min_size=1, max_size=12))
def test_the_ref_files_say_what_libgit2_says(tmp_path_factory: object,
                                             operations: list[tuple[str, str, int]]) -> None:
    path = tmp_path_factory.mktemp("refs")  # type: ignore[attr-defined]
    git(path, "init", "-q", "-b", "main")
    commits = [make_commit(path, f"c{i}") for i in range(3)]
    files = RefFiles(open_repository(path).common_dir)
    for kind, name, which in operations:
        _apply(path, commits, kind, name, which)
        _agree(path, files)


# a settling time for tests: longer than the file system's clock takes to tick on Linux
SETTLE_NS = 50_000_000


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(operation, min_size=1, max_size=8))
def test_settled_directories_answer_until_git_changes_a_ref(
        tmp_path_factory: object, operations: list[tuple[str, str, int]]) -> None:
    path = tmp_path_factory.mktemp("refs")  # type: ignore[attr-defined]
    git(path, "init", "-q", "-b", "main")
    commits = [make_commit(path, f"c{i}") for i in range(3)]
    files = RefFiles(open_repository(path).common_dir, settle_ns=SETTLE_NS)
    for kind, name, which in operations:
        wait_for(lambda: _answered_by_stats(files), "the listings to stand on their directories")
        _apply(path, commits, kind, name, which)
        _agree(path, files)


def _answered_by_stats(files: RefFiles) -> bool:
    """Whether every prefix, listed once more, is then answered by its directories' stats
    alone (with the same answer)."""
    answers = {prefix: files.tips(prefix) for prefix in PREFIXES}
    listed = files.listed
    return {prefix: files.tips(prefix) for prefix in PREFIXES} == answers and \
        files.listed == listed


def test_a_directory_changed_too_recently_is_listed_on_every_call(repo: Path) -> None:
    common = open_repository(repo).common_dir
    hours_ago = time.time() - 7200
    os.utime(common / "refs" / "heads", (hours_ago, hours_ago))  # its change time stays now
    # settled only an hour after its last change: another change in the same tick of the file
    # system's clock would leave its stat as it is
    files = RefFiles(common, settle_ns=3600 * 10**9)
    first = files.tips("refs/heads/")
    assert files.tips("refs/heads/") == first
    assert files.listed == 2
    settled = RefFiles(common, settle_ns=0)  # every change lies in the past
    assert settled.tips("refs/heads/") == settled.tips("refs/heads/") == first
    assert settled.listed == 1


def test_a_symbolic_link_among_the_refs_is_followed_on_every_call(repo: Path) -> None:
    common = open_repository(repo).common_dir
    main, release = git(repo, "rev-parse", "main", "release").split()
    outside = repo.parent / "elsewhere"
    outside.write_text(main + "\n")
    (common / "refs" / "heads" / "linked").symlink_to(outside)
    files = RefFiles(common, settle_ns=0)
    assert ("refs/heads/linked", main) in files.tips("refs/heads/")
    outside.write_text(release + "\n")  # no directory under refs/ changes
    assert ("refs/heads/linked", release) in files.tips("refs/heads/")
    assert files.listed == 2


def _apply(path: Path, commits: list[str], kind: str, name: str, which: int) -> None:
    if kind == "update":
        # a name and a directory of the same name cannot both exist: git refuses it
        if _free(path, name):
            git(path, "update-ref", "--no-deref", name, commits[which])
    elif kind == "delete":
        # main stays: the symbolic refs point at it
        if _exists(path, name) and name != "refs/heads/main":
            git(path, "update-ref", "-d", "--no-deref", name)
    elif kind == "pack":
        git(path, "pack-refs", "--all")
    elif _free(path, name) and name != "refs/heads/main":
        # a symbolic ref may name a ref that does not exist (a clone's origin/HEAD after its
        # branch went): it has no value, and nothing fails over it
        pointee = "refs/heads/main" if kind == "symbolic" else "refs/heads/gone"
        git(path, "symbolic-ref", name, pointee)


def _exists(path: Path, name: str) -> bool:
    import subprocess

    return subprocess.run(["git", "show-ref", "--verify", "-q", name], cwd=path).returncode == 0


def _free(path: Path, name: str) -> bool:
    import subprocess

    taken = subprocess.run(["git", "for-each-ref", "--format=%(refname)"], cwd=path,
                           capture_output=True, text=True).stdout.split()
    return not any(other.startswith(name + "/") or name.startswith(other + "/")
                   for other in taken)
