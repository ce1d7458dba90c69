"""The watcher's timeouts, driven in-process with an injected clock and through `git deploy sweep`
(no test waits for a deadline: the clock is moved instead)."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from conftest import Deploy, git

START = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
AT_START = {"GIT_DEPLOY_NOW": "2026-03-02T09:00:00Z"}


class FakeClock:
    def __init__(self, moment: datetime = START) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment


class Lines:
    """The watcher's log, kept for assertions."""

    def __init__(self) -> None:
        self.lines: list[tuple[int, str]] = []

    def __call__(self, level: int, message: str) -> None:
        self.lines.append((level, message))

    def text(self) -> str:
        return "\n".join(message for _, message in self.lines)


def make_watcher(repo: Path, clock: FakeClock | None = None, **kwargs: Any) -> Any:
    from git_deployments.core.store import open_store
    from git_deployments.watch.daemon import Watcher

    return Watcher(open_store(repo), clock=clock or FakeClock(), log=Lines(), **kwargs)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def record(deploy: Deploy, target: str = "prod", number: int = 1) -> dict[str, Any]:
    data = deploy.json("show", target, str(number))
    assert isinstance(data, dict)
    return data


def timeline(repo: Path, target: str = "prod") -> list[str]:
    return git(repo, "rev-list", f"refs/deployments/{target}").split()


def started(deploy: Deploy, *create: str) -> None:
    """Target `prod` with `create` options, and deployment #1 deploying since START."""
    deploy("target", "create", "prod", *create)
    deploy("start", "prod", env=AT_START)


def test_no_timeout_while_disabled(repo: Path, deploy: Deploy) -> None:
    started(deploy)
    before = timeline(repo)
    watcher = make_watcher(repo)
    result = watcher.run_once(START + timedelta(days=30))
    assert result.timeouts == []
    assert result.next_deadline is None
    assert record(deploy)["status"] == "deploying"
    assert timeline(repo) == before


def test_hanging_then_failed(repo: Path, deploy: Deploy) -> None:
    started(deploy, "--hanging-after", "30m", "--failed-after", "2h")
    watcher = make_watcher(repo)

    early = watcher.run_once(START + timedelta(minutes=29, seconds=59))
    assert early.timeouts == []
    assert early.next_deadline == START + timedelta(minutes=30)

    hanging = watcher.run_once(START + timedelta(minutes=30))
    assert [(t.number, t.old, t.new) for t in hanging.timeouts] == [(1, "deploying", "hanging")]
    assert hanging.next_deadline == START + timedelta(hours=2)
    data = record(deploy)
    assert data["status"] == "hanging"
    change = data["history"][-1]
    assert change["at"] == iso(START + timedelta(minutes=30))
    assert change["op"] == "timeout"
    assert change["by"].startswith("git-deploy watcher <")
    assert "30m" in change["reason"]

    failed = watcher.run_once(START + timedelta(hours=2, seconds=5))
    assert [(t.old, t.new) for t in failed.timeouts] == [("hanging", "failed")]
    assert failed.next_deadline is None
    data = record(deploy)
    assert [h["status"] for h in data["history"]] == ["deploying", "hanging", "failed"]
    assert data["history"][-1]["at"] == iso(START + timedelta(hours=2, seconds=5))
    # the timeline says who did it: the author of each timeout commit is the watcher
    authors = git(repo, "log", "--format=%an|%s", "-2", "refs/deployments/prod").splitlines()
    assert all(line.startswith("git-deploy watcher|prod #1: ") for line in authors)

    assert watcher.run_once(START + timedelta(days=1)).timeouts == []


def test_both_due_at_once_goes_straight_to_failed(repo: Path, deploy: Deploy) -> None:
    started(deploy, "--hanging-after", "30m", "--failed-after", "2h")
    result = make_watcher(repo).run_once(START + timedelta(hours=3))
    assert [(t.old, t.new) for t in result.timeouts] == [("deploying", "failed")]


