"""`git deploy incident open|resolve` and `git deploy incidents`."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

from git_deployments.commands.common import add_json, add_write_options, number, runs, target_key
from git_deployments.commands.output import Output
from git_deployments.errors import DeployError

if TYPE_CHECKING:
    from git_deployments.commands.context import Context

AT_HELP = ("when it {what}, if earlier than now: ISO 8601, or -DURATION before now "
           "(--at=-30m)")
REASON_WIDTH = 60


def incident_id(text: str) -> int:
    from git_deployments.core.model import MAX_NUMBER

    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_NUMBER)) or \
            not 1 <= int(text) <= MAX_NUMBER:
        raise DeployError(f"invalid incident id {text!r}: expected 1, 2, 3...")
    return int(text)


def register(subparsers: Any) -> None:
    group = subparsers.add_parser(
        "incident", help="open or resolve an incident on a target",
        description="Record that something is wrong with what a target runs (open), and when "
                    "it is over (resolve). Each is a change of the target's timeline.")
    commands = group.add_subparsers(dest="incident_command", metavar="<subcommand>", required=True,
                                    parser_class=type(group))

    p = commands.add_parser("open", help="an incident begins (attributed to the current "
                                         "deployment unless --deployment is given)")
    p.add_argument("target", type=target_key)
    p.add_argument("-m", "--message", help="what is wrong")
    p.add_argument("--deployment", type=number, metavar="N",
                   help="the deployment it is attributed to (default: the current one)")
    p.add_argument("--at", metavar="TIME", help=AT_HELP.format(what="began"))
    add_write_options(p)
    runs(p, lambda ctx, a: cmd_open(ctx, target=a.target, message=a.message,
                                    deployment=a.deployment, at=a.at, as_json=a.as_json))

    p = commands.add_parser("resolve", help="an open incident is over (default: the only one "
                                            "open)")
    p.add_argument("target", type=target_key)
    p.add_argument("id", type=incident_id, nargs="?", help="the incident (default: the only "
                                                           "one open)")
    p.add_argument("-m", "--message", help="how it was resolved")
    p.add_argument("--at", metavar="TIME", help=AT_HELP.format(what="ended"))
    add_write_options(p)
    runs(p, lambda ctx, a: cmd_resolve(ctx, target=a.target, incident=a.id, message=a.message,
                                       at=a.at, as_json=a.as_json))

    p = subparsers.add_parser("incidents", help="the incidents of a target or of all targets, "
                                                "newest first")
    p.add_argument("target", type=target_key, nargs="?", help="the target (default: all)")
    p.add_argument("--open", dest="open_only", action="store_true",
                   help="only the incidents open now")
    add_json(p)
    runs(p, lambda ctx, a: cmd_incidents(ctx, target=a.target, open_only=a.open_only,
                                         as_json=a.as_json))


def cmd_open(ctx: Context, target: str, message: str | None = None,
             deployment: int | None = None, at: str | None = None,
             as_json: bool = False) -> int:
    from git_deployments.commands.deployments import report
    from git_deployments.core import intake

    request = intake.open_incident_request(ctx.store, target, reason=message,
                                           deployment=deployment, at=at)
    return report(ctx.write(request), as_json)


def cmd_resolve(ctx: Context, target: str, incident: int | None = None,
                message: str | None = None, at: str | None = None,
                as_json: bool = False) -> int:
    from git_deployments.commands.deployments import report
    from git_deployments.core import intake

    request = intake.resolve_incident_request(ctx.store, target, incident, reason=message,
                                              at=at)
    return report(ctx.write(request), as_json)


def cmd_incidents(ctx: Context, target: str | None = None, open_only: bool = False,
                  as_json: bool = False) -> int:
    from git_deployments.commands.reading import clock
    from git_deployments.reading.incidents import list_incidents

    listing = list_incidents(ctx.store, target, open_only)
    code = 1 if listing.errors else 0
    out = Output(as_json)
    for error in listing.errors:
        print(f"error: {error}", file=sys.stderr)
    if as_json:
        out.json(listing.incidents)
        return code
    if not listing.incidents:
        where = f" on '{target}'" if target else ""
        out.line(f"no {'open ' if open_only else ''}incidents{where}")
        return code
    now = clock()
    out.table(["TARGET", "ID", "STATE", "DEPLOYMENT", "OPENED", "LASTED", "REASON"],
              [_row(out, data, now) for data in listing.incidents])
    return code


def _row(out: Output, data: dict[str, Any], now: datetime) -> list[str]:
    from git_deployments.core.timeutil import format_duration, span

    opened = _moment(data["opened_at"])
    if data["resolved_at"] is None:
        state = out.paint("! open", "31")  # the mark says it without the colour
        lasted = f"{span(opened, now)} so far"
    else:
        state = out.dim("resolved")
        seconds = int((_moment(data["resolved_at"]) - opened).total_seconds())
        lasted = format_duration(max(0, seconds))
    reason = data["reason"].split("\n", 1)[0]
    if len(reason) > REASON_WIDTH:
        reason = reason[:REASON_WIDTH - 1] + "…"
    deployment = f"#{data['deployment']}" if data["deployment"] is not None else "-"
    return [out.bold(data["target"]), str(data["id"]), state, deployment,
            data["opened_at"], lasted, reason or "-"]


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
