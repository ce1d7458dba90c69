"""The real daemon (`git deploy watch`) on a real repository, with second-scale timeouts.

Outcomes are waited for generously (up to 10 s each); what is asserted with a tight margin is
what the watcher recorded: the hanging change's time against its deadline, and how soon after
another process's change the subscriber had the event.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import Deploy, wait_for
from test_notify import Recorder


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


class Daemon:
    """`git deploy watch` in a repository; its pid file names the watcher process itself
    (git runs it as a child)."""

    def __init__(self, repo: Path, log: Path) -> None:
        self.repo = repo
        self.log = log
        self.pid_file = repo / ".git/git-deployments/watch/pid"
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid = 0

    def start(self) -> Daemon:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(["git", "deploy", "watch", "--verbose"], cwd=self.repo,
                                         stdout=subprocess.DEVNULL, stderr=log)
        wait_for(lambda: self.pid_file.exists() and "watching" in self.text(), "the watcher")
        self.pid = int(self.pid_file.read_text())
        return self

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def stop(self, signum: int) -> tuple[int, float]:
        """Signal the watcher; (exit code, seconds until its process was gone)."""
        assert self.proc is not None
        sent = time.monotonic()
        os.kill(self.pid, signum)
        wait_for(lambda: process_gone(self.pid), "the exit")
        gone = time.monotonic() - sent
        return self.proc.wait(timeout=10), gone

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if self.pid:
                os.kill(self.pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.kill()
        # shown when the test fails: what each watcher did
        print(f"--- {daemon.log.name}\n{daemon.text()}")


def show(deploy: Deploy, number: int) -> dict[str, Any]:
    data = deploy.json("show", "prod", str(number))
    assert isinstance(data, dict)
    return data


def test_the_daemon_end_to_end(tmp_path: Path, repo: Path, deploy: Deploy,
                               daemons: list[Daemon]) -> None:
    deploy("target", "create", "prod", "--hanging-after", "2s")
    rec = Recorder(tmp_path, "rec")
    deploy("subscribe", "prod", "--exec", rec.command(), "--on",
           "deploying,hanging,current,completed")
    first = Daemon(repo, tmp_path / "watch-1.log").start()
    daemons.append(first)

    # one watcher per repository
    second = deploy("watch", code=1)
    assert second.stderr.startswith("error: a watcher is already running for this repository")
    assert len(second.stderr.splitlines()) == 1

    # a deployment left deploying becomes hanging within a second of its deadline
    deploy("start", "prod")
    deadline = moment(show(deploy, 1)["history"][0]["at"]) + timedelta(seconds=2)
    wait_for(lambda: show(deploy, 1)["status"] == "hanging", "hanging")
    change = show(deploy, 1)["history"][-1]
    assert change["by"].startswith("git-deploy watcher <") and change["op"] == "timeout"
    assert timedelta(0) <= moment(change["at"]) - deadline < timedelta(seconds=1)
    wait_for(lambda: ("prod", 1, "deploying", "hanging") in rec.changes(), "its notification")

    # a change made by another process is noticed and notified within a second
    deploy("finish", "prod")
    done = time.time()
    event = wait_for(lambda: [e for e in rec.events() if e["new_status"] == "current"],
                     "the finish's notification")[0]
    assert event["received"] - done < 1.0

    code, gone = first.stop(signal.SIGTERM)
    assert code == 0 and gone < 1.0
    log = first.text()
    assert "prod #1: deploying -> hanging" in log and log.rstrip().endswith("stopped")

    # while no watcher runs: a new deployment; the restarted watcher delivers it, and nothing
    # it delivered before
    deploy("start", "prod")
    restarted = Daemon(repo, tmp_path / "watch-2.log").start()
    daemons.append(restarted)
    wait_for(lambda: ("prod", 2, None, "deploying") in rec.changes(), "the missed change")

    # rules changed while it runs take effect: #2 has been deploying for more than a second
    deploy("target", "edit", "prod", "--hanging-after", "1s")
    wait_for(lambda: show(deploy, 2)["status"] == "hanging", "the new rule")
    deploy("finish", "prod")
    wait_for(lambda: len(rec.events()) == 7, "all the notifications")

    code, gone = restarted.stop(signal.SIGINT)
    assert code == 130 and gone < 1.0
    assert rec.changes() == [
        ("prod", 1, None, "deploying"), ("prod", 1, "deploying", "hanging"),
        ("prod", 1, "hanging", "current"), ("prod", 2, None, "deploying"),
        ("prod", 2, "deploying", "hanging"), ("prod", 2, "hanging", "current"),
        ("prod", 1, "current", "completed"),
    ]
    ids = [e["id"] for e in rec.events()]
    assert len(set(ids)) == len(ids) == rec.calls()  # never sent twice, never retried


def test_the_daemon_keeps_going_when_a_subscriber_fails(tmp_path: Path, repo: Path,
                                                        deploy: Deploy,
                                                        daemons: list[Daemon]) -> None:
    """A subscriber that fails holds up neither the timeouts nor the other subscribers."""
    deploy("target", "create", "prod", "--hanging-after", "1s")
    good, bad = Recorder(tmp_path, "good"), Recorder(tmp_path, "bad")
    deploy("subscribe", "prod", "--exec", bad.command("deploying", "hanging"), "--name", "bad",
           "--on", "deploying,hanging")
    deploy("subscribe", "prod", "--exec", good.command(), "--name", "good",
           "--on", "deploying,hanging")
    daemon = Daemon(repo, tmp_path / "watch.log").start()
    daemons.append(daemon)
    deploy("start", "prod")
    wait_for(lambda: len(good.events()) == 2, "the good subscriber's notifications")
    assert show(deploy, 1)["status"] == "hanging"
    assert bad.events() == [] and bad.calls() >= 1
    assert "bad: could not deliver" in daemon.text()
    code, _ = daemon.stop(signal.SIGTERM)
    assert code == 0


def process_gone(pid: int) -> bool:
    """The process has exited (gone, or a zombie waiting to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True
