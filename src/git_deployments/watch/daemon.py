"""The watcher: applies the targets' hanging and failed timeouts through the normal write path,
hands every new status change to the subscribers, and probes the targets' health checks.

`Watcher.run_once(now)` is one pass (what `git deploy sweep` runs, and what tests drive with
their own clock); `Watcher.run(stop)` is the daemon: it sleeps on the ref storage (watchfiles)
until something changes or the next deadline comes, and delivers from one thread per
subscription so that a slow subscriber holds up nobody. Each target with a health check is
probed from a thread of its own on its own interval (watch/health.py), so a probe never delays
a timeout or a delivery; the probers write only incidents opened and resolved.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from git_deployments.core import machine
from git_deployments.core.model import MAX_TEXT, HealthCheck
from git_deployments.core.store import Store, TreeSnapshot, open_store
from git_deployments.core.timeutil import format_duration, iso, later
from git_deployments.errors import DeployError, NotFound, RuleViolation
from git_deployments.git.repo import GitRepo
from git_deployments.watch.health import (
    HealthState,
    ProbeResult,
    advance,
    is_opened_by_check,
    opened_reason,
    probe,
    probe_target,
    read_state,
    resolved_reason,
    with_incident,
    write_state,
)
from git_deployments.watch.notify import (
    ACTION,
    DETAIL,
    PROBLEM,
    Clock,
    Courier,
    Cursor,
    DeliveryPolicy,
    LogFn,
    Subscription,
    commits_since,
    current_tips,
    events_in,
    read_subscriptions,
    reason,
    utc_now,
    watch_dir,
)

ERROR_RETRY = 30.0  # a target whose timeout could not be written is looked at again after this
STEP_MS = 200  # how often the file watcher looks at its queue of changes and at `stop`
DEBOUNCE_MS = 400  # changes arriving together (a lock file, then the ref) make one pass
WAKE_MARGIN = 0.02  # wake just after a deadline, never just before it
STOP_GRACE = 0.5  # how long shutdown waits for deliveries in progress


def watcher_identity() -> str:
    """Who the watcher's changes are attributed to."""
    host = "".join(c for c in socket.gethostname() if c.isalnum() or c in ".-") or "localhost"
    return f"git-deploy watcher <watcher@{host}>"


class Log:
    """One line per action on stderr, stamped; `level` 0 = problems only, 2 = details too."""

    def __init__(self, level: int = ACTION, stream: TextIO | None = None,
                 clock: Clock = utc_now) -> None:
        self.level = level
        self.stream = stream
        self.clock = clock
        self.lock = threading.Lock()

    def __call__(self, level: int, message: str) -> None:
        if level > self.level:
            return
        stream = self.stream or sys.stderr
        with self.lock:
            stream.write(f"{iso(self.clock())} {message}\n")
            stream.flush()


# --- one watcher per repository ----------------------------------------------------------------


@contextmanager
def instance_lock(git: GitRepo) -> Iterator[None]:
    """Held by `watch` and `sweep`: a second one refuses instead of racing the first."""
    from filelock import FileLock
    from filelock import Timeout as LockTimeout

    root = watch_dir(git)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DeployError(f"cannot write to the repository ({root}): "
                          f"{exc.strerror or exc}") from None
    pid_file = root / "pid"
    lock = FileLock(str(root / "lock"), timeout=0)
    try:
        lock.acquire()
    except LockTimeout:
        try:
            pid = pid_file.read_text().strip()
        except OSError:
            pid = "?"
        raise DeployError(f"a watcher is already running for this repository (pid {pid}); "
                          "it applies the timeouts and delivers the notifications itself") \
            from None
    try:
        pid_file.write_text(f"{os.getpid()}\n")
        yield
    finally:
        try:
            pid_file.unlink(missing_ok=True)
        finally:
            lock.release()


