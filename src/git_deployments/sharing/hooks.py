"""The server side: what pre-receive refuses, what post-receive schedules, and the scripts that
`install-hooks` writes.

Everything pushed (ref names, branch names, commit messages, records) is data here: it is
parsed, compared and stored, never handed to a shell.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from git_deployments.core.keepalive import KEPT_PREFIX
from git_deployments.core.model import MAX_LINE, key_problem
from git_deployments.core.timeline import REF_PREFIX
from git_deployments.errors import DeployError
from git_deployments.git.repo import GitRepo
from git_deployments.sharing.sync import BACKUP_PREFIX

HOOKS = ("pre-receive", "post-receive")
MARKER = "# git-deployments hook script"
BRANCH_PREFIX = "refs/heads/"
# each repository's own bookkeeping: a push never writes these (see Trust rules)
BOOKKEEPING_PREFIXES = (KEPT_PREFIX, BACKUP_PREFIX)
TARGET_OPS = frozenset({"target-create", "target-edit", "target-archive"})
DEFAULT_PUSHER_VARIABLE = "REMOTE_USER"
# the most hook input read: about a million ref updates; a push with more is refused whole,
# never checked in part
MAX_INPUT_BYTES = 128 * 1024 * 1024
# `<old> <new> <ref>`, as git writes it (sha1 or sha256 ids; ref names hold no whitespace)
_UPDATE_LINE = re.compile(r"([0-9a-f]{40}|[0-9a-f]{64}) ([0-9a-f]{40}|[0-9a-f]{64}) (\S+)\Z")
_LINK_SLOT = re.compile(r"\{(target|branch|commit|short|version)\}")


@dataclass(frozen=True)
class RefUpdate:
    old: str | None  # None: the ref is created
    new: str | None  # None: the ref is deleted
    ref: str


def _oid(text: str) -> str | None:
    return None if set(text) == {"0"} else text


def read_input(stream: BinaryIO) -> list[RefUpdate]:
    """Every update git gives the hook on `stream`; DeployError (the whole push refused) when
    the input is beyond MAX_INPUT_BYTES: an update past a cut would go unchecked."""
    data = stream.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        raise DeployError(f"the whole push is refused: it updates more refs than this server "
                          f"checks at once (the hook's input exceeds {MAX_INPUT_BYTES // 2**20} "
                          "MiB); push fewer refs at a time")
    return read_updates(data)


def read_updates(data: bytes) -> list[RefUpdate]:
    """The `<old> <new> <ref>` lines git gives pre- and post-receive on stdin, every one of
    them; DeployError naming the first line that is not one."""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    updates = []
    for number, line in enumerate(lines, 1):
        # ref names are bytes to git: undecodable ones stay distinct (and never a target key)
        match = _UPDATE_LINE.match(line.decode("utf-8", "surrogateescape"))
        if not match:
            raise DeployError(f"the whole push is refused: line {number} of the hook's input is "
                              "not '<old id> <new id> <ref>'")
        old, new, ref = match.groups()
        updates.append(RefUpdate(_oid(old), _oid(new), ref))
    return updates


# --- who pushes, and what they may change -----------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """The server's permissions, from its git config: `deploy.modifyDeployments` and
    `deploy.modifyTargets` list who may change deployments and targets (`*`: anyone; unset: no
    restriction), and `deploy.pusherVariable` names the variable the git server sets to the
    pusher's identity."""

    variable: str
    pusher: str | None
    deployments: frozenset[str] | None
    targets: frozenset[str] | None

    @classmethod
    def from_config(cls, git: GitRepo, env: Mapping[str, str]) -> Policy:
        variable = git.config_get("deploy.pusherVariable") or DEFAULT_PUSHER_VARIABLE

        def allowed(name: str) -> frozenset[str] | None:
            values = git.config_get_all(name)
            if not values:
                return None
            return frozenset(v for value in values for v in re.split(r"[\s,]+", value) if v)

        return cls(variable=variable, pusher=env.get(variable) or None,
                   deployments=allowed("deploy.modifyDeployments"),
                   targets=allowed("deploy.modifyTargets"))

    def refusal(self, op: str) -> str | None:
        """Why the pusher may not make an operation `op`, or None when they may."""
        kind, setting = ("targets", "deploy.modifyTargets") if op in TARGET_OPS else \
            ("deployments", "deploy.modifyDeployments")
        allowed = self.targets if op in TARGET_OPS else self.deployments
        if allowed is None or "*" in allowed or (self.pusher is not None and
                                                 self.pusher in allowed):
            return None
        who = f"'{self.pusher}'" if self.pusher else \
            f"an unidentified pusher (${self.variable} is not set)"
        return f"{who} may not modify {kind} on this server (not listed in {setting})"


