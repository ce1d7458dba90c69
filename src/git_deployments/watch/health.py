"""Health checks: one probe of what a target runs (an http(s) URL, or a program run without a
shell), the last result kept in the repository's local state, and the step from one result to
the next that says when an incident opens or resolves.

The watcher (watch/daemon.py) probes each target with a check from a thread of its own, so a
probe never delays a timeout or a notification; only its transitions are written to the
timeline. The last result lives outside the ref, in `<git common dir>/git-deployments/health/
<target>.json` (beside the tokens and the watcher's cursors: never pushed, never fetched), and
`status` reads it from there. Nothing here imports more than the standard library until a probe
runs.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Collection

    from git_deployments.core.model import HealthCheck, Incident

STATE_FORMAT = "git-deployments-health/1"
BODY_LIMIT = 64 * 1024  # the expected text is looked for this far into the answer
MAX_REDIRECTS = 5
MAX_STATE_BYTES = 64 * 1024
MAX_REASON = 300
USER_AGENT = "git-deploy-health/1"
# a probe of a URL also runs in a thread the prober waits for this much longer than the
# timeout: the sockets' own timeouts end it first, unless the system hangs in name resolution
URL_GRACE = 0.5
EXEC_STEP = 0.1  # how often a running program's probe looks at its deadline and at `cancel`
# a result older than two intervals (and this) tells no more: the watcher is not probing
STALE_SLACK = 10


# --- one probe ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeResult:
    healthy: bool
    reason: str  # "HTTP 200", "HTTP 503", "exit status 2", "timed out after 5s", ...
    finished_at: datetime
    seconds: float

    @property
    def label(self) -> str:
        return "healthy" if self.healthy else "unhealthy"


def probe(check: HealthCheck, cwd: Path | None = None,
          cancel: threading.Event | None = None) -> ProbeResult:
    """Probe once, cut off at the check's timeout."""
    started = time.monotonic()
    if check.url is not None:
        healthy, reason = _url_with_backstop(check.url, check.expect, check.timeout)
    else:
        healthy, reason = probe_program(check.exec or [], check.timeout, cwd, cancel)
    return ProbeResult(healthy, reason[:MAX_REASON], datetime.now(UTC),
                       time.monotonic() - started)


def _url_with_backstop(url: str, expect: str | None, timeout: int) -> tuple[bool, str]:
    answer: list[tuple[bool, str]] = []
    worker = threading.Thread(target=lambda: answer.append(probe_url(url, expect, timeout)),
                              name="health probe", daemon=True)
    worker.start()
    worker.join(timeout + URL_GRACE)
    if not answer:  # left behind: its socket timeouts end it in a while
        return False, f"timed out after {timeout}s"
    return answer[0]


class _TimedOut(Exception):
    pass


