"""`git deploy target create|edit|show|list|archive|unarchive`."""

from __future__ import annotations

import argparse
from typing import Any

from git_deployments.commands.common import (
    add_json,
    add_write_options,
    duration_or_off,
    target_key,
)
from git_deployments.errors import DeployError
from git_deployments.commands.output import Output
from git_deployments.core.timeutil import format_duration, iso

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
    create.set_defaults(func=cmd_create)

    edit = sub.add_parser("edit", help="change a target's settings")
    edit.add_argument("key", type=target_key)
    _settings(edit, creating=False)
    add_write_options(edit)
    edit.set_defaults(func=cmd_edit)

    show = sub.add_parser("show", help="a target's settings and state")
    show.add_argument("key", type=target_key)
    add_json(show)
    show.set_defaults(func=cmd_show)

    listing = sub.add_parser("list", help="every target")
    listing.add_argument("--all", action="store_true", help="include archived targets")
    add_json(listing)
    listing.set_defaults(func=cmd_list)

    for name, archived, text in (("archive", True, "hide a target (its history is kept)"),
                                 ("unarchive", False, "bring an archived target back")):
        p = sub.add_parser(name, help=text)
        p.add_argument("key", type=target_key)
        add_write_options(p)
        p.set_defaults(func=cmd_archive, archived=archived)


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


def _check_timeouts(settings: dict[str, Any], current: tuple[Any, Any]) -> None:
    """The records' rule, checked before anything is asked of the repository."""
    from git_deployments.core.model import timeouts_problem

    hanging = settings.get("hanging_after", current[0])
    failed = settings.get("failed_after", current[1])
    problem = timeouts_problem(hanging if isinstance(hanging, int) else None,
                               failed if isinstance(failed, int) else None)
    if problem:
        raise DeployError(f"invalid timeouts: {problem}")


def _settings_from(args: dict[str, Any], existing: list[dict[str, Any]]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    if args.get("name") is not None and not args["name"].strip():
        raise DeployError("invalid name: must not be empty (the key is shown when none is set)")
    for name in ("name", "description", "manual_controls", "start_requires_schedule",
                 "schedule_on_push"):
        if args.get(name) is not None:
            settings[name] = args[name]
    if settings.get("schedule_on_push"):  # each branch once, in the order given
        settings["schedule_on_push"] = list(dict.fromkeys(settings["schedule_on_push"]))
    if args.get("no_schedule_on_push"):
        settings["schedule_on_push"] = []
    for name, default in (("hanging_after", DEFAULT_HANGING), ("failed_after", DEFAULT_FAILED)):
        value = args.get(name)
        if value is not None:
            settings[name] = default if value == "on" else value
    _check_timeouts(settings, args.get("current_timeouts") or (None, None))
    repositories = _repositories(args.get("repository") or [], existing)
    removed = set(args.get("remove_repository") or [])
    if args.get("repository") or removed:
        settings["repositories"] = [r for r in repositories if r["name"] not in removed]
    return settings


def cmd_create(ctx: Any, key: str, as_json: bool = False, **args: Any) -> int:
    from git_deployments.core import intake
    from git_deployments.core.model import CreateTarget

    git = ctx.git
    home = git.default_repository_name()
    existing = [{"name": home, "location": None}]
    settings = _settings_from(args, existing)
    settings.setdefault("repositories", existing)
    if home in (args.get("remove_repository") or []):
        raise DeployError(f"'{home}' holds the target's ref and cannot be removed")
    request = intake.new_request(CreateTarget, git, key, repository=home, settings=settings)
    result = ctx.write(request)
    return _print_target(Output(as_json), result.change.target, result.commit,
                         f"created target '{key}' (repository '{home}')")


def cmd_edit(ctx: Any, key: str, as_json: bool = False, **args: Any) -> int:
    from git_deployments.core import intake
    from git_deployments.core.model import EditTarget

    target, _ = ctx.store.existing(key).require()
    if target.repository in (args.get("remove_repository") or []):
        raise DeployError(f"'{target.repository}' holds the target's ref and cannot be removed")
    existing = [r.model_dump() for r in target.repositories]
    settings = _settings_from({**args, "current_timeouts": (target.hanging_after,
                                                            target.failed_after)}, existing)
    if not settings:
        raise DeployError("nothing to change: give at least one option (see "
                          "'git deploy target edit -h')")
    request = intake.new_request(EditTarget, ctx.git, key, settings=settings)
    result = ctx.write(request)
    return _print_target(Output(as_json), result.change.target, result.commit,
                         f"updated target '{key}'")


def cmd_archive(ctx: Any, key: str, archived: bool, as_json: bool = False) -> int:
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


def target_json(target: Any) -> dict[str, Any]:
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


def cmd_show(ctx: Any, key: str, as_json: bool = False) -> int:
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


def cmd_list(ctx: Any, all: bool = False, as_json: bool = False) -> int:
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
