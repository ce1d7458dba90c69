"""What deployments brought: commit lists, pending work, contains, compare, issues and merges,
each answer checked against what `git rev-list` and `git merge-base --is-ancestor` say."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import given

from conftest import Deploy, git, make_commit
from git_deployments.commands.history import _emit as emit
from git_deployments.commands.history import _encode_commits as encode_commits
from git_deployments.commands.history import _encode_entries as encode_entries
from git_deployments.commands.history import _Listing
from git_deployments.commands.output import Output
from git_deployments.core.store import open_store
from git_deployments.git import program
from git_deployments.history import questions as history
from git_deployments.reading.history import COMMIT_LISTS, brought_json, pending_json


def rev_list(repo: Path, *args: str) -> list[str]:
    text = git(repo, "rev-list", *args)
    return text.split() if text else []


def is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    done = subprocess.run(["git", "merge-base", "--is-ancestor", ancestor, descendant], cwd=repo)
    assert done.returncode in (0, 1)
    return done.returncode == 0


def ids(entries: list[dict[str, Any]]) -> list[str]:
    return [e["commit"] for e in entries]


def one_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def merge(repo: Path, branch: str, message: str, date: str = "2026-02-01T00:00:00Z") -> str:
    env = {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    git(repo, "merge", "--no-ff", "-q", "-m", message, branch, env=env)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """`app`: a main branch with a merged feature branch, a target `production`."""
    path = tmp_path / "app"
    path.mkdir()
    git(path, "init", "-q")
    for i in range(3):
        make_commit(path, f"base {i}", f"2026-01-0{i + 1}T00:00:00Z")
    git(path, "checkout", "-q", "-b", "feature")
    make_commit(path, "feature: login form (ABC-12)", "2026-01-04T00:00:00Z")
    make_commit(path, "feature: validation", "2026-01-05T00:00:00Z")
    git(path, "checkout", "-q", "main")
    make_commit(path, "main: docs", "2026-01-06T00:00:00Z")
    merge(path, "feature", "Merge pull request #12 from ada/feature\n\nLogin form")
    make_commit(path, "after merge", "2026-02-02T00:00:00Z")
    Deploy(path)("target", "create", "production")
    return path


# --- commits -------------------------------------------------------------------------------------


def test_commits_lists_what_is_new_since_the_previous_successful_deployment(app: Path) -> None:
    deploy = Deploy(app)
    first = git(app, "rev-parse", "HEAD~4")
    deploy("finish", "production", "--commit", f"app:main:{first}")
    deploy("fail", "production", "--commit", "app:main:HEAD~1")  # not successful: skipped
    deploy("finish", "production", "--commit", "app:main:HEAD")
    head = git(app, "rev-parse", "HEAD")

    data: Any = deploy.json("commits", "production", "3")
    assert data["number"] == 3 and data["first"] is False
    expected = rev_list(app, f"{first}..{head}")
    assert ids(data["commits"]) == expected  # newest first, merges and both sides included
    [span] = data["repositories"]
    assert ids(span["commits"]) == expected
    assert (span["from"], span["to"], span["from_deployment"]) == (first, head, 1)
    assert span["removed"] == [] and span["truncated"] is False
    entry = data["commits"][0]
    assert set(entry) >= {"commit", "author", "date", "subject"}
    assert entry["author"] == "Ada Tester <ada@example.com>"
    assert entry["date"] == "2026-02-02T00:00:00Z" and entry["subject"] == "after merge"

    # default: the current deployment; the human list names every commit
    text = deploy("commits", "production").stdout
    assert "production #3" in text and f"{len(expected)} commits new since #1" in text
    for commit in expected:
        assert commit[:10] in text


def test_any_subject_survives_the_json_and_the_listing(app: Path) -> None:
    deploy = Deploy(app)
    deploy("finish", "production", "--commit", "app:main:HEAD")
    tricky = ['ends in }, {', 'looks like }, {"commit": "x", "y": 1}', 'quote " and \\ back',
              "ünïcödé ✓ \t tab", "%s %H %x00 not a format"]
    for i, subject in enumerate(tricky):
        make_commit(app, subject, f"2026-03-0{i + 1}T00:00:00Z")
    deploy("finish", "production", "--commit", "app:main:HEAD")
    data: Any = deploy.json("commits", "production")
    assert [c["subject"] for c in data["commits"]] == list(reversed(tricky))
    assert ids(data["commits"]) == rev_list(app, "HEAD~5..HEAD")
    assert data["repositories"][0]["commits"] == data["commits"]
    text = deploy("commits", "production").stdout
    assert all(s in text for s in tricky[:3])


def test_a_first_deployment_lists_its_history_up_to_max_count(app: Path) -> None:
    deploy = Deploy(app)
    deploy("finish", "production", "--commit", "app:main:HEAD")
    data: Any = deploy.json("commits", "production", "1")
    assert data["first"] is True
    assert ids(data["commits"]) == rev_list(app, "--max-count=100", "HEAD")
    assert data["repositories"][0]["truncated"] is False
    data = deploy.json("commits", "production", "1", "--max-count", "3")
    assert ids(data["commits"]) == rev_list(app, "--max-count=3", "HEAD")
    assert data["repositories"][0]["truncated"] is True
    assert "more than 2 commits of its history" in \
        deploy("commits", "production", "-n", "2").stdout
    assert "(2 shown: -n N to list more)" in deploy("commits", "production", "-n", "2").stdout


def test_a_long_first_history_stops_at_100_by_default(tmp_path: Path) -> None:
    path = tmp_path / "long"
    path.mkdir()
    git(path, "init", "-q")
    stream = "".join(
        f"commit refs/heads/main\nmark :{i}\ncommitter A <a@x> {1700000000 + i} +0000\n"
        f"data {len(f'c{i}')}\nc{i}\n" + (f"from :{i - 1}\n" if i > 1 else "") + "\n"
        for i in range(1, 131))
    subprocess.run(["git", "fast-import", "--quiet"], cwd=path, input=stream, text=True,
                   check=True)
    git(path, "reset", "-q", "--hard", "main")
    deploy = Deploy(path)
    deploy("target", "create", "long")
    deploy("finish", "long", "--commit", "long:main:HEAD")
    data: Any = deploy.json("commits", "long")
    assert ids(data["commits"]) == rev_list(path, "--max-count=100", "HEAD")
    assert data["repositories"][0]["truncated"] is True


def test_a_rollback_is_detected_by_ancestry_and_lists_what_it_takes_out(app: Path) -> None:
    deploy = Deploy(app)
    old = git(app, "rev-parse", "HEAD~3")
    head = git(app, "rev-parse", "HEAD")
    deploy("finish", "production", "--commit", f"app:main:{old}")
    deploy("finish", "production", "--commit", f"app:main:{head}")
    result = deploy("finish", "production", "--commit", f"app:main:{old}")
    assert "(rollback)" in result.stdout and "rolls back #2" in result.stdout
    assert is_ancestor(app, old, head)

    data: Any = deploy.json("commits", "production", "3")
    assert data["rollback_of"] == 2
    assert data["commits"] == []  # nothing new: everything was there before
    assert ids(data["repositories"][0]["removed"]) == rev_list(app, f"{old}..{head}")
    text = deploy("commits", "production", "3").stdout
    assert "rolls back #2" in text and "not in it" in text
    # -n cuts the list of what it takes out too, and says so
    removed = rev_list(app, f"{old}..{head}")
    assert len(removed) > 1
    cut: Any = deploy.json("commits", "production", "3", "-n", "1")
    assert ids(cut["repositories"][0]["removed"]) == removed[:1]
    assert cut["repositories"][0]["removed_truncated"] is True
    assert "more than 1 commits of #2 not in it" in \
        deploy("commits", "production", "3", "-n", "1").stdout
    # moving forward again is no rollback
    deploy("finish", "production", "--commit", f"app:main:{head}")
    assert deploy.json("show", "production", "4")["rollback_of"] is None  # type: ignore[index]


def test_show_prints_the_way_to_a_deployments_commits(app: Path) -> None:
    deploy = Deploy(app)
    deploy("finish", "production", "--commit", "app:main:HEAD~3")
    deploy("finish", "production", "--commit", "app:main:HEAD")
    count = len(rev_list(app, "HEAD~3..HEAD"))
    text = deploy("show", "production", "2").stdout
    assert f"{count} new commits since #1" in text
    assert "git deploy commits production 2" in text
    data: Any = deploy.json("show", "production", "2")
    assert data["brought"] == [{"repository": "app", "branch": "main", "from_deployment": 1,
                                "count": count}]
    assert "first deployment" in deploy("show", "production", "1").stdout


# --- several repositories ------------------------------------------------------------------------


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    path = tmp_path / "lib"
    path.mkdir()
    git(path, "init", "-q")
    for i in range(4):
        make_commit(path, f"lib {i}", f"2026-01-1{i}T00:00:00Z")
    return path


def test_one_list_per_repository_and_a_missing_repository_is_reported(
        app: Path, lib: Path, tmp_path: Path) -> None:
    deploy = Deploy(app)
    deploy("target", "edit", "production", "--repository", f"lib={lib}")
    lib_old, lib_new = git(lib, "rev-parse", "HEAD~2"), git(lib, "rev-parse", "HEAD")
    app_old, app_new = git(app, "rev-parse", "HEAD~1"), git(app, "rev-parse", "HEAD")
    deploy("finish", "production", "--commit", f"app:main:{app_old}",
           "--commit", f"lib:main:{lib_old}")
    deploy("finish", "production", "--commit", f"app:main:{app_new}",
           "--commit", f"lib:main:{lib_new}")
    data: Any = deploy.json("commits", "production", "2")
    spans = {s["repository"]: s for s in data["repositories"]}
    assert ids(spans["app"]["commits"]) == rev_list(app, f"{app_old}..{app_new}")
    assert ids(spans["lib"]["commits"]) == rev_list(lib, f"{lib_old}..{lib_new}")
    assert ids(data["commits"]) == ids(spans["app"]["commits"]) + ids(spans["lib"]["commits"])
    assert {e["repository"] for e in data["commits"]} == {"app", "lib"}
    text = deploy("commits", "production", "2").stdout
    assert "app:main  1 commit new since #1" in text and "lib:main  2 commits new" in text

    # pending looks at each repository's branch tip
    make_commit(lib, "lib 4", "2026-01-20T00:00:00Z")
    data = deploy.json("pending", "production")
    spans = {s["repository"]: s for s in data["repositories"]}
    assert ids(spans["lib"]["commits"]) == rev_list(lib, f"{lib_new}..main")
    assert spans["app"]["commits"] == []

    # the other repository goes away: reported, the rest still listed, no crash
    lib.rename(tmp_path / "lib-moved")
    result = deploy("commits", "production", "2", "--json")
    data = __import__("json").loads(result.stdout)
    spans = {s["repository"]: s for s in data["repositories"]}
    assert spans["lib"]["available"] is False and "not available here" in spans["lib"]["problem"]
    assert ids(spans["app"]["commits"]) == rev_list(app, f"{app_old}..{app_new}")
    assert "lib:main  repository 'lib' is not available here" in \
        deploy("commits", "production", "2").stdout
    assert "not available here" in deploy("pending", "production").stdout


def test_contains_finds_a_commit_of_another_repository(app: Path, lib: Path,
                                                       tmp_path: Path) -> None:
    """A target deploying two repositories: a commit of the other one is found by ancestry in
    that repository, from the location the target records."""
    deploy = Deploy(app)
    deploy("target", "create", "staging")  # deploys app alone: it never ships a lib commit
    deploy("target", "edit", "production", "--repository", f"lib={lib}")
    lib_commits = rev_list(lib, "HEAD")  # newest first: lib 3, 2, 1, 0
    for shipped in ("HEAD~2", "HEAD", "HEAD~1"):  # forward, then rolled back one
        deploy("finish", "production", "--commit", "app:main:HEAD",
               "--commit", f"lib:main:{git(lib, 'rev-parse', shipped)}")
    deploy("finish", "staging", "--commit", "app:main:HEAD")
    deployed = [git(lib, "rev-parse", c) for c in ("HEAD~2", "HEAD", "HEAD~1")]
    for commit in lib_commits:
        data: Any = deploy.json("contains", commit)
        answers = {a["target"]: a for a in data}
        shipped = [n for n, c in enumerate(deployed, 1) if is_ancestor(lib, commit, c)]
        assert answers["production"]["first_deployment"] == (shipped[0] if shipped else None)
        assert answers["production"]["live"] is is_ancestor(lib, commit, deployed[-1])
        assert answers["production"]["repository"] == "lib"
        assert answers["staging"]["first_deployment"] is None
        assert answers["staging"]["live"] is False
        assert deploy.json("contains", commit, "--repository", "lib") == data
    newest = lib_commits[0]
    text = deploy("contains", newest[:10]).stdout
    assert "(repository lib)" in text and "not in #3" in text and "first shipped in #2" in text
    # an app commit is still looked for in app, and --repository app says the same
    assert deploy.json("contains", "HEAD") == deploy.json("contains", "HEAD", "--repository",
                                                          "app")
    assert "unknown commit" in one_error(deploy("contains", newest, "--repository", "app",
                                                code=1))
    assert "no target records a repository 'nope'" in one_error(
        deploy("contains", newest, "--repository", "nope", code=1))
    assert "invalid repository name" in one_error(
        deploy("contains", newest, "--repository", "../x", code=1))
    # the other repository moves away: its commits cannot be found any more
    lib.rename(tmp_path / "lib-moved")
    assert "unknown commit" in one_error(deploy("contains", newest, code=1))


def test_a_relative_location_is_relative_to_the_repository(app: Path, lib: Path) -> None:
    deploy = Deploy(app)
    deploy("target", "edit", "production", "--repository", "lib=../lib")
    deploy("finish", "production", "--commit", "app:main:HEAD", "--commit", "lib:main:HEAD")
    (app / "sub").mkdir()
    for where in (app, app / "sub"):
        data: Any = Deploy(where).json("commits", "production")
        spans = {s["repository"]: s for s in data["repositories"]}
        assert spans["lib"]["available"] is True
        assert ids(spans["lib"]["commits"]) == rev_list(lib, "HEAD")


def test_contains_in_another_repository_that_is_not_here(app: Path, lib: Path,
                                                          tmp_path: Path) -> None:
    deploy = Deploy(app)
    deploy("target", "edit", "production", "--repository", f"lib={lib}")
    newest = git(lib, "rev-parse", "HEAD")
    deploy("finish", "production", "--commit", "app:main:HEAD", "--commit", f"lib:main:{newest}")
    lib.rename(tmp_path / "lib-moved")
    data: Any = deploy.json("contains", newest, "--repository", "lib")
    assert data[0]["target"] == "production" and data[0]["live"] is False
    assert "not available here" in data[0]["problem"]
    assert "not available here" in one_error(deploy("contains", "HEAD~1", "--repository", "lib",
                                                    code=1))


def test_keep_names_deployed_commits_another_repository_lost(app: Path, lib: Path,
                                                              tmp_path: Path) -> None:
    deploy = Deploy(app)
    deploy("target", "edit", "production", "--repository", f"lib={lib}")
    lost = git(lib, "rev-parse", "HEAD")
    deploy("finish", "production", "--commit", "app:main:HEAD", "--commit", f"lib:main:{lost}")
    data: Any = deploy.json("keep")
    assert data[0]["other_repositories"] == [
        {"repository": "lib", "location": str(lib), "problem": None, "missing": []}]
    git(lib, "reset", "-q", "--hard", "HEAD~2")
    git(lib, "reflog", "expire", "--expire=now", "--all")
    git(lib, "gc", "-q", "--prune=now")
    data = deploy.json("keep")
    assert data[0]["other_repositories"][0]["missing"] == [lost]
    assert f"lib: missing {lost}" in deploy("keep").stdout
    lib.rename(tmp_path / "gone")
    assert "lib: repository 'lib' is not available here" in deploy("keep").stdout


# --- pending -------------------------------------------------------------------------------------


def test_pending_is_what_the_branch_has_and_the_current_deployment_has_not(app: Path) -> None:
    deploy = Deploy(app)
    deployed = git(app, "rev-parse", "HEAD~2")
    deploy("finish", "production", "--commit", f"app:main:{deployed}")
    make_commit(app, "next", "2026-03-01T00:00:00Z")
    data: Any = deploy.json("pending", "production")
    assert data["current"] == 1
    assert ids(data["commits"]) == rev_list(app, f"{deployed}..main")
    assert data["count"] == len(rev_list(app, f"{deployed}..main"))
    # another branch of the same repository
    data = deploy.json("pending", "production", "--branch", "feature")
    assert ids(data["commits"]) == rev_list(app, f"{deployed}..feature")
    data = deploy.json("pending", "production", "--branch", "app:feature")
    assert ids(data["commits"]) == rev_list(app, f"{deployed}..feature")
    assert "pending" in deploy("pending", "production").stdout
    # a branch named outright that does not exist is refused
    assert one_error(deploy("pending", "production", "--branch", "nope", code=1)) == \
        "error: branch 'nope' not found in repository 'app'"
    assert "has no repository 'zzz'" in one_error(
        deploy("pending", "production", "--branch", "zzz:main", code=1))


def test_pending_after_a_force_push_shows_the_deployed_commits_the_branch_lost(
        app: Path) -> None:
    deploy = Deploy(app)
    deployed = git(app, "rev-parse", "HEAD")
    deploy("finish", "production", "--commit", "app:main:HEAD")
    git(app, "reset", "-q", "--hard", "HEAD~2")
    rewritten = make_commit(app, "rewritten", "2026-03-01T00:00:00Z")
    data: Any = deploy.json("pending", "production")
    assert ids(data["commits"]) == rev_list(app, f"{deployed}..{rewritten}") == [rewritten]
    removed = data["repositories"][0]["removed"]
    assert ids(removed) == rev_list(app, f"{rewritten}..{deployed}")
    lost = len(rev_list(app, f"{rewritten}..{deployed}"))
    assert lost == 4  # after merge, the merge and the feature's two
    assert f"no longer has {lost} deployed commits" in deploy("pending", "production").stdout


def test_pending_with_nothing_deployed_lists_the_branch_history(app: Path) -> None:
    deploy = Deploy(app)
    data: Any = deploy.json("pending", "production", "-n", "2")
    assert data["current"] is None
    assert ids(data["commits"]) == rev_list(app, "--max-count=2", "main")
    assert "nothing deployed yet" in deploy("pending", "production").stdout


# --- the answer as git lists it ------------------------------------------------------------------


def layout(value: Any, depth: int = 0, key: str | None = None) -> str:
    """The layout `--json` promises for history answers: JSON indented by two spaces, except
    that each entry of a list of commits sits on one line of its own."""
    pad, inner = "  " * depth, "  " * (depth + 1)
    if isinstance(value, list) and value:
        items = [json.dumps(item, ensure_ascii=False) if key in COMMIT_LISTS
                 else layout(item, depth + 1) for item in value]
        return "[\n" + ",\n".join(inner + item for item in items) + "\n" + pad + "]"
    if isinstance(value, dict) and value:
        items = [f"{json.dumps(k, ensure_ascii=False)}: {layout(v, depth + 1, k)}"
                 for k, v in value.items()]
        return "{\n" + ",\n".join(inner + item for item in items) + "\n" + pad + "}"
    return json.dumps(value, ensure_ascii=False)


def printed(data: Any) -> str:
    """What the command line prints for `data`, printed from the whole answer at once."""
    out = Output(stream=io.StringIO())
    emit(out, data)
    return out.stream.getvalue()  # type: ignore[attr-defined]


def test_json_printed_while_git_walks_is_the_whole_answer_byte_for_byte(
        app: Path, lib: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`commits --json` and `pending --json` encode the commits as git lists them; what they
    print is, byte for byte, the answer computed first and printed after."""
    deploy = Deploy(app)
    deploy("target", "edit", "production", "--repository", f"lib={lib}")
    tricky = ['}, {"commit": "x"}', 'quote " and \\ back', "ünïcödé ✓ \t tab 🚀", "\x1b[31m"]
    for i, subject in enumerate(tricky):
        make_commit(lib, subject, f"2026-02-0{i + 1}T00:00:00Z")
    app_old, app_new = git(app, "rev-parse", "HEAD~3"), git(app, "rev-parse", "HEAD")
    lib_old, lib_new = git(lib, "rev-parse", "HEAD~6"), git(lib, "rev-parse", "HEAD")
    deploy("finish", "production", "--commit", f"app:main:{app_old}",
           "--commit", f"lib:main:{lib_old}")
    deploy("finish", "production", "--commit", f"app:main:{app_new}",
           "--commit", f"lib:main:{lib_new}")
    # a rollback of app only: app's commits go, lib's stay
    deploy("finish", "production", "--commit", f"app:main:{app_old}",
           "--commit", f"lib:main:{lib_new}")
    make_commit(lib, "lib pending", "2026-03-01T00:00:00Z")
    store = open_store(app)
    answers: list[tuple[list[str], Any]] = [
        (["commits", "production", "1"], brought_json(history.brought(store, "production", 1))),
        (["commits", "production", "2"], brought_json(history.brought(store, "production", 2))),
        (["commits", "production", "3"], brought_json(history.brought(store, "production", 3))),
        (["commits", "production", "2", "-n", "2"],
         brought_json(history.brought(store, "production", 2, max_count=2))),
        (["pending", "production"], pending_json(history.pending(store, "production"))),
    ]
    # two repositories' lists, and all of them
    assert len(answers[1][1]["commits"]) == len(rev_list(app, f"{app_old}..{app_new}")) + 6
    assert answers[2][1]["repositories"][0]["removed"]
    for args, answer in answers:
        text = deploy(*args, "--json").stdout
        assert json.loads(text) == answer
        assert text == layout(answer) + "\n" == printed(answer)
    # and the same with git's output read a few bytes at a time (a character split in two)
    monkeypatch.setattr(program, "STREAM_CHUNK", 5)
    for args, answer in answers[:4]:
        number = int(args[2])
        listing = _Listing()
        result = history.brought(store, "production", number,
                                 max_count=2 if "-n" in args else None, listed=listing.add)
        streamed = Output(stream=io.StringIO())
        emit(streamed, brought_json(result, listing.entries), listing.encoded)
        assert streamed.stream.getvalue() == layout(answer) + "\n"  # type: ignore[attr-defined]


