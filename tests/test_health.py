"""Health checks: the target settings and their refusals, the probes against a real loopback
HTTP server and real programs, the result kept in the repository's local state, and the real
watcher opening and resolving an incident from them.

No assertion here is about time except generous deadlines that keep a broken run from hanging;
how soon the watcher acts is measured by bench/bench_health.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conftest import Deploy, git, wait_for

# --- a loopback server whose health is switched by the test -----------------------------------


class Service:
    """An HTTP server on 127.0.0.1:<free port>, answering /health as `mode` says: "ok" (200
    with a body), "down" (503), "hang" (accepts, never answers), "redirect" (302 to /ok), or
    "wrong" (200 without the expected text). It notes when it answered each request."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.answers: list[tuple[float, int]] = []  # (time.time(), status) of each answer
        self.released = threading.Event()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                mode = "ok" if self.path == "/ok" else service.mode
                if mode == "hang":
                    service.released.wait(60)
                    return
                if mode == "redirect":
                    self._answer(302, b"", {"Location": "/ok"})
                elif mode == "down":
                    self._answer(503, b"maintenance")
                elif mode == "wrong":
                    self._answer(200, b"starting up")
                else:
                    self._answer(200, b"status: all good\n")

            def _answer(self, code: int, body: bytes, headers: dict[str, str] | None = None,
                        ) -> None:
                self.send_response(code)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                service.answers.append((time.time(), code))

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/health"

    def __enter__(self) -> Service:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def service() -> Iterator[Service]:
    with Service() as running:
        yield running


# --- settings ------------------------------------------------------------------------------------


def tip(repo: Path, key: str = "prod") -> str | None:
    result = subprocess.run(["git", "rev-parse", "-q", "--verify", f"refs/deployments/{key}"],
                            cwd=repo, capture_output=True, text=True)
    return result.stdout.strip() or None


@pytest.mark.parametrize(("options", "said"), [
    (["--health-url", "javascript:alert(1)"], "expected an http:// or https:// URL"),
    (["--health-url", "ftp://example.com/"], "expected an http:// or https:// URL"),
    (["--health-url", "https://example.com/", "--health-exec", "true"], "not both"),
    (["--health-exec", "true", "--health-every", "10s", "--health-timeout", "20s"],
     "timeout (20s) must not be longer than its interval (10s)"),
    (["--health-exec", "true", "--health-every", "soon"], "invalid duration 'soon'"),
    (["--health-exec", "true", "--health-every", "0"], "invalid duration '0'"),
    (["--health-exec", "true", "--health-timeout", "10m", "--health-every", "1h"],
     "must be between 1s and 5m"),
    (["--health-exec", "true", "--health-failures", "0"], "must be between 1 and 100"),
    (["--health-exec", "check 'unclosed"], "No closing quotation"),
    (["--health-exec", ""], "it is empty"),
    (["--health-exec", "true", "--health-expect", "ok"], "a URL's answer only"),
    (["--health-every", "1m"], "has no health check to change"),
])
def test_a_refused_check_is_one_line_and_nothing_is_written(repo: Path, deploy: Deploy,
                                                            options: list[str],
                                                            said: str) -> None:
    created = deploy("target", "create", "prod", *options, code=1)
    assert created.stderr.startswith("error: ") and said in created.stderr
    assert len(created.stderr.splitlines()) == 1 and created.stdout == ""
    assert tip(repo) is None
    # the same refusal when editing a target that has no check, and its timeline unchanged
    deploy("target", "create", "prod")
    before = tip(repo)
    edited = deploy("target", "edit", "prod", *options, code=1)
    assert said in edited.stderr and len(edited.stderr.splitlines()) == 1
    assert tip(repo) == before


