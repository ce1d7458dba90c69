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

from git_deployments.core.model import key_problem
from git_deployments.core.timeline import REF_PREFIX
from git_deployments.errors import DeployError
from git_deployments.git.repo import GitRepo

HOOKS = ("pre-receive", "post-receive")
MARKER = "# git-deployments hook script"
BRANCH_PREFIX = "refs/heads/"
TARGET_OPS = frozenset({"target-create", "target-edit", "target-archive"})
DEFAULT_PUSHER_VARIABLE = "REMOTE_USER"
MAX_INPUT_LINES = 100_000


@dataclass(frozen=True)
class RefUpdate:
    old: str | None  # None: the ref is created
    new: str | None  # None: the ref is deleted
    ref: str


def _oid(text: str) -> str | None:
    return None if set(text) == {"0"} else text


def read_updates(text: str) -> list[RefUpdate]:
    """The `<old> <new> <ref>` lines git gives pre- and post-receive on stdin."""
    updates = []
    for line in text.splitlines()[:MAX_INPUT_LINES]:
        parts = line.strip().split(" ", 2)
        if len(parts) != 3:
            continue
        old, new, ref = parts
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
    """One line saying why `update` of a ref under refs/deployments/ is refused, or None."""
    from git_deployments.core import verify
    from git_deployments.errors import CorruptRecord

    ref = update.ref
    key = ref[len(REF_PREFIX):]
    problem = key_problem(key)
    if problem:
        return f"{ref}: not a target key ({problem}); refs/deployments/ holds only timelines"
    if update.new is None:
        return (f"{ref}: deleting a timeline is refused; archive the target instead "
                f"(git deploy target archive {key})")
    if update.old is not None and not git.is_ancestor(update.old, update.new):
        return (f"{ref}: {update.new[:12]} does not extend {update.old[:12]} (not a "
                "fast-forward); timelines only grow: run 'git deploy sync' and push again")
    try:
        new_commits = []
        tip: str | None = update.new
        while tip is not None and tip != update.old:
            info = git.commit_info(tip)
            new_commits.append(info.id)
            tip = info.parents[0] if info.parents else None
        for commit in reversed(new_commits):
            verified = verify.verify_commit(git, key, commit)
            denied = policy.refusal(str(getattr(verified.request, "op", "")))
            if denied:
                return f"{ref}: {commit[:12]}: {denied}"
        if update.old is None:
            verify.verify_index(git, key, update.new)
    except CorruptRecord as exc:
        return f"{ref}: {exc}"
    except DeployError as exc:
        return f"{ref}: {update.new[:12]}: {exc}"
    return None


def pre_receive(git: GitRepo, updates: list[RefUpdate], env: Mapping[str, str]) -> list[str]:
    """A refusal line for each refused update of a timeline (other refs are not ours)."""
    policy = Policy.from_config(git, env)
    refusals = []
    for update in updates:
        if update.ref.startswith(REF_PREFIX):
            refusal = check_update(git, update, policy)
            if refusal:
                refusals.append(refusal)
    return refusals


# --- post-receive -----------------------------------------------------------------------------


def _link(git: GitRepo, values: Mapping[str, str]) -> dict[str, str] | None:
    """The external link of a deployment scheduled by a push: `deploy.pushLinkLabel` and
    `deploy.pushLinkUrl`, where {target} {branch} {commit} {short} {version} are filled in."""
    label = git.config_get("deploy.pushLinkLabel")
    url = git.config_get("deploy.pushLinkUrl")
    if label is None and url is None:
        return None

    def fill(template: str) -> str:
        # plain replacement: pushed text fills a slot and is never interpreted
        for name, value in values.items():
            template = template.replace("{" + name + "}", value)
        return template

    return {"label": fill(label or ""), "url": fill(url or "")}


def post_receive(git: GitRepo, updates: list[RefUpdate], env: Mapping[str, str]
                 ) -> tuple[list[str], list[str]]:
    """Schedule a deployment of each pushed branch tip on the targets that list the branch in
    `schedule_on_push`; returns (what was scheduled, what failed)."""
    pushed = [(u.ref[len(BRANCH_PREFIX):], u.new) for u in updates
              if u.ref.startswith(BRANCH_PREFIX) and u.new is not None]
    if not pushed:
        return [], []
    from git_deployments.core import intake
    from git_deployments.core.model import Deploy
    from git_deployments.core.store import Store

    store = Store(git)
    policy = Policy.from_config(git, env)
    pusher = policy.pusher
    by = (pusher if "<" in pusher else f"{pusher} <{pusher}>") if pusher else intake.actor(git)
    done: list[str] = []
    failed: list[str] = []
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
            try:
                version = git.describe(commit)
                link = _link(git, {"target": key, "branch": branch, "commit": commit,
                                   "short": commit[:7], "version": version})
                request = intake.new_request(
                    Deploy, git, key, op="schedule", by=by, version=version,
                    commits=[{"repository": target.repository, "branch": branch,
                              "commit": commit}],
                    external_link=link, reason=f"pushed to {branch}")
                result = store.write(request)
            except DeployError as exc:
                failed.append(f"{key}: cannot schedule the push to {branch!r}: {exc}")
                continue
            done.append(f"git-deploy: {result.change.subject}")
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
grep -q ' {watched}' "$input" || exit 0
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
    watched = BRANCH_PREFIX if hook == "post-receive" else REF_PREFIX
    return _TEMPLATE.format(marker=MARKER, hook=hook, watched=watched,
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
