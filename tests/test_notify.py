"""Subscriptions in git config and delivery of status changes: to a command (the event on stdin)
and to a webhook (a tiny HTTP server on 127.0.0.1), at least once, from cursors under $GIT_DIR."""

from __future__ import annotations

import http.server
import json
import os
import shlex
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import Deploy, git
from test_watch import START, FakeClock, iso, make_watcher

RECORDER = """\
import json, os, sys, time
out, flag = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None
event = json.load(sys.stdin)
with open(out + ".calls", "a") as calls:
    calls.write(event["id"] + "\\n")
if flag and not os.path.exists(flag) and event["new_status"] in sys.argv[3:]:
    print("refused: " + event["new_status"], file=sys.stderr)
    sys.exit(3)
event["received"] = time.time()
with open(out, "a") as handle:
    handle.write(json.dumps(event) + "\\n")
"""


class Recorder:
    """An --exec subscriber that appends each event it accepts to a file; with a flag file
    path and statuses, it refuses those statuses until the flag file exists."""

    def __init__(self, tmp: Path, name: str) -> None:
        self.script = tmp / "recorder.py"
        self.script.write_text(RECORDER)
        self.out = tmp / f"{name}.jsonl"
        self.flag = tmp / f"{name}.ok"

    def command(self, *refuse: str) -> str:
        # -S: the recorder needs only the standard library, and starts faster without site
        args = [sys.executable, "-S", str(self.script), str(self.out)]
        if refuse:
            args += [str(self.flag), *refuse]
        return shlex.join(args)

    def events(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines()]

    def changes(self) -> list[tuple[str, int, str | None, str | None]]:
        return [(e["target"], e["number"], e["old_status"], e["new_status"])
                for e in self.events()]

    def calls(self) -> int:
        calls = self.out.with_name(self.out.name + ".calls")
        return len(calls.read_text().splitlines()) if calls.exists() else 0


def config(repo: Path) -> str:
    return (repo / ".git" / "config").read_text()


def subscriptions(deploy: Deploy) -> list[dict[str, Any]]:
    data = deploy.json("subscriptions")
    assert isinstance(data, list)
    return data


@pytest.fixture
def prod(deploy: Deploy) -> Deploy:
    deploy("target", "create", "prod")
    return deploy


# --- subscribe, unsubscribe, subscriptions -----------------------------------------------------


def test_subscribe_keeps_it_in_git_config(repo: Path, prod: Deploy) -> None:
    out = prod("subscribe", "prod", "--exec", "notify-send deployed").stdout
    assert out.startswith("subscribed 'prod-exec': prod on current -> exec notify-send")
    prod("subscribe", "prod", "--exec", "logger -t deploy", "--on", "failed,hanging")
    prod("subscribe", "--all", "--webhook", "https://chat.example/hook", "--name", "chat",
         "--on", "all", "--timeout", "5s")
    assert git(repo, "config", "deploy-subscription.prod-exec.exec") == "notify-send deployed"
    assert git(repo, "config", "deploy-subscription.prod-exec.on") == "current"
    assert git(repo, "config", "deploy-subscription.prod-exec-2.on") == "failed,hanging"
    assert git(repo, "config", "deploy-subscription.chat.target") == "*"

    listed = {s["name"]: s for s in subscriptions(prod)}
    assert set(listed) == {"prod-exec", "prod-exec-2", "chat"}
    assert listed["prod-exec"]["on"] == ["current"] and listed["prod-exec"]["kind"] == "exec"
    assert listed["chat"]["all"] is True and listed["chat"]["timeout"] == 5.0
    assert listed["chat"]["pending"] == 0 and listed["chat"]["failures"] == 0

    table = prod("subscriptions").stdout
    assert "every target" in table and "webhook https://chat.example/hook" in table

    assert prod("unsubscribe", "prod-exec-2").stdout == "unsubscribed 'prod-exec-2'\n"
    assert "prod-exec-2" not in config(repo)
    assert {s["name"] for s in subscriptions(prod)} == {"prod-exec", "chat"}