def ref_storage(git: GitRepo) -> Path:
    """The directory holding the refs (a worktree's refs/deployments live in the common one)."""
    common = git.git_dir / "commondir"
    if common.is_file():
        return (git.git_dir / common.read_text().strip()).resolve()
    return git.git_dir


class RefWatch:
    """Sleeps until the ref storage or the config changes: loose refs under refs/deployments,
    packed-refs (replaced by a rename in $GIT_DIR), a reftable directory, and the config file
    where subscriptions live. Watches are not recursive: nothing else in $GIT_DIR wakes us
    beyond a cheap look at the path."""

    def __init__(self, git_dir: Path) -> None:
        self.git_dir = git_dir
        self.deployments = git_dir / "refs" / "deployments"
        self.reftable = git_dir / "reftable"
        self._notify: Any = None
        self._paths: list[str] = []

    def paths(self) -> list[str]:
        paths = [self.git_dir, self.git_dir / "refs", self.deployments]
        if self.reftable.is_dir():
            paths.append(self.reftable)
        return [str(p) for p in paths]

    def _open(self) -> None:
        from watchfiles._rust_notify import RustNotify

        # git keeps refs/deployments once it exists (pack-refs spares refs/*/); an empty one
        # is harmless and lets us watch it before the first target is created
        self.deployments.mkdir(parents=True, exist_ok=True)
        self.close()
        self._paths = self.paths()
        self._notify = RustNotify(self._paths, False, False, 0, False, False)

    def wait(self, timeout: float | None, stop: threading.Event) -> bool:
        """Block until a relevant change (True), the timeout or `stop` (False)."""
        if self._notify is None or not self.deployments.is_dir() or self.paths() != self._paths:
            self._open()
        timeout_ms = 0 if timeout is None else max(1, int(timeout * 1000))
        result = self._notify.watch(DEBOUNCE_MS, STEP_MS, timeout_ms, stop)
        if isinstance(result, str):  # "timeout", "stop" or "signal"
            return False
        return any(self.relevant(path) for _, path in result)

    def relevant(self, path: str) -> bool:
        here = Path(path)
        if here.parent == self.git_dir:
            return here.name.startswith(("packed-refs", "config", "reftable"))
        return here == self.deployments or self.deployments in here.parents or \
            self.reftable in here.parents

    def close(self) -> None:
        if self._notify is not None:
            self._notify.close()
            self._notify = None


# --- the watcher -------------------------------------------------------------------------------


@dataclass
class TimedOut:
    target: str
    number: int
    old: str
    new: str
    at: datetime
    timeline_commit: str

    def as_json(self) -> dict[str, Any]:
        return {"target": self.target, "number": self.number, "from": self.old, "to": self.new,
                "at": iso(self.at), "timeline_commit": self.timeline_commit}


@dataclass
class PassResult:
    now: datetime
    timeouts: list[TimedOut] = field(default_factory=list)
    next_deadline: datetime | None = None
    delivered: int = 0
    failed: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"now": iso(self.now), "timeouts": [t.as_json() for t in self.timeouts],
                "next_deadline": iso(self.next_deadline) if self.next_deadline else None,
                "delivered": self.delivered, "failed_subscriptions": self.failed}


def _whole_second(moment: datetime) -> datetime:
    # records keep seconds; deciding on the same value the write records keeps the machine's
    # re-check and ours in agreement
    return moment.astimezone(UTC).replace(microsecond=0)


