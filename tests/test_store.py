"""The storage format: refs, trees, canonical YAML, commits, and the compare-and-swap write."""

from __future__ import annotations

import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import git
from git_deployments.core import records
from git_deployments.core.model import CreateTarget, Deploy, Request
from git_deployments.core.store import Store, open_store, record_path
from git_deployments.core.timeline import recorded_request
from git_deployments.core.timeline import trailers as parse_trailers
from git_deployments.errors import ConflictError, CorruptRecord
from git_deployments.git.repo import RaceLost

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def request(cls: type[Request], n: int, **fields: Any) -> Request:
    base = {"op_id": f"{n:032x}", "at": T0 + timedelta(minutes=n), "by": "Ada <ada@example.com>",
            "target": "prod"}
    return cls.model_validate({**base, **fields})


def refs(commit: str, branch: str = "release") -> list[dict[str, str]]:
    return [{"repository": "app", "branch": branch, "commit": commit}]


def scenario(store: Store, head: str) -> list[str]:
    """A fixed sequence of changes; returns the timeline commits."""
    out = []
    for n, (cls, fields) in enumerate([
        (CreateTarget, {"repository": "app", "settings": {}}),
        (Deploy, {"op": "schedule", "commits": refs(head), "version": "1.0"}),
        (Deploy, {"op": "start", "commits": refs(head)}),
        (Deploy, {"op": "finish", "commits": []}),
    ]):
        out.append(store.write(request(cls, n, **fields)).commit)
    return out


def test_record_paths_keep_trees_small() -> None:
    assert record_path(7) == "deployments/7.yaml"
    assert record_path(42) == "deployments/4/42.yaml"
    assert record_path(123456) == "deployments/1/2/3/4/5/123456.yaml"


def test_layout_of_a_timeline(repo: Path, store: Store) -> None:
    head = git(repo, "rev-parse", "HEAD")
    commits = scenario(store, head)
    tip = git(repo, "rev-parse", "refs/deployments/prod")
    assert tip == commits[-1]
    files = git(repo, "ls-tree", "-r", "--name-only", tip).splitlines()
    assert files == ["deployments/1.yaml", "format", "index.yaml", "target.yaml"]
    assert git(repo, "show", f"{tip}:format") == "git-deployments/1"
    lines = git(repo, "rev-list", "--parents", "refs/deployments/prod").splitlines()
    assert [len(line.split()) - 1 for line in lines] == [1, 1, 1, 0]
    index = git(repo, "show", f"{tip}:index.yaml")
    assert index.splitlines() == ["next_number: 2", "count: 1", "in_flight: null", "current: 1",
                                  "scheduled: []"]
    record = git(repo, "show", f"{tip}:deployments/1.yaml")
    assert record.startswith("number: 1\nversion: '1.0'\nstatus: current\ncommits:\n")


def test_same_state_gives_the_same_tree(tmp_path: Path, repo: Path, store: Store) -> None:
    head = git(repo, "rev-parse", "HEAD")
    first = scenario(store, head)
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(repo), str(other))
    git(other, "update-ref", "-d", "refs/deployments/prod")
    second = scenario(open_store(other), head)
    trees = [[git(path, "rev-parse", f"{c}^{{tree}}") for c in commits]
             for path, commits in ((repo, first), (other, second))]
    assert trees[0] == trees[1]


def test_commit_message_has_subject_trailers_and_request(repo: Path, store: Store) -> None:
    head = git(repo, "rev-parse", "HEAD")
    scenario(store, head)
    message = git(repo, "log", "-1", "--format=%B", "refs/deployments/prod~1")
    assert message.splitlines()[0] == f"prod #1: deploying 1.0 (release@{head[:7]})"
    trailers = parse_trailers(message)
    assert trailers["Deploy-Op"] == ["start"]
    assert trailers["Deploy-Status"] == ["scheduled -> deploying"]
    assert trailers["Deploy-Commit"] == [f"app:release:{head}"]
    assert recorded_request(message).op_id == f"{2:032x}"
    author = git(repo, "log", "-1", "--format=%an <%ae> %aI|%cn", "refs/deployments/prod~1")
    assert author == "Ada <ada@example.com> 2026-03-01T12:02:00+00:00|git-deploy"
    # git's own trailer parser agrees
    parsed = git(repo, "log", "-1", "--format=%(trailers:key=Deploy-Status,valueonly)",
                 "refs/deployments/prod~1")
    assert parsed == "scheduled -> deploying"


def test_writes_touch_neither_work_tree_nor_index(repo: Path, store: Store) -> None:
    (repo / "wip.txt").write_text("uncommitted\n")
    git(repo, "add", "wip.txt")
    index_before = (repo / ".git" / "index").read_bytes()
    scenario(store, git(repo, "rev-parse", "HEAD"))
    assert (repo / ".git" / "index").read_bytes() == index_before
    assert git(repo, "status", "--porcelain") == "A  wip.txt"


def test_a_bare_repository_works_the_same(bare: Path) -> None:
    store = open_store(bare)
    head = git(bare, "rev-parse", "release")
    scenario(store, head)
    snap = store.snapshot("prod")
    assert snap.index.current == 1 and snap.target.repository == "app"


