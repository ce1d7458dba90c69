"""Sharing timelines through git remotes: fetch, replay local-only operations onto the remote's
tip, push with a lease, and retry a lost race.

Everything that talks to a remote runs the `git` command (argument lists, never a shell), so the
user's credentials, ssh config and the server's hooks all apply; libgit2's push would skip the
hooks and has no lease. The server is the serialization point: a timeline only ever grows there,
so local history is rewritten (never the remote's) and stays linear.
"""

from __future__ import annotations

import random
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from git_deployments.core.model import Request, ResolveIncident, key_problem
from git_deployments.core.store import (
    Store,
    WriteResult,
    ref_name,
)
from git_deployments.core.timeline import REF_PREFIX, entry, recorded_request
from git_deployments.errors import ConflictError, DeployError
from git_deployments.git.repo import CommitInfo, GitRepo, RaceLost

DEFAULT_REMOTE = "origin"
BACKUP_PREFIX = "refs/deployments-backup/"
DEFAULT_TRIES = 20
MAX_TRIES = 1000
REMOTE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")
# what `git push --porcelain` says when the remote moved between our fetch and our push
RACE_REASONS = ("stale info", "fetch first", "non-fast-forward", "failed to update ref",
                "failed to lock", "cannot lock ref")


def fetch_refspec(remote: str) -> str:
    # `+` only for the remote-tracking copies, as for branches; the local timelines themselves
    # are only ever moved by integrate() below, and pushes never force
    return f"+{REF_PREFIX}*:{tracking_prefix(remote)}*"


def tracking_prefix(remote: str) -> str:
    return f"refs/remotes/{remote}/deployments/"


def tracking_ref(remote: str, key: str) -> str:
    return tracking_prefix(remote) + key


def resolve_remote(git: GitRepo, name: str | None) -> str:
    """The remote to share with: `name`, else `deploy.remote`, else origin; it must exist."""
    remote = name or git.config_get("deploy.remote") or DEFAULT_REMOTE
    if not REMOTE_PATTERN.match(remote):
        raise DeployError(f"invalid remote name {remote!r}: give the name of a configured remote")
    if git.config_get(f"remote.{remote}.url") is None:
        raise DeployError(f"no remote '{remote}' in this repository; add it with "
                          f"'git remote add {remote} <url>' or name another one")
    return remote


def sync_tries(git: GitRepo) -> int:
    """How many pushes a sync makes before giving up on a remote that keeps moving."""
    configured = git.config_get("deploy.syncTries")
    if configured is None:
        return DEFAULT_TRIES
    if not configured.isdigit() or not 1 <= int(configured) <= MAX_TRIES:
        raise DeployError(f"invalid deploy.syncTries {configured!r}: expected 1 to {MAX_TRIES}")
    return int(configured)


def backoff(attempt: int) -> None:
    # growing and jittered: clones that lost the same race do not collide again in lockstep,
    # and a server busy checking the winner's push is not sent pushes doomed to lose
    time.sleep(min(2.0, 0.5 * 2 ** attempt) * random.uniform(0.3, 1.3))


def fetch(git: GitRepo, remote: str) -> None:
    """Bring every remote timeline into refs/remotes/<remote>/deployments/."""
    result = git.run_git(["fetch", "--quiet", "--no-tags", "--no-write-fetch-head", remote,
                          fetch_refspec(remote)])
    if result.returncode != 0:
        raise DeployError(f"cannot fetch from '{remote}': {result.reason()}")


# --- integrating the remote's timeline into the local one ------------------------------------


@dataclass
class Refused:
    """A local operation the remote's newer state no longer allows."""

    key: str
    commit: str
    request: Request | None
    reason: str
    backup: str | None = None

    def message(self, remote: str) -> str:
        if self.request is None:
            what = f"local change {self.commit[:12]}"
        else:
            what = (f"{getattr(self.request, 'op', 'change')} (op {self.request.op_id[:8]}, "
                    f"{self.request.at:%Y-%m-%d %H:%M}Z)")
        kept = f"; it is kept in {self.backup}" if self.backup else ""
        return (f"{self.key}: {what} no longer applies after syncing with '{remote}': "
                f"{self.reason}{kept}; run it again if it is still wanted")