def test_settings_are_merged_shown_and_cleared(repo: Path, deploy: Deploy) -> None:
    deploy("target", "create", "prod", "--health-url", "https://app.example.com/health",
           "--health-expect", "all good", "--health-failures", "2")
    shown = deploy.json("target", "show", "prod")
    assert isinstance(shown, dict)
    assert shown["health"] == {"url": "https://app.example.com/health", "expect": "all good",
                               "exec": None, "every": 30, "timeout": 5, "failures": 2}
    # never probed: the watcher has not run
    assert shown["health_state"]["state"] == "unknown"

    # one setting changed: the rest of the check is kept
    deploy("target", "edit", "prod", "--health-every", "1m")
    shown = deploy.json("target", "show", "prod")
    assert isinstance(shown, dict)
    assert shown["health"]["every"] == 60 and shown["health"]["expect"] == "all good"
    assert shown["health"]["failures"] == 2
    text = deploy("target", "show", "prod").stdout
    assert "GET https://app.example.com/health expecting 'all good', every 1m, timeout 5s, " \
           "incident after 2 failures" in text

    # a program replaces the URL (and its expected text); the interval stays; no shell
    deploy("target", "edit", "prod", "--health-exec", "check-app --port 8080 'a b'")
    shown = deploy.json("target", "show", "prod")
    assert isinstance(shown, dict)
    assert shown["health"] == {"url": None, "expect": None,
                               "exec": ["check-app", "--port", "8080", "a b"], "every": 60,
                               "timeout": 5, "failures": 2}
    before = tip(repo)
    refused = deploy("target", "edit", "prod", "--health-every", "3s", code=1)
    assert refused.stderr == "error: a health check's timeout (5s) must not be longer than " \
                             "its interval (3s)\n"
    refused = deploy("target", "edit", "prod", "--health-off", "--health-every", "1m", code=1)
    assert "give it alone" in refused.stderr and len(refused.stderr.splitlines()) == 1
    assert tip(repo) == before

    deploy("target", "edit", "prod", "--health-off")
    shown = deploy.json("target", "show", "prod")
    assert isinstance(shown, dict)
    assert shown["health"] is None and shown["health_state"] is None
    assert "health check:            off" in deploy("target", "show", "prod").stdout
    # the stored target is what it was before any check (the field is left out at its default)
    assert "health" not in git(repo, "show", "refs/deployments/prod:target.yaml")
    again = deploy("target", "edit", "prod", "--health-off", code=1)
    assert "nothing to change" in again.stderr
    # every change verifies as the server's hook would verify it
    assert deploy("fsck").returncode == 0


def test_a_new_check_that_probes_often_is_cut_off_at_its_interval(deploy: Deploy) -> None:
    deploy("target", "create", "prod", "--health-exec", "true", "--health-every", "2s")
    shown = deploy.json("target", "show", "prod")
    assert isinstance(shown, dict)
    assert (shown["health"]["every"], shown["health"]["timeout"]) == (2, 2)


# --- probes ------------------------------------------------------------------------------------


def test_a_url_probe_against_a_real_server(service: Service) -> None:
    from git_deployments.watch.health import probe_url

    assert probe_url(service.url, None, 2) == (True, "HTTP 200")
    assert probe_url(service.url, "all good", 2) == (True, "HTTP 200")
    service.mode = "wrong"
    assert probe_url(service.url, "all good", 2) == (
        False, "HTTP 200 without 'all good' in its first 64 KiB")
    service.mode = "redirect"
    assert probe_url(service.url, "all good", 2) == (True, "HTTP 200")
    service.mode = "down"
    assert probe_url(service.url, None, 2) == (False, "HTTP 503")
    # a server that accepts and never answers is cut off at the timeout
    service.mode = "hang"
    assert probe_url(service.url, None, 1) == (False, "timed out after 1s")


def test_a_url_nobody_answers_at() -> None:
    import socket

    from git_deployments.watch.health import probe_url

    with socket.socket() as unused:  # a port that was free a moment ago, now closed
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    assert probe_url(f"http://127.0.0.1:{port}/health", None, 2) == (False,
                                                                     "connection refused")
    assert probe_url("http://no-such-host.invalid/", None, 2)[0] is False


def test_the_expected_text_is_looked_for_in_the_first_64_kib_only(tmp_path: Path) -> None:
    from git_deployments.watch.health import probe_url

    class Big(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"x" * (70 * 1024) + b"all good"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Big)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        assert probe_url(url, "all good", 2)[0] is False
        assert probe_url(url, "xxxx", 2) == (True, "HTTP 200")
    finally:
        server.shutdown()
        server.server_close()