# --- pre-receive ------------------------------------------------------------------------------


def check_update(git: GitRepo, update: RefUpdate, policy: Policy) -> str | None:
    """One line saying why `update` of a ref under refs/deployments/ is refused, or None.
    Whatever a push holds, the answer is a refusal with a reason, never an error of the hook."""
    ref = update.ref
    try:
        return _check_update(git, update, policy)
    except Exception as exc:  # noqa: BLE001 - a hostile push must meet a refusal, not a crash
        where = f"{update.new[:12]}: " if update.new else ""
        return f"{ref}: {where}{_reason(exc)}"


def _reason(exc: BaseException) -> str:
    """What went wrong reading a pushed object, in words (its checks raise DeployError; anything
    else is a pushed object some reader could not take)."""
    if isinstance(exc, DeployError):
        return str(exc)
    if isinstance(exc, RecursionError):
        return "cannot be read: nested too deeply"
    if isinstance(exc, MemoryError):
        return "cannot be read: too large"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"cannot be read ({type(exc).__name__}{': ' + text[:200] if text else ''})"


def _check_update(git: GitRepo, update: RefUpdate, policy: Policy) -> str | None:
    from git_deployments.core import verify
    from git_deployments.core.timeutil import now
    from git_deployments.errors import CorruptRecord

    ref = update.ref
    key = ref[len(REF_PREFIX):]
    problem = key_problem(key)
    if problem:
        return f"{ref}: not a target key ({problem}); refs/deployments/ holds only timelines"
    if update.new is None:
        return (f"{ref}: deleting a timeline is refused; archive the target instead "
                f"(git deploy target archive {key})")
    kind = git.object_kind(update.new)
    if kind != "commit":
        return (f"{ref}: {update.new[:12]} is {f'a {kind} object' if kind else 'missing'}, not a "
                "commit; a timeline holds only commits")
    git.commit_info(update.new)  # a commit git stored but cannot be parsed is named as such
    if update.old is not None and not git.is_ancestor(update.old, update.new):
        return (f"{ref}: {update.new[:12]} does not extend {update.old[:12]} (not a "
                "fast-forward); timelines only grow: run 'git deploy sync' and push again")
    new_commits = []
    tip: str | None = update.new
    while tip is not None and tip != update.old:
        info = git.commit_info(tip)
        new_commits.append(info.id)
        tip = info.parents[0] if info.parents else None
    checked_at = now()  # a change dated far from the server's clock does not come in
    for commit in reversed(new_commits):
        try:
            verified = verify.verify_commit(git, key, commit, now=checked_at)
        except CorruptRecord as exc:
            return f"{ref}: {exc}"
        except Exception as exc:  # noqa: BLE001 - named with the commit that caused it
            return f"{ref}: {commit[:12]}: {_reason(exc)}"
        denied = policy.refusal(str(getattr(verified.request, "op", "")))
        if denied:
            return f"{ref}: {commit[:12]}: {denied}"
    if update.old is None:
        try:
            verify.verify_index(git, key, update.new)
        except CorruptRecord as exc:
            return f"{ref}: {exc}"
    return None


def pre_receive(git: GitRepo, updates: list[RefUpdate], env: Mapping[str, str]) -> list[str]:
    """A refusal line for each refused update of a timeline or of a bookkeeping ref (other refs
    are not ours)."""
    policy = Policy.from_config(git, env)
    refusals = []
    for update in updates:
        bookkeeping = next((p for p in BOOKKEEPING_PREFIXES if update.ref.startswith(p)), None)
        if bookkeeping:
            refusals.append(f"{update.ref}: {bookkeeping} is this repository's own bookkeeping, "
                            "kept by the repository itself; a push may not create, move or "
                            "delete it")
        elif update.ref + "/" in (REF_PREFIX, *BOOKKEEPING_PREFIXES):
            # a ref named like the directory would stop every ref under it being created
            refusals.append(f"{update.ref}: this name is reserved for the refs under "
                            f"{update.ref}/; a push may not create it")
        elif update.ref.startswith(REF_PREFIX):
            refusal = check_update(git, update, policy)
            if refusal:
                refusals.append(refusal)
    return refusals


