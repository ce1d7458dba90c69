"""`git deploy init|pull|push|sync`: sharing timelines through a git remote."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from git_deployments.commands.common import Run, add_json, runs
from git_deployments.commands.output import Output
from git_deployments.errors import DeployError

if TYPE_CHECKING:
    from git_deployments.commands.context import Context


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "init", help="make plain 'git fetch' bring the deployment timelines too",
        description="Add the fetch refspec for refs/deployments/* to a remote (idempotent).")
    p.add_argument("--remote", metavar="NAME", help="the remote (default: deploy.remote, "
                                                    "else origin)")
    runs(p, lambda ctx, a: cmd_init(ctx, remote=a.remote))

    for name, text in (("pull", "fetch the remote's timelines and integrate them"),
                       ("push", "push the timelines the remote does not have yet"),
                       ("sync", "pull, then push (retrying while other clones push first)")):
        p = subparsers.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        p.add_argument("remote", nargs="?", help="the remote (default: deploy.remote, else "
                                                 "origin)")
        add_json(p)
        runs(p, _share(name))
    _register_backups(subparsers)


def _share(mode: str) -> Run:
    return lambda ctx, a: cmd_share(ctx, mode=mode, remote=a.remote, as_json=a.as_json)


def _register_backups(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "backups", help="the timelines kept when a replay refused changes; prune them",
        description="List the backups a replay kept (refs/deployments-backup/<target>/<time>) "
                    "with the changes each holds that never landed. --prune deletes the "
                    "backups whose every change landed; --drop deletes one, landed or not.")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--prune", action="store_true",
                     help="delete every backup whose changes all landed (nothing is lost)")
    how.add_argument("--drop", metavar="NAME",
                     help="delete backup NAME (TARGET/TIME, as listed), even with changes that "
                          "never landed")
    add_json(p)
    runs(p, lambda ctx, a: cmd_backups(ctx, prune=a.prune, drop=a.drop, as_json=a.as_json))


def cmd_backups(ctx: Context, prune: bool = False, drop: str | None = None,
                as_json: bool = False) -> int:
    from git_deployments.sharing.sync import BACKUP_PREFIX, backups, drop_backup

    git = ctx.git
    found = backups(git)
    dropped = []
    if drop is not None:
        wanted = drop.removeprefix(BACKUP_PREFIX)
        chosen = [b for b in found if b.name == wanted]
        if not chosen:
            names = ", ".join(b.name for b in found) or "none"
            raise DeployError(f"no backup named '{drop}' (backups: {names})")
        dropped = chosen
    elif prune:
        dropped = [b for b in found if not b.unlanded]
    for backup in dropped:
        drop_backup(git, backup)
    out = Output(as_json)
    if as_json:
        out.json([{"name": b.name, "ref": b.ref, "target": b.key, "tip": b.tip,
                   "dropped": b in dropped,
                   "unlanded": [{"timeline_commit": c, "subject": t} for c, t in b.unlanded]}
                  for b in found])
        return 0
    for backup in dropped:
        lost = f" ({_changes(len(backup.unlanded))} that never landed)" if backup.unlanded \
            else ""
        out.line(f"dropped {backup.name}{lost}")
    if not found:
        out.line("no backups")
    for backup in (b for b in found if b not in dropped):
        if not backup.unlanded:
            out.line(f"{backup.name}  every change landed ('git deploy backups --prune' "
                     "deletes it)")
            continue
        out.line(f"{backup.name}  {_changes(len(backup.unlanded))} never landed:")
        for commit, subject in backup.unlanded:
            out.line(f"  {commit[:10]}  {subject}")
    return 0


def cmd_init(ctx: Context, remote: str | None = None) -> int:
    from git_deployments.sharing.sync import fetch_refspec, resolve_remote

    git = ctx.git
    name = resolve_remote(git, remote)
    refspec = fetch_refspec(name)
    setting = f"remote.{name}.fetch"
    out = Output()
    if refspec in git.config_get_all(setting):
        out.line(f"{setting} already has {refspec}: 'git fetch {name}' brings the deployment "
                 "timelines")
        return 0
    result = git.run_git(["config", "--add", setting, refspec])
    if result.returncode != 0:
        raise DeployError(f"cannot change {setting}: {result.stderr.strip()}")
    out.line(f"added {refspec} to {setting}: 'git fetch {name}' now brings the deployment "
             f"timelines into refs/remotes/{name}/deployments/")
    out.line(f"share your changes with 'git deploy push {name}' (or --sync on any write)")
    return 0


def cmd_share(ctx: Context, mode: str, remote: str | None = None, as_json: bool = False) -> int:
    from git_deployments.sharing import sync

    store = ctx.store
    name = sync.resolve_remote(store.git, remote)
    report = sync.SyncReport()
    if mode == "sync":
        report = sync.sync(store, name)
    elif mode == "pull":
        for integration in sync.pull(store, name):
            report.integrations[integration.key] = integration
            report.refused += integration.refused
            if integration.unverified is not None:
                report.unverified[integration.key] = integration.unverified
    else:
        # leases rest on what the remote holds now, not on the last fetch: a timeline pushed
        # by plain `git push` (which leaves the remote-tracking refs behind) is not "stale"
        sync.fetch(store.git, name)
        report.pushed = {p.key: p for p in sync.push(store, name)}
    out = Output(as_json)
    if as_json:
        out.json(_json(report))
    else:
        _print(out, report, name)
    for unverified in report.unverified.values():
        print(f"error: {unverified.message(name)}", file=sys.stderr)
    for refused in report.refused:
        print(f"error: {refused.message(name)}", file=sys.stderr)
    failed = [p for p in report.pushed.values() if not p.ok]
    for pushed in failed:
        advice = "run 'git deploy sync'" if pushed.status in ("raced", "behind") else \
            "the change stays in this clone"
        print(f"error: {pushed.key}: not pushed to '{name}': {pushed.detail}; {advice}",
              file=sys.stderr)
    return 1 if report.refused or report.unverified or failed else 0


def _changes(count: int, kind: str = "") -> str:
    """`1 new change`, `3 local changes`."""
    return f"{count} {kind + ' ' if kind else ''}change{'' if count == 1 else 's'}"


_ACTIONS = {
    "created": "new from {remote}",
    "fast-forward": "{incoming} from {remote}",
    "ahead": "",
    "up-to-date": "",
    "local-only": "",
    "unverified": "",  # told on stderr
}


def _print(out: Output, report: Any, remote: str) -> None:
    lines = []
    for key in sorted(set(report.integrations) | set(report.pushed)):
        parts = []
        integration = report.integrations.get(key)
        if integration is not None:
            if integration.action == "replayed":
                text = (f"{_changes(integration.incoming, 'new')} from {remote}; "
                        f"{_changes(len(integration.replayed), 'local')} replayed onto them")
                if integration.skipped:
                    text += f" ({integration.skipped} already there)"
                if integration.refused:
                    text += f", {len(integration.refused)} refused"
                parts.append(text)
                parts += [f"now {r.change.subject}" for r in integration.replayed
                          if r.change.number is not None][-3:]
            else:
                text = _ACTIONS[integration.action].format(
                    remote=remote, incoming=_changes(integration.incoming, "new"))
                if text:
                    parts.append(text)
        pushed = report.pushed.get(key)
        if pushed is not None and pushed.status in ("pushed", "created"):
            parts.append(f"pushed to {remote}" if pushed.status == "pushed"
                         else f"created on {remote}")
        if parts:
            lines.append(f"{key}: " + "; ".join(parts))
    for line in lines:
        out.line(line)
    failed = report.refused or report.unverified or any(not p.ok
                                                        for p in report.pushed.values())
    if not lines and not failed:  # a failure is told on stderr, never as "up to date"
        out.line(f"up to date with {remote}")


def _json(report: Any) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key in sorted(set(report.integrations) | set(report.pushed)):
        entry: dict[str, Any] = {}
        integration = report.integrations.get(key)
        if integration is not None:
            entry.update({
                "action": integration.action, "timeline_commit": integration.local,
                "incoming": integration.incoming, "skipped": integration.skipped,
                "replayed": [{"op_id": r.request.op_id, "timeline_commit": r.commit,
                              "number": r.change.number} for r in integration.replayed],
                "refused": [{"op_id": r.request.op_id if r.request else None,
                             "commit": r.commit, "reason": r.reason, "backup": r.backup}
                            for r in integration.refused],
            })
            if integration.unverified is not None:
                entry["unverified"] = {"commit": integration.unverified.commit,
                                       "reason": integration.unverified.reason}
        pushed = report.pushed.get(key)
        if pushed is not None:
            entry["push"] = {"status": pushed.status, "timeline_commit": pushed.commit,
                             "detail": pushed.detail or None}
        data[key] = entry
    return {"targets": data}
