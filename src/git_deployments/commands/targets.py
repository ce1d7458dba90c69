"""`git deploy target create|edit|show|list|archive|unarchive`."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from git_deployments.commands.common import (
    Run,
    add_json,
    add_write_options,
    count,
    duration,
    duration_or_off,
    runs,
    target_key,
)
from git_deployments.commands.output import Output
from git_deployments.core.timeutil import format_duration, iso

if TYPE_CHECKING:
    from git_deployments.commands.context import Context
    from git_deployments.core.model import HealthCheck, Target

def register(subparsers: Any) -> None:
    target = subparsers.add_parser("target", help="create, edit, show, list and archive targets",
                                   description="Manage deployment targets.")
    sub = target.add_subparsers(dest="target_command", metavar="<subcommand>", required=True,
                                parser_class=type(target))

    create = sub.add_parser("create", help="create a target")
    create.add_argument("key", type=target_key, help="unique key, e.g. production")
    _settings(create, creating=True)
    add_write_options(create)
    runs(create, lambda ctx, a: cmd_create(ctx, key=a.key,
                                           options=SettingsOptions.parsed(a, creating=True),
                                           as_json=a.as_json))

    edit = sub.add_parser("edit", help="change a target's settings")
    edit.add_argument("key", type=target_key)
    _settings(edit, creating=False)
    add_write_options(edit)
    runs(edit, lambda ctx, a: cmd_edit(ctx, key=a.key,
                                       options=SettingsOptions.parsed(a, creating=False),
                                       as_json=a.as_json))

    show = sub.add_parser("show", help="a target's settings and state")
    show.add_argument("key", type=target_key)
    add_json(show)
    runs(show, lambda ctx, a: cmd_show(ctx, key=a.key, as_json=a.as_json))

    listing = sub.add_parser("list", help="every target")
    listing.add_argument("--all", action="store_true", help="include archived targets")
    add_json(listing)
    runs(listing, lambda ctx, a: cmd_list(ctx, all=a.all, as_json=a.as_json))

    for name, archived, text in (("archive", True, "hide a target (its history is kept)"),
                                 ("unarchive", False, "bring an archived target back")):
        p = sub.add_parser(name, help=text)
        p.add_argument("key", type=target_key)
        add_write_options(p)
        runs(p, _archive(archived))


def _settings(p: argparse.ArgumentParser, creating: bool) -> None:
    p.add_argument("--name", help="display name (default: the key)")
    p.add_argument("--description")
    p.add_argument("--repository", action="append", default=[], metavar="NAME[=LOCATION]",
                   help="a repository whose commits this target deploys (repeatable); LOCATION "
                        "is a path where it can be read")
    if not creating:
        p.add_argument("--remove-repository", action="append", default=[], metavar="NAME")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--manual-controls", dest="manual_controls", action="store_true",
                       default=None, help="allow status changes by hand (set-status)")
    group.add_argument("--no-manual-controls", dest="manual_controls", action="store_false")
    p.add_argument("--hanging-after", type=duration_or_off, metavar="DURATION|off",
                   help="set 'hanging' after this long in 'deploying' (e.g. 30m; 'on' = 30m)")
    p.add_argument("--failed-after", type=duration_or_off, metavar="DURATION|off",
                   help="set 'failed' after this long in flight (e.g. 2h)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--start-requires-schedule", dest="start_requires_schedule",
                       action="store_true", default=None,
                       help="refuse 'start' unless a deployment is scheduled for the branch")
    group.add_argument("--no-start-requires-schedule", dest="start_requires_schedule",
                       action="store_false")
    p.add_argument("--schedule-on-push", action="append", default=None, metavar="BRANCH",
                   help="schedule a deployment when this branch is pushed (repeatable)")
    if not creating:
        p.add_argument("--no-schedule-on-push", action="store_true",
                       help="stop scheduling on push")
    health = p.add_argument_group(
        "health check", "probed by the watcher (git deploy watch): after --health-failures "
                        "failures in a row it opens an incident, after as many successes it "
                        "resolves it")
    health.add_argument("--health-url", metavar="URL",
                        help="GET this http(s) URL: healthy when it answers 2xx")
    health.add_argument("--health-expect", metavar="TEXT",
                        help="and when the first 64 KiB of the answer contain TEXT")
    health.add_argument("--health-exec", metavar="COMMAND",
                        help="run COMMAND (split like a shell, run without one): healthy when "
                             "it exits 0")
    health.add_argument("--health-every", type=duration, metavar="DURATION",
                        help="how often to probe (default 30s)")
    health.add_argument("--health-timeout", type=duration, metavar="DURATION",
                        help="how long one probe may take (default 5s, at most 5m)")
    health.add_argument("--health-failures", type=count, metavar="N",
                        help="failures in a row that open an incident (default 3)")
    if not creating:
        health.add_argument("--health-off", action="store_true",
                            help="remove the health check")


def _archive(archived: bool) -> Run:
    return lambda ctx, a: cmd_archive(ctx, key=a.key, archived=archived, as_json=a.as_json)


@dataclass(frozen=True, slots=True)
class SettingsOptions:
    """What _settings reads from a command line (edit has two options create has not)."""

    name: str | None
    description: str | None
    repository: list[str]
    remove_repository: list[str]
    manual_controls: bool | None
    hanging_after: int | str | None
    failed_after: int | str | None
    start_requires_schedule: bool | None
    schedule_on_push: list[str] | None
    no_schedule_on_push: bool
    health_url: str | None = None
    health_expect: str | None = None
    health_exec: str | None = None
    health_every: int | None = None
    health_timeout: int | None = None
    health_failures: int | None = None
    health_off: bool = False

    @classmethod
    def parsed(cls, a: argparse.Namespace, creating: bool) -> SettingsOptions:
        return cls(name=a.name, description=a.description, repository=a.repository,
                   remove_repository=[] if creating else a.remove_repository,
                   manual_controls=a.manual_controls, hanging_after=a.hanging_after,
                   failed_after=a.failed_after,
                   start_requires_schedule=a.start_requires_schedule,
                   schedule_on_push=a.schedule_on_push,
                   no_schedule_on_push=False if creating else a.no_schedule_on_push,
                   health_url=a.health_url, health_expect=a.health_expect,
                   health_exec=a.health_exec, health_every=a.health_every,
                   health_timeout=a.health_timeout, health_failures=a.health_failures,
                   health_off=False if creating else a.health_off)


def cmd_create(ctx: Context, key: str, options: SettingsOptions, as_json: bool = False) -> int:
    from dataclasses import asdict

    from git_deployments.core import intake

    request = intake.create_target_request(ctx.store, key, asdict(options))
    result = ctx.write(request)
    return _print_target(Output(as_json), result.change.target, result.commit,
                         f"created target '{key}' (repository '{request.repository}')")


def cmd_edit(ctx: Context, key: str, options: SettingsOptions, as_json: bool = False) -> int:
    from dataclasses import asdict

    from git_deployments.core import intake

    request = intake.edit_target_request(ctx.store, key, asdict(options))
    result = ctx.write(request)
    return _print_target(Output(as_json), result.change.target, result.commit,
                         f"updated target '{key}'")


def cmd_archive(ctx: Context, key: str, archived: bool, as_json: bool = False) -> int:
    from git_deployments.core import intake

    request = intake.archive_target_request(ctx.store, key, archived)
    result = ctx.write(request)
    verb = "archived" if archived else "unarchived"
    return _print_target(Output(as_json), result.change.target, result.commit,
                         f"{verb} target '{key}'")


def _print_target(out: Output, target: Target, commit: str, message: str) -> int:
    if out.as_json:
        from git_deployments.reading.targets import target_written

        out.json(target_written(target, commit))
    else:
        out.line(message)
    return 0


def describe_settings(target: Any) -> list[tuple[str, str]]:
    def timeout(value: int | None) -> str:
        return format_duration(value) if value else "off"

    repos = ", ".join(f"{r.name}={r.location}" if r.location else r.name
                      for r in target.repositories)
    return [
        ("name", target.name),
        ("description", target.description or "-"),
        ("repository", f"{target.repository} (holds refs/deployments/{target.key})"),
        ("repositories", repos),
        ("manual controls", "on" if target.manual_controls else "off"),
        ("hanging after", timeout(target.hanging_after)),
        ("failed after", timeout(target.failed_after)),
        ("start requires schedule", "yes" if target.start_requires_schedule else "no"),
        ("schedule on push", ", ".join(target.schedule_on_push) or "-"),
        ("health check", describe_health(target.health)),
        ("archived", "yes" if target.archived else "no"),
        ("created", iso(target.created_at)),
    ]


def describe_health(check: HealthCheck | None) -> str:
    if check is None:
        return "off"
    if check.url is not None:
        probe = f"GET {check.url}" + (f" expecting {check.expect!r}" if check.expect else "")
    else:
        from shlex import join

        probe = f"run {join(check.exec or [])}"
    return (f"{probe}, every {format_duration(check.every)}, timeout "
            f"{format_duration(check.timeout)}, incident after {check.failures} failures")


def cmd_show(ctx: Context, key: str, as_json: bool = False) -> int:
    out = Output(as_json)
    if as_json:
        from git_deployments.reading.targets import target_show

        out.json(target_show(ctx.store, key))
        return 0
    from git_deployments.reading.status import target_health

    target, index = ctx.store.existing(key).require()
    out.line(out.bold(f"target {key}"))
    for label, value in describe_settings(target):
        out.line(f"  {label + ':':<25}{value}")
    out.line(f"  {'deployments:':<25}{index.count} (next #{index.next_number})")
    health = target_health(ctx.store, key, target.health)
    if health is not None:
        last = f" at {health['checked_at']}: {health['reason']}" if health["checked_at"] else ""
        out.line(f"  {'health:':<25}{health['summary']}{last}")
    return 0


def cmd_list(ctx: Context, all: bool = False, as_json: bool = False) -> int:
    from git_deployments.reading.targets import target_entry, targets

    out = Output(as_json)
    rows = targets(ctx.store, include_archived=all)
    if as_json:
        out.json([target_entry(t, i) for t, i in rows])
        return 0
    if not rows:
        out.line("no targets; create one with 'git deploy target create <key>'")
        return 0
    out.table(["KEY", "NAME", "DEPLOYMENTS", "REPOSITORIES", ""],
              [(t.key, t.name, str(i.count), ", ".join(t.repository_names()),
                "archived" if t.archived else "") for t, i in rows])
    return 0