@dataclass
class Unverified:
    """A remote timeline that does not verify as the server's pre-receive hook verifies a push:
    nothing of it comes in, and nothing is pushed on top of it."""

    key: str
    commit: str  # the first object of the remote's timeline that does not verify
    reason: str

    def message(self, remote: str, outcome: str = "") -> str:
        outcome = outcome or (f"'{self.key}' stays as it was in this clone, and nothing of it "
                              "is pulled or pushed")
        return (f"{self.key}: the timeline on '{remote}' does not verify at "
                f"{self.commit[:12]}: {self.reason}; {outcome}")


@dataclass
class Integration:
    """What integrating one target did to the local timeline."""

    key: str
    action: str  # up-to-date, created, fast-forward, replayed, ahead, local-only, unverified
    local: str | None
    remote: str | None
    replayed: list[WriteResult] = field(default_factory=list)
    skipped: int = 0  # local operations the remote already had
    incoming: int = 0  # remote changes this clone did not have
    refused: list[Refused] = field(default_factory=list)
    unverified: Unverified | None = None

    @property
    def moved(self) -> bool:
        return self.action in ("created", "fast-forward", "replayed")


def _first_parents(git: GitRepo, tip: str | None, stop: str | None) -> list[CommitInfo]:
    """The timeline commits from `tip` back to (not including) `stop`, newest first."""
    found = []
    while tip and tip != stop:
        info = git.commit_info(tip)
        found.append(info)
        tip = info.parents[0] if info.parents else None
    return found


def fork_point(git: GitRepo, one: str, other: str) -> str | None:
    """The newest commit both timelines share, walking both at once so that the cost is the
    length of the divergence, not of the history."""
    seen_one: set[str] = set()
    seen_other: set[str] = set()
    a: str | None = one
    b: str | None = other
    while a or b:
        if a:
            if a in seen_other:
                return a
            seen_one.add(a)
            info = git.commit_info(a)
            a = info.parents[0] if info.parents else None
        if b:
            if b in seen_one:
                return b
            seen_other.add(b)
            info = git.commit_info(b)
            b = info.parents[0] if info.parents else None
    return None


def verify_incoming(git: GitRepo, key: str, local: str | None,
                    theirs: str) -> Unverified | None:
    """Why the remote's timeline of `key` may not come in, or None when it may.

    Each commit of it this clone does not have yet is checked as the server's pre-receive hook
    checks a push: oldest first, each the exact replay of its recorded request on its parent.
    A timeline with nothing in common with the local one also has its index checked against
    its records. The local timeline is the cache: its commits were checked when they came in
    (or were written here), so a pull verifies only what is new."""
    from git_deployments.core import verify
    from git_deployments.core.timeutil import now

    kind = git.object_kind(theirs)
    if kind != "commit":
        what = {"tag": "a tag object", "tree": "a tree", "blob": "a blob"}.get(
            kind or "", "an object this clone does not have")
        return Unverified(key, theirs, f"the ref points at {what}, not a commit")
    if local is not None and git.is_ancestor(theirs, local):
        return None
    try:
        base = fork_point(git, local, theirs) if local is not None else None
        incoming = _first_parents(git, theirs, base)
    except DeployError as exc:
        return Unverified(key, theirs, f"its history cannot be read ({exc})")
    checked_at = now()  # the hook's clock rule: changes dated far from it do not come in
    for info in reversed(incoming):
        try:
            verify.verify_commit(git, key, info.id, now=checked_at)
        except DeployError as exc:
            return Unverified(key, info.id, _without_short(str(exc), info.id))
    if base is None:
        try:
            verify.verify_index(git, key, theirs)
        except DeployError as exc:
            return Unverified(key, theirs, _without_short(str(exc), theirs))
    return None


def _without_short(reason: str, commit: str) -> str:
    # verify's reasons start with the short commit id, which the refusal names already
    return reason.removeprefix(f"{commit[:12]}: ")


def op_id_of(info: CommitInfo) -> str | None:
    return entry("", info).op_id


def integrate(store: Store, remote: str, key: str) -> Integration:
    """Make the local timeline of `key` contain the remote's: create or fast-forward it, or
    replay the local-only operations onto the remote tip, re-validating each one."""
    from filelock import Timeout as LockTimeout

    try:
        with store.lock(key):
            return _integrate_locked(store, remote, key)
    except LockTimeout:
        raise ConflictError(f"another git deploy holds the lock on target '{key}' "
                            f"({store.lock_path(key)}); try again") from None