def test_program_probes(tmp_path: Path) -> None:
    from git_deployments.core.intake import split_program
    from git_deployments.watch.health import probe_program

    assert probe_program(["true"], 2) == (True, "exit status 0")
    assert probe_program(["false"], 2) == (False, "exit status 1")
    assert probe_program(["sh", "-c", "exit 2"], 2) == (False, "exit status 2")
    assert probe_program(["no-such-program-here"], 2) == (
        False, "cannot run 'no-such-program-here': no such program")
    # never a shell: the separators are words handed to echo
    assert probe_program(split_program(f"echo ok; touch {tmp_path / 'planted'}"), 2)[0]
    assert not (tmp_path / "planted").exists()


def test_a_program_that_outlives_its_timeout_is_killed_with_its_children(
        tmp_path: Path) -> None:
    from git_deployments.watch.health import probe_program

    assert probe_program(["sleep", "30"], 1) == (False, "timed out after 1s")
    pid_file = tmp_path / "child.pid"
    script = f"sleep 30 & echo $! > {pid_file}; wait"
    assert probe_program(["sh", "-c", script], 1) == (False, "timed out after 1s")
    child = int(pid_file.read_text())
    wait_for(lambda: not alive(child), "the probe's child to be gone")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purpose
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def test_a_probe_stopped_by_the_watcher_kills_its_program() -> None:
    from git_deployments.watch.health import probe_program

    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    assert probe_program(["sleep", "30"], 60, cancel=cancel) == (False, "stopped")


# --- the state kept, and the steps between results -----------------------------------------------


def test_the_state_file_round_trips_and_a_bad_one_is_unknown(tmp_path: Path) -> None:
    from git_deployments.watch.health import (
        HealthState,
        read_state,
        state_path,
        write_state,
    )

    assert read_state(tmp_path, "prod") is None
    state = HealthState(False, "2026-05-01T14:00:00Z", "HTTP 503", 2, 0, 4)
    write_state(tmp_path, "prod", state)
    assert read_state(tmp_path, "prod") == state
    path = state_path(tmp_path, "prod")
    assert path == tmp_path / "git-deployments" / "health" / "prod.json"
    data = json.loads(path.read_text())
    assert data == {"format": "git-deployments-health/1", "target": "prod", "healthy": False,
                    "checked_at": "2026-05-01T14:00:00Z", "reason": "HTTP 503",
                    "consecutive_failures": 2, "consecutive_successes": 0, "incident": 4}
    assert [p.name for p in path.parent.iterdir()] == ["prod.json"]  # no temporary left
    for bad in ("{", "[]", json.dumps({**data, "format": "other/1"}),
                json.dumps({**data, "consecutive_failures": -1}),
                json.dumps({**data, "incident": "4"}), "x" * 100_000):
        path.write_text(bad)
        assert read_state(tmp_path, "prod") is None, bad


def test_failures_in_a_row_open_and_as_many_successes_resolve() -> None:
    from git_deployments.watch.health import advance, with_incident

    def run(results: list[bool], state: Any = None, open_incidents: tuple[int, ...] = (),
            ) -> list[tuple[bool, int | None]]:
        steps = []
        for healthy in results:
            step = advance(state, healthy, "r", "2026-05-01T14:00:00Z", 3, open_incidents)
            state = step.state
            if step.open:
                state = with_incident(state, 7)
                open_incidents = (7,)
            if step.resolve is not None:
                state = with_incident(state, None)
                open_incidents = ()
            steps.append((step.open, step.resolve))
        return steps

    # two failures are not yet three; a success starts the count again
    assert run([False, False, True, False, False]) == [(False, None)] * 5
    # the third opens; more failures open nothing more; three successes resolve it
    assert run([False, False, False, False, True, True, False, True, True, True]) == [
        (False, None), (False, None), (True, None), (False, None), (False, None),
        (False, None), (False, None), (False, None), (False, None), (False, 7)]