def test_a_global_subscription_is_delivered_in_every_repository(
        repo: Path, prod: Deploy, tmp_path: Path) -> None:
    recorder = Recorder(tmp_path, "global")
    prod("subscribe", "--all", "--global", "--exec", recorder.command(), "--name", "mine")
    assert git(repo, "config", "--global", "deploy-subscription.mine.target") == "*"
    assert "deploy-subscription" in (Path(os.environ["HOME"]) / ".gitconfig").read_text()
    assert "deploy-subscription" not in config(repo)
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(repo), str(other))
    there = Deploy(other)
    there("target", "create", "web")
    assert [s["name"] for s in subscriptions(there)] == ["mine"]
    there("sweep")  # the cursor starts here now: nothing made before is sent
    there("finish", "web", "--commit", "HEAD")
    there("sweep")
    assert recorder.changes() == [("web", 1, None, "current")]
    assert "your own git config" in prod("unsubscribe", "mine", code=1).stderr
    assert prod("unsubscribe", "--global", "mine").stdout == "unsubscribed 'mine'\n"
    assert subscriptions(there) == []
    prod("subscribe", "prod", "--exec", "true", "--name", "local")
    assert "this repository's" in prod("unsubscribe", "--global", "local", code=1).stderr


BAD_SUBSCRIPTIONS = [
    (["subscribe", "nope", "--exec", "true"], 1),
    (["subscribe", "prod", "--all", "--exec", "true"], 2),
    (["subscribe", "--exec", "true"], 2),
    (["subscribe", "prod"], 2),
    (["subscribe", "prod", "--exec", "true", "--webhook", "http://127.0.0.1/"], 2),
    (["subscribe", "prod", "--webhook", "ftp://example.com/hook"], 1),
    (["subscribe", "prod", "--webhook", "not a url"], 1),
    (["subscribe", "prod", "--exec", "'unbalanced"], 1),
    (["subscribe", "prod", "--exec", "   "], 1),
    (["subscribe", "prod", "--exec", "true", "--on", "current,bogus"], 2),
    (["subscribe", "prod", "--exec", "true", "--name", "has space"], 2),
    (["subscribe", "prod", "--exec", "true", "--name", "taken"], 1),
    (["subscribe", "prod", "--exec", "true", "--timeout", "soon"], 2),
    (["unsubscribe", "missing"], 1),
]


def test_bad_subscriptions_are_one_error_line(repo: Path, prod: Deploy) -> None:
    prod("subscribe", "prod", "--exec", "true", "--name", "taken")
    before = config(repo)
    for args, code in BAD_SUBSCRIPTIONS:
        result = prod(*args, code=code)
        assert result.stderr.startswith("error: "), args
        assert len(result.stderr.splitlines()) == 1 and result.stdout == "", args
        assert config(repo) == before, args


def test_a_subscription_from_the_users_own_config(repo: Path, prod: Deploy) -> None:
    git(repo, "config", "--global", "deploy-subscription.mine.target", "prod")
    git(repo, "config", "--global", "deploy-subscription.mine.exec", "true")
    assert [s["name"] for s in subscriptions(prod)] == ["mine"]
    result = prod("unsubscribe", "mine", code=1)
    assert "git deploy unsubscribe --global mine" in result.stderr
    # a broken section is listed with its problem, and skipped by the watcher
    git(repo, "config", "deploy-subscription.broken.target", "prod")
    listed = {s["name"]: s for s in subscriptions(prod)}
    assert "exec and webhook" in listed["broken"]["problem"]


# --- delivery to a command ---------------------------------------------------------------------


def test_by_default_only_current_is_notified(tmp_path: Path, repo: Path, prod: Deploy) -> None:
    rec = Recorder(tmp_path, "rec")
    prod("subscribe", "prod", "--exec", rec.command())
    prod("start", "prod", "--version", "1.0")
    prod("finish", "prod")
    prod("sweep")
    events = rec.events()
    assert [(e["number"], e["old_status"], e["new_status"]) for e in events] == \
        [(1, "deploying", "current")]
    event = events[0]
    head = git(repo, "rev-parse", "HEAD")
    tip = git(repo, "rev-parse", "refs/deployments/prod")
    assert event["event"] == "status" and event["id"] == f"{tip}:1"
    assert event["target"] == "prod" and event["repository"] == "app"
    assert event["version"] == "1.0" and event["op"] == "finish"
    assert event["commits"] == [{"repository": "app", "branch": "release", "commit": head}]
    assert event["by"] == "Ada Tester <ada@example.com>"
    assert event["timeline_commit"] == tip and event["at"].endswith("Z")
    assert event["subject"].startswith("prod #1: current 1.0")