def probe_url(url: str, expect: str | None, timeout: int) -> tuple[bool, str]:
    """GET `url` (following a few redirects to http(s) URLs): healthy if it answers 2xx and,
    with `expect`, the first BODY_LIMIT bytes of the answer contain it. Every step of the
    exchange is bounded by what is left of `timeout`."""
    import http.client
    import socket
    import ssl
    from urllib.parse import urljoin, urlsplit

    deadline = time.monotonic() + timeout

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _TimedOut
        return remaining

    host = ""
    try:
        for _ in range(MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            host = parts.hostname or ""
            scheme = parts.scheme.lower()
            if scheme not in ("http", "https") or not host:
                return False, f"not an http(s) URL: {url[:100]}"
            connection: http.client.HTTPConnection
            if scheme == "https":
                connection = http.client.HTTPSConnection(
                    host, parts.port, timeout=left(), context=ssl.create_default_context())
            else:
                connection = http.client.HTTPConnection(host, parts.port, timeout=left())
            try:
                path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                connection.request("GET", path, headers={
                    "User-Agent": USER_AGENT, "Accept": "*/*", "Connection": "close"})
                if connection.sock is not None:
                    connection.sock.settimeout(left())
                response = connection.getresponse()
                status = response.status
                location = response.getheader("Location")
                if status in (301, 302, 303, 307, 308) and location:
                    url = urljoin(url, location)
                    continue
                if not 200 <= status < 300:
                    return False, f"HTTP {status}"
                if not expect:
                    return True, f"HTTP {status}"
                wanted = expect.encode("utf-8")
                body = b""
                while len(body) < BODY_LIMIT:
                    if connection.sock is not None:
                        connection.sock.settimeout(left())
                    chunk = response.read1(min(16384, BODY_LIMIT - len(body)))
                    if not chunk:
                        break
                    body += chunk
                    if wanted in body:
                        return True, f"HTTP {status}"
                if wanted in body[:BODY_LIMIT]:
                    return True, f"HTTP {status}"
                return False, f"HTTP {status} without {expect!r} in its first 64 KiB"
            finally:
                connection.close()
        return False, f"more than {MAX_REDIRECTS} redirects"
    except (_TimedOut, TimeoutError):
        return False, f"timed out after {timeout}s"
    except ConnectionRefusedError:
        return False, "connection refused"
    except ssl.SSLCertVerificationError as exc:
        return False, f"TLS certificate not trusted: {exc.verify_message or exc.reason}"
    except ssl.SSLError as exc:
        return False, f"TLS error: {exc.reason or exc}"
    except socket.gaierror:
        return False, f"cannot resolve host {host!r}"
    except http.client.HTTPException as exc:
        return False, f"not an HTTP answer ({type(exc).__name__})"
    except OSError as exc:
        return False, (exc.strerror or str(exc) or type(exc).__name__).lower()


def probe_program(argv: list[str], timeout: int, cwd: Path | None = None,
                  cancel: threading.Event | None = None) -> tuple[bool, str]:
    """Run `argv` (no shell; stdin, stdout and stderr closed to it) in a session of its own:
    healthy if it exits 0. At the timeout, or when `cancel` is set, its whole process group is
    killed."""
    import signal
    import subprocess

    if not argv:
        return False, "no program to run"
    try:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, cwd=cwd, start_new_session=True)
    except FileNotFoundError:
        return False, f"cannot run {argv[0]!r}: no such program"
    except PermissionError:
        return False, f"cannot run {argv[0]!r}: permission denied"
    except OSError as exc:
        return False, f"cannot run {argv[0]!r}: {(exc.strerror or str(exc)).lower()}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            code = process.wait(timeout=max(0.0, min(EXEC_STEP, deadline - time.monotonic())))
            break
        except subprocess.TimeoutExpired:
            if time.monotonic() < deadline and not (cancel is not None and cancel.is_set()):
                continue
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except OSError:  # gone in the meantime
                pass
            process.wait()
            if cancel is not None and cancel.is_set():
                return False, "stopped"
            return False, f"timed out after {timeout}s"
    if code == 0:
        return True, "exit status 0"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return False, f"killed by {name}"
    return False, f"exit status {code}"


def probe_target(check: HealthCheck) -> str:
    """What a check probes, as a reason names it: the URL, or the program's command line."""
    if check.url is not None:
        return check.url
    from shlex import join

    return join(check.exec or [])


# --- the last result, in the repository's local state ------------------------------------------


@dataclass(frozen=True)
class HealthState:
    """The last probe's result, the streak it is part of, and the incident the watcher opened
    (and has not seen resolved)."""

    healthy: bool | None = None
    checked_at: str | None = None
    reason: str | None = None
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    incident: int | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> HealthState | None:
        """The state `data` holds; None when it is not one (a reader then knows nothing)."""
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            return None
        healthy, checked_at, reason = (data.get(k) for k in ("healthy", "checked_at", "reason"))
        failures, successes, incident = (data.get(k) for k in (
            "consecutive_failures", "consecutive_successes", "incident"))
        counts_ok = all(type(n) is int and n >= 0 for n in (failures, successes))
        if not (isinstance(healthy, bool) and isinstance(checked_at, str) and counts_ok
                and (reason is None or isinstance(reason, str))
                and (incident is None or (type(incident) is int and incident >= 1))):
            return None
        assert isinstance(failures, int) and isinstance(successes, int)  # checked just above
        return cls(healthy, checked_at, reason, failures, successes, incident)


def state_dir(common_dir: Path) -> Path:
    return common_dir / "git-deployments" / "health"


def state_path(common_dir: Path, key: str) -> Path:
    return state_dir(common_dir) / f"{key}.json"


def read_state(common_dir: Path, key: str) -> HealthState | None:
    """The last result kept for `key`; None when there is none or it cannot be read."""
    try:
        with open(state_path(common_dir, key), "rb") as handle:
            raw = handle.read(MAX_STATE_BYTES + 1)
    except OSError:
        return None
    if len(raw) > MAX_STATE_BYTES:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return HealthState.from_json(data)