# --- post-receive -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PushLink:
    """The external link of a deployment scheduled by a push (None: no link), and what the
    pusher should know about it."""

    link: dict[str, str] | None
    note: str | None = None


def _fill(template: str, values: Mapping[str, str]) -> str:
    # one pass: a slot's value is pushed text, never read again as a template
    return _LINK_SLOT.sub(lambda slot: values[slot.group(1)], template)


def _link(git: GitRepo, values: Mapping[str, str]) -> PushLink:
    """`deploy.pushLinkLabel` and `deploy.pushLinkUrl`, with {target} {branch} {commit}
    {short} {version} filled in: in the URL percent-encoded, so pushed text stays inside its
    slot. A label too long for a record is shortened; a URL too long is left out (said so)."""
    label = git.config_get("deploy.pushLinkLabel")
    url = git.config_get("deploy.pushLinkUrl")
    if label is None and url is None:
        return PushLink(None)
    filled_label = _fill(label or "", values)
    if len(filled_label) > MAX_LINE:
        filled_label = filled_label[:MAX_LINE - 1] + "…"
    filled_url = _fill(url or "", {name: quote(value, safe="") for name, value in values.items()})
    if len(filled_url) > MAX_LINE:
        return PushLink(None, f"its link is left out: the URL would be {len(filled_url)} "
                              f"characters, more than a record holds ({MAX_LINE})")
    return PushLink({"label": filled_label, "url": filled_url})


def keep_pushed(git: GitRepo, updates: list[RefUpdate]) -> list[str]:
    """Keep the commits each pushed timeline change deployed reachable from the server's
    keep-alive refs, as a clone does after its own writes; returns what could not be done."""
    from git_deployments.core import keepalive
    from git_deployments.history import keep

    problems = []
    for update in updates:
        key = update.ref[len(REF_PREFIX):]
        if not update.ref.startswith(REF_PREFIX) or update.new is None or key_problem(key):
            continue
        try:
            keepalive.retain(git, key, keep.recorded_between(git, key, update.old, update.new))
        except Exception as exc:  # noqa: BLE001 - the push has landed whatever keeping does
            problems.append(f"{key}: cannot keep its deployed commits from gc ({_reason(exc)}); "
                            f"run 'git deploy keep {key}' on the server")
    return problems


def post_receive(git: GitRepo, updates: list[RefUpdate], env: Mapping[str, str]
                 ) -> tuple[list[str], list[str]]:
    """Keep what pushed timelines deployed; schedule a deployment of each pushed branch tip on
    the targets that list the branch in `schedule_on_push`, where the pusher may modify
    deployments. Returns (what was done, what was not and why)."""
    failed = keep_pushed(git, updates)
    pushed = [(u.ref[len(BRANCH_PREFIX):], u.new) for u in updates
              if u.ref.startswith(BRANCH_PREFIX) and u.new is not None]
    if not pushed:
        return [], failed
    from git_deployments.core import intake
    from git_deployments.core.model import Deploy
    from git_deployments.core.store import Store

    store = Store(git)
    policy = Policy.from_config(git, env)
    # the write is the pusher's: only what they may do themselves (git deploy schedule --sync)
    denied = policy.refusal("schedule")
    pusher = policy.pusher
    by = (pusher if "<" in pusher else f"{pusher} <{pusher}>") if pusher else intake.actor(git)
    done: list[str] = []
    for key in store.keys():
        try:
            target = store.snapshot(key).target
        except DeployError as exc:
            failed.append(f"{key}: {exc}")
            continue
        if target is None or target.archived:
            continue
        for branch, commit in pushed:
            if branch not in target.schedule_on_push:
                continue
            if denied:
                failed.append(f"{key}: the push to {branch!r} schedules nothing: {denied}")
                continue
            try:
                version = git.describe(commit)
                link = _link(git, {"target": key, "branch": branch, "commit": commit,
                                   "short": commit[:7], "version": version})
                request = intake.new_request(
                    Deploy, git, key, op="schedule", by=by, version=version,
                    commits=[{"repository": target.repository, "branch": branch,
                              "commit": commit}],
                    external_link=link.link, reason=f"pushed to {branch}")
                result = store.write(request)
            except DeployError as exc:
                failed.append(f"{key}: cannot schedule the push to {branch!r}: {exc}")
                continue
            done.append(f"git-deploy: {result.change.subject}")
            if link.note:
                done.append(f"git-deploy: {key}: {link.note}")
    return done, failed