def test_every_status_change_of_a_commit_each_filtered(tmp_path: Path, prod: Deploy) -> None:
    both, completed = Recorder(tmp_path, "both"), Recorder(tmp_path, "completed")
    prod("subscribe", "prod", "--exec", both.command(), "--on", "current,completed")
    prod("subscribe", "prod", "--exec", completed.command(), "--on", "completed")
    prod("start", "prod", "--version", "1")
    prod("finish", "prod")
    prod("start", "prod", "--version", "2")
    prod("finish", "prod")  # #2 deploying -> current and #1 current -> completed, one commit
    prod("sweep")
    assert both.changes() == [("prod", 1, "deploying", "current"),
                              ("prod", 2, "deploying", "current"),
                              ("prod", 1, "current", "completed")]
    assert both.events()[1]["timeline_commit"] == both.events()[2]["timeline_commit"]
    assert completed.changes() == [("prod", 1, "current", "completed")]
    assert completed.events()[0]["version"] == "1"


def test_a_restart_resumes_from_the_cursor(tmp_path: Path, repo: Path, prod: Deploy) -> None:
    rec = Recorder(tmp_path, "rec")
    prod("subscribe", "prod", "--exec", rec.command(), "--on", "all")
    prod("start", "prod")
    prod("sweep")
    prod("sweep")  # nothing new: nothing sent
    assert rec.changes() == [("prod", 1, None, "deploying")]
    prod("finish", "prod")
    prod("delete", "prod", "1")
    prod("sweep")
    assert rec.changes() == [("prod", 1, None, "deploying"), ("prod", 1, "deploying", "current"),
                             ("prod", 1, "current", None)]
    assert rec.events()[-1]["version"] is not None  # a deleted record is described as it was
    assert rec.calls() == 3
    cursor = json.loads((repo / ".git/git-deployments/watch/cursor.json").read_text())
    assert cursor["targets"] == {"prod": git(repo, "rev-parse", "refs/deployments/prod")}


def test_a_rewritten_timeline_resumes_after_the_shared_history(tmp_path: Path, repo: Path,
                                                              prod: Deploy) -> None:
    rec = Recorder(tmp_path, "rec")
    prod("subscribe", "prod", "--exec", rec.command(), "--on", "deploying,current")
    created = git(repo, "rev-parse", "refs/deployments/prod")
    prod("start", "prod")
    prod("finish", "prod")
    prod("sweep")
    assert len(rec.events()) == 2
    # as a force-push would: the timeline goes back to its first commit and grows again
    git(repo, "update-ref", "refs/deployments/prod", created)
    prod("start", "prod", "--version", "again")
    result = prod("sweep")
    assert "rewritten" in result.stderr
    assert rec.changes()[2:] == [("prod", 1, None, "deploying")]
    assert rec.events()[2]["version"] == "again"
    # rewritten again, and the commit the cursor named pruned away: it resumes at the tip, once
    git(repo, "update-ref", "refs/deployments/prod", created)
    git(repo, "reflog", "expire", "--expire=now", "--all")
    git(repo, "gc", "-q", "--prune=now")
    assert "is gone; resuming at the tip" in prod("sweep").stderr
    assert prod("sweep").stderr == ""
    prod("start", "prod", "--version", "third")
    prod("sweep")
    assert rec.changes()[3:] == [("prod", 1, None, "deploying")]


def test_a_subscription_starts_from_when_it_was_made(tmp_path: Path, prod: Deploy) -> None:
    prod("sweep")  # the watcher's own cursor is now behind what follows
    prod("start", "prod")
    prod("finish", "prod")
    rec = Recorder(tmp_path, "rec")
    prod("subscribe", "prod", "--exec", rec.command())
    prod("sweep")
    assert rec.events() == []


def test_all_targets_including_new_ones(tmp_path: Path, prod: Deploy) -> None:
    rec = Recorder(tmp_path, "rec")
    prod("subscribe", "--all", "--exec", rec.command(), "--on", "deploying")
    prod("target", "create", "staging")
    prod("start", "staging")
    prod("start", "prod")
    prod("sweep")
    assert sorted(rec.changes()) == [("prod", 1, None, "deploying"),
                                     ("staging", 1, None, "deploying")]