def test_failed_after_alone_applies_to_a_hanging_deployment(repo: Path, deploy: Deploy) -> None:
    started(deploy, "--failed-after", "1h")
    watcher = make_watcher(repo)
    assert watcher.run_once(START + timedelta(minutes=59)).next_deadline == \
        START + timedelta(hours=1)
    assert [t.new for t in watcher.run_once(START + timedelta(hours=1)).timeouts] == ["failed"]


def test_a_deployment_finished_before_its_deadline_is_not_touched(repo: Path,
                                                                   deploy: Deploy) -> None:
    started(deploy, "--hanging-after", "30m", "--failed-after", "2h")
    deploy("finish", "prod", env={"GIT_DEPLOY_NOW": iso(START + timedelta(minutes=29))})
    before = timeline(repo)
    result = make_watcher(repo).run_once(START + timedelta(hours=5))
    assert result.timeouts == [] and result.next_deadline is None
    assert timeline(repo) == before
    assert record(deploy)["status"] == "current"


def test_a_deployment_finished_while_the_timeout_is_written_is_not_touched(
        repo: Path, deploy: Deploy) -> None:
    """The watcher decided on an old read; the finish lands before its write takes the lock:
    the write re-checks, the machine refuses, and that is "nothing to do"."""
    from git_deployments.core.store import Store

    started(deploy, "--hanging-after", "30m")

    class FinishFirst(Store):
        def write(self, request: Any, oracle: Any = None) -> Any:
            deploy("finish", "prod")  # another process, between our read and our write
            return super().write(request, oracle)

    watcher = make_watcher(repo)
    watcher.store = FinishFirst(watcher.store.git)
    result = watcher.run_once(START + timedelta(hours=1))
    assert result.timeouts == []
    data = record(deploy)
    assert [h["status"] for h in data["history"]] == ["deploying", "current"]
    assert "not hanging after all" in watcher.log.text()


def test_rules_changed_while_running_take_effect(repo: Path, deploy: Deploy) -> None:
    started(deploy)
    watcher = make_watcher(repo)
    one_hour = START + timedelta(hours=1)
    assert watcher.run_once(one_hour).next_deadline is None

    deploy("target", "edit", "prod", "--hanging-after", "2h")
    result = watcher.run_once(one_hour)
    assert result.timeouts == [] and result.next_deadline == START + timedelta(hours=2)

    deploy("target", "edit", "prod", "--hanging-after", "30m", "--failed-after", "3h")
    result = watcher.run_once(one_hour)
    assert [(t.new, t.at) for t in result.timeouts] == [("hanging", one_hour)]
    assert result.next_deadline == START + timedelta(hours=3)

    deploy("target", "edit", "prod", "--failed-after", "off")
    result = watcher.run_once(START + timedelta(days=2))
    assert result.timeouts == [] and result.next_deadline is None
    assert record(deploy)["status"] == "hanging"


def test_the_deadline_counts_from_entering_deploying_again(repo: Path, deploy: Deploy) -> None:
    started(deploy, "--hanging-after", "30m")
    watcher = make_watcher(repo)
    watcher.run_once(START + timedelta(minutes=45))
    assert record(deploy)["status"] == "hanging"
    # starting again brings a hanging deployment back to deploying, with a fresh deadline
    restart = START + timedelta(minutes=50)
    deploy("start", "prod", env={"GIT_DEPLOY_NOW": iso(restart)})
    result = watcher.run_once(START + timedelta(minutes=60))
    assert result.timeouts == [] and result.next_deadline == restart + timedelta(minutes=30)


def test_only_the_deployment_in_flight_of_each_target(repo: Path, deploy: Deploy) -> None:
    started(deploy, "--hanging-after", "10m")
    deploy("target", "create", "staging", "--hanging-after", "20m")
    deploy("start", "staging", env={"GIT_DEPLOY_NOW": iso(START + timedelta(minutes=5))})
    deploy("target", "create", "idle", "--hanging-after", "1m")
    watcher = make_watcher(repo)
    result = watcher.run_once(START + timedelta(minutes=15))
    assert [(t.target, t.new) for t in result.timeouts] == [("prod", "hanging")]
    assert result.next_deadline == START + timedelta(minutes=25)


# --- through the command line ------------------------------------------------------------------


