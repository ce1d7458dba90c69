"""Notifications: subscriptions kept in git config, one event per status change read from the
timelines, and at-least-once delivery to a command or a webhook from cursors under $GIT_DIR.

Each subscription has its own cursor file (per target, the last timeline commit it was given),
so a subscriber that fails stays behind on its own and is retried later, while the others and
the watcher's timeouts carry on.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from git_deployments.core.model import Status
from git_deployments.core.store import Store
from git_deployments.core.timeutil import format_duration, iso
from git_deployments.errors import DeployError, NotFound
from git_deployments.git.program import Finished
from git_deployments.git.repo import CommitInfo, GitRepo

SECTION = "deploy-subscription"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
ALL_TARGETS = "*"
DELETED = "deleted"
EVENT_STATUSES = (*(status.value for status in Status), DELETED)
INCIDENT = "incident"  # an incident opened or resolved
EVENT_KINDS = (*EVENT_STATUSES, INCIDENT)
DEFAULT_ON = frozenset({Status.CURRENT.value})
EXEC_TIMEOUT = 30.0
WEBHOOK_TIMEOUT = 10.0
STATE_FORMAT = 1
MAX_ERROR = 300

# log levels: a problem is always shown, an action unless --quiet, a detail only with --verbose
PROBLEM, ACTION, DETAIL = 0, 1, 2
LogFn = Callable[[int, str], None]
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def _silent(level: int, message: str) -> None:
    del level, message


# --- subscriptions in git config ---------------------------------------------------------------


@dataclass(frozen=True)
class Subscription:
    name: str
    target: str  # a target key, or ALL_TARGETS
    on: frozenset[str] = DEFAULT_ON
    command: str | None = None
    webhook: str | None = None
    timeout: float | None = None
    id: str = ""
    # why the watcher skips it (a hand-edited or half-written config section)
    problem: str | None = None

    @property
    def kind(self) -> str:
        return "exec" if self.command is not None else "webhook"

    @property
    def destination(self) -> str:
        return self.command if self.command is not None else (self.webhook or "")

    @property
    def cursor_name(self) -> str:
        return self.id or self.name

    @property
    def wait(self) -> float:
        default = EXEC_TIMEOUT if self.command is not None else WEBHOOK_TIMEOUT
        return self.timeout or default

    def wants(self, key: str) -> bool:
        return self.target in (ALL_TARGETS, key)

    def matches(self, event: AnyEvent) -> bool:
        if isinstance(event, IncidentEvent):
            return self.wants(event.target) and INCIDENT in self.on
        return self.wants(event.target) and (event.new_status or DELETED) in self.on

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "target": None if self.target == ALL_TARGETS else self.target,
            "all": self.target == ALL_TARGETS, "on": sorted(self.on), "kind": self.kind,
            "exec": self.command, "webhook": self.webhook, "timeout": self.wait,
            "problem": self.problem,
        }


def parse_statuses(text: str) -> frozenset[str]:
    """`current,failed,incident` (or `all`) -> the statuses a subscription is notified of, and
    `incident` for incidents opened or resolved."""
    wanted = {part.strip().lower() for part in text.split(",") if part.strip()}
    if wanted == {"all"}:
        return frozenset(EVENT_KINDS)
    unknown = sorted(wanted - set(EVENT_KINDS))
    if not wanted or unknown:
        raise DeployError(f"invalid status {', '.join(unknown) or repr(text)}: use a comma-"
                          f"separated list of {', '.join(EVENT_KINDS)}, or all")
    return frozenset(wanted)


def check_webhook(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in url):
        raise DeployError(f"invalid --webhook {url!r}: expected an http:// or https:// URL")
    return url


def split_command(command: str) -> list[str]:
    """The argv of an --exec command: split like a shell would, but never run by one."""
    import shlex

    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise DeployError(f"invalid --exec command {command!r}: {exc}") from None
    if not argv:
        raise DeployError("invalid --exec command: it is empty")
    return argv


def _config(git: GitRepo, *args: str, check: bool = True) -> Finished:
    # the git program writes config atomically (config.lock + rename), and reads every scope
    result = git.run_git(["config", *args])
    if check and result.returncode != 0:
        raise DeployError(f"git config failed: {result.stderr.strip() or result.returncode}")
    return result


def read_subscriptions(git: GitRepo) -> list[Subscription]:
    """Every subscription in git config (the repository's, and the user's own)."""
    result = _config(git, "--null", "--get-regexp", rf"^{SECTION}\.", check=False)
    if result.returncode not in (0, 1):  # 1: none at all
        raise DeployError(f"cannot read git config: {result.stderr.strip()}")
    sections: dict[str, dict[str, str]] = {}
    for item in result.stdout.split("\0"):
        name_and_var, _, value = item.partition("\n")
        head, _, var = name_and_var.rpartition(".")
        if not head.startswith(SECTION + "."):
            continue
        sections.setdefault(head[len(SECTION) + 1:], {})[var.lower()] = value
    return [subscription_from(name, values) for name, values in sorted(sections.items())]


def subscription_from(name: str, values: dict[str, str]) -> Subscription:
    """A subscription from its config section; a broken one says why in `problem`."""
    from git_deployments.core.model import key_problem

    target = values.get("target", "")
    base = Subscription(name=name, target=target, id=values.get("id", ""))
    try:
        if not NAME_PATTERN.match(name):
            raise DeployError("invalid subscription name")
        if target != ALL_TARGETS and key_problem(target):
            raise DeployError(f"invalid target {target!r}")
        on = parse_statuses(values["on"]) if "on" in values else DEFAULT_ON
        command, webhook = values.get("exec"), values.get("webhook")
        if (command is None) == (webhook is None):
            raise DeployError("needs exactly one of exec and webhook")
        if command is not None:
            split_command(command)
        if webhook is not None:
            check_webhook(webhook)
        timeout = None
        if values.get("timeout"):
            from git_deployments.core.timeutil import parse_duration

            timeout = float(parse_duration(values["timeout"]))
    except DeployError as exc:
        return replace(base, problem=str(exc))
    return Subscription(name=name, target=target, on=on, command=command, webhook=webhook,
                        timeout=timeout, id=base.id)


def _scope(git: GitRepo, personal: bool) -> list[str]:
    """Where a subscription is written: this repository's config, or the user's own
    (~/.gitconfig, which every repository's watcher reads)."""
    return ["--global"] if personal else ["--file", str(git.git_dir / "config")]


def add_subscription(store: Store, sub: Subscription, personal: bool = False) -> Subscription:
    """Write `sub` to this repository's config (`personal`: the user's own), with its cursor
    starting at today's tips."""
    git = store.git
    if any(existing.name == sub.name for existing in read_subscriptions(git)):
        raise DeployError(f"a subscription named '{sub.name}' exists; choose another --name "
                          f"or 'git deploy unsubscribe {sub.name}' first")
    sub = replace(sub, id=uuid.uuid4().hex)
    # the cursor first, at today's tips: a watcher that sees the config entry then finds where
    # to start, and nothing made before the subscription is sent
    Courier(store, sub).ensure_state(current_tips(store))
    scope = _scope(git, personal)
    values = [("id", sub.id), ("target", sub.target), ("on", ",".join(sorted(sub.on)))]
    if sub.timeout is not None:
        values.append(("timeout", f"{int(sub.timeout)}s"))
    # the destination last: until it is written, the section is incomplete and skipped
    values.append(("exec", sub.command) if sub.command is not None
                  else ("webhook", sub.webhook or ""))
    for var, value in values:
        _config(git, *scope, f"{SECTION}.{sub.name}.{var}", value)
    return sub


def remove_subscription(store: Store, name: str, personal: bool = False) -> Subscription:
    git = store.git
    found = [sub for sub in read_subscriptions(git) if sub.name == name]
    if not found:
        names = ", ".join(sub.name for sub in read_subscriptions(git)) or "none"
        raise NotFound(f"no subscription named '{name}' (subscriptions: {names})")
    result = _config(git, *_scope(git, personal), "--remove-section", f"{SECTION}.{name}",
                     check=False)
    if result.returncode != 0:
        if personal:
            raise DeployError(f"subscription '{name}' is not in your own git config (it is "
                              f"this repository's); remove it without --global")
        raise DeployError(f"subscription '{name}' is not in this repository's config (it "
                          f"comes from your own git config); remove it with "
                          f"'git deploy unsubscribe --global {name}'")
    Courier(store, found[0]).state_path.unlink(missing_ok=True)
    return found[0]


# --- events: one per status change in a timeline commit ----------------------------------------


@dataclass(frozen=True)
class Event:
    target: str
    repository: str | None
    number: int
    version: str | None
    commits: list[dict[str, Any]]
    old_status: str | None
    new_status: str | None
    by: str
    at: str
    timeline_commit: str
    op: str | None
    subject: str

    kind: ClassVar[str] = "status"

    @property
    def id(self) -> str:
        return f"{self.timeline_commit}:{self.number}"

    def describe(self) -> str:
        return (f"{self.target} #{self.number} {self.old_status or 'new'} -> "
                f"{self.new_status or DELETED} [{self.timeline_commit[:10]}]")

    def as_json(self) -> dict[str, Any]:
        return {"event": self.kind, "id": self.id, **asdict(self)}


@dataclass(frozen=True)
class IncidentEvent:
    """An incident opened or resolved (`state` says which it is now)."""

    target: str
    repository: str | None
    incident: int
    state: str  # open, resolved
    deployment: int | None
    reason: str
    resolution: str | None
    opened_at: str
    resolved_at: str | None
    by: str
    at: str
    timeline_commit: str
    op: str | None
    subject: str

    kind: ClassVar[str] = INCIDENT

    @property
    def id(self) -> str:
        return f"{self.timeline_commit}:incident-{self.incident}"

    def describe(self) -> str:
        return (f"{self.target} incident {self.incident} {self.state} "
                f"[{self.timeline_commit[:10]}]")

    def as_json(self) -> dict[str, Any]:
        return {"event": self.kind, "id": self.id, **asdict(self)}


AnyEvent = Event | IncidentEvent


def events_in(store: Store, key: str, info: CommitInfo) -> list[AnyEvent]:
    """The status changes one timeline commit makes: which deployments it moved comes from its
    entry, and what each was before and after from the records on either side; and the
    incident it opened or resolved, as its record says after the change."""
    from git_deployments.core.timeline import entry as timeline_entry

    entry = timeline_entry(key, info)
    numbers = list(dict.fromkeys(t.number for t in entry.transitions))
    if not numbers:
        return _incident_events(store, key, info, entry)
    after = store.snapshot(key, info.id)
    before = store.snapshot(key, info.parents[0]) if info.parents else None
    target = after.target
    events: list[AnyEvent] = []
    for number in numbers:
        was = before.record(number) if before is not None else None
        now = after.record(number)
        old = was.status.value if was is not None else None
        new = now.status.value if now is not None else None
        if old == new:
            continue
        record = now or was  # deleted: what it was comes from the parent
        events.append(Event(
            target=key, repository=target.repository if target else None, number=number,
            version=record.version if record else None,
            commits=[ref.model_dump(mode="json") for ref in record.commits] if record else [],
            old_status=old, new_status=new, by=str(entry.author), at=iso(entry.at),
            timeline_commit=info.id, op=entry.op, subject=entry.subject,
        ))
    return events


def _incident_events(store: Store, key: str, info: CommitInfo, entry: Any) -> list[AnyEvent]:
    if entry.incident is None:
        return []
    after = store.snapshot(key, info.id)
    incident = after.incident(entry.incident)
    if incident is None:
        raise DeployError(f"timeline commit {info.id[:10]} names incident {entry.incident}, "
                          "which its tree does not hold")
    target = after.target
    return [IncidentEvent(
        target=key, repository=target.repository if target else None, incident=incident.id,
        state="open" if incident.is_open else "resolved", deployment=incident.deployment,
        reason=incident.reason, resolution=incident.resolution, opened_at=iso(incident.opened_at),
        resolved_at=iso(incident.resolved_at) if incident.resolved_at else None,
        by=str(entry.author), at=iso(entry.at), timeline_commit=info.id, op=entry.op,
        subject=entry.subject,
    )]


def commits_since(store: Store, key: str, since: str | None,
                  log: LogFn = _silent) -> list[CommitInfo]:
    """Timeline commits after `since` up to the tip, oldest first (all of them when None)."""
    return walk_since(store, key, since, log)[0]


def walk_since(store: Store, key: str, since: str | None,
               log: LogFn = _silent) -> tuple[list[CommitInfo], str | None]:
    """(the commits after `since`, oldest first; the tip they lead to, where a cursor that has
    gone through them stands)."""
    tip = store.git.read_ref(f"refs/deployments/{key}")
    if tip is None or tip == since:
        return [], since
    newer: list[CommitInfo] = []
    for info in store.timeline(key, tip):
        if info.id == since:
            return newer[::-1], tip
        newer.append(info)
    if since is None:
        return newer[::-1], tip
    # `since` is not on the timeline any more (the ref was rewritten): resume after the commit
    # both histories share
    if not store.git.has_object(since):
        log(PROBLEM, f"{key}: the cursor's commit {since[:10]} is gone; resuming at the tip")
        return [], tip
    before = {info.id for info in store.timeline(key, since)}
    fresh = [info for info in newer if info.id not in before]
    log(PROBLEM, f"{key}: the timeline was rewritten; resuming after the shared history "
                 f"({len(fresh)} commits)")
    return fresh[::-1], tip


# --- delivery ----------------------------------------------------------------------------------


class DeliveryFailed(Exception):
    """One delivery did not succeed; the event stays pending for this subscriber."""


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard to try: webhook attempts within one delivery, then the subscriber's backoff."""

    attempts: int = 3
    backoff: float = 1.0  # seconds before the second attempt, doubled after each
    retry_min: float = 5.0  # a failed subscriber waits this long, doubled per failure
    retry_max: float = 600.0

    def retry_after(self, failures: int) -> float:
        return min(self.retry_max, self.retry_min * float(2 ** max(0, failures - 1)))


def payload(event: AnyEvent) -> bytes:
    return (json.dumps(event.as_json(), sort_keys=True, ensure_ascii=False) + "\n").encode()


def run_command(argv: list[str], data: bytes, timeout: float, cwd: Path,
                started: Callable[[subprocess.Popen[bytes] | None], None]) -> None:
    """Run `argv` without a shell, the event on its stdin; fail on a non-zero exit."""
    try:
        # its own session: a Ctrl-C meant for the watcher does not hit a command mid-way
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, cwd=cwd, start_new_session=True)
    except OSError as exc:
        raise DeliveryFailed(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    started(proc)
    try:
        _, err = proc.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise DeliveryFailed(f"{argv[0]} did not finish within "
                             f"{format_duration(int(timeout))}") from None
    finally:
        started(None)
    if proc.returncode != 0:
        lines = err.decode("utf-8", "replace").strip().splitlines()
        tail = f": {lines[-1][:MAX_ERROR]}" if lines else ""
        how = f"was killed by signal {-proc.returncode}" if proc.returncode < 0 else \
            f"exited with {proc.returncode}"
        raise DeliveryFailed(f"{argv[0]} {how}{tail}")


def post_json(url: str, data: bytes, event_id: str, timeout: float, policy: DeliveryPolicy,
              stop: threading.Event, kind: str = "status") -> None:
    """POST the event; retry connection errors, 5xx, 408 and 429 with backoff."""
    import http.client
    import urllib.error
    import urllib.request

    from git_deployments import __version__

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        # a redirected POST would silently become a GET without the event
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    error = "not attempted"
    for attempt in range(max(1, policy.attempts)):
        request = urllib.request.Request(url, data=data, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": f"git-deploy/{__version__}",
            "X-Git-Deploy-Event": kind, "X-Git-Deploy-Delivery": event_id,
        })
        try:
            with opener.open(request, timeout=timeout) as response:
                response.read(65536)
                return
        except urllib.error.HTTPError as exc:
            error = f"HTTP {exc.code} {exc.reason}"
            if 300 <= exc.code < 500 and exc.code not in (408, 429):
                break  # the same request will get the same answer now; later, maybe not
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", None) or exc
            error = str(reason) or type(exc).__name__
        if attempt + 1 < policy.attempts and stop.wait(policy.backoff * 2 ** attempt):
            break
    raise DeliveryFailed(f"webhook {url}: {error}"[:MAX_ERROR])