def test_a_failing_subscriber_is_retried_later_and_blocks_nobody(tmp_path: Path, repo: Path,
                                                                  prod: Deploy) -> None:
    from git_deployments.watch.notify import DeliveryPolicy

    good, bad = Recorder(tmp_path, "good"), Recorder(tmp_path, "bad")
    prod("target", "edit", "prod", "--hanging-after", "30m")
    prod("subscribe", "prod", "--exec", bad.command("hanging", "current"), "--name", "bad",
         "--on", "hanging,current")
    prod("subscribe", "prod", "--exec", good.command(), "--name", "good",
         "--on", "hanging,current")
    prod("start", "prod", env={"GIT_DEPLOY_NOW": iso(START)})
    clock = FakeClock(START + timedelta(hours=1))
    watcher = make_watcher(repo, clock, policy=DeliveryPolicy(retry_min=60))

    first = watcher.run_once()
    assert [t.new for t in first.timeouts] == ["hanging"]  # timeouts go first, whatever fails
    assert good.changes() == [("prod", 1, "deploying", "hanging")]
    assert bad.events() == [] and bad.calls() == 1
    assert first.failed == ["bad"] and first.delivered == 1
    assert "bad: could not deliver prod #1 deploying -> hanging" in watcher.log.text()
    assert "exited with 3: refused: hanging" in watcher.log.text()
    state = {s["name"]: s for s in subscriptions(prod)}["bad"]
    assert state["failures"] == 1 and "refused: hanging" in state["last_error"]
    assert state["pending"] == 1

    prod("start", "prod")  # hanging -> deploying
    prod("finish", "prod")  # deploying -> current
    clock.moment += timedelta(seconds=30)  # before its retry time: not even tried
    second = watcher.run_once()
    assert bad.calls() == 1 and second.failed == ["bad"]
    assert good.changes()[-1] == ("prod", 1, "deploying", "current")

    bad.flag.touch()
    clock.moment += timedelta(seconds=31)
    third = watcher.run_once()
    assert third.failed == [] and third.delivered == 2
    assert bad.changes() == good.changes() == [("prod", 1, "deploying", "hanging"),
                                               ("prod", 1, "deploying", "current")]
    assert bad.calls() == 3
    state = {s["name"]: s for s in subscriptions(prod)}["bad"]
    assert state["failures"] == 0 and state["delivered"] == 2 and state["pending"] == 0

    watcher.run_once()
    assert bad.calls() == 3 and len(good.events()) == 2


def test_a_commit_half_delivered_is_not_sent_again(tmp_path: Path, repo: Path,
                                                   prod: Deploy) -> None:
    rec = Recorder(tmp_path, "rec")
    prod("subscribe", "prod", "--exec", rec.command("completed"), "--on", "current,completed")
    for _ in range(2):
        prod("start", "prod")
        prod("finish", "prod")
    clock = FakeClock()
    watcher = make_watcher(repo, clock)
    watcher.run_once()
    assert rec.changes() == [("prod", 1, "deploying", "current"),
                             ("prod", 2, "deploying", "current")]
    rec.flag.touch()
    clock.moment += timedelta(hours=1)
    watcher.run_once()
    assert rec.changes()[2:] == [("prod", 1, "current", "completed")]
    assert rec.calls() == 4


def test_a_command_that_takes_too_long(tmp_path: Path, repo: Path, prod: Deploy) -> None:
    command = shlex.join([sys.executable, "-c", "import time; time.sleep(30)"])
    prod("subscribe", "prod", "--exec", command, "--timeout", "1s", "--name", "slow")
    prod("start", "prod")
    prod("finish", "prod")
    result = prod("sweep")
    assert "did not finish within 1s" in result.stderr
    assert subscriptions(prod)[0]["failures"] == 1


def test_a_missing_command_is_a_failed_delivery(tmp_path: Path, prod: Deploy) -> None:
    prod("subscribe", "prod", "--exec", str(tmp_path / "no-such-program"), "--name", "gone")
    prod("start", "prod")
    prod("finish", "prod")
    result = prod("sweep")
    assert result.returncode == 0 and "gone: could not deliver" in result.stderr
    assert "cannot run" in result.stderr