def _integrate_locked(store: Store, remote: str, key: str) -> Integration:
    git = store.git
    ref = ref_name(key)
    for _ in range(3):
        local = git.read_ref(ref)
        theirs = git.read_ref(tracking_ref(remote, key))
        try:
            return _integrate_tips(store, key, ref, local, theirs)
        except RaceLost:
            # the ref moved without the lock (a user's `git update-ref`): look again
            continue
    raise ConflictError(f"target '{key}' kept changing while syncing; try again")


def _integrate_tips(store: Store, key: str, ref: str, local: str | None,
                    theirs: str | None) -> Integration:
    git = store.git
    if theirs is None:
        return Integration(key, "local-only" if local else "up-to-date", local, None)
    if local == theirs:
        return Integration(key, "up-to-date", local, theirs)
    unverified = verify_incoming(git, key, local, theirs)
    if unverified is not None:
        return Integration(key, "unverified", local, theirs, unverified=unverified)
    if local is None:
        git.update_ref(ref, theirs, None, "git-deploy: pulled")
        return Integration(key, "created", theirs, theirs)
    if git.is_ancestor(local, theirs):
        git.update_ref(ref, theirs, local, "git-deploy: pulled (fast-forward)")
        return Integration(key, "fast-forward", theirs, theirs,
                           incoming=len(_first_parents(git, theirs, local)))
    if git.is_ancestor(theirs, local):
        return Integration(key, "ahead", local, theirs)
    base = fork_point(git, local, theirs)
    mine = _first_parents(git, local, base)
    incoming = _first_parents(git, theirs, base)
    known = {op_id_of(info) for info in incoming} - {None}
    result = Integration(key, "replayed", theirs, theirs, incoming=len(incoming))
    tip = theirs
    # a deployment created locally may get another number on the new tip (or land on one the
    # remote scheduled for the same branch); later local operations that name it (comment,
    # edit, delete...) follow it there, and are refused when its creation was
    # and so does an incident opened locally: a later local resolve follows it to its new id
    numbers: dict[int, int] = {}
    lost: set[int] = set()
    incidents: dict[int, int] = {}
    lost_incidents: set[int] = set()
    for info in reversed(mine):
        change = entry(key, info)
        created = change.created
        opened = change.incident if change.op == "incident-open" else None
        request: Request | None = None
        try:
            request = recorded_request(info.message, info.id[:12])
            if request.op_id in known:
                result.skipped += 1
                continue
            named = [n for n in numbers_named(request) if n in lost]
            if named:
                raise DeployError(f"it names deployment #{named[0]}, whose creation here no "
                                  "longer applies either")
            incident = incident_named(request)
            if incident in lost_incidents:
                raise DeployError(f"it names incident {incident}, whose opening here no longer "
                                  "applies either")
            request = renumbered(request, numbers, incidents)
            replayed = store.prepare(key, tip, request)
        except DeployError as exc:
            result.refused.append(Refused(key, info.id, request, str(exc)))
            if created is not None:
                lost.add(created)
            if opened is not None:
                lost_incidents.add(opened)
            continue
        tip = replayed.commit
        result.replayed.append(replayed)
        now = replayed.change.number
        if created is not None and now is not None and created != now:
            numbers[created] = now
        if opened is not None and replayed.change.incident not in (None, opened):
            incidents[opened] = replayed.change.incident
    if result.refused:
        # nothing refused is lost: the old local timeline stays reachable
        backup = save_backup(git, key, local)
        for refused in result.refused:
            refused.backup = backup
    git.update_ref(ref, tip, local, f"git-deploy: replayed {len(result.replayed)} local "
                                    f"change(s) onto the remote's")
    result.local = tip
    return result


# the fields of a request that name a deployment (an incident's `deployment` among them)
NUMBER_FIELDS = ("number", "rollback_to", "deployment")


def numbers_named(request: Request) -> list[int]:
    """The deployment numbers a request refers to."""
    return [value for name in NUMBER_FIELDS
            if isinstance(value := getattr(request, name, None), int)]


def incident_named(request: Request) -> int | None:
    """The incident a request refers to (the one a resolve names)."""
    return request.id if isinstance(request, ResolveIncident) else None


def renumbered(request: Request, numbers: dict[int, int],
               incidents: dict[int, int] | None = None) -> Request:
    """`request` with the deployment numbers (and the incident) it names moved as `numbers`
    (and `incidents`) say."""
    updates: dict[str, object] = {
        name: numbers[value] for name in NUMBER_FIELDS
        if isinstance(value := getattr(request, name, None), int) and value in numbers}
    incident = incident_named(request)
    if incidents and incident in incidents:
        updates["id"] = incidents[incident]
    return request.model_copy(update=updates) if updates else request