class Watcher:
    def __init__(self, store: Store, *, clock: Clock = utc_now, log: LogFn | None = None,
                 policy: DeliveryPolicy | None = None, identity: str | None = None) -> None:
        self.store = store
        self.clock = clock
        self.log: LogFn = log or Log(clock=clock)
        self.policy = policy or DeliveryPolicy()
        self.identity = identity or watcher_identity()
        self._skipped: dict[str, str] = {}  # target -> why its last pass failed (said once)

    # --- timeouts ---

    def apply_timeouts(self, now: datetime) -> PassResult:
        """Apply every timeout due at `now`; the result says when the next one falls due."""
        now = _whole_second(now)
        result = PassResult(now=now)
        deadlines = []
        for key in self.store.keys():
            try:
                deadline = self._target_timeouts(key, now, result)
            except Exception as exc:  # noqa: BLE001 - one bad target never stops the others
                self._skip(key, f"cannot apply its timeouts: {reason(exc)}")
                deadline = later(now, ERROR_RETRY)
            else:
                self._skipped.pop(key, None)
            if deadline is not None:
                deadlines.append(deadline)
        result.next_deadline = min(deadlines, default=None)
        return result

    def _skip(self, key: str, why: str) -> None:
        """Log that `key` is skipped, once for as long as the reason stays the same."""
        if self._skipped.get(key) != why:
            self._skipped[key] = why
            self.log(PROBLEM, f"{key}: skipped: {why}")

    def _target_timeouts(self, key: str, now: datetime, result: PassResult) -> datetime | None:
        from git_deployments.core import intake
        from git_deployments.core.model import Timeout

        # at most hanging, then failed; a third round means the write and the rules disagree
        for _ in range(3):
            snap = self.store.snapshot(key)
            target, index = snap.require()
            record = snap.record(index.in_flight) if index.in_flight is not None else None
            if record is None:
                return None
            due = machine.is_due(record, target, now)
            if due is None:
                return machine.next_deadline(record, target)
            request = intake.new_request(Timeout, self.store.git, key, at=now, by=self.identity,
                                         number=record.number, status=due)
            try:
                written = self.store.write(request)
            except (RuleViolation, NotFound) as exc:
                # it changed between our read and the write lock (finished, say): nothing to do
                self.log(DETAIL, f"{key} #{record.number}: not {due} after all ({exc})")
                continue
            changed = written.record
            reason = changed.history[-1].reason if changed is not None else None
            result.timeouts.append(TimedOut(key, record.number, str(record.status), str(due),
                                            now, written.commit))
            self.log(ACTION, f"{key} #{record.number}: {record.status} -> {due}"
                             f"{f' ({reason})' if reason else ''} [{written.commit[:10]}]")
        self.log(PROBLEM, f"{key}: its timeout keeps being refused; trying again later")
        return later(now, ERROR_RETRY)

    # --- notifications ---

    def subscriptions(self) -> list[Subscription]:
        subs = []
        for sub in read_subscriptions(self.store.git):
            if sub.problem:
                self.log(DETAIL, f"subscription '{sub.name}' skipped: {sub.problem}")
            else:
                subs.append(sub)
        return subs

    def courier(self, sub: Subscription, store: Store | None = None) -> Courier:
        return Courier(store or self.store, sub, self.policy, self.log, self.clock)

    def note_tips(self) -> None:
        """Move the watcher's own cursor to the tips (new subscriptions start there), saying
        what changed since the last pass."""
        cursor = Cursor(self.store.git)
        seen = cursor.read()
        tips = current_tips(self.store)
        if seen == tips:
            return
        for key, tip in tips.items():
            since = seen.get(key) if seen is not None else tip
            if since == tip:
                continue
            try:
                self._note(key, since)
            except Exception as exc:  # noqa: BLE001 - one bad target never stops the others
                self.log(PROBLEM, f"{key}: cannot follow its timeline: {reason(exc)}")
        cursor.write(tips)

    def _note(self, key: str, since: str | None) -> None:
        for info in commits_since(self.store, key, since, self.log):
            try:
                changes = [e.describe() for e in events_in(self.store, key, info)]
            except Exception as exc:  # noqa: BLE001 - described as unreadable, and passed
                changes = [f"unreadable: {reason(exc)}"]
            subject = info.message.partition("\n")[0]
            self.log(DETAIL, f"noticed {subject} by {info.author.name} [{info.id[:10]}]"
                             f"{': ' if changes else ''}{'; '.join(changes)}")

    def deliver_all(self, result: PassResult, subs: list[Subscription]) -> None:
        for sub in subs:
            courier = self.courier(sub)
            before = courier.load().delivered
            try:
                caught_up = courier.run()
            except DeployError as exc:
                self.log(PROBLEM, f"{sub.name}: {exc}")
                caught_up = False
            result.delivered += courier.load().delivered - before
            if not caught_up:
                result.failed.append(sub.name)

    # --- one pass, and the daemon ---

    def run_once(self, now: datetime | None = None) -> PassResult:
        """Apply what is due at `now` (default: the clock), then deliver what is pending."""
        result = self.apply_timeouts(now if now is not None else self.clock())
        subs = self.subscriptions()
        for sub in subs:
            self.courier(sub).ensure_state()
        self.note_tips()
        self.deliver_all(result, subs)
        return result

    def run(self, stop: threading.Event) -> None:
        """The daemon: pass, sleep until a change or the next deadline, until `stop` is set."""
        watch = RefWatch(ref_storage(self.store.git))
        couriers: dict[Subscription, _CourierThread] = {}
        probers: dict[str, _ProbeThread] = {}
        self.log(ACTION, f"watching {self.store.git.git_dir}")
        announced: datetime | None = None
        try:
            while not stop.is_set():
                deadline = self._daemon_pass(couriers, probers)
                if deadline is not None and deadline != announced:
                    self.log(DETAIL, f"next deadline {iso(deadline)}")
                announced = deadline
                while not stop.is_set():
                    timeout = None
                    if deadline is not None:
                        timeout = (deadline - self.clock()).total_seconds() + WAKE_MARGIN
                        if timeout <= 0:
                            break
                    if watch.wait(timeout, stop):
                        break
                    if deadline is not None and self.clock() >= deadline:
                        break
        finally:
            import time

            watch.close()
            # the probers are told first, and wait no longer than the couriers' grace
            grace = time.monotonic() + STOP_GRACE
            for prober in probers.values():
                prober.stop()
            self._stop_couriers(couriers)
            self._stop_probers(probers, grace)
            self.log(ACTION, "stopped")

    def _daemon_pass(self, couriers: dict[Subscription, _CourierThread],
                     probers: dict[str, _ProbeThread] | None = None) -> datetime | None:
        """Timeouts first, then the couriers are told to look and the probers follow the
        targets' checks; returns the next deadline."""
        result = self.apply_timeouts(self.clock())
        deadline = result.next_deadline
        try:
            self._sync_couriers(couriers)
            if probers is not None:
                self._sync_probers(probers)
            self.note_tips()
        except (DeployError, OSError) as exc:
            # the daemon outlives a bad moment (a full disk, a half-copied repository)
            self.log(PROBLEM, f"cannot follow the timelines: {exc}; trying again later")
            retry = later(self.clock(), ERROR_RETRY)
            deadline = min(deadline, retry) if deadline is not None else retry
        for thread in couriers.values():
            thread.wake.set()
        return deadline

    def _sync_couriers(self, couriers: dict[Subscription, _CourierThread]) -> None:
        try:
            wanted = set(self.subscriptions())
        except DeployError as exc:
            self.log(PROBLEM, f"cannot read the subscriptions: {exc}")
            return
        gone = [sub for sub in couriers if sub not in wanted]
        self._stop_couriers({sub: couriers.pop(sub) for sub in gone})
        for sub in wanted - set(couriers):
            self.courier(sub).ensure_state()
            couriers[sub] = _CourierThread(self, sub)
            self.log(DETAIL, f"delivering to '{sub.name}' ({sub.kind} {sub.destination})")

    def _stop_couriers(self, couriers: dict[Subscription, _CourierThread]) -> None:
        import time

        for thread in couriers.values():
            thread.stop()
        # deliveries in progress may finish (and move their cursor) within the grace time...
        deadline = time.monotonic() + STOP_GRACE
        for thread in couriers.values():
            thread.thread.join(max(0.0, deadline - time.monotonic()))
        # ...after it they are abandoned: their event stays pending for the next start
        for thread in couriers.values():
            if thread.thread.is_alive() and thread.courier is not None:
                thread.courier.kill()


    # --- health checks ---

    def checks(self) -> dict[str, HealthCheck]:
        """The health check of every active target that has one."""
        found = {}
        for key in self.store.keys():
            try:
                target = self.store.snapshot(key).target
            except Exception:  # noqa: BLE001 - its timeouts' pass names what is wrong with it
                continue
            if target is not None and target.health is not None and not target.archived:
                found[key] = target.health
        return found

    def _sync_probers(self, probers: dict[str, _ProbeThread]) -> None:
        """One prober per check; an edited check starts afresh at once (a thread asleep for
        the old interval would not notice a shorter one until it woke)."""
        wanted = self.checks()
        for key in [key for key, thread in probers.items()
                    if wanted.get(key) != thread.check or not thread.thread.is_alive()]:
            self._stop_probers({key: probers.pop(key)})
        for key in sorted(set(wanted) - set(probers)):
            probers[key] = _ProbeThread(self, key, wanted[key])
            self.log(DETAIL, f"{key}: probing {probe_target(wanted[key])} every "
                             f"{format_duration(wanted[key].every)}")

    def _stop_probers(self, probers: dict[str, _ProbeThread],
                      deadline: float | None = None) -> None:
        """Tell the probers to stop, and wait for them until `deadline` (time.monotonic();
        default: STOP_GRACE from now). A program being probed is killed at once; a URL's probe
        left running ends at its timeout, and its result is dropped."""
        import time

        for thread in probers.values():
            thread.stop()
        if deadline is None:
            deadline = time.monotonic() + STOP_GRACE
        for thread in probers.values():
            thread.thread.join(max(0.0, deadline - time.monotonic()))

    def health_step(self, store: Store, key: str, check: HealthCheck, result: ProbeResult,
                    snap: TreeSnapshot) -> HealthState:
        """Keep one probe's result; write the incident it opens or resolves, if any. `snap`
        is the target as it is after the probe."""
        common = store.git.common_dir
        before = read_state(common, key)
        _, index = snap.require()
        if (before is None or before.incident is None) and index.open_incidents:
            # the state was lost (or never written after the incident's write): the incident
            # this check opened is found by its author and reason, so no second one opens
            mine = [i.id for i in snap.open_incidents() if is_opened_by_check(i, self.identity)]
            if mine:
                before = with_incident(before, mine[-1])
                self.log(DETAIL, f"{key}: incident {mine[-1]} is the health check's own")
        step = advance(before, result.healthy, result.reason, iso(result.finished_at),
                       check.failures, index.open_incidents)
        state = step.state
        if before is not None and before.incident is not None and state.incident is None:
            self.log(ACTION, f"{key}: incident {before.incident} was resolved meanwhile; "
                             "counting failures afresh")
        if before is None or before.healthy != result.healthy:
            self.log(DETAIL, f"{key}: {result.label} ({result.reason})")
        if step.open:
            state = with_incident(state, self._open_incident(store, key, check, state))
        elif step.resolve is not None:
            if self._resolve_incident(store, key, check, step.resolve, state):
                state = with_incident(state, None)
        write_state(common, key, state)
        return state

    def _open_incident(self, store: Store, key: str, check: HealthCheck,
                       state: HealthState) -> int | None:
        from git_deployments.core import intake
        from git_deployments.core.model import OpenIncident

        why = opened_reason(state, check)
        request = intake.new_request(OpenIncident, store.git, key, at=self.clock(),
                                     by=self.identity, reason=why[:MAX_TEXT])
        try:
            written = store.write(request)
        except DeployError as exc:
            self.log(PROBLEM, f"{key}: cannot open an incident: {reason(exc)}; trying again "
                              "after the next probe")
            return None
        number = written.change.incident
        self.log(ACTION, f"{key}: incident {number} opened: {why} [{written.commit[:10]}]")
        return number

    def _resolve_incident(self, store: Store, key: str, check: HealthCheck, number: int,
                          state: HealthState) -> bool:
        """True once the incident is resolved (by this write, or by someone before it)."""
        from git_deployments.core import intake
        from git_deployments.core.model import ResolveIncident

        why = resolved_reason(state, check)
        request = intake.new_request(ResolveIncident, store.git, key, at=self.clock(),
                                     by=self.identity, id=number, reason=why[:MAX_TEXT])
        try:
            written = store.write(request)
        except (RuleViolation, NotFound) as exc:
            # resolved (or deleted) by someone between our read and the write: nothing to do
            self.log(DETAIL, f"{key}: incident {number} not resolved by the watcher ({exc})")
            return True
        except DeployError as exc:
            self.log(PROBLEM, f"{key}: cannot resolve incident {number}: {reason(exc)}; "
                              "trying again after the next probe")
            return False
        self.log(ACTION, f"{key}: incident {number} resolved: {why} [{written.commit[:10]}]")
        return True