def test_a_push_received_on_the_server_is_notified(tmp_path: Path, repo: Path, prod: Deploy,
                                                   bare: Path) -> None:
    def push() -> None:
        git(repo, "push", "-q", str(bare), "refs/deployments/*:refs/deployments/*")

    push()
    server = Deploy(bare)
    rec = Recorder(tmp_path, "rec")
    server("subscribe", "prod", "--exec", rec.command(), "--on", "deploying,current")
    prod("start", "prod")
    prod("finish", "prod")
    push()
    server("sweep")
    assert rec.changes() == [("prod", 1, None, "deploying"), ("prod", 1, "deploying", "current")]
    # and packed refs are read just as well
    git(bare, "pack-refs", "--all")
    prod("start", "prod")
    push()
    server("sweep")
    assert rec.changes()[-1] == ("prod", 2, None, "deploying")


def test_unsubscribed_means_no_more_deliveries(tmp_path: Path, repo: Path, prod: Deploy) -> None:
    rec = Recorder(tmp_path, "rec")
    prod("subscribe", "prod", "--exec", rec.command(), "--name", "mine")
    state = repo / ".git/git-deployments/watch/subscribers"
    assert len(list(state.iterdir())) == 1
    prod("unsubscribe", "mine")
    assert list(state.iterdir()) == []
    prod("start", "prod")
    prod("finish", "prod")
    prod("sweep")
    assert rec.events() == []


# --- delivery to a webhook ---------------------------------------------------------------------


class Hook:
    """A local HTTP endpoint answering with the queued status codes (then 200)."""

    def __init__(self) -> None:
        self.answers: list[int] = []
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.requests.append((dict(self.headers), json.loads(body)))
                code = hook.answers.pop(0) if hook.answers else 200
                self.send_response(code)
                if code == 302:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    yield server
    server.close()


def test_webhook_posts_the_event_retrying_with_backoff(repo: Path, prod: Deploy,
                                                       hook: Hook) -> None:
    from git_deployments.watch.notify import DeliveryPolicy

    prod("subscribe", "prod", "--webhook", hook.url)
    prod("start", "prod")
    prod("finish", "prod", "--version", "2.0")
    hook.answers = [503, 500]
    watcher = make_watcher(repo, policy=DeliveryPolicy(attempts=3, backoff=0.01))
    result = watcher.run_once()
    assert result.delivered == 1 and result.failed == []
    assert len(hook.requests) == 3
    headers, body = hook.requests[-1]
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Git-Deploy-Delivery"] == body["id"]
    assert (body["target"], body["number"], body["new_status"], body["version"]) == \
        ("prod", 1, "current", "2.0")
    watcher.run_once()
    assert len(hook.requests) == 3


@pytest.mark.parametrize("answers, tries, error", [
    ([404], 1, "HTTP 404"),  # the same request gets the same answer: no retry now
    ([302], 1, "HTTP 302"),  # a redirected POST would lose its body: not followed
    ([500, 502, 503], 3, "HTTP 503"),
])
def test_webhook_failures_wait_for_a_later_pass(repo: Path, prod: Deploy, hook: Hook,
                                                answers: list[int], tries: int,
                                                error: str) -> None:
    from git_deployments.watch.notify import DeliveryPolicy

    prod("subscribe", "prod", "--webhook", hook.url, "--name", "hook")
    prod("start", "prod")
    prod("finish", "prod")
    hook.answers = list(answers)
    clock = FakeClock()
    watcher = make_watcher(repo, clock, policy=DeliveryPolicy(attempts=3, backoff=0.01,
                                                              retry_min=10))
    assert watcher.run_once().failed == ["hook"]
    assert len(hook.requests) == tries
    assert error in watcher.log.text() and "retrying in 10s" in watcher.log.text()
    clock.moment += timedelta(seconds=11)
    assert watcher.run_once().delivered == 1
    assert len(hook.requests) == tries + 1


def test_webhook_that_nobody_answers(repo: Path, prod: Deploy) -> None:
    import socket

    from git_deployments.watch.notify import DeliveryPolicy

    with socket.socket() as sock:  # a port that was free a moment ago: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    prod("subscribe", "prod", "--webhook", f"http://127.0.0.1:{port}/", "--name", "hook")
    prod("start", "prod")
    prod("finish", "prod")
    watcher = make_watcher(repo, policy=DeliveryPolicy(attempts=2, backoff=0.01))
    assert watcher.run_once().failed == ["hook"]
    assert "refused" in watcher.log.text().lower()
