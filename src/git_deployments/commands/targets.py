"""`git deploy target create|edit|show|list|archive|unarchive`."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from git_deployments.commands.common import (
    Run,
    add_json,
    add_write_options,
    duration_or_off,
    runs,
    target_key,
)
from git_deployments.commands.output import Output
from git_deployments.core.timeutil import format_duration, iso
from git_deployments.errors import DeployError

if TYPE_CHECKING:
    from git_deployments.commands.context import Context
    from git_deployments.core.model import Target

DEFAULT_HANGING = 30 * 60
DEFAULT_FAILED = 120 * 60


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

    @classmethod
    def parsed(cls, a: argparse.Namespace, creating: bool) -> SettingsOptions:
        return cls(name=a.name, description=a.description, repository=a.repository,
                   remove_repository=[] if creating else a.remove_repository,
                   manual_controls=a.manual_controls, hanging_after=a.hanging_after,
                   failed_after=a.failed_after,
                   start_requires_schedule=a.start_requires_schedule,
                   schedule_on_push=a.schedule_on_push,
                   no_schedule_on_push=False if creating else a.no_schedule_on_push)


def _repositories(specs: list[str], existing: list[dict[str, Any]]) -> list[dict[str, Any]]:
    repos = [dict(r) for r in existing]
    for spec in specs:
        name, sep, location = spec.partition("=")
        entry = {"name": name, "location": location if sep and location else None}
        for repo in repos:
            if repo["name"] == name:
                repo["location"] = entry["location"]
                break
        else:
            repos.append(entry)
    return repos


def _check_timeouts(settings: dict[str, Any], current: tuple[int | None, int | None]) -> None:
    """A deployment must be able to hang before it fails: hanging after < failed after."""
    hanging = settings.get("hanging_after", current[0])
    failed = settings.get("failed_after", current[1])
    if isinstance(hanging, int) and isinstance(failed, int) and hanging >= failed:
        raise DeployError(f"invalid timeouts: --hanging-after ({format_duration(hanging)}) must "
                          f"be shorter than --failed-after ({format_duration(failed)})")


def _settings_from(options: SettingsOptions, existing: list[dict[str, Any]],
                   current_timeouts: tuple[int | None, int | None] = (None, None)
                   ) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    if options.name is not None and not options.name.strip():
        raise DeployError("invalid name: must not be empty (the key is shown when none is set)")
    for name, given in (("name", options.name), ("description", options.description),
                        ("manual_controls", options.manual_controls),
                        ("start_requires_schedule", options.start_requires_schedule),
                        ("schedule_on_push", options.schedule_on_push)):
        if given is not None:
            settings[name] = given
    if settings.get("schedule_on_push"):  # each branch once, in the order given
        settings["schedule_on_push"] = list(dict.fromkeys(settings["schedule_on_push"]))
    if options.no_schedule_on_push:
        settings["schedule_on_push"] = []
    for name, value, default in (("hanging_after", options.hanging_after, DEFAULT_HANGING),
                                 ("failed_after", options.failed_after, DEFAULT_FAILED)):
        if value is not None:
            settings[name] = default if value == "on" else value
    _check_timeouts(settings, current_timeouts)
    repositories = _repositories(options.repository, existing)
    removed = set(options.remove_repository)
    if options.repository or removed:
        settings["repositories"] = [r for r in repositories if r["name"] not in removed]
    return settings


def cmd_create(ctx: Context, key: str, options: SettingsOptions, as_json: bool = False) -> int:
    from git_deployments.core import intake
    from git_deployments.core.model import CreateTarget

    git = ctx.git
    home = git.default_repository_name()
    existing = [{"name": home, "location": None}]
    settings = _settings_from(options, existing)
    settings.setdefault("repositories", existing)
    request = intake.new_request(CreateTarget, git, key, repository=home, settings=settings)
    result = ctx.write(request)
    return _print_target(Output(as_json), result.change.target, result.commit,
                         f"created target '{key}' (repository '{home}')")


def cmd_edit(ctx: Context, key: str, options: SettingsOptions, as_json: bool = False) -> int:
    from git_deployments.core import intake
    from git_deployments.core.model import EditTarget

    target, _ = ctx.store.existing(key).require()
    if target.repository in options.remove_repository:
        raise DeployError(f"'{target.repository}' holds the target's ref and cannot be removed")
    existing = [r.model_dump() for r in target.repositories]
    settings = _settings_from(options, existing, (target.hanging_after, target.failed_after))
    if not settings:
        raise DeployError("nothing to change: give at least one option (see "
                          "'git deploy target edit -h')")
    request = intake.new_request(EditTarget, ctx.git, key, settings=settings)
    result = ctx.write(request)
    return _print_target(Output(as_json), result.change.target, result.commit,
                         f"updated target '{key}'")


def cmd_archive(ctx: Context, key: str, archived: bool, as_json: bool = False) -> int:
    from git_deployments.core import intake
    from git_deployments.core.model import ArchiveTarget

    ctx.store.existing(key).require()
    request = intake.new_request(ArchiveTarget, ctx.git, key, archived=archived)
    result = ctx.write(request)
    verb = "archived" if archived else "unarchived"
    return _print_target(Output(as_json), result.change.target, result.commit,
                         f"{verb} target '{key}'")


def _print_target(out: Output, target: Any, commit: str, message: str) -> int:
    if out.as_json:
        out.json({**target_json(target), "timeline_commit": commit})
    else:
        out.line(message)
    return 0


def target_json(target: Target) -> dict[str, Any]:
    return target.model_dump(mode="json")


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
        ("archived", "yes" if target.archived else "no"),
        ("created", iso(target.created_at)),
    ]


def cmd_show(ctx: Context, key: str, as_json: bool = False) -> int:
    snap = ctx.store.existing(key)
    target, index = snap.require()
    out = Output(as_json)
    if as_json:
        out.json({**target_json(target), "index": index.model_dump(mode="json"),
                  "timeline_commit": snap.tip})
        return 0
    out.line(out.bold(f"target {key}"))
    for label, value in describe_settings(target):
        out.line(f"  {label + ':':<25}{value}")
    out.line(f"  {'deployments:':<25}{index.count} (next #{index.next_number})")
    return 0


def cmd_list(ctx: Context, all: bool = False, as_json: bool = False) -> int:
    store = ctx.store
    out = Output(as_json)
    rows = []
    for key in store.keys():
        snap = store.snapshot(key)
        target, index = snap.require()
        if target.archived and not all:
            continue
        rows.append((target, index))
    if as_json:
        out.json([{**target_json(t), "deployments": i.count} for t, i in rows])
        return 0
    if not rows:
        out.line("no targets; create one with 'git deploy target create <key>'")
        return 0
    out.table(["KEY", "NAME", "DEPLOYMENTS", "REPOSITORIES", ""],
              [(t.key, t.name, str(i.count), ", ".join(t.repository_names()),
                "archived" if t.archived else "") for t, i in rows])
    return 0