class _ProbeThread:
    """One target's health check, probed every interval from a thread of its own with its own
    repository handle. It reads the target again before each probe: archived, or without a
    check, it ends (the daemon's pass starts a new thread when one is set again, and replaces
    this one when the check is edited)."""

    def __init__(self, watcher: Watcher, key: str, check: HealthCheck) -> None:
        self.watcher = watcher
        self.key = key
        self.check = check  # as the daemon's pass saw it: a different one starts a new thread
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=f"probe {key}", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        import time

        log = self.watcher.log
        try:
            store = open_store(self.watcher.store.git.git_dir)
        except DeployError as exc:
            log(PROBLEM, f"{self.key}: cannot probe: {exc}")
            return
        cwd = store.git.workdir or store.git.git_dir
        problem: str | None = None
        while not self.stopping.is_set():
            started = time.monotonic()
            interval = float(ERROR_RETRY)
            try:
                target, _ = store.snapshot(self.key).require()
                check = target.health
                if check is None or target.archived:
                    return
                interval = check.every
                result = probe(check, cwd, self.stopping)
                if self.stopping.is_set():
                    return  # a probe cut short by the shutdown tells nothing
                # the open incidents as they are now, not as they were before the probe
                self.watcher.health_step(store, self.key, check, result,
                                         store.snapshot(self.key))
                problem = None
            except Exception as exc:  # noqa: BLE001 - a broken check must not end the daemon
                if reason(exc) != problem:
                    problem = reason(exc)
                    log(PROBLEM, f"{self.key}: cannot probe: {problem}")
            self.stopping.wait(max(0.0, started + interval - time.monotonic()))

    def stop(self) -> None:
        self.stopping.set()


class _CourierThread:
    """One subscription's deliveries, in a thread of their own with their own repository
    handle (pygit2 objects are not shared between threads)."""

    def __init__(self, watcher: Watcher, sub: Subscription) -> None:
        self.watcher = watcher
        self.sub = sub
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.courier: Courier | None = None
        self.thread = threading.Thread(target=self._loop, name=f"deliver {sub.name}",
                                       daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        try:
            store = open_store(self.watcher.store.git.git_dir)
            self.courier = self.watcher.courier(self.sub, store)
        except DeployError as exc:
            self.watcher.log(PROBLEM, f"{self.sub.name}: {exc}")
            return
        while not self.stopping.is_set():
            self.wake.clear()
            try:
                caught_up = self.courier.run(self.stopping)
                wait = None if caught_up else self.courier.retry_in()
            except Exception as exc:  # noqa: BLE001 - a broken subscriber must not end the daemon
                self.watcher.log(PROBLEM, f"{self.sub.name}: {type(exc).__name__}: {exc}")
                wait = self.watcher.policy.retry_min
            # a failed subscriber sleeps until its retry time; new changes do not rush it
            if wait:
                self.stopping.wait(wait)
            else:
                self.wake.wait()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
