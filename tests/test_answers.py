"""Saved answers and the native front: a question asked again is answered from its saved answer
exactly while every ref and commit it was computed from is unchanged, and never otherwise.

The front is the installed `git-deploy` program; a saved answer is recognised by planting one
whose body differs from what Python would print.
"""

from __future__ import annotations

import os
import pty
import random
import subprocess
from pathlib import Path

import pytest
from conftest import BIN, Deploy, git, make_commit

from git_deployments import answers

FRONT = BIN / "git-deploy"
PLANTED = "a planted answer\n"

pytestmark = pytest.mark.skipif(
    not FRONT.exists() or FRONT.read_bytes()[:4] != b"\x7fELF",
    reason="git-deploy is the Python command here (no C compiler when it was installed)")


def answer_files(repo: Path) -> list[Path]:
    folder = repo / ".git" / "git-deployments" / "answers"
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".")) \
        if folder.is_dir() else []


def parse(path: Path) -> tuple[bytes, dict[str, str | None], set[str], bytes]:
    data = path.read_bytes()
    assert data.startswith(answers.MAGIC)
    rest = data[len(answers.MAGIC):]
    head, _, rest = rest.partition(b"\n")
    size = int(head.removeprefix(b"key "))
    key_bytes, rest = rest[:size], rest[size + 1:]
    refs: dict[str, str | None] = {}
    objects: set[str] = set()
    while not rest.startswith(b"body "):
        line, _, rest = rest.partition(b"\n")
        kind, _, value = line.decode().partition(" ")
        if kind == "ref":
            oid, _, name = value.partition(" ")
            refs[name] = None if oid == "-" else oid
        else:
            objects.add(value)
    head, _, body = rest.partition(b"\n")
    assert int(head.removeprefix(b"body ")) == len(body)
    return key_bytes, refs, objects, body


def plant(path: Path, body: str = PLANTED) -> None:
    """Replace a saved answer's body, keeping what it depends on."""
    key_bytes, refs, objects, _ = parse(path)
    path.write_bytes(answers.encode(key_bytes, refs, objects, body.encode()))


@pytest.fixture
def shipped(repo: Path, deploy: Deploy) -> Deploy:
    """Target prod with two finished deployments on main, and staging with one."""
    git(repo, "checkout", "-q", "main")
    first = git(repo, "rev-parse", "HEAD~1")
    deploy("target", "create", "prod")
    deploy("target", "create", "staging")
    deploy("finish", "prod", "--commit", first)
    deploy("finish", "prod", "--commit", "main")
    deploy("finish", "staging", "--commit", "release")
    return deploy


@pytest.mark.parametrize("question", [
    ["commits", "prod"], ["commits", "prod", "1", "--json"], ["pending", "prod"],
    ["pending", "prod", "--branch", "release", "--json"], ["compare", "prod", "staging"],
])
def test_a_repeated_question_is_answered_from_its_saved_answer(
        repo: Path, shipped: Deploy, question: list[str]) -> None:
    first = shipped(*question).stdout
    (saved,) = answer_files(repo)
    key_bytes, refs, objects, body = parse(saved)
    assert body.decode() == first
    build = key_bytes.split(b"\0")[0].decode().rsplit(" ", 1)[-1]
    assert len(build) == 16 and build in FRONT.read_bytes().decode("latin-1")
    assert key_bytes == answers.key(question, str(repo), build)
    assert refs["refs/deployments/prod"] == git(repo, "rev-parse", "refs/deployments/prod")
    assert objects and all(git(repo, "cat-file", "-t", o) == "commit" for o in objects)
    assert shipped(*question).stdout == first  # served, and the same
    plant(saved)
    assert shipped(*question).stdout == PLANTED
    # the Python command alone never reads saved answers
    assert shipped(*question, env={"GIT_DEPLOY_ANSWERS": "0"}).stdout == first


def test_a_moved_ref_or_other_arguments_are_asked_again(repo: Path, shipped: Deploy) -> None:
    shipped("commits", "prod")
    (saved,) = answer_files(repo)
    plant(saved)
    assert shipped("commits", "prod").stdout == PLANTED
    assert shipped("commits", "prod", "--json").stdout != PLANTED  # another key
    shipped("comment", "prod", "1", "-m", "looked fine")  # moves refs/deployments/prod
    fresh = shipped("commits", "prod").stdout
    assert fresh != PLANTED and fresh.startswith("prod #2")