def test_listed_is_told_exactly_the_commits_a_range_lists(
        app: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deploy = Deploy(app)
    deploy("finish", "production", "--commit", "app:main:HEAD~4")
    deploy("finish", "production", "--commit", "app:main:HEAD")
    monkeypatch.setattr(program, "STREAM_CHUNK", 64)  # several batches
    store = open_store(app)
    for number, max_count in ((1, None), (1, 2), (2, None), (2, 0), (2, 3), (2, 100)):
        told: list[Any] = []

        def listed(span: Any, batch: list[Any], told: list[Any] = told) -> None:
            told.append((span, list(batch)))

        result = history.brought(store, "production", number, max_count=max_count,
                                 listed=listed)
        span = result.ranges[0]
        assert all(s is span for s, _ in told) and len(told) > (1 if span.commits else -1)
        assert [c for _, batch in told for c in batch] == span.commits
        whole = history.brought(store, "production", number, max_count=max_count).ranges[0]
        assert span.commits == whole.commits and span.truncated == whole.truncated


def test_a_walk_read_in_small_pieces_is_the_walk(app: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Any cut of git's output (in a field, between a field's end and the newline, in a
    character of several bytes) gives the same commits."""
    for i, subject in enumerate(["ünïcödé ✓ 🚀 — déjà", "tab\tand \x01 control",
                                 "Fix the thing\n\nFixes: #12\nRefs: ABC-9"]):
        make_commit(app, subject, f"2026-03-0{i + 1}T00:00:00Z")
    git(app, "commit", "--allow-empty", "-q", "-m", "by zoë",
        env={"GIT_AUTHOR_NAME": "Zoë Ünicode", "GIT_AUTHOR_DATE": "2026-03-09T00:00:00Z"})
    repo = open_store(app).git
    head, base = git(app, "rev-parse", "HEAD"), git(app, "rev-parse", "HEAD~6")
    walks: list[dict[str, Any]] = [
        {"include": [head]}, {"include": [head], "exclude": [base], "boundary": True},
        {"include": [head], "full": True}, {"include": [base, head], "symmetric": True},
        {"include": [head], "max_count": 3}]
    whole = [history.walk(repo, **kwargs) for kwargs in walks]
    assert len(whole[0]) == len(rev_list(app, head))
    assert "-" in [m for m, _ in whole[1]] and whole[0][0][1].author.startswith("Zoë Ü")
    for size in (1, 2, 3, 7, 64):
        monkeypatch.setattr(program, "STREAM_CHUNK", size)
        assert [history.walk(repo, **kwargs) for kwargs in walks] == whole


def test_git_failing_in_the_middle_of_a_walk_is_one_error_and_no_answer(app: Path) -> None:
    """git dies after it printed part of the list (an object lost in the history): the command
    fails with git's reason and prints nothing that could pass for an answer."""
    deploy = Deploy(app)
    deploy("finish", "production", "--commit", "app:main:HEAD")
    deploy("target", "create", "staging")  # nothing deployed: pending is the branch's history
    lost = git(app, "rev-parse", "HEAD~3")
    (app / ".git" / "objects" / lost[:2] / lost[2:]).unlink()
    for args in (["commits", "production", "--json"], ["commits", "production"],
                 ["pending", "staging", "--json"]):
        result = deploy(*args, code=1)
        assert result.stdout == ""
        assert one_error(result).startswith("error: git rev-list failed in ")
        assert lost in result.stderr


@given(st.lists(st.tuples(st.text(), st.text(), st.text(), st.text()), max_size=5), st.text())
def test_commits_are_encoded_as_json_encodes_their_entries(
        fields: list[tuple[str, str, str, str]], repository: str) -> None:
    commits = [history.Commit(*f) for f in fields]
    entries = [c.as_json(repository) for c in commits]
    assert "[" + ", ".join(encode_commits(commits, repository)) + "]" == \
        json.dumps(entries, ensure_ascii=False)
    assert encode_entries(entries) == encode_commits(commits, repository)


# --- contains ------------------------------------------------------------------------------------


def test_contains_agrees_with_merge_base_for_every_commit(app: Path) -> None:
    """Targets with a rollback and a side branch: not monotone, so no shortcut may assume it."""
    deploy = Deploy(app)
    deploy("target", "create", "staging")
    deploy("target", "create", "qa")
    feature = git(app, "rev-parse", "feature")
    plan = {
        "production": ["HEAD~4", "HEAD", "HEAD~4"],  # forward, then rolled back
        "staging": [feature, "HEAD~1"],  # a side branch, then main
        "qa": [],
    }
    for key, commits in plan.items():
        for commit in commits:
            deploy("finish", key, "--commit", f"app:main:{commit}")
    deploy("fail", "staging", "--commit", "app:main:HEAD")  # failed: never shipped
    resolved = {key: [git(app, "rev-parse", c) for c in commits] for key, commits in plan.items()}
    every = rev_list(app, "--branches", "--tags")
    assert len(every) == 8
    store = open_store(app)
    for commit in every:
        # every commit through the service; the command line itself is checked below
        found = history.contains(store, commit).answers
        answers = {a.key: a.as_json() for a in found}
        assert set(answers) == {"production", "staging", "qa"}
        for key, commits in resolved.items():
            shipped = [n for n, c in enumerate(commits, 1) if is_ancestor(app, commit, c)]
            assert answers[key]["first_deployment"] == (shipped[0] if shipped else None), \
                (key, commit)
            live = bool(commits) and is_ancestor(app, commit, commits[-1])
            assert answers[key]["live"] is live, (key, commit)
            assert answers[key]["commit"] == commit
    # the command line gives the same answers as the service (for the last commit checked)
    assert deploy.json("contains", every[-1]) == [answers[k] for k in sorted(answers)]
    # the rolled-back commit: shipped in #2, gone from the current #3
    head = resolved["production"][1]
    answers = {a["target"]: a for a in deploy.json("contains", head)}  # type: ignore[union-attr]
    assert answers["production"]["first_deployment"] == 2
    assert answers["production"]["live"] is False and answers["production"]["current"] == 3
    text = deploy("contains", head).stdout
    assert "not in #3" in text and "first shipped in #2" in text


def test_contains_narrows_to_targets_and_refuses_bad_input(app: Path) -> None:
    deploy = Deploy(app)
    deploy("target", "create", "staging")
    deploy("finish", "production", "--commit", "app:main:HEAD")
    data: Any = deploy.json("contains", "HEAD~1", "--target", "production")
    assert [a["target"] for a in data] == ["production"]
    assert data[0]["live"] is True and data[0]["first_deployment"] == 1
    assert "unknown commit" in one_error(deploy("contains", "no-such-thing", code=1))
    assert "unknown target" in one_error(deploy("contains", "HEAD", "--target", "nope",
                                                code=1))
    assert "invalid target key" in one_error(deploy("contains", "HEAD", "--target", "A B",
                                                    code=1))


# --- compare -------------------------------------------------------------------------------------


def test_compare_lists_both_directions_like_rev_list(app: Path) -> None:
    deploy = Deploy(app)
    deploy("target", "create", "staging")
    feature = git(app, "rev-parse", "feature")
    base = git(app, "rev-parse", "HEAD~2")  # main: docs, not on feature
    deploy("finish", "production", "--commit", f"app:main:{base}")
    deploy("finish", "staging", "--commit", f"app:feature:{feature}")
    data: Any = deploy.json("compare", "production", "staging")
    assert data["a"]["target"] == "production" and data["b"]["current"] == 1
    assert set(ids(data["only_in_b"])) == set(rev_list(app, f"{base}..{feature}"))
    assert set(ids(data["only_in_a"])) == set(rev_list(app, f"{feature}..{base}"))
    assert data["only_in_a"] and data["only_in_b"]
    assert ids(data["repositories"][0]["only_in_b"]) == ids(data["only_in_b"])
    text = deploy("compare", "production", "staging").stdout
    assert "staging #1 has 2 commits production #1 has not" in text
    # the reverse question gives the reverse answer
    back: Any = deploy.json("compare", "staging", "production")
    assert ids(back["only_in_a"]) == ids(data["only_in_b"])
    # nothing current on one side
    deploy("target", "create", "qa")
    data = deploy.json("compare", "production", "qa")
    assert "has no current deployment" in data["repositories"][0]["problem"]
    assert "unknown target" in one_error(deploy("compare", "production", "nope", code=1))


# --- issues and merges ---------------------------------------------------------------------------


def test_issues_finds_merges_trailers_and_keys(app: Path) -> None:
    deploy = Deploy(app)
    before = git(app, "rev-parse", "HEAD~3")
    deploy("finish", "production", "--commit", f"app:main:{before}")
    git(app, "checkout", "-q", "-b", "gl", "HEAD")
    make_commit(app, "gitlab side", "2026-02-03T00:00:00Z")
    git(app, "checkout", "-q", "main")
    merge(app, "gl", "Merge branch 'gl' into 'main'\n\nSee merge request group/app!34",
          "2026-02-04T00:00:00Z")
    subprocess.run(["git", "commit", "--allow-empty", "-q", "-m", "Fix the crash\n\n"
                    "Handles UTF-8 names (not an issue) and relates to OPS-7.\n\n"
                    "Fixes: #41\nCloses: https://tracker.example/issues/9\n"
                    "Fixes: 1234abcd (\"an older commit\")\nRefs: ABC-99"],
                   cwd=app, check=True)
    head = git(app, "rev-parse", "HEAD")
    deploy("finish", "production", "--commit", f"app:main:{head}")
    data: Any = deploy.json("issues", "production")
    brought = rev_list(app, f"{before}..{head}")
    merges = rev_list(app, "--merges", f"{before}..{head}")
    assert [m["commit"] for m in data["merges"]] == merges
    kinds = {m["request"]: m["kind"] for m in data["merges"]}
    assert kinds == {"group/app!34": "merge request", "#12": "pull request"}
    issues = {i["key"]: i for i in data["issues"]}
    assert issues["#41"]["closing"] is True and issues["#41"]["trailers"] == ["Fixes"]
    assert issues["https://tracker.example/issues/9"]["closing"] is True
    assert issues["ABC-99"]["closing"] is False and issues["ABC-99"]["commits"] == [head]
    assert "OPS-7" in issues and "ABC-12" in issues and "#12" in issues
    assert "UTF-8" not in issues and not any("1234abcd" in k for k in issues)
    for issue in issues.values():
        assert set(issue["commits"]) <= set(brought)
    text = deploy("issues", "production").stdout
    assert "pull request #12" in text and "merge request group/app!34" in text
    assert "#41" in text and "closed by Fixes" in text

    # a project's own pattern replaces the defaults
    git(app, "config", "deploy.issuePattern", r"\b(OPS-\d+)\b")
    data = deploy.json("issues", "production")
    # (a URL in a closing trailer names an issue whatever the pattern)
    assert [i["key"] for i in data["issues"]] == ["OPS-7", "https://tracker.example/issues/9"]
    git(app, "config", "deploy.issuePattern", "(")
    assert "invalid deploy.issuePattern" in one_error(deploy("issues", "production", code=1))


# --- errors and shapes ---------------------------------------------------------------------------


def test_bad_input_is_one_error_line_and_writes_nothing(app: Path) -> None:
    deploy = Deploy(app)
    tip = git(app, "rev-parse", "refs/deployments/production")
    assert "has no deployments yet" in one_error(deploy("commits", "production", code=1))
    assert "unknown target" in one_error(deploy("commits", "nope", code=1))
    assert "has no deployment #7" in one_error(deploy("issues", "production", "7", code=1))
    assert "invalid deployment number" in one_error(deploy("commits", "production", "x",
                                                           code=1))
    assert "invalid count" in one_error(deploy("commits", "production", "-n", "-1", code=1))
    one_error(deploy("compare", "production", code=2))
    one_error(deploy("contains", code=2))
    assert "no current deployment" in one_error(deploy("rollback", "production", code=1))
    assert git(app, "rev-parse", "refs/deployments/production") == tip