def test_an_incident_resolved_by_someone_else_is_forgotten() -> None:
    from git_deployments.watch.health import HealthState, advance

    down = HealthState(False, "2026-05-01T14:00:00Z", "HTTP 503", 5, 0, 7)
    # still failing, but incident 7 is no longer open: no second incident at once, and none
    # to resolve; the count starts afresh
    step = advance(down, False, "HTTP 503", "2026-05-01T14:00:05Z", 3, open_incidents=())
    assert (step.open, step.resolve) == (False, None)
    assert step.state.incident is None and step.state.consecutive_failures == 1
    # recovering after someone resolved it: nothing to write
    step = advance(down, True, "HTTP 200", "2026-05-01T14:00:05Z", 1, open_incidents=(3,))
    assert (step.open, step.resolve) == (False, None) and step.state.incident is None


def test_what_status_shows_of_a_kept_result() -> None:
    from git_deployments.core.model import HealthCheck
    from git_deployments.watch.health import HealthState, health_summary

    check = HealthCheck(url="https://app.example.com/health", every=10, failures=3)
    now = datetime(2026, 5, 1, 14, 0, 10, tzinfo=UTC)
    at = "2026-05-01T14:00:05Z"

    def summary(state: HealthState | None, moment: datetime = now) -> str:
        found = health_summary(check, state, moment)
        assert found is not None
        return str(found["summary"])

    assert health_summary(None, None, now) is None
    assert summary(None) == "?"
    assert summary(HealthState(True, at, "HTTP 200", 0, 4, None)) == "ok"
    assert summary(HealthState(False, at, "HTTP 503", 2, 0, None)) == "failing 2/3"
    assert summary(HealthState(False, at, "HTTP 503", 3, 0, 4)) == "DOWN (incident 4)"
    assert summary(HealthState(True, at, "HTTP 200", 0, 1, 4)) == "recovering 1/3 (incident 4)"
    # the watcher stopped: the last result is too old to tell
    assert summary(HealthState(True, at, "HTTP 200", 0, 4, None),
                   now + timedelta(minutes=5)) == "?"


def test_status_has_a_health_column_read_from_the_local_state(repo: Path,
                                                              deploy: Deploy) -> None:
    from git_deployments.watch.health import HealthState, state_path, write_state

    deploy("target", "create", "prod", "--health-url", "https://app.example.com/health")
    deploy("target", "create", "staging")
    common = repo / ".git"
    rows = {row["target"]: row for row in deploy.json("status")}  # type: ignore[attr-defined]
    assert rows["staging"]["health"] is None
    assert rows["prod"]["health"]["state"] == "unknown"
    lines = deploy("status").stdout.splitlines()
    assert lines[0].split()[-1] == "HEALTH"
    assert [line.split()[-1] for line in lines[1:]] == ["?", "-"]

    checked = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    write_state(common, "prod", HealthState(False, checked, "HTTP 503", 2, 0, None))
    rows = {row["target"]: row for row in deploy.json("status")}  # type: ignore[attr-defined]
    health = rows["prod"]["health"]
    assert (health["state"], health["summary"], health["reason"]) == (
        "failing", "failing 2/3", "HTTP 503")
    assert "failing 2/3" in deploy("status").stdout
    assert "health:                  failing 2/3 at " in deploy("target", "show", "prod").stdout

    state_path(common, "prod").write_text("not json")
    rows = {row["target"]: row for row in deploy.json("status")}  # type: ignore[attr-defined]
    assert rows["prod"]["health"]["state"] == "unknown"


# --- the watcher's step: one result, and what it writes -----------------------------------------


IDENTITY = "git-deploy watcher <watcher@test>"


def result(healthy: bool) -> Any:
    from git_deployments.watch.health import ProbeResult

    return ProbeResult(healthy, "HTTP 200" if healthy else "HTTP 503", datetime.now(UTC), 0.01)


def step(repo: Path, healthy: bool) -> Any:
    """One probe's result handed to a watcher, as its prober thread hands it."""
    from git_deployments.core.store import open_store
    from git_deployments.watch.daemon import Watcher

    store = open_store(repo)
    watcher = Watcher(store, identity=IDENTITY, log=lambda level, message: None)
    target, _ = store.snapshot("prod").require()
    assert target.health is not None
    return watcher.health_step(store, "prod", target.health, result(healthy),
                               store.snapshot("prod"))