def test_a_lost_race_is_retried_on_the_new_tip(repo: Path, store: Store) -> None:
    head = git(repo, "rev-parse", "HEAD")
    store.write(request(CreateTarget, 0, repository="app", settings={}))
    t0 = git(repo, "rev-parse", "refs/deployments/prod")
    t1 = store.write(request(Deploy, 1, op="schedule", commits=refs(head, "main"))).commit
    git(repo, "update-ref", "refs/deployments/prod", t0)

    class Racing:
        """Moves the ref (as a fetch would) while the first attempt is being applied."""

        moved = False

        def describe(self, repository: str, commit: str) -> str | None:
            if not self.moved:
                self.moved = True
                git(repo, "update-ref", "refs/deployments/prod", t1, t0)
            return "v"

        def is_ancestor(self, *args: str) -> bool | None:
            return None

    result = store.write(request(Deploy, 2, op="start", commits=refs(head)), oracle=Racing())
    assert git(repo, "rev-parse", f"{result.commit}^") == t1
    assert result.record.number == 2  # numbered after the change it raced with


def test_compare_and_swap_refuses_a_stale_old_value(repo: Path, store: Store) -> None:
    head = git(repo, "rev-parse", "HEAD")
    scenario(store, head)
    tip = git(repo, "rev-parse", "refs/deployments/prod")
    with pytest.raises(RaceLost):
        stale = tip[:-1] + ("1" if tip.endswith("0") else "0")
        store.git.update_ref("refs/deployments/prod", head, stale, "test")
    with pytest.raises(RaceLost):
        store.git.update_ref("refs/deployments/prod", head, None, "test")
    assert git(repo, "rev-parse", "refs/deployments/prod") == tip


def test_a_write_that_always_loses_gives_up_clearly(repo: Path, store: Store,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    store.write(request(CreateTarget, 0, repository="app", settings={}))

    def always_lose(*args: Any) -> None:
        raise RaceLost("refs/deployments/prod")

    monkeypatch.setattr(store.git, "update_ref", always_lose)
    monkeypatch.setattr("git_deployments.core.store.time.sleep", lambda s: None)
    with pytest.raises(ConflictError, match="kept changing"):
        store.write(request(Deploy, 1, op="schedule", commits=refs("a" * 40)))


def plant(repo: Path, files: dict[str, bytes], key: str = "prod") -> None:
    """Replace the tip of refs/deployments/<key> with a commit holding `files`."""
    tip = git(repo, "rev-parse", f"refs/deployments/{key}")
    tree = git(repo, "rev-parse", f"{tip}^{{tree}}")
    env = {"GIT_INDEX_FILE": str(repo / ".git" / "planted-index")}
    git(repo, "read-tree", tree, env=env)
    for path, data in files.items():
        blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=repo, input=data,
                              capture_output=True, check=True).stdout.decode().strip()
        git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
    new_tree = git(repo, "write-tree", env=env)
    commit = git(repo, "commit-tree", new_tree, "-p", tip, "-m", "planted")
    git(repo, "update-ref", f"refs/deployments/{key}", commit)


@pytest.mark.parametrize("files, message", [
    ({"format": b"git-deployments/99\n"}, "unknown format"),
    ({"index.yaml": b"next_number: [1\n"}, "not valid YAML"),
    ({"index.yaml": b"a: &x [1]\nb: *x\n"}, "anchors are not allowed"),
    ({"index.yaml": b"\xff\xfe"}, "not valid UTF-8"),
    ({"index.yaml": b"x: " + b"y" * 600_000}, "more than the"),
    ({"index.yaml": b"next_number: many\n"}, "invalid next number"),
    ({"target.yaml": b"!!python/object/apply:os.system ['echo hi']\n"}, "not valid YAML"),
    ({"deployments/1.yaml": b"[" * 50 + b"]" * 50}, "nested too deeply"),
])
def test_hostile_records_give_a_clear_error(repo: Path, store: Store, files: dict[str, bytes],
                                            message: str) -> None:
    scenario(store, git(repo, "rev-parse", "HEAD"))
    plant(repo, files)
    with pytest.raises(CorruptRecord, match=message) as info:
        snap = store.snapshot("prod")
        snap.require()
        snap.record(1)
    assert "refs/deployments/prod" in str(info.value)


def test_canonical_dump_round_trips(repo: Path, store: Store) -> None:
    scenario(store, git(repo, "rev-parse", "HEAD"))
    snap = store.snapshot("prod")
    record = snap.record(1)
    raw = git(repo, "show", "refs/deployments/prod:deployments/1.yaml") + "\n"
    assert records.dump(record).decode() == raw


def test_every_write_has_a_fresh_op_id_and_one_commit(repo: Path, store: Store) -> None:
    scenario(store, git(repo, "rev-parse", "HEAD"))
    count = int(git(repo, "rev-list", "--count", "refs/deployments/prod"))
    assert count == 4
    ids = git(repo, "log", "--format=%(trailers:key=Deploy-Op-Id,valueonly)",
              "refs/deployments/prod").split()
    assert len(set(ids)) == 4
    assert all(len(i) == 32 for i in ids)
    assert uuid.UUID(ids[0])