def test_sweep_now_backfills_at_that_time(repo: Path, deploy: Deploy) -> None:
    started(deploy, "--hanging-after", "30m", "--failed-after", "2h")
    then = START + timedelta(minutes=31)
    result = deploy("sweep", "--now", iso(then), "--json")
    data = json.loads(result.stdout)
    assert [(t["number"], t["from"], t["to"], t["at"]) for t in data["timeouts"]] == \
        [(1, "deploying", "hanging", iso(then))]
    assert data["next_deadline"] == iso(START + timedelta(hours=2))
    change = record(deploy)["history"][-1]
    assert (change["status"], change["at"]) == ("hanging", iso(then))
    assert change["by"].startswith("git-deploy watcher <")
    # one line per action on stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "prod #1: deploying -> hanging" in lines[0]
    assert lines[0].startswith(iso(then))  # stamped with the pass's time, as the change is
    # -v also says when the next deadline falls
    verbose = deploy("sweep", "--now", iso(then + timedelta(minutes=1)), "-v")
    assert f"{iso(then + timedelta(minutes=1))} next deadline " \
        f"{iso(START + timedelta(hours=2))}" in verbose.stderr

    quiet = deploy("sweep", "--now", iso(START + timedelta(hours=2)), "--quiet")
    assert quiet.stderr == "" and quiet.stdout == ""
    assert record(deploy)["status"] == "failed"


def test_sweep_honours_git_deploy_now(repo: Path, deploy: Deploy) -> None:
    started(deploy, "--hanging-after", "30m")
    deploy("sweep", env={"GIT_DEPLOY_NOW": iso(START + timedelta(minutes=40))})
    assert record(deploy)["history"][-1]["at"] == iso(START + timedelta(minutes=40))


def test_sweep_on_a_bare_server_repository(tmp_path: Path, repo: Path, deploy: Deploy,
                                           bare: Path) -> None:
    started(deploy, "--hanging-after", "30m")
    git(repo, "push", "-q", str(bare), "refs/deployments/*:refs/deployments/*")
    later = iso(START + timedelta(hours=1))
    elsewhere = Deploy(tmp_path)
    elsewhere("sweep", "--repo", str(bare), "--now", later)
    server = Deploy(bare)
    assert record(server)["status"] == "hanging"
    # the global option works as well
    elsewhere("--repo", str(bare), "sweep", "--now", later, code=0)


BAD_INPUT = [
    (["sweep", "--now", "the day after tomorrow"], 1),
    (["sweep", "--now"], 2),
    (["sweep", "--quiet", "--verbose"], 2),
    (["watch", "--quiet", "--verbose"], 2),
    (["watch", "extra"], 2),
    (["sweep", "--repo", "/nonexistent/repo"], 1),
    (["watch", "--repo", "/nonexistent/repo"], 1),
]


def test_bad_input_is_one_error_line(repo: Path, deploy: Deploy) -> None:
    started(deploy, "--hanging-after", "1m")
    before = timeline(repo)
    for args, code in BAD_INPUT:
        result = deploy(*args, code=code)
        assert result.stderr.startswith("error: "), args
        assert len(result.stderr.splitlines()) == 1, args
    assert timeline(repo) == before


def test_sweep_refuses_while_a_watcher_runs(repo: Path, deploy: Deploy) -> None:
    from git_deployments.core.store import open_store
    from git_deployments.watch.daemon import instance_lock

    started(deploy, "--hanging-after", "1m")
    before = timeline(repo)
    with instance_lock(open_store(repo).git):
        result = deploy("sweep", code=1)
        assert result.stderr.startswith("error: a watcher is already running for this "
                                        "repository (pid ")
        assert len(result.stderr.splitlines()) == 1
    assert timeline(repo) == before
    deploy("sweep")
    assert record(deploy)["status"] == "hanging"


def test_watch_help_lists_the_commands(deploy: Deploy) -> None:
    text = subprocess.run(["git", "deploy", "-h"], capture_output=True, text=True).stdout
    for name in ("watch", "sweep", "subscribe", "unsubscribe", "subscriptions"):
        assert name in text