def test_environment_and_directory_are_part_of_the_key(repo: Path, shipped: Deploy) -> None:
    shipped("commits", "prod")
    (saved,) = answer_files(repo)
    plant(saved)
    assert shipped("commits", "prod").stdout == PLANTED
    assert shipped("commits", "prod", env={"GIT_DEPLOY_COLOR": "always"}).stdout != PLANTED
    (repo / "sub").mkdir()
    assert Deploy(repo / "sub")("commits", "prod").stdout != PLANTED


def test_a_new_branch_commit_is_pending(repo: Path, shipped: Deploy) -> None:
    git(repo, "checkout", "-q", "main")
    assert "0 commits pending" in shipped("pending", "prod").stdout
    assert "0 commits pending" in shipped("pending", "prod").stdout
    make_commit(repo, "after the deployment")
    assert "1 commit pending" in shipped("pending", "prod").stdout
    git(repo, "pack-refs", "--all")  # refs now read from packed-refs
    assert "1 commit pending" in shipped("pending", "prod").stdout
    make_commit(repo, "and another")  # a loose ref again, over the packed one
    assert "2 commits pending" in shipped("pending", "prod").stdout


def test_answers_survive_packing_and_go_when_their_commits_do(repo: Path,
                                                              shipped: Deploy) -> None:
    shipped("commits", "prod")
    (saved,) = answer_files(repo)
    plant(saved)
    git(repo, "gc", "-q")  # objects and refs packed: still found
    assert shipped("commits", "prod").stdout == PLANTED
    key_bytes, refs, objects, _ = parse(saved)
    saved.write_bytes(answers.encode(key_bytes, refs, objects | {"0" * 40}, b"stale\n"))
    assert shipped("commits", "prod").stdout.startswith("prod #2")


def test_only_answers_that_can_be_checked_are_saved(repo: Path, shipped: Deploy) -> None:
    shipped("status")
    subprocess.run(["git", "deploy-py", "commits", "prod"], cwd=repo, check=True,
                   capture_output=True)  # the Python command alone: no front to print it
    shipped("show", "prod")
    shipped("contains", "main")
    shipped("commits", "nosuch", code=1)
    deploy = Deploy(repo)
    deploy("target", "create", "empty")
    git(repo, "checkout", "-q", "main")
    deploy("pending", "empty")  # nothing deployed: the branch is HEAD's, which may move
    assert answer_files(repo) == []


def test_a_terminal_gets_the_python_command(repo: Path, shipped: Deploy) -> None:
    shipped("commits", "prod")
    (saved,) = answer_files(repo)
    plant(saved)
    leader, follower = pty.openpty()
    done = subprocess.run(["git", "deploy", "commits", "prod"], cwd=repo, stdout=follower,
                          stderr=subprocess.PIPE, timeout=60)
    os.close(follower)
    printed = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        printed += chunk
    os.close(leader)
    assert done.returncode == 0
    assert b"prod #2" in printed and PLANTED.encode() not in printed


def test_a_reader_that_goes_away_is_not_an_error(repo: Path, shipped: Deploy) -> None:
    for _ in range(300):
        make_commit(repo, "more")
    git(repo, "checkout", "-q", "main")
    shipped("finish", "prod", "--commit", "main")
    shipped("commits", "prod", "--json")
    (saved,) = answer_files(repo)
    done = subprocess.run("git deploy commits prod --json | head -c 10", shell=True, cwd=repo,
                          capture_output=True, timeout=60)
    assert done.returncode == 0 and done.stderr == b"" and len(done.stdout) == 10
    assert saved.exists()


