"""`git deploy status|list|show|log`: reading what the timelines say."""

from __future__ import annotations

import heapq
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

from git_deployments.commands.common import add_json, count, number, runs, target_key
from git_deployments.commands.output import Output
from git_deployments.core.model import Deployment, Status
from git_deployments.core.timeutil import iso, relative, span
from git_deployments.reading.deployments import deployment_json

if TYPE_CHECKING:
    from git_deployments.commands.context import Context


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("status", help="what runs where, what is in flight (the default)")
    p.add_argument("--all", action="store_true", help="include archived targets")
    add_json(p)
    runs(p, lambda ctx, a: cmd_status(ctx, all=a.all, as_json=a.as_json))

    p = subparsers.add_parser("list", help="a target's deployments, newest first")
    p.add_argument("target", type=target_key)
    p.add_argument("--status", choices=[s.value for s in Status], action="append",
                   help="only these statuses (repeatable)")
    p.add_argument("-n", "--limit", type=count, default=50, help="at most this many (0: all)")
    add_json(p)
    runs(p, lambda ctx, a: cmd_list(ctx, target=a.target, status=a.status, limit=a.limit,
                                    as_json=a.as_json))

    p = subparsers.add_parser("show", help="one deployment in full (default: the newest)")
    p.add_argument("target", type=target_key)
    p.add_argument("number", type=number, nargs="?")
    add_json(p)
    runs(p, lambda ctx, a: cmd_show(ctx, target=a.target, number=a.number, as_json=a.as_json))

    p = subparsers.add_parser("log", help="the timeline of changes, newest first")
    p.add_argument("target", type=target_key, nargs="?")
    p.add_argument("-n", "--limit", type=count, default=50, help="at most this many (0: all)")
    add_json(p)
    runs(p, lambda ctx, a: cmd_log(ctx, target=a.target, limit=a.limit, as_json=a.as_json))


# --- status ------------------------------------------------------------------------------------


def clock() -> datetime:
    """What relative times are measured from (GIT_DEPLOY_NOW when set, as for writes)."""
    from git_deployments.core.intake import clock as intake_clock

    return intake_clock()


def cmd_status(ctx: Context, all: bool = False, as_json: bool = False) -> int:
    from git_deployments.reading.status import status

    out = Output(as_json)
    entries = status(ctx.store, include_archived=all)
    rows = [row for row in entries if "error" not in row]
    unreadable = [row for row in entries if "error" in row]
    code = 1 if unreadable else 0
    if as_json:
        out.json(entries)
        return code
    for row in unreadable:
        print(f"error: {row['error']}", file=sys.stderr)
    if not rows:
        if not unreadable:
            out.line("no targets yet; create one with 'git deploy target create <key>'")
        return code
    now = clock()
    table = []
    for row in rows:
        current = _record(row["current"])
        flight = _record(row["in_flight"])
        table.append((
            out.bold(row["target"]),
            f"#{current.number} {current.title()}" if current else
            out.dim("nothing yet" if not row["deployments"] else "none"),
            span(current.since, now) if current else "",
            f"#{flight.number} {out.status(flight.status)} {flight.version or ''} "
            f"for {span(flight.since, now)}" if flight else "-",
            ", ".join(f"#{_record(s).number}" for s in row["scheduled"]) or "-",
            "-" if row["pending"] is None else
            f"{row['pending']}{'+' if row['pending_capped'] else ''}",
            _health(row),
        ))
    out.table(["TARGET", "CURRENT", "FOR", "IN FLIGHT", "SCHEDULED", "PENDING", "HEALTH"], table)
    return code


def _health(row: dict[str, Any]) -> str:
    """The HEALTH column: the last probe's summary, and any open incident it does not name."""
    summary = row["health"]["summary"] if row.get("health") else "-"
    others = [n for n in row.get("open_incidents", []) if f"incident {n}" not in summary]
    if not others:
        return str(summary)
    flag = f"⚑ incident {', '.join(map(str, others))} open"
    return flag if summary == "-" else f"{summary}, {flag}"


def _record(data: dict[str, Any] | None) -> Any:
    if data is None:
        return None
    fields = {k: v for k, v in data.items() if k != "target"}
    return Deployment.model_validate(fields)


# --- list and show -----------------------------------------------------------------------------