def write_state(common_dir: Path, key: str, state: HealthState) -> None:
    """Replace the kept result as a whole (a temporary file renamed over it): a reader sees
    the old one or the new one. Not synced to disk: after a crash the next probe writes it
    again, and a reader of a torn file knows nothing, as it does of none."""
    path = state_path(common_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump({"format": STATE_FORMAT, "target": key, **state.as_json()}, handle,
                      indent=1, sort_keys=True)
            handle.write("\n")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


# --- from one result to the next ---------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """What a probe's result makes of the state, and what is to be written to the timeline:
    an incident to open, or the watcher's incident to resolve."""

    state: HealthState
    open: bool = False
    resolve: int | None = None


def advance(state: HealthState | None, healthy: bool, reason: str, checked_at: str,
            failures: int, open_incidents: Collection[int]) -> Step:
    """The streaks after one more result. `failures` in a row open an incident (unless the
    watcher's is still open); as many successes in a row resolve the watcher's incident. One
    the watcher opened that is no longer open was resolved by someone else: it is forgotten and
    the counting starts afresh, so a person's resolution is not undone at once."""
    last = state or HealthState()
    failing, succeeding, incident = (last.consecutive_failures, last.consecutive_successes,
                                     last.incident)
    if incident is not None and incident not in open_incidents:
        failing, succeeding, incident = 0, 0, None
    if healthy:
        failing, succeeding = 0, succeeding + 1
    else:
        failing, succeeding = failing + 1, 0
    new = HealthState(healthy, checked_at, reason, failing, succeeding, incident)
    if not healthy and incident is None and failing >= failures:
        return Step(new, open=True)
    if healthy and incident is not None and succeeding >= failures:
        return Step(new, resolve=incident)
    return Step(new)


def with_incident(state: HealthState | None, incident: int | None) -> HealthState:
    return replace(state or HealthState(), incident=incident)


OPENED = "health check failed"


def opened_reason(state: HealthState, check: HealthCheck) -> str:
    return (f"{OPENED} {state.consecutive_failures} times in a row: {state.reason} from "
            f"{probe_target(check)}")


def resolved_reason(state: HealthState, check: HealthCheck) -> str:
    return (f"health check passed {state.consecutive_successes} times in a row: {state.reason} "
            f"from {probe_target(check)}")


def is_opened_by_check(incident: Incident, identity: str) -> bool:
    """Whether the watcher (`identity`) opened `incident` for a failing health check: how it
    finds its own incident again when its local state was lost."""
    return incident.opened_by == identity and incident.reason.startswith(f"{OPENED} ")


# --- what readers show -------------------------------------------------------------------------


def health_summary(check: HealthCheck | None, state: HealthState | None,
                   now: datetime) -> dict[str, Any] | None:
    """A target's health as `status` answers it: None without a check; else the state
    (ok, failing, down, recovering, or unknown when no result is kept or the last is too old to
    tell), a short `summary` as the HEALTH column shows it, and the last result."""
    if check is None:
        return None
    stale = True
    if state is not None and state.checked_at is not None:
        try:
            checked = datetime.fromisoformat(state.checked_at)
        except ValueError:
            checked = None
        if checked is not None and checked.tzinfo is not None:
            age = (now - checked).total_seconds()
            stale = age > 2 * check.every + STALE_SLACK
    n = check.failures
    if state is None or stale:
        name, summary = "unknown", "?"
    elif state.incident is not None and state.healthy:
        name = "recovering"
        summary = f"recovering {state.consecutive_successes}/{n} (incident {state.incident})"
    elif state.incident is not None:
        name, summary = "down", f"DOWN (incident {state.incident})"
    elif not state.healthy and state.consecutive_failures >= n:
        name, summary = "down", "DOWN"
    elif not state.healthy:
        name, summary = "failing", f"failing {state.consecutive_failures}/{n}"
    else:
        name, summary = "ok", "ok"
    last = state or HealthState()
    return {"state": name, "summary": summary, "stale": state is not None and stale,
            "healthy": last.healthy, "checked_at": last.checked_at, "reason": last.reason,
            "consecutive_failures": last.consecutive_failures,
            "consecutive_successes": last.consecutive_successes, "failures": n,
            "incident": last.incident, "probe": probe_target(check)}
