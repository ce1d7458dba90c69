"""`git deploy` end to end, run through git in real repositories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import Deploy, git, make_commit


def refs_state(repo: Path) -> str:
    return git(repo, "for-each-ref", "--format=%(refname) %(objectname)")


@pytest.fixture
def prod(deploy: Deploy) -> Deploy:
    deploy("target", "create", "production", "--name", "Production")
    return deploy


def test_a_deployment_lifecycle(repo: Path, prod: Deploy) -> None:
    head = git(repo, "rev-parse", "HEAD")
    out = prod("schedule", "production", "--version", "1.0.0").stdout
    assert out.strip() == f"production #1: scheduled 1.0.0 (release@{head[:7]})"
    prod("start", "production")
    prod("finish", "production")
    new = make_commit(repo, "second release")
    out = prod("start", "production", "--commit", "app:release:HEAD").stdout
    assert f"release@{new[:7]}" in out and "#2: deploying v1.0.0-2-g" in out
    out = prod("finish", "production").stdout.splitlines()
    assert out[0].startswith("production #2: current")
    assert out[1] == "production #1: current -> completed"
    listed = prod.json("list", "production")
    assert [(d["number"], d["status"]) for d in listed] == [(2, "current"), (1, "completed")]
    assert listed[0]["commits"] == [{"repository": "app", "branch": "release", "commit": new}]


def test_deployment_json_has_every_field(prod: Deploy, repo: Path) -> None:
    prod("start", "production", "--version", "2.0", "--ext-label", "CI", "--ext-url",
         "https://ci.example.com/jobs/7", "--description", "spring release")
    shown = prod.json("show", "production", "1")
    for key in ("target", "number", "version", "status", "commits", "description",
                "external_link", "scheduled_for", "created_at", "updated_at", "history",
                "rollback_of"):
        assert key in shown
    assert shown["target"] == "production"
    assert shown["external_link"] == {"label": "CI", "url": "https://ci.example.com/jobs/7"}
    assert shown["history"][0].keys() >= {"status", "at", "by", "op"}
    assert shown["history"][0]["by"] == "Ada Tester <ada@example.com>"
    assert len(shown["commits"][0]["commit"]) == 40


def test_status_is_the_default_command(prod: Deploy) -> None:
    prod("start", "production", "--version", "1.0")
    bare_status = prod().stdout
    assert bare_status == prod("status").stdout
    assert "production" in bare_status and "#1 deploying 1.0" in bare_status
    data = prod.json("status")
    assert data[0]["in_flight"]["number"] == 1 and data[0]["current"] is None


def test_status_shows_current_since_and_pending(repo: Path, prod: Deploy) -> None:
    prod("finish", "production", "--commit", "app:release:HEAD", "--version", "1.0")
    make_commit(repo, "one more")
    make_commit(repo, "and another")
    data = prod.json("status")[0]
    assert data["current"]["version"] == "1.0" and data["pending"] == 2
    assert data["current_since"].endswith("Z")
    table = prod("status").stdout.splitlines()
    assert table[0].split() == ["TARGET", "CURRENT", "FOR", "IN", "FLIGHT", "SCHEDULED", "PENDING",
                                "HEALTH"]


def test_target_commands(prod: Deploy, repo: Path) -> None:
    prod("target", "edit", "production", "--hanging-after", "30m", "--failed-after", "2h",
         "--manual-controls", "--repository", "infra=/srv/infra")
    shown = prod.json("target", "show", "production")
    assert (shown["hanging_after"], shown["failed_after"], shown["manual_controls"]) == \
        (1800, 7200, True)
    assert [r["name"] for r in shown["repositories"]] == ["app", "infra"]
    text = prod("target", "show", "production").stdout
    assert "hanging after:" in text and "30m" in text
    prod("target", "create", "staging")
    prod("target", "archive", "staging")
    assert [t["key"] for t in prod.json("target", "list")] == ["production"]
    assert [t["key"] for t in prod.json("target", "list", "--all")] == ["production", "staging"]
    assert [t["target"] for t in prod.json("status")] == ["production"]
    refused = prod("start", "staging", code=1)
    assert "archived" in refused.stderr
    prod("target", "unarchive", "staging")
    prod("start", "staging")


def test_repository_name_comes_from_config(repo: Path, deploy: Deploy) -> None:
    git(repo, "config", "deploy.repository", "webapp")
    deploy("target", "create", "qa")
    assert deploy.json("target", "show", "qa")["repository"] == "webapp"
    refused = deploy("start", "qa", "--commit", "app:release:HEAD", code=1)
    assert refused.stderr == "error: target 'qa' has no repository 'app' (it lists: webapp)\n"


def test_set_status_edit_delete_comment(prod: Deploy, repo: Path) -> None:
    prod("start", "production")
    refused = prod("set-status", "production", "1", "failed", code=1)
    assert "manual status changes are off" in refused.stderr
    prod("target", "edit", "production", "--manual-controls")
    prod("set-status", "production", "1", "failed", "--reason", "smoke test failed")
    assert prod.json("show", "production", "1")["history"][-1]["reason"] == "smoke test failed"
    prod("edit", "production", "1", "--version", "1.0-rc1", "--description", "rc")
    assert prod.json("show", "production")["version"] == "1.0-rc1"
    prod("comment", "production", "1", "-m", "rolled the DB back by hand")
    prod("delete", "production", "1")
    prod("show", "production", "1", code=1)
    log = prod.json("log", "production")
    assert [e["op"] for e in log] == ["delete", "comment", "edit", "set-status", "target-edit",
                                      "start", "target-create"]
    assert log[3]["status"] == "deploying -> failed"


@pytest.mark.parametrize("args, code, message", [
    (["start", "nope"], 1, "error: unknown target 'nope' (targets: production)"),
    (["start", "Bad Key"], 1, "error: invalid target key 'Bad Key'"),
    (["start", "production", "--commit", "app:release:doesnotexist"], 1,
     "error: unknown commit 'doesnotexist'"),
    (["start", "production", "--commit", "app:no such:HEAD"], 1,
     "error: invalid branch name 'no such'"),
    (["start", "production", "--commit", "a:b:c:d"], 1, "error: invalid commit ref"),
    (["start", "production", "--ext-url", "not a url"], 1, "error: invalid --ext-url"),
    (["start", "production", "--version", "x" * 300], 1, "error: invalid version"),
    (["start", "production", "--version", "two\nlines"], 1, "error: invalid version"),
    (["schedule", "production", "--at", "tomorrowish"], 1, "error: invalid time"),
    (["show", "production", "7"], 1, "error: target 'production' has no deployment #7"),
    (["show", "production", "zero"], 1, "error: invalid deployment number"),
    (["finish", "production"], 1, "error: target 'production' has no deployment in flight"),
    (["target", "create", "production"], 1, "error: target 'production' already exists"),
    (["target", "create", "x", "--hanging-after", "soon"], 1, "error: invalid duration"),
    (["target", "create", "a..b"], 1, "error: invalid target key"),
    (["target", "create", "x.lock"], 1, "error: invalid target key"),
    (["frobnicate"], 2, "error: argument <command>: invalid choice"),
    (["start"], 2, "error: the following arguments are required: target"),
    (["set-status", "production", "1", "hanging"], 2, "error: argument status"),
])
def test_bad_input_is_one_line_an_exit_code_and_no_write(repo: Path, prod: Deploy,
                                                         args: list[str], code: int,
                                                         message: str) -> None:
    before = refs_state(repo)
    result = prod(*args, code=code)
    assert result.stderr.startswith(message), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stdout == ""
    assert refs_state(repo) == before


def test_not_a_repository(tmp_path: Path) -> None:
    result = Deploy(tmp_path)("status", code=1)
    assert result.stderr.startswith("error: not a git repository")


def test_detached_head_needs_a_branch(repo: Path, prod: Deploy) -> None:
    git(repo, "checkout", "-q", "--detach")
    refused = prod("start", "production", code=1)
    assert refused.stderr == ("error: HEAD is detached and no CI branch is known; pass --branch "
                              "BRANCH or --commit REPO:BRANCH:COMMIT\n")
    out = prod("start", "production", "--branch", "release").stdout
    assert "release@" in out


def test_short_ids_and_tags_are_stored_as_full_ids(repo: Path, prod: Deploy) -> None:
    tagged = git(repo, "rev-parse", "v1.0.0^{commit}")
    prod("finish", "production", "--commit", "app:main:v1.0.0")
    assert prod.json("show", "production")["commits"][0]["commit"] == tagged
    prod("finish", "production", "--commit", f"app:main:{tagged[:8]}")
    assert prod.json("show", "production")["commits"][0]["commit"] == tagged
    assert prod.json("show", "production")["version"] == "v1.0.0"


def test_the_timeline_reads_in_plain_git_log(repo: Path, prod: Deploy) -> None:
    prod("schedule", "production", "--version", "1.0")
    prod("start", "production")
    prod("finish", "production")
    subjects = git(repo, "log", "--format=%s", "refs/deployments/production").splitlines()
    assert subjects[0].startswith("production #1: current 1.0 (release@")
    assert subjects[-1] == "production: target created"
    trailers = git(repo, "log", "-1", "--format=%(trailers:only,unfold)",
                   "refs/deployments/production")
    assert "Deploy-Op: finish" in trailers and "Deploy-Status: deploying -> current" in trailers


def test_a_bare_repository_through_git_dir(bare: Path, tmp_path: Path) -> None:
    runner = Deploy(tmp_path)
    head = git(bare, "rev-parse", "release")
    for args in (["--git-dir", str(bare)], ["-C", str(bare)]):
        result = __import__("subprocess").run(
            ["git", *args, "deploy", "status", "--json"], capture_output=True, text=True)
        assert result.returncode == 0 and json.loads(result.stdout) == [], result.stderr
    server = Deploy(bare)
    server("target", "create", "production")
    assert server.json("target", "show", "production")["repository"] == "app"
    server("finish", "production", "--commit", "app:release:HEAD", "--version", "1.0")
    assert server.json("show", "production")["commits"][0]["commit"] == head
    # a bare repository's HEAD names a branch too: it is the default
    assert "release@" in server("start", "production").stdout
    del runner


def test_log_across_targets_newest_first(prod: Deploy) -> None:
    prod("target", "create", "staging")
    prod("start", "staging")
    prod("start", "production")
    log = prod.json("log")
    assert {e["target"] for e in log} == {"production", "staging"}
    assert [e["at"] for e in log] == sorted((e["at"] for e in log), reverse=True)
    assert len(prod.json("log", "-n", "2")) == 2
    text = prod("log").stdout
    assert "production #1: deploying" in text


def test_list_filters_by_status_and_limits(prod: Deploy, repo: Path) -> None:
    for i in range(4):
        make_commit(repo, f"change {i}")
        prod("finish", "production", "--commit", "app:release:HEAD")
    assert [d["number"] for d in prod.json("list", "production", "--status", "completed")] == \
        [3, 2, 1]
    assert [d["number"] for d in prod.json("list", "production", "-n", "2")] == [4, 3]
    assert "completed" in prod("list", "production").stdout


def test_debug_shows_a_traceback(prod: Deploy) -> None:
    result = prod("--debug", "start", "nope", ok=False)
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_hostile_record_in_the_ref_is_a_clear_error(repo: Path, prod: Deploy) -> None:
    from test_store import plant

    prod("start", "production")
    plant(repo, {"index.yaml": b"a: &b [1]\nc: *b\n"}, "production")
    result = prod("status", code=1)
    assert result.stderr.startswith("error: refs/deployments/production@")
    assert "anchors are not allowed" in result.stderr and "Traceback" not in result.stderr
    before = refs_state(repo)
    prod("start", "production", code=1)
    assert refs_state(repo) == before


# --- values that must never reach a record -------------------------------------------------


@pytest.mark.parametrize("args", [
    ["schedule", "prod", "--at", "0999-01-01T00:00Z"],  # a 3-digit year would not read back
    ["schedule", "prod", "--at", "0001-01-01T00:00"],  # no zone: out of range once localised
    ["schedule", "prod", "--at", "1960-01-01T00:00Z"],  # before git's dates begin
    ["schedule", "prod", "--at", "9999-12-31T23:59:59"],
    ["target", "create", "nl\n"],  # "$" in a pattern would take the newline
    ["target", "create", "dot."],  # git refuses a ref path ending in "."
    ["show", "prod\n"],
    ["schedule", "prod", "--ext-url", "https://ci.example/1\n"],
    ["target", "create", "rn", "--repository", "zz\n"],
    ["schedule", "prod", "--version", "\x1b[31mRED\x1b[0m"],  # escapes reach other terminals
    ["schedule", "prod", "--description", "a\x01b"],
    ["comment", "prod", "-m", "clear\x1b[2J"],
    ["target", "edit", "prod", "--name", " "],
    ["list", "prod", "-n", "-1"],
    ["log", "prod", "-n", "²"],
])
def test_bad_values_are_refused_with_one_line_and_nothing_written(
        repo: Path, deploy: Deploy, args: list[str]) -> None:
    deploy("target", "create", "prod")
    before = refs_state(repo)
    result = deploy(*args, code=1)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: invalid "), result.stderr
    assert refs_state(repo) == before
    assert deploy("status").returncode == 0


def test_a_bad_clock_is_refused(repo: Path, deploy: Deploy) -> None:
    deploy("target", "create", "prod")
    result = deploy("comment", "prod", "-m", "x", code=1,
                    env={"GIT_DEPLOY_NOW": "1960-01-01T00:00:00Z"})
    assert result.stderr.startswith("error: invalid GIT_DEPLOY_NOW") and \
        "1970" in result.stderr


def test_text_keeps_its_newlines_and_tabs(repo: Path, deploy: Deploy) -> None:
    deploy("target", "create", "prod")
    deploy("schedule", "prod", "--description", "first line\n\tindented")
    assert deploy.json("show", "prod", "1")["description"] == "first line\n\tindented"


def test_finish_number_lands_only_on_that_deployment_in_flight(repo: Path, deploy: Deploy
                                                                ) -> None:
    deploy("target", "create", "prod")
    deploy("start", "prod")
    deploy("fail", "prod")
    before = refs_state(repo)
    result = deploy("finish", "prod", "--number", "1", code=1)
    assert result.stderr == "error: deployment #1 is failed, not in flight: it cannot be " \
                            "finished any more\n"
    assert refs_state(repo) == before
    deploy("start", "prod")
    assert "prod #2: current" in deploy("finish", "prod", "--number", "2").stdout
    assert "does not take a deployment number" not in deploy("start", "prod").stderr
    assert deploy("start", "prod", "--number", "2", code=2).returncode == 2


def test_settings_that_cannot_work_are_refused(repo: Path, deploy: Deploy) -> None:
    deploy("target", "create", "prod", "--hanging-after", "1h")
    before = refs_state(repo)
    for args in (["target", "create", "x", "--hanging-after", "1h", "--failed-after", "30m"],
                 ["target", "edit", "prod", "--failed-after", "1h"],
                 ["comment", "prod", "-m", "  "]):
        [line] = deploy(*args, code=1).stderr.splitlines()
        assert line.startswith("error: invalid "), line
    assert refs_state(repo) == before
    assert deploy("subscribe", "--exec", "true", code=2).stderr.startswith(
        "error: give a target, or --all")


def test_a_link_without_a_label_is_called_ci_job(repo: Path, deploy: Deploy) -> None:
    deploy("target", "create", "prod")
    deploy("start", "prod", "--ext-url", "https://ci.example/run/7")
    link = deploy.json("show", "prod", "1")["external_link"]
    assert link == {"label": "CI job", "url": "https://ci.example/run/7"}


def test_a_change_dated_ahead_of_the_clock_says_so(repo: Path, deploy: Deploy) -> None:
    deploy("target", "create", "prod")
    deploy("start", "prod", env={"GIT_DEPLOY_NOW": "+10m"})
    assert "deploying for a moment (dated in " in deploy("show", "prod", "1").stdout
