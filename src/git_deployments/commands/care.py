"""`git deploy fsck|doctor`: check every stored change; clear what a killed process left."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from git_deployments.commands.common import add_json, runs, target_key
from git_deployments.errors import CorruptRecord

if TYPE_CHECKING:
    from git_deployments.commands.context import Context


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "fsck", help="check every change of every timeline",
        description="Check every commit of every timeline (or of one target): format, records, "
                    "index, legal transitions, and that replaying each recorded operation on its "
                    "parent gives exactly its tree. Exit 1 when anything is wrong.")
    p.add_argument("target", type=target_key, nargs="?", help="only this target's timeline")
    add_json(p)
    runs(p, lambda ctx, a: cmd_fsck(ctx, target=a.target, as_json=a.as_json))

    p = subparsers.add_parser(
        "doctor", help="find and fix what a killed process left behind",
        description="Remove stale ref locks, packed-refs.lock, stale daemon locks and temporary "
                    "files a killed process left, explaining each; anything a running process may "
                    "hold is kept.")
    p.add_argument("--dry-run", action="store_true", help="say what would be fixed, change nothing")
    add_json(p)
    runs(p, lambda ctx, a: cmd_doctor(ctx, dry_run=a.dry_run, as_json=a.as_json))


def cmd_fsck(ctx: Context, target: str | None = None, as_json: bool = False) -> int:
    from git_deployments.care.checks import fsck
    from git_deployments.commands.output import Output

    report = fsck(ctx.store, target)
    out = Output(as_json)
    problems = report.problems
    if as_json:
        out.json(report.as_dict())
    else:
        for timeline in report.timelines:
            state = "ok" if not timeline.problems else \
                f"{len(timeline.problems)} problem{'s' if len(timeline.problems) != 1 else ''}"
            out.line(f"{timeline.key}: {timeline.changes} change"
                     f"{'s' if timeline.changes != 1 else ''} checked, {state}")
            for problem in timeline.problems:
                out.line(f"  {problem.line()}")
        for problem in report.stray:
            out.line(problem.line())
        if not report.timelines and not report.stray:
            out.line("no timelines to check")
    if problems:
        out.stream.flush()
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        raise CorruptRecord(f"fsck found {count}; the first: {problems[0].line()}")
    return 0


def cmd_doctor(ctx: Context, dry_run: bool = False, as_json: bool = False) -> int:
    from git_deployments.care.checks import Doctor
    from git_deployments.commands.output import Output

    findings = Doctor(ctx.store, dry_run=dry_run).run()
    out = Output(as_json)
    if as_json:
        out.json({"dry_run": dry_run, "findings": [f.as_dict(dry_run) for f in findings]})
        return 0
    for finding in findings:
        out.line(finding.line(dry_run))
    if not findings:
        out.line("nothing to fix: no stale locks or temporary files")
    elif dry_run and any(f.fixed for f in findings):
        out.line("(dry run: nothing was changed; run 'git deploy doctor' to fix)")
    return 0