def test_answers_always_equal_a_fresh_computation(repo: Path, shipped: Deploy) -> None:
    """Random writes and branch moves between questions: the front's answer is always what the
    Python command alone answers at that moment."""
    rng = random.Random(7)
    git(repo, "checkout", "-q", "main")
    questions = [["commits", "prod"], ["commits", "prod", "--json"], ["pending", "prod"],
                 ["pending", "prod", "--branch", "release"], ["compare", "prod", "staging"],
                 ["commits", "staging", "1"]]
    for step in range(30):
        action = rng.randrange(5)
        if action == 0:
            make_commit(repo, f"work {step}")
        elif action == 1:
            shipped("finish", rng.choice(["prod", "staging"]), "--commit",
                    rng.choice(["main", "release", "main~1"]))
        elif action == 2:
            git(repo, "pack-refs", "--all")
        elif action == 3:
            git(repo, "branch", "-f", "release", rng.choice(["main", "main~1", "release~1"]))
        for question in rng.sample(questions, 3):
            alone = shipped(*question, env={"GIT_DEPLOY_ANSWERS": "0"}).stdout
            assert shipped(*question).stdout == alone, (step, question)
            assert shipped(*question).stdout == alone, (step, question)


def test_the_saved_answers_are_bounded(repo: Path, shipped: Deploy) -> None:
    folder = repo / ".git" / "git-deployments" / "answers"
    folder.mkdir(parents=True)
    for n in range(answers.KEEP + 5):
        old = folder / f"{n:016x}"
        old.write_bytes(answers.MAGIC)
        os.utime(old, (1_000_000 + n, 1_000_000 + n))
    shipped("commits", "prod")
    left = answer_files(repo)
    assert len(left) == answers.KEEP
    assert folder / f"{0:016x}" not in left  # the oldest went first
    assert any(parse(p)[3].startswith(b"prod #2") for p in left if p.stat().st_size > 100)


def serves_planted(repo: Path, deploy: Deploy, question: list[str],
                   env: dict[str, str] | None = None) -> bool:
    deploy(*question)
    (saved,) = answer_files(repo)
    plant(saved)
    return deploy(*question, env=env, ok=False).stdout == PLANTED


@pytest.mark.parametrize("rewrite", ["replace", "graft", "packed replace"])
def test_rewritten_history_is_never_answered_from_a_saved_answer(
        repo: Path, shipped: Deploy, rewrite: str) -> None:
    assert serves_planted(repo, shipped, ["commits", "prod"])
    if rewrite == "graft":
        (repo / ".git" / "info").mkdir(exist_ok=True)
        (repo / ".git" / "info" / "grafts").write_text(git(repo, "rev-parse", "main") + "\n")
    else:
        git(repo, "replace", "--graft", "main", "main~2")
        if rewrite == "packed replace":
            git(repo, "pack-refs", "--all")
    fresh = shipped("commits", "prod").stdout
    assert fresh == shipped("commits", "prod", env={"GIT_DEPLOY_ANSWERS": "0"}).stdout
    assert fresh != PLANTED
    for saved in answer_files(repo):
        saved.unlink()
    shipped("commits", "prod")
    assert answer_files(repo) == []  # nor saved while history is rewritten


def test_a_shallow_clone_is_never_answered_from_a_saved_answer(
        repo: Path, tmp_path: Path) -> None:
    for i in range(5):
        make_commit(repo, f"more {i}")
    shallow = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "2", repo.as_uri(), str(shallow))
    deploy = Deploy(shallow)
    deploy("target", "create", "prod")
    deploy("finish", "prod", "--commit", "HEAD")
    assert "2 commits of its history" in deploy("commits", "prod").stdout
    assert answer_files(shallow) == []
    git(shallow, "fetch", "-q", "--unshallow")
    assert "2 commits of its history" not in deploy("commits", "prod").stdout
    assert len(answer_files(shallow)) == 1  # a full clone now


@pytest.mark.parametrize("env", [{"GIT_NAMESPACE": "ns"}, {"GIT_CONFIG_COUNT": "0"},
                                 {"GIT_CONFIG_PARAMETERS": "'core.usereplacerefs'='false'"}])
def test_namespaces_and_command_line_config_get_the_python_command(
        repo: Path, shipped: Deploy, env: dict[str, str]) -> None:
    assert not serves_planted(repo, shipped, ["commits", "prod"], env)


def test_answers_of_another_build_are_not_printed(repo: Path, shipped: Deploy) -> None:
    shipped("commits", "prod")
    (saved,) = answer_files(repo)
    key_bytes, refs, objects, _ = parse(saved)
    other = answers.key(["commits", "prod"], str(repo), "0123456789abcdef")
    saved.write_bytes(answers.encode(other, refs, objects, PLANTED.encode()))
    assert shipped("commits", "prod").stdout != PLANTED