def cmd_list(ctx: Context, target: str, status: list[str] | None = None, limit: int = 50,
             as_json: bool = False) -> int:
    from git_deployments.reading.deployments import newest_first

    snap = ctx.store.existing(target)
    _, index = snap.require()
    found = newest_first(snap, index, set(status) if status else None, max(limit, 0))
    out = Output(as_json)
    if as_json:
        out.json([deployment_json(target, r) for r in found])
        return 0
    if not found:
        out.line(f"no deployments on '{target}'")
        return 0
    now = clock()
    out.table(["#", "STATUS", "VERSION", "COMMITS", "SINCE", "BY"], [
        (str(r.number), out.status(r.status), r.version or "-",
         ", ".join(f"{c.branch}@{c.commit[:7] if c.commit else 'latest'}" for c in r.commits),
         relative(r.since, now), deployed_by(r).split(" <")[0])
        for r in found
    ])
    return 0


def deployed_by(record: Deployment) -> str:
    """Who brought a deployment where it is: its last change other than 'completed' (which
    whoever finished the next deployment made)."""
    for change in reversed(record.history):
        if change.status != Status.COMPLETED:
            return change.by
    return record.history[-1].by


def cmd_show(ctx: Context, target: str, number: int | None = None, as_json: bool = False) -> int:
    from git_deployments.commands.history import brought_lines
    from git_deployments.reading.deployments import show

    shown = show(ctx.store, target, number)
    out = Output(as_json)
    if as_json:
        out.json(shown.as_json())
        return 0
    print_deployment(out, target, shown.record)
    for incident in shown.incidents:
        state = "open" if incident["resolved_at"] is None else f"resolved {incident['resolved_at']}"
        reason = incident["reason"].splitlines()[0] if incident["reason"] else ""
        out.line(f"  incident     {incident['id']} opened {incident['opened_at']}, {state}"
                 + (f" — {reason}" if reason else ""))
    # the way from a deployment to its commits (git deploy commits)
    for line in brought_lines(target, shown.record, shown.brought):
        out.line(line)
    return 0


def print_deployment(out: Output, key: str, record: Deployment) -> None:
    now = clock()
    out.line(out.bold(f"{key} #{record.number}") + f"  {out.status(record.status)} for "
             f"{span(record.since, now)}  {record.version or '(no version)'}")
    for ref in record.commits:
        out.line(f"  commit       {ref.repository}:{ref.branch}:{ref.commit or 'latest'}")
    if record.description:
        out.line(f"  description  {record.description}")
    if record.external_link and (record.external_link.url or record.external_link.label):
        link = record.external_link
        out.line(f"  link         {link.label} {link.url}".rstrip())
    if record.scheduled_for:
        out.line(f"  planned for  {iso(record.scheduled_for)} "
                 f"({relative(record.scheduled_for, now)})")
    if record.rollback_of:
        out.line(f"  rollback     rolls back #{record.rollback_of}")
    out.line(f"  created      {iso(record.created_at)} ({relative(record.created_at, now)})")
    out.line("  history")
    for change in record.history:
        reason = f" — {change.reason}" if change.reason else ""
        out.line(f"    {iso(change.at)}  {out.status(change.status, 10)}  {change.by}"
                 f"  ({change.op}){reason}")


# --- log ---------------------------------------------------------------------------------------


def log_entry(key: str, info: Any) -> dict[str, Any]:
    from git_deployments.core.timeline import entry

    return entry(key, info).as_json()


def cmd_log(ctx: Context, target: str | None = None, limit: int = 50, as_json: bool = False) -> int:
    store = ctx.store
    keys = [target] if target else store.keys()
    if target:
        store.existing(target)
    def stream(key: str) -> Any:
        return ((-info.author_time, key, info) for info in store.timeline(key))

    streams = [stream(key) for key in keys]
    entries = []
    for _, key, info in heapq.merge(*streams, key=lambda item: (item[0], item[1])):
        entries.append(log_entry(key, info))
        if limit and len(entries) >= limit:
            break
    out = Output(as_json)
    if as_json:
        out.json(entries)
        return 0
    now = clock()
    for entry in entries:
        moment = datetime.fromisoformat(entry["at"].replace("Z", "+00:00"))
        who = entry["by"].split(" <")[0]
        out.line(f"{out.paint(entry['timeline_commit'][:10], '33')}  {entry['at']}  "
                 f"{out.dim(relative(moment, now).ljust(14))}  {entry['subject']}  "
                 f"{out.dim('— ' + who)}")
    return 0
