"""`git deploy run`: start, run the command, finish or fail by its exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import BIN, Deploy, git

PY = sys.executable


@pytest.fixture
def production(deploy: Deploy) -> Deploy:
    deploy("target", "create", "production")
    return deploy


def last(deploy: Deploy) -> dict[str, Any]:
    shown = deploy.json("show", "production")
    assert isinstance(shown, dict)
    return shown


def test_success_finishes_and_passes_output_through(production: Deploy) -> None:
    result = production("run", "production", "--version", "1.0.0", "--",
                        PY, "-c", "print('deploying the app')")
    assert result.returncode == 0
    # the command's output is its own; git deploy's lines go to stderr
    assert result.stdout == "deploying the app\n"
    assert "production #1: deploying 1.0.0" in result.stderr
    assert "production #1: current 1.0.0" in result.stderr
    record = last(production)
    assert record["status"] == "current"
    assert [h["status"] for h in record["history"]] == ["deploying", "current"]


def test_failure_fails_with_the_exit_status(production: Deploy) -> None:
    production("run", "production", "--", PY, "-c", "print('first')")
    result = production("run", "production", "--", PY, "-c", "raise SystemExit(3)", code=3)
    assert "exit status 3" in result.stderr
    record = last(production)
    assert (record["number"], record["status"]) == (2, "failed")
    assert record["history"][-1]["reason"] == "exit status 3"
    # a failed deployment leaves the current one alone
    listed = production.json("list", "production")
    assert isinstance(listed, list)
    assert [(r["number"], r["status"]) for r in listed] == [(2, "failed"), (1, "current")]


def test_killed_command_fails_with_the_signal(production: Deploy) -> None:
    kill = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    production("run", "production", "--", PY, "-c", kill, code=128 + 9)
    record = last(production)
    assert record["status"] == "failed"
    assert record["history"][-1]["reason"] == "killed by signal 9"


def test_command_not_found(production: Deploy, repo: Path) -> None:
    result = production("run", "production", "--", "no-such-deploy-tool", "--now", code=127)
    assert "command not found: no-such-deploy-tool" in result.stderr
    record = last(production)
    assert record["status"] == "failed"
    assert record["history"][-1]["reason"] == "command not found: no-such-deploy-tool"


def test_the_command_runs_in_flight(production: Deploy, repo: Path) -> None:
    # while the command runs, its deployment is the one in flight
    probe = "import subprocess; print(subprocess.run(['git', 'deploy', 'status', '--json']," \
            " capture_output=True, text=True).stdout)"
    result = production("run", "production", "--", PY, "-c", probe)
    assert '"status": "deploying"' in result.stdout


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signals_are_forwarded(production: Deploy, repo: Path, tmp_path: Path,
                               signum: signal.Signals) -> None:
    ready = tmp_path / "ready"
    script = ("import pathlib, sys, time; pathlib.Path(sys.argv[1]).write_text('up'); "
              "time.sleep(120)")
    # the real executable, so the signal reaches git deploy itself (git would re-raise it)
    proc = subprocess.Popen([str(BIN / "git-deploy"), "run", "production", "--",
                             PY, "-c", script, str(ready)], cwd=repo,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the command never started"
        time.sleep(0.05)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err
    record = last(production)
    assert record["status"] == "failed"
    assert record["history"][-1]["reason"] == f"killed by signal {int(signum)}"


def test_target_from_the_environment(production: Deploy) -> None:
    production("run", "--", PY, "-c", "pass", env={"GIT_DEPLOY_TARGET": "production"})
    assert last(production)["status"] == "current"


@pytest.mark.parametrize("args, code, message", [
    (["run", "production"], 2, "no command to run"),
    (["run", "production", "--"], 2, "no command to run"),
    (["run", "production", "touch-marker"], 2, "put '--' before the command"),
    (["run", "production", "--bogus", "--", "touch-marker"], 2,
     "unrecognized arguments: --bogus"),
    (["run", "--", "touch-marker"], 2, "the following arguments are required: target"),
    (["run", "staging", "--", "touch-marker"], 1, "unknown target 'staging'"),
    (["run", "production", "--commit", "app:nope:HEAD", "--", "touch-marker"], 1,
     "branch 'nope' not found"),
])
def test_bad_input_runs_nothing_and_writes_nothing(production: Deploy, repo: Path,
                                                   tmp_path: Path, args: list[str], code: int,
                                                   message: str) -> None:
    marker = tmp_path / "ran"
    tool = tmp_path / "bin" / "touch-marker"
    tool.parent.mkdir()
    tool.write_text(f"#!/bin/sh\ntouch {marker}\n")
    tool.chmod(0o755)
    before = git(repo, "rev-parse", "refs/deployments/production")
    env = {"PATH": f"{tool.parent}{os.pathsep}{os.environ['PATH']}"}
    result = production(*args, env=env, code=code)
    assert result.stderr.startswith(f"error: {message}"), result.stderr
    assert result.stderr.count("\n") == 1
    assert not marker.exists()
    assert git(repo, "rev-parse", "refs/deployments/production") == before


def test_the_commands_own_options_and_dashes_are_its_own(production: Deploy) -> None:
    echo = "import sys; print(sys.argv[1:])"
    result = production("run", "production", "--", PY, "-c", echo, "--version", "-h", "--", "x")
    assert result.stdout == "['--version', '-h', '--', 'x']\n"
    assert last(production)["status"] == "current"


def test_sync_pushes_both_changes(repo: Path, bare: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    git(clone, "checkout", "-q", "release")
    deploy = Deploy(clone)
    if deploy("push", "-h", ok=False).returncode != 0:
        pytest.skip("git deploy push is not available yet")
    deploy("target", "create", "production", "--sync")
    deploy("run", "production", "--sync", "--", PY, "-c", "pass")
    subjects = git(bare, "log", "--format=%s", "refs/deployments/production").splitlines()
    assert [s.split(":")[1].split()[0] for s in subjects] == ["current", "deploying", "target"]


def test_run_records_only_the_deployment_it_started(repo: Path, deploy: Deploy) -> None:
    """Someone fails the deployment while the command runs: run does not make a new one
    current; it says what happened and exits 1."""
    deploy("target", "create", "prod")
    started = subprocess.Popen(["git", "deploy", "run", "prod", "--", sys.executable, "-c",
                                "import time; time.sleep(2)"], cwd=repo,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(200):
        status = deploy.json("status")
        if isinstance(status, list) and status[0]["in_flight"]:
            break
        time.sleep(0.05)
    deploy("fail", "prod")
    _, err = started.communicate(timeout=60)
    assert started.returncode == 1, err
    assert err.splitlines()[-1] == ("error: the command succeeded, but it was not recorded: "
                                    "deployment #1 is failed, not in flight: it cannot be "
                                    "finished any more")
    listed = deploy.json("list", "prod")
    assert [(d["number"], d["status"]) for d in listed] == [(1, "failed")]
