"""`git deploy schedule|start|finish|fail|set-status|edit|delete|comment`."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from git_deployments.commands.common import Run, add_write_options, number, runs, target_key
from git_deployments.commands.output import Output
from git_deployments.reading.deployments import write_json

if TYPE_CHECKING:
    from git_deployments.commands.context import Context
    from git_deployments.core.model import Deploy
    from git_deployments.core.store import WriteResult

DEPLOY_HELP = {
    "schedule": "plan a deployment (updates the one scheduled for the same branch)",
    "start": "a deployment is in progress (promotes the scheduled one, or creates one)",
    "finish": "a deployment succeeded: it becomes current",
    "fail": "a deployment failed",
}


def register(subparsers: Any) -> None:
    for op, text in DEPLOY_HELP.items():
        p = subparsers.add_parser(op, help=text, description=text[0].upper() + text[1:] + ".")
        add_target_argument(p)
        add_deploy_options(p)
        if op == "schedule":
            p.add_argument("--at", metavar="DATETIME",
                           help="when it is planned: ISO 8601, or +2h from now")
        if op in ("finish", "fail"):
            p.add_argument("--number", type=number, metavar="N",
                           help=f"{op} exactly deployment N, which must be in flight (refused "
                                "if it has moved on)")
        add_write_options(p)
        runs(p, _deploy_run(op))

    p = subparsers.add_parser("set-status", help="change a deployment's status by hand "
                              "(needs the target's manual controls)")
    p.add_argument("target", type=target_key)
    p.add_argument("number", type=number)
    p.add_argument("status", choices=["scheduled", "deploying", "current", "failed"])
    p.add_argument("--reason", help="why, kept in the deployment's history")
    add_write_options(p)
    runs(p, lambda ctx, a: cmd_set_status(ctx, target=a.target, number=a.number, status=a.status,
                                          reason=a.reason, as_json=a.as_json))

    p = subparsers.add_parser("edit", help="change a deployment's version, description, link "
                              "or planned time")
    p.add_argument("target", type=target_key)
    p.add_argument("number", type=number)
    p.add_argument("--version")
    p.add_argument("--description")
    p.add_argument("--ext-label", metavar="LABEL")
    p.add_argument("--ext-url", metavar="URL")
    p.add_argument("--at", metavar="DATETIME", help="the planned time")
    add_write_options(p)
    runs(p, lambda ctx, a: cmd_edit(ctx, target=a.target, number=a.number, version=a.version,
                                    description=a.description, ext_label=a.ext_label,
                                    ext_url=a.ext_url, at=a.at, as_json=a.as_json))

    p = subparsers.add_parser("delete", help="delete a deployment (the timeline keeps it)")
    p.add_argument("target", type=target_key)
    p.add_argument("number", type=number)
    add_write_options(p)
    runs(p, lambda ctx, a: cmd_delete(ctx, target=a.target, number=a.number, as_json=a.as_json))

    p = subparsers.add_parser("comment", help="add a comment to a target's timeline")
    p.add_argument("target", type=target_key)
    p.add_argument("number", type=number, nargs="?", help="the deployment it is about")
    p.add_argument("-m", "--message", required=True, help="the comment")
    add_write_options(p)
    runs(p, lambda ctx, a: cmd_comment(ctx, target=a.target, number=a.number, message=a.message,
                                       as_json=a.as_json))


def _deploy_run(op: str) -> Run:
    if op == "schedule":
        return lambda ctx, a: cmd_deploy(ctx, op=op, options=DeployOptions.parsed(a), at=a.at,
                                         as_json=a.as_json)
    if op in ("finish", "fail"):
        return lambda ctx, a: cmd_deploy(ctx, op=op, options=DeployOptions.parsed(a),
                                         number=a.number, as_json=a.as_json)
    return lambda ctx, a: cmd_deploy(ctx, op=op, options=DeployOptions.parsed(a),
                                     as_json=a.as_json)


def add_target_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", type=target_key, nargs="?",
                   help="the target's key (default: $GIT_DEPLOY_TARGET)")


def add_deploy_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--version", help="the version (default: git describe --tags --always)")
    p.add_argument("--commit", action="append", default=[], metavar="REPO:BRANCH[:COMMIT]",
                   help="what is deployed (repeatable); COMMIT may be HEAD, a short id or a tag; "
                        "default: this checkout's branch and HEAD")
    p.add_argument("--branch", help="the branch, when HEAD is detached")
    p.add_argument("--ext-label", metavar="LABEL", help="label of an external link (a CI job)")
    p.add_argument("--ext-url", metavar="URL", help="URL of the external link")
    p.add_argument("--description", help="shown with the deployment")
    p.add_argument("--reason", help="why, kept in the deployment's history")


@dataclass(frozen=True, slots=True)
class DeployOptions:
    """What add_target_argument and add_deploy_options read from a command line."""

    target: str | None
    version: str | None
    commit: list[str]
    branch: str | None
    ext_label: str | None
    ext_url: str | None
    description: str | None
    reason: str | None

    @classmethod
    def parsed(cls, a: argparse.Namespace) -> DeployOptions:
        return cls(target=a.target, version=a.version, commit=a.commit, branch=a.branch,
                   ext_label=a.ext_label, ext_url=a.ext_url, description=a.description,
                   reason=a.reason)


def report(result: WriteResult, as_json: bool, stream: TextIO | None = None) -> int:
    out = Output(as_json, stream)
    record = result.record
    if as_json:
        out.json(write_json(result))
        return 0
    out.line(result.change.subject)
    for effect in result.change.effects:
        if effect.number != result.change.number:
            out.line(f"{result.key} #{effect.number}: {effect.old} -> {effect.new}")
    if record is not None and record.rollback_of:
        out.line(f"this rolls back #{record.rollback_of}: its commit is an ancestor of what "
                 "ran before")
    return 0


def cmd_deploy(ctx: Context, op: str, options: DeployOptions, at: str | None = None,
               number: int | None = None, as_json: bool = False) -> int:
    request = deploy_request(ctx, op, options, at=at, number=number)
    return report(ctx.write(request), as_json)


def deploy_request(ctx: Context, op: str, options: DeployOptions, at: str | None = None,
                   number: int | None = None) -> Deploy:
    """The Deploy request a schedule/start/finish/fail command line asks for."""
    from git_deployments.core import intake

    return intake.deploy_request(ctx.store, op, options.target, version=options.version,
                                 commits=options.commit, branch=options.branch,
                                 ext_label=options.ext_label, ext_url=options.ext_url,
                                 description=options.description, reason=options.reason,
                                 at=at, number=number)


def cmd_set_status(ctx: Context, target: str, number: int, status: str, reason: str | None,
                   as_json: bool = False) -> int:
    from git_deployments.core import intake

    request = intake.set_status_request(ctx.store, target, number, status, reason)
    return report(ctx.write(request), as_json)


def cmd_edit(ctx: Context, target: str, number: int, version: str | None, description: str | None,
             ext_label: str | None, ext_url: str | None, at: str | None,
             as_json: bool = False) -> int:
    from git_deployments.core import intake

    request = intake.edit_request(ctx.store, target, number, version=version,
                                  description=description, ext_label=ext_label,
                                  ext_url=ext_url, at=at)
    return report(ctx.write(request), as_json)


def cmd_delete(ctx: Context, target: str, number: int, as_json: bool = False) -> int:
    from git_deployments.core import intake

    request = intake.delete_request(ctx.store, target, number)
    return report(ctx.write(request), as_json)


def cmd_comment(ctx: Context, target: str, number: int | None, message: str,
                as_json: bool = False) -> int:
    from git_deployments.core import intake

    request = intake.comment_request(ctx.store, target, number, message)
    return report(ctx.write(request), as_json)