def incidents(deploy: Deploy) -> list[dict[str, Any]]:
    found = deploy.json("incidents", "prod")
    assert isinstance(found, list)
    return found


def test_an_incident_resolved_by_a_person_is_not_resolved_again(repo: Path,
                                                                deploy: Deploy) -> None:
    deploy("target", "create", "prod", "--health-url", "https://app.example.com/health",
           "--health-failures", "2")
    assert step(repo, False).incident is None
    opened = step(repo, False)
    assert opened.incident == 1 and incidents(deploy)[0]["opened_by"] == IDENTITY
    # still failing: no second incident
    assert step(repo, False).incident == 1 and len(incidents(deploy)) == 1
    deploy("incident", "resolve", "prod", "1", "-m", "known: the database is being moved")
    before = tip(repo)
    # the watcher sees it resolved: it neither resolves it again nor opens another at once
    after = step(repo, False)
    assert (after.incident, after.consecutive_failures) == (None, 1)
    assert step(repo, True).incident is None and step(repo, True).incident is None
    assert tip(repo) == before
    assert [i["resolved_by"] for i in incidents(deploy)] == ["Ada Tester <ada@example.com>"]


def test_the_watcher_finds_its_incident_again_without_its_state(repo: Path,
                                                                deploy: Deploy) -> None:
    from git_deployments.watch.health import state_path

    deploy("target", "create", "prod", "--health-exec", "true", "--health-failures", "2")
    step(repo, False)
    assert step(repo, False).incident == 1
    state_path(repo / ".git", "prod").unlink()  # lost, say, with the machine's disk
    # failing on: the open incident is its own, so no second one
    assert step(repo, False).incident == 1 and len(incidents(deploy)) == 1
    state_path(repo / ".git", "prod").unlink()
    step(repo, True)
    assert step(repo, True).incident is None
    found = incidents(deploy)
    assert len(found) == 1 and found[0]["state"] == "resolved"
    assert found[0]["resolved_by"] == IDENTITY


# --- the real watcher ----------------------------------------------------------------------------


def timeline(repo: Path, since: str) -> list[dict[str, str]]:
    """The changes after `since`, oldest first: author, op and the incident they name."""
    out = git(repo, "log", "--reverse", "--format=%H%x00%an <%ae>%x00%(trailers:key=Deploy-Op,"
              "valueonly,separator=)%x00%(trailers:key=Deploy-Incident,valueonly,separator=)"
              "%x00%ct", f"{since}..refs/deployments/prod")
    changes = []
    for line in out.splitlines():
        if not line.strip():
            continue
        commit, author, op, incident, stamp = (part.strip() for part in line.split("\x00"))
        changes.append({"commit": commit, "by": author, "op": op, "incident": incident,
                        "at": stamp})
    return changes