def save_backup(git: GitRepo, key: str, commit: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = f"{BACKUP_PREFIX}{key}/{stamp}"
    for n in range(100):
        name = base if n == 0 else f"{base}-{n}"
        try:
            git.update_ref(name, commit, None, "git-deploy: kept before a replay")
            return name
        except RaceLost:
            continue
    raise ConflictError(f"cannot create a backup ref under {base}")


@dataclass
class Backup:
    """A timeline kept before a replay refused some of its changes."""

    ref: str
    key: str
    tip: str
    # (timeline commit, subject) of its changes whose operation the live timeline lacks
    unlanded: list[tuple[str, str]]

    @property
    def name(self) -> str:
        return self.ref.removeprefix(BACKUP_PREFIX)


def backups(git: GitRepo) -> list[Backup]:
    """Every backup ref, with the changes it holds that never landed (compared by operation
    id: a replayed change keeps its id)."""
    found = []
    for ref, tip in git.list_refs(BACKUP_PREFIX):
        key = ref.removeprefix(BACKUP_PREFIX).rpartition("/")[0]
        live = git.read_ref(ref_name(key)) if key and not key_problem(key) else None
        fork = fork_point(git, tip, live) if live else None
        landed = {op_id_of(info) for info in _first_parents(git, live, fork)}
        unlanded = [(info.id, info.message.split("\n", 1)[0])
                    for info in _first_parents(git, tip, fork) if op_id_of(info) not in landed]
        found.append(Backup(ref, key, tip, unlanded))
    return found


def drop_backup(git: GitRepo, backup: Backup) -> None:
    """Delete the backup ref, only if it still points where it was listed."""
    result = git.run_git(["update-ref", "-d", backup.ref, backup.tip])
    if result.returncode != 0:
        raise DeployError(f"cannot delete {backup.ref}: {result.reason()}")


def rebuild_kept(git: GitRepo, key: str) -> None:
    """Regenerate the keep-alive ref of `key`, where this installation has that feature."""
    import importlib

    try:
        keep = importlib.import_module("git_deployments.history.keep")
    except ModuleNotFoundError as exc:
        if exc.name == "git_deployments.history.keep":
            return
        raise
    keep.rebuild(git, key)


def remote_keys(git: GitRepo, remote: str) -> list[str]:
    prefix = tracking_prefix(remote)
    keys = [name[len(prefix):] for name, _ in git.list_refs(prefix)]
    return [key for key in keys if key_problem(key) is None]


def pull(store: Store, remote: str, keys: Iterable[str] | None = None,
         fetched: bool = False) -> list[Integration]:
    """Fetch, then integrate every target (or `keys`) known on either side."""
    git = store.git
    if not fetched:
        fetch(git, remote)
    wanted = sorted(set(keys) if keys is not None else
                    set(store.keys()) | set(remote_keys(git, remote)))
    results = []
    for key in wanted:
        integration = integrate(store, remote, key)
        if integration.moved:
            rebuild_kept(git, key)
        results.append(integration)
    return results


# --- pushing ---------------------------------------------------------------------------------


@dataclass
class Pushed:
    key: str
    status: str  # pushed, created, up-to-date, raced, refused, behind
    commit: str | None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("pushed", "created", "up-to-date")


def _set_tracking(git: GitRepo, remote: str, key: str, commit: str) -> None:
    name = tracking_ref(remote, key)
    for _ in range(3):
        old = git.read_ref(name)
        if old == commit:
            return
        try:
            git.update_ref(name, commit, old, "git-deploy: pushed")
            return
        except RaceLost:
            continue  # `git push` itself updates it when init's refspec is configured


def push_tips(git: GitRepo, remote: str, updates: list[tuple[str, str, str | None]]
              ) -> list[Pushed]:
    """Push (key, new tip, expected remote tip) in one `git push`: no `+`, a lease on each
    ref, so the server only moves a timeline from the value this clone has integrated."""
    outcomes = []
    # a lease that holds lets git replace the remote's history: only ever push a tip that
    # contains the remote's, which this clone has verified by then
    for key, new, _ in [u for u in updates if u[2] and not git.is_ancestor(u[2], u[1])]:
        outcomes.append(Pushed(key, "behind", new,
                               f"'{remote}' has changes this clone has not integrated"))
    updates = [u for u in updates if not u[2] or git.is_ancestor(u[2], u[1])]
    if not updates:
        return outcomes
    args = ["push", "--porcelain"]
    for key, _, expected in updates:
        args.append(f"--force-with-lease={ref_name(key)}:{expected or ''}")
    args.append(remote)
    args += [f"{new}:{ref_name(key)}" for key, new, _ in updates]
    result = git.run_git(args)
    lines = {}
    for line in result.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and ":" in parts[1]:
            lines[parts[1].split(":", 1)[1]] = (parts[0], parts[2])
    # what the server's hooks said: ours start with "error: ", a chained one may say anything
    said = ["".join(c if c.isprintable() else "?" for c in line[len("remote: "):].strip())
            for line in result.stderr.splitlines() if line.startswith("remote: ")]
    said = [line for line in said if line]
    remote_errors = [line for line in said if "error: " in line]
    for key, new, _ in updates:
        found = lines.get(ref_name(key))
        if found is None:
            raise DeployError(f"cannot push to '{remote}': {result.reason()}")
        flag, summary = found
        if flag in (" ", "*", "="):
            _set_tracking(git, remote, key, new)
            status = {"*": "created", "=": "up-to-date"}.get(flag, "pushed")
            outcomes.append(Pushed(key, status, new))
        elif any(reason in summary for reason in RACE_REASONS):
            outcomes.append(Pushed(key, "raced", new, summary))
        else:
            mine = [e for e in remote_errors if ref_name(key) in e] or remote_errors
            why = mine[0].removeprefix("error: ") if mine else \
                f"{'; '.join(said[-3:])} ({summary})" if said else summary
            outcomes.append(Pushed(key, "refused", new, why))
    return outcomes


def push(store: Store, remote: str, keys: Iterable[str] | None = None) -> list[Pushed]:
    """Push every local timeline (or `keys`) the remote does not have yet, leased on what this
    clone last fetched; a target the remote moved since is reported as behind."""
    git = store.git
    outcomes: list[Pushed] = []
    updates = []
    for key in sorted(set(keys) if keys is not None else set(store.keys())):
        local = git.read_ref(ref_name(key))
        if local is None:
            continue
        theirs = git.read_ref(tracking_ref(remote, key))
        if theirs == local or (theirs is not None and git.is_ancestor(local, theirs)):
            outcomes.append(Pushed(key, "up-to-date", theirs))
        elif theirs is not None and not git.is_ancestor(theirs, local):
            outcomes.append(Pushed(key, "behind", local,
                                   f"'{remote}' has changes this clone has not integrated"))
        else:
            updates.append((key, local, theirs))
    outcomes += push_tips(git, remote, updates)
    return sorted(outcomes, key=lambda o: o.key)


# --- sync: pull, push, and again while the race is lost --------------------------------------


@dataclass
class SyncReport:
    integrations: dict[str, Integration] = field(default_factory=dict)
    pushed: dict[str, Pushed] = field(default_factory=dict)
    refused: list[Refused] = field(default_factory=list)
    unverified: dict[str, Unverified] = field(default_factory=dict)
    tries: int = 0


def sync(store: Store, remote: str, keys: Iterable[str] | None = None) -> SyncReport:
    """Pull then push, retrying with jittered backoff while other clones win the race."""
    git = store.git
    tries = sync_tries(git)
    report = SyncReport()
    pending = set(keys) if keys is not None else None
    for attempt in range(tries):
        report.tries = attempt + 1
        for integration in pull(store, remote, pending):
            previous = report.integrations.get(integration.key)
            if previous is not None and integration.action in ("up-to-date", "ahead"):
                continue  # keep what the first round did
            report.integrations[integration.key] = integration
            report.refused += integration.refused
            if integration.unverified is not None:
                report.unverified[integration.key] = integration.unverified
            else:
                report.unverified.pop(integration.key, None)
        wanted = set(pending) if pending is not None else set(store.keys())
        raced = []
        for outcome in push(store, remote, wanted - set(report.unverified)):
            report.pushed[outcome.key] = outcome
            if outcome.status in ("raced", "behind"):
                raced.append(outcome.key)
        if not raced:
            return report
        pending = set(raced)
        if attempt + 1 < tries:
            backoff(attempt)
    raise ConflictError(_gave_up(remote, sorted(pending or []), tries, report))


def _gave_up(remote: str, keys: list[str], tries: int, report: SyncReport) -> str:
    detail = "; ".join(f"{k}: {report.pushed[k].detail}" for k in keys if k in report.pushed)
    return (f"'{remote}' kept moving: could not push {', '.join(keys)} after {tries} tries "
            f"({detail}); the changes are kept in this clone: run 'git deploy sync' again")


# --- a write command with --sync -------------------------------------------------------------

@dataclass
class _Pulled:
    """What the synced writes of this process learnt from their one pull of a remote."""

    unverified: dict[str, Unverified]
    warned: bool = False


_pulled: dict[tuple[str, str], _Pulled] = {}


def before_write(store: Store, remote: str | None) -> str:
    """The first half of a synced write: fetch and integrate, so the command reads the remote's
    state (a fresh CI clone has no timelines of its own yet). Done once per process."""
    git = store.git
    name = resolve_remote(git, remote)
    marker = (str(git.git_dir), name)
    if marker not in _pulled:
        unverified = {}
        for integration in pull(store, name):
            warn_refused(integration.refused, name)
            if integration.unverified is not None:
                unverified[integration.key] = integration.unverified
        _pulled[marker] = _Pulled(unverified)
    return name


def _refuse_unverified(store: Store, remote: str, key: str) -> None:
    """Refuse a synced write to a target whose remote timeline did not verify (nothing is
    written: it could never be pushed); warn, once, of the other such targets."""
    pulled = _pulled.get((str(store.git.git_dir), remote))
    if pulled is None:
        return
    if key in pulled.unverified:
        raise DeployError(pulled.unverified[key].message(remote, "nothing written"))
    if not pulled.warned:
        pulled.warned = True
        for unverified in pulled.unverified.values():
            print(f"warning: {unverified.message(remote)}", file=sys.stderr)


def warn_refused(refused: list[Refused], remote: str) -> None:
    for item in refused:
        print(f"warning: {item.message(remote)}", file=sys.stderr)


def write_synced(store: Store, request: Request, remote: str | None) -> WriteResult:
    """Fetch, apply, push; when another clone won the race, replay onto its tip and push again.
    Returns the operation as it finally landed (its deployment number may have changed)."""
    git = store.git
    name = before_write(store, remote)
    key = request.target
    _refuse_unverified(store, name, key)
    result = store.write(request)
    tries = sync_tries(git)
    last = ""
    for attempt in range(tries):
        if attempt:
            backoff(attempt - 1)
            fetch(git, name)
            result = _reintegrate(store, name, result) or result
        local = git.read_ref(ref_name(key))
        assert local is not None
        theirs = git.read_ref(tracking_ref(name, key))
        [outcome] = push_tips(git, name, [(key, local, theirs)])
        if outcome.ok:
            if git.is_ancestor(result.commit, local):
                return result
            return landed(store, key, request.op_id, local)
        if outcome.status == "refused":
            raise DeployError(f"'{name}' refused the change to '{key}': {outcome.detail}; "
                              "it stays in this clone only")
        last = outcome.detail
    raise ConflictError(f"'{name}' kept moving: could not push the change to '{key}' after "
                        f"{tries} tries ({last}); it is kept in this clone: run "
                        "'git deploy sync' to push it")


def _reintegrate(store: Store, remote: str, mine: WriteResult) -> WriteResult | None:
    """Integrate after a lost race; the write result of `mine` when it was replayed."""
    integration = integrate(store, remote, mine.key)
    if integration.unverified is not None:
        raise DeployError(integration.unverified.message(
            remote, f"this {getattr(mine.request, 'op', 'change')} stays in this clone only"))
    if integration.moved:
        rebuild_kept(store.git, mine.key)
    op_id = mine.request.op_id
    refused = [r for r in integration.refused if r.request and r.request.op_id == op_id]
    warn_refused([r for r in integration.refused if r not in refused], remote)
    if refused:
        raise DeployError(f"another clone changed '{mine.key}' first and this "
                          f"{getattr(mine.request, 'op', 'change')} no longer applies: "
                          f"{refused[0].reason} (the previous local timeline is kept in "
                          f"{refused[0].backup})")
    return next((r for r in integration.replayed if r.request.op_id == op_id), None)


def landed(store: Store, key: str, op_id: str, tip: str) -> WriteResult:
    """The write result of operation `op_id` as it stands in the timeline at `tip`."""
    from git_deployments.core.verify import verify_commit

    for info in store.timeline(key, tip):
        if op_id_of(info) == op_id:
            verified = verify_commit(store.git, key, info.id)
            return WriteResult(key=key, commit=info.id, change=verified.change,
                               request=verified.request)
    raise DeployError(f"operation {op_id[:8]} is not in the timeline of '{key}' any more")