# --- cursors -----------------------------------------------------------------------------------


def watch_dir(git: GitRepo) -> Path:
    return git.git_dir / "git-deployments" / "watch"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Replace `path` as a whole, durably: a crash leaves the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: Path, log: LogFn = _silent) -> dict[str, Any] | None:
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        log(PROBLEM, f"ignoring unreadable {path}")
        return None
    return data


def reason(exc: BaseException) -> str:
    """One line saying what went wrong: a refusal's message, or else the exception's kind too
    (something this program did not foresee)."""
    text = str(exc).strip()
    text = text.splitlines()[0][:300] if text else ""
    if isinstance(exc, DeployError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def current_tips(store: Store) -> dict[str, str]:
    return {name.removeprefix("refs/deployments/"): tip
            for name, tip in store.git.list_refs("refs/deployments/")}


class Cursor:
    """What the watcher has gone through: per target, the last timeline commit it handed to
    the subscribers. A subscription found without a cursor of its own starts here."""

    def __init__(self, git: GitRepo) -> None:
        self.path = watch_dir(git) / "cursor.json"

    def read(self) -> dict[str, str] | None:
        data = read_json(self.path)
        targets = data.get("targets") if data else None
        return dict(targets) if isinstance(targets, dict) else None

    def write(self, targets: dict[str, str]) -> None:
        write_json_atomic(self.path, {"format": STATE_FORMAT, "targets": targets})


@dataclass
class SubscriberState:
    targets: dict[str, str] = field(default_factory=dict)
    # a commit whose events were only partly delivered: [commit, how many]
    partial: dict[str, list[Any]] = field(default_factory=dict)
    delivered: int = 0
    failures: int = 0
    last_error: str | None = None
    retry_at: str | None = None

    def as_json(self, name: str) -> dict[str, Any]:
        return {"format": STATE_FORMAT, "name": name, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SubscriberState:
        state = cls()
        for name in state.__dict__:
            if name in data:
                setattr(state, name, data[name])
        return state


class Courier:
    """Delivers one subscription's events in timeline order, from its own cursor."""

    def __init__(self, store: Store, sub: Subscription, policy: DeliveryPolicy | None = None,
                 log: LogFn = _silent, clock: Clock = utc_now) -> None:
        self.store = store
        self.sub = sub
        self.policy = policy or DeliveryPolicy()
        self.log = log
        self.clock = clock
        self.state_path = watch_dir(store.git) / "subscribers" / f"{sub.cursor_name}.json"
        self._child: subprocess.Popen[bytes] | None = None
        self._child_lock = threading.Lock()

    # --- state ---

    def load(self) -> SubscriberState:
        data = read_json(self.state_path, self.log)
        if data is not None:
            return SubscriberState.from_json(data)
        start = Cursor(self.store.git).read()
        return SubscriberState(targets=start if start is not None else current_tips(self.store))

    def save(self, state: SubscriberState) -> None:
        write_json_atomic(self.state_path, state.as_json(self.sub.name))

    def ensure_state(self, start: dict[str, str] | None = None) -> None:
        """Fix where a new subscription starts (`start`, else where the watcher's own cursor
        is), before anything else moves that cursor."""
        if not self.state_path.exists():
            self.save(SubscriberState(targets=start) if start is not None else self.load())

    def retry_in(self, state: SubscriberState | None = None) -> float:
        """Seconds until a failed subscriber may be tried again (0: now)."""
        state = state or self.load()
        if not state.retry_at:
            return 0.0
        moment = datetime.fromisoformat(state.retry_at)
        return max(0.0, (moment - self.clock()).total_seconds())

    def pending(self) -> int:
        """How many events this subscriber has not been given yet."""
        state = self.load()
        count = 0
        for key in self.store.keys():
            if not self.sub.wants(key):
                continue
            skip = self._skip(state, key)
            for info in commits_since(self.store, key, state.targets.get(key)):
                try:
                    events = [e for e in events_in(self.store, key, info) if self.sub.matches(e)]
                except DeployError:
                    continue  # skipped when delivering too
                count += len(events[skip.get(info.id, 0):])
        return count

    @staticmethod
    def _skip(state: SubscriberState, key: str) -> dict[str, int]:
        partial = state.partial.get(key)
        return {partial[0]: int(partial[1])} if partial else {}

    # --- delivering ---

    def run(self, stop: threading.Event | None = None) -> bool:
        """Deliver everything pending; True when caught up, False when a delivery failed (or
        the subscriber is still waiting to retry, or `stop` was set)."""
        stop = stop or threading.Event()
        state = self.load()
        if self.retry_in(state) > 0:
            return False
        before = state.as_json(self.sub.name)
        try:
            for key in self.store.keys():
                if not self.sub.wants(key):
                    continue
                try:
                    caught_up = self._catch_up(key, state, stop)
                except Exception as exc:  # noqa: BLE001 - one bad target never stops the others
                    self.log(PROBLEM, f"{self.sub.name}: skipped target '{key}': {reason(exc)}")
                    continue
                if not caught_up:
                    return False
        finally:
            if state.as_json(self.sub.name) != before or not self.state_path.exists():
                self.save(state)
        if state.failures:
            self.log(ACTION, f"{self.sub.name}: delivering again after "
                             f"{state.failures} failed attempt(s)")
            state.failures, state.last_error, state.retry_at = 0, None, None
            self.save(state)
        return True

    def _catch_up(self, key: str, state: SubscriberState, stop: threading.Event) -> bool:
        skip = self._skip(state, key)
        commits, tip = walk_since(self.store, key, state.targets.get(key), self.log)
        for info in commits:
            try:
                events = [e for e in events_in(self.store, key, info) if self.sub.matches(e)]
            except Exception as exc:  # noqa: BLE001 - described below, and passed
                # an unreadable commit cannot be described; holding everything back for it
                # would stop this subscriber for good
                self.log(PROBLEM, f"{key}: skipping timeline commit {info.id[:10]}: "
                                  f"{reason(exc)}")
                events = []
            done = skip.get(info.id, 0)
            for event in events[done:]:
                if stop.is_set():
                    return False
                try:
                    self.deliver(event, stop)
                except DeliveryFailed as exc:
                    if stop.is_set():
                        # cut short by shutdown, not the subscriber's fault: pending, no backoff
                        self.log(DETAIL, f"{self.sub.name}: {event.describe()} stays pending")
                        return False
                    self._failed(state, event, str(exc))
                    return False
                done += 1
                state.partial[key] = [info.id, done]
                state.delivered += 1
                self.save(state)
                self.log(ACTION, f"notified {self.sub.name}: {event.describe()}")
            state.targets[key] = info.id
            state.partial.pop(key, None)
        if tip is not None:
            state.targets[key] = tip
        return True

    def _failed(self, state: SubscriberState, event: AnyEvent, error: str) -> None:
        state.failures += 1
        state.last_error = error
        delay = self.policy.retry_after(state.failures)
        state.retry_at = iso(self.clock() + timedelta(seconds=delay))
        self.save(state)
        self.log(PROBLEM, f"{self.sub.name}: could not deliver {event.describe()}: {error}; "
                          f"retrying in {format_duration(max(1, int(delay)))}")

    def deliver(self, event: AnyEvent, stop: threading.Event) -> None:
        data = payload(event)
        if self.sub.command is not None:
            git = self.store.git
            run_command(split_command(self.sub.command), data, self.sub.wait,
                        git.workdir or git.git_dir, self._track)
        else:
            post_json(self.sub.webhook or "", data, event.id, self.sub.wait, self.policy, stop,
                      event.kind)

    def _track(self, child: subprocess.Popen[bytes] | None) -> None:
        with self._child_lock:
            self._child = child

    def kill(self) -> None:
        """Stop a command that is running now (the watcher is shutting down)."""
        with self._child_lock:
            if self._child is not None and self._child.poll() is None:
                self._child.kill()


def describe_state(courier: Courier) -> dict[str, Any]:
    """A subscription's delivery state, for `git deploy subscriptions`."""
    state = courier.load()
    return {"delivered": state.delivered, "failures": state.failures,
            "last_error": state.last_error, "retry_at": state.retry_at}
