"""`git deploy status|list|show|log`: reading what the timelines say."""

from __future__ import annotations

import heapq
from datetime import UTC, datetime
from typing import Any

from git_deployments.commands.common import add_json, count, number, target_key
from git_deployments.errors import NotFound
from git_deployments.core.model import Deployment, Status
from git_deployments.commands.output import Output, deployment_json
from git_deployments.core.timeutil import iso, relative, span

NEWEST_SCAN = 1000  # how far back `show` looks past deleted deployments for the newest one


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("status", help="what runs where, what is in flight (the default)")
    p.add_argument("--all", action="store_true", help="include archived targets")
    add_json(p)
    p.set_defaults(func=cmd_status)

    p = subparsers.add_parser("list", help="a target's deployments, newest first")
    p.add_argument("target", type=target_key)
    p.add_argument("--status", choices=[s.value for s in Status], action="append",
                   help="only these statuses (repeatable)")
    p.add_argument("-n", "--limit", type=count, default=50, help="at most this many (0: all)")
    add_json(p)
    p.set_defaults(func=cmd_list)

    p = subparsers.add_parser("show", help="one deployment in full (default: the newest)")
    p.add_argument("target", type=target_key)
    p.add_argument("number", type=number, nargs="?")
    add_json(p)
    p.set_defaults(func=cmd_show)

    p = subparsers.add_parser("log", help="the timeline of changes, newest first")
    p.add_argument("target", type=target_key, nargs="?")
    p.add_argument("-n", "--limit", type=count, default=50, help="at most this many (0: all)")
    add_json(p)
    p.set_defaults(func=cmd_log)


# --- status ------------------------------------------------------------------------------------


def clock() -> datetime:
    """What relative times are measured from (GIT_DEPLOY_NOW when set, as for writes)."""
    from git_deployments.core.intake import clock as intake_clock

    return intake_clock()


def target_status(store: Any, key: str) -> dict[str, Any]:
    """One target's summary, from its index and at most a few records: O(1) in history."""
    snap = store.snapshot(key)
    target, index = snap.require()
    current = snap.record(index.current) if index.current else None
    in_flight = snap.record(index.in_flight) if index.in_flight else None
    scheduled = [r for r in (snap.record(n) for n in sorted({e.number for e in index.scheduled}))
                 if r is not None]
    return {
        "target": key, "name": target.name, "archived": target.archived,
        "current": deployment_json(key, current) if current else None,
        "current_since": iso(current.since) if current else None,
        "in_flight": deployment_json(key, in_flight) if in_flight else None,
        "scheduled": [deployment_json(key, r) for r in scheduled],
        "pending": pending_count(store.git, target, current),
        "deployments": index.count,
        "timeline_commit": snap.tip,
    }


def pending_count(git: Any, target: Any, current: Deployment | None) -> int | None:
    """Commits on the current deployment's branch tip that it does not contain yet."""
    if current is None:
        return None
    total = None
    for ref in current.commits:
        if ref.repository != target.repository or not ref.commit:
            continue
        tip = git.branch_tip(ref.branch)
        if tip is None or not git.has_object(ref.commit):
            continue
        ahead = git.ahead_behind(tip, ref.commit)[0]
        total = (total or 0) + ahead
    return total


def cmd_status(ctx: Any, all: bool = False, as_json: bool = False) -> int:
    store = ctx.store
    out = Output(as_json)
    rows = [target_status(store, key) for key in store.keys()]
    rows = [r for r in rows if all or not r["archived"]]
    if as_json:
        out.json(rows)
        return 0
    if not rows:
        out.line("no targets yet; create one with 'git deploy target create <key>'")
        return 0
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
            "-" if row["pending"] is None else str(row["pending"]),
        ))
    out.table(["TARGET", "CURRENT", "FOR", "IN FLIGHT", "SCHEDULED", "PENDING"], table)
    return 0


def _record(data: dict[str, Any] | None) -> Any:
    if data is None:
        return None
    fields = {k: v for k, v in data.items() if k != "target"}
    return Deployment.model_validate(fields)


# --- list and show -----------------------------------------------------------------------------


def newest_first(snap: Any, index: Any, statuses: set[str] | None, limit: int) -> list[Deployment]:
    """Records from the newest number down, reading only as many as needed."""
    found: list[Deployment] = []
    for n in range(index.next_number - 1, 0, -1):
        if limit and len(found) >= limit:
            break
        record = snap.record(n)
        if record is not None and (not statuses or record.status in statuses):
            found.append(record)
    return found


def cmd_list(ctx: Any, target: str, status: list[str] | None = None, limit: int = 50,
             as_json: bool = False) -> int:
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


def cmd_show(ctx: Any, target: str, number: int | None = None, as_json: bool = False) -> int:
    snap = ctx.store.existing(target)
    _, index = snap.require()
    if number is None:
        newest = newest_first(snap, index, None, 1)
        if not newest:
            from git_deployments.history.questions import no_deployments

            raise NotFound(no_deployments(target, index))
        record = newest[0]
    else:
        record = snap.record(number)
        if record is None:
            raise NotFound(f"target '{target}' has no deployment #{number}")
    from git_deployments.commands.history import brought_summary

    # the way from a deployment to its commits (git deploy commits)
    brought, brought_lines = brought_summary(ctx.store, target, record)
    out = Output(as_json)
    if as_json:
        out.json({**deployment_json(target, record), "brought": brought})
        return 0
    print_deployment(out, target, record)
    for line in brought_lines:
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
        out.line(f"  planned for  {iso(record.scheduled_for)} ({relative(record.scheduled_for, now)})")
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


def cmd_log(ctx: Any, target: str | None = None, limit: int = 50, as_json: bool = False) -> int:
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