# --- the scripts, and installing them ----------------------------------------------------------

_TEMPLATE = """\
#!/bin/sh
{marker}: {hook}
# Runs 'git deploy hook {hook}' on the input git gives the hook. Written by
# 'git deploy install-hooks' (run it again to update this file). A hook that was here
# before is kept as {hook}.legacy and runs first, on the same input; when it
# fails, so does this one.
hook={hook}
python={python}
here=$(dirname -- "$0")
input=$(mktemp) || exit 1
trap 'rm -f -- "$input"' EXIT
cat >"$input"
if [ -x "$here/$hook.legacy" ]; then
    "$here/$hook.legacy" "$@" <"$input" || exit $?
fi
# git-deploy only looks at {watched}: spare the start-up when none moved
grep -q {patterns} "$input" || exit 0
if command -v git-deploy >/dev/null 2>&1; then
    git-deploy hook "$hook" <"$input"
else
    # git servers run hooks with a minimal PATH: use the interpreter git-deploy was installed in
    "$python" -m git_deployments hook "$hook" <"$input"
fi
"""


def render_script(hook: str, python: str | None) -> str:
    """The hook script; `python` is the fallback interpreter (python3 when None)."""
    if hook not in HOOKS:
        raise DeployError(f"unknown hook {hook!r} (hooks: {', '.join(HOOKS)})")
    # pre-receive: timelines and the bookkeeping refs beside them (refs/deployments-kept/...);
    # post-receive: branches (scheduling) and timelines (keeping what they deployed)
    if hook == "pre-receive":
        watched, described = ["refs/deployments"], "refs/deployments*"
    else:
        watched = [BRANCH_PREFIX, REF_PREFIX]
        described = " and ".join(watched)
    return _TEMPLATE.format(marker=MARKER, hook=hook, watched=described,
                            patterns=" ".join(f"-e ' {prefix}'" for prefix in watched),
                            python=shlex.quote(python or "python3"))


def hooks_dir(git: GitRepo) -> Path:
    """Where git runs this repository's hooks (core.hooksPath when set)."""
    result = git.run_git(["rev-parse", "--git-path", "hooks"])
    if result.returncode != 0 or not result.stdout.strip():
        raise DeployError(f"cannot find the hooks directory: {result.stderr.strip()}")
    base = git.workdir or git.git_dir
    return (base / result.stdout.strip()).resolve()


def _is_ours(path: Path) -> bool:
    try:
        return MARKER.encode() in path.read_bytes()[:4096]
    except OSError:
        return False


def install(git: GitRepo, server: bool) -> list[str]:
    """Install pre-receive and post-receive; keep a foreign hook as <hook>.legacy (it runs
    first); an earlier install of ours is updated in place."""
    if not git.is_bare and not server:
        raise DeployError("this repository has a work tree, and these hooks run where others "
                          "push to: run install-hooks in the server's repository, or pass "
                          "--server to install them here anyway")
    directory = hooks_dir(git)
    for hook in HOOKS:
        path, legacy = directory / hook, directory / f"{hook}.legacy"
        if (path.exists() or path.is_symlink()) and not _is_ours(path) and \
                (legacy.exists() or legacy.is_symlink()):
            raise DeployError(f"{path} is not a git-deployments hook and {legacy.name} exists "
                              "too; move one of them away, then run install-hooks again")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        return [_install_one(directory, hook) for hook in HOOKS]
    except OSError as exc:
        raise DeployError(f"cannot write hooks into {directory}: {exc.strerror or exc}") from None


def _install_one(directory: Path, hook: str) -> str:
    path, legacy = directory / hook, directory / f"{hook}.legacy"
    script = render_script(hook, sys.executable)
    verb = "installed"
    if path.exists() or path.is_symlink():
        if _is_ours(path):
            if path.read_text(errors="replace") == script and os.access(path, os.X_OK):
                return f"{hook}: already installed in {directory}"
            verb = "updated"
        else:
            os.replace(path, legacy)
            verb = f"installed (the hook that was there is kept as {legacy.name} and runs first)"
    temporary = directory / f".{hook}.git-deploy-tmp"
    temporary.write_text(script)
    temporary.chmod(0o755)
    os.replace(temporary, path)
    return f"{hook}: {verb} in {directory}"