def test_the_watcher_opens_and_resolves_an_incident_from_a_real_check(
        tmp_path: Path, repo: Path, deploy: Deploy, service: Service) -> None:
    from test_watch_daemon import Daemon

    deploy("target", "create", "prod", "--health-url", service.url, "--health-expect",
           "all good", "--health-every", "1s", "--health-timeout", "1s",
           "--health-failures", "2")
    deploy("finish", "prod", "--commit", "app:release:HEAD", "--version", "1.0")
    before = git(repo, "rev-parse", "refs/deployments/prod")
    daemon = Daemon(repo, tmp_path / "watch.log").start()
    try:
        def health() -> dict[str, Any]:
            rows = deploy.json("status")
            assert isinstance(rows, list)
            found: dict[str, Any] = rows[0]["health"]
            return found

        wait_for(lambda: health()["state"] == "ok", "the first healthy probe")
        service.mode = "down"
        opened = wait_for(lambda: [i for i in deploy.json("incidents", "prod")  # type: ignore
                                   if i["state"] == "open"], "the incident to open")[0]
        assert opened["opened_by"].startswith("git-deploy watcher <")
        assert opened["deployment"] == 1  # the deployment current when it opened
        assert opened["reason"] == f"health check failed 2 times in a row: HTTP 503 from " \
                                   f"{service.url}"
        down = health()
        assert (down["state"], down["incident"]) == ("down", opened["id"])
        assert f"DOWN (incident {opened['id']})" in deploy("status").stdout

        service.mode = "ok"
        resolved = wait_for(lambda: [i for i in deploy.json("incidents", "prod")  # type: ignore
                                     if i["state"] == "resolved"], "the incident to resolve")[0]
        assert resolved["id"] == opened["id"]
        assert resolved["resolved_by"] == opened["opened_by"]
        assert resolved["resolution"] == f"health check passed 2 times in a row: HTTP 200 " \
                                         f"from {service.url}"
        wait_for(lambda: health()["state"] == "ok", "the check to be ok again")
        # a few more healthy probes write nothing
        probes = len(service.answers)
        wait_for(lambda: len(service.answers) >= probes + 2, "two more probes")
        code, _ = daemon.stop(signal.SIGTERM)
        assert code == 0
    finally:
        daemon.kill()
        print(daemon.text())
    changes = timeline(repo, before)
    assert [(c["op"], c["incident"]) for c in changes] == [
        ("incident-open", str(opened["id"])), ("incident-resolve", str(opened["id"]))]
    assert all(c["by"] == opened["opened_by"] for c in changes)
    log = daemon.text()
    assert f"prod: incident {opened['id']} opened: health check failed" in log
    assert f"prod: incident {opened['id']} resolved: health check passed" in log
    # the changes verify as the server's hook would verify them
    assert deploy("fsck").returncode == 0


# --- the server ----------------------------------------------------------------------------------


def test_the_api_and_the_dashboard_show_health(tmp_path: Path, repo: Path,
                                               deploy: Deploy) -> None:
    from test_serve import serve, token

    admin = token(repo, "admin", "view,modify-targets")
    served = serve(repo, log=tmp_path / "serve.log")
    try:
        show_health(repo, deploy, served, admin)
    finally:
        served.stop()


def show_health(repo: Path, deploy: Deploy, served: Any, admin: str) -> None:
    from git_deployments.watch.health import HealthState, write_state

    base = "/api/v1/projects/_"
    created = served.post(f"{base}/targets", {
        "key": "prod", "health_url": "https://app.example.com/health",
        "health_expect": "<b>up</b>", "health_every": "10s", "health_failures": 2}, admin)
    assert created.status == 201, created.body
    assert created.json["health"]["every"] == 10 and created.json["health"]["timeout"] == 5
    refused = served.post(f"{base}/targets", {"key": "qa", "health_url": "javascript:x"}, admin)
    assert refused.status == 400 and "http:// or https://" in refused.json["error"]["message"]
    assert tip(repo, "qa") is None

    first = served.get(f"{base}/status", admin)
    assert first.json[0]["health"]["state"] == "unknown"
    etag = first.headers["etag"]
    # the watcher keeps a result: the kept answer is not served again
    checked = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    write_state(repo / ".git", "prod", HealthState(False, checked, "HTTP 503 <script>", 2, 0, 1))
    second = served.get(f"{base}/status", admin, **{"If-None-Match": etag})
    assert second.status == 200 and second.headers["etag"] != etag
    assert second.json[0]["health"]["summary"] == "DOWN (incident 1)"
    assert second.json == deploy.json("status")
    shown = served.get(f"{base}/targets/prod", admin)
    assert shown.json["health_state"]["state"] == "down"

    # the dashboard says it in words (and a shape), every text from the state escaped
    page = served.get("/projects/app", admin)
    assert page.status == 200, page.body
    html = page.body.decode()
    assert "DOWN (incident 1)" in html and "HTTP 503 &lt;script&gt;" in html
    assert "<script>" not in html
    settings = served.get("/projects/app/targets/prod/settings", admin)
    assert settings.status == 200, settings.body
    html = settings.body.decode()
    assert "GET <span class=\"url\">https://app.example.com/health</span> expecting " \
           "“&lt;b&gt;up&lt;/b&gt;”, every 10s, timeout 5s, incident after 2 failures" in html
    assert "DOWN (incident 1)" in html
