"""`git deploy watch|sweep|subscribe|unsubscribe|subscriptions`: the watcher and who it tells."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from git_deployments.commands.common import add_json, runs, target_key
from git_deployments.commands.output import Output
from git_deployments.errors import DeployError, UsageError

if TYPE_CHECKING:
    from git_deployments.commands.context import Context


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "watch", help="run the watcher: timeouts and notifications, as a daemon",
        description="Apply the targets' hanging/failed timeouts and deliver notifications, "
                    "waking only when the deployment refs change or a deadline comes. One per "
                    "repository; stops cleanly on SIGTERM or SIGINT.")
    _repo_and_verbosity(p)
    runs(p, lambda ctx, a: cmd_watch(ctx, watch_repo=a.watch_repo, quiet=a.quiet,
                                     verbose=a.verbose))

    p = subparsers.add_parser(
        "sweep", help="apply due timeouts and deliver pending notifications once",
        description="The watcher's pass, once (for cron and scripts).")
    p.add_argument("--now", metavar="DATETIME",
                   help="evaluate the timeouts as of this time, and record them at it "
                        "(ISO 8601, 'now' or +DURATION)")
    _repo_and_verbosity(p)
    add_json(p)
    runs(p, lambda ctx, a: cmd_sweep(ctx, now=a.now, watch_repo=a.watch_repo, quiet=a.quiet,
                                     verbose=a.verbose, as_json=a.as_json))

    p = subparsers.add_parser(
        "subscribe", help="be notified of status changes and incidents (a command or a webhook)",
        description="Add a personal subscription, kept in this repository's git config (with "
                    "--global, in your own, for every repository you watch); the watcher "
                    "delivers each matching status change as JSON.")
    p.add_argument("target", type=target_key, nargs="?", help="the target (or --all)")
    p.add_argument("--all", action="store_true", help="every target, including future ones")
    p.add_argument("--on", type=_statuses, metavar="STATUS,...",
                   help="the new statuses to be told about (default: current; 'all' for all; "
                        "'deleted' for deletions; 'incident' for incidents opened or resolved)")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--exec", dest="exec_command", metavar="COMMAND",
                     help="run COMMAND (split like a shell, run without one) with the event "
                          "on stdin")
    how.add_argument("--webhook", metavar="URL", help="POST the event to URL")
    p.add_argument("--name", type=_name, help="a name for it (default: from the target)")
    p.add_argument("--timeout", type=_duration, metavar="DURATION",
                   help="how long one delivery may take (default: 30s for a command, 10s per "
                        "webhook attempt)")
    _global(p, "keep it in your own git config (~/.gitconfig): every repository's watcher "
               "delivers it")
    add_json(p)
    runs(p, lambda ctx, a: cmd_subscribe(ctx, target=a.target, all=a.all, on=a.on,
                                         exec_command=a.exec_command, webhook=a.webhook,
                                         name=a.name, timeout=a.timeout, personal=a.personal,
                                         as_json=a.as_json))

    p = subparsers.add_parser("unsubscribe", help="remove a subscription")
    p.add_argument("name", type=_name)
    _global(p, "remove it from your own git config")
    add_json(p)
    runs(p, lambda ctx, a: cmd_unsubscribe(ctx, name=a.name, personal=a.personal,
                                           as_json=a.as_json))

    p = subparsers.add_parser("subscriptions", help="list the subscriptions and how delivery "
                                                    "is going")
    add_json(p)
    runs(p, lambda ctx, a: cmd_subscriptions(ctx, as_json=a.as_json))


def _repo_and_verbosity(p: argparse.ArgumentParser) -> None:
    # `git deploy --repo PATH watch` works too; this is the same option after the command
    p.add_argument("--repo", dest="watch_repo", metavar="PATH",
                   help="the repository (a checkout or a bare server repository)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", help="log problems only")
    group.add_argument("-v", "--verbose", action="store_true",
                       help="also log what is noticed and when the next deadline falls")


def _statuses(text: str) -> frozenset[str]:
    from git_deployments.watch.notify import parse_statuses

    try:
        return parse_statuses(text)
    except DeployError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("invalid status ")) from None


def _name(text: str) -> str:
    from git_deployments.watch.notify import NAME_PATTERN

    if not NAME_PATTERN.match(text):
        raise argparse.ArgumentTypeError(
            f"invalid name {text!r}: use 1-64 of A-Z a-z 0-9 . _ - starting with a letter or "
            "digit")
    return text


def _duration(text: str) -> int:
    from git_deployments.core.timeutil import parse_duration

    try:
        return parse_duration(text)
    except DeployError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("invalid duration ")) from None


def _level(quiet: bool, verbose: bool) -> int:
    from git_deployments.watch.notify import ACTION, DETAIL, PROBLEM

    return PROBLEM if quiet else DETAIL if verbose else ACTION


def _use_repo(ctx: Context, watch_repo: str | None) -> None:
    if watch_repo is not None:
        ctx.repo_path = watch_repo


# --- watch and sweep ---------------------------------------------------------------------------


def cmd_watch(ctx: Context, watch_repo: str | None = None, quiet: bool = False,
              verbose: bool = False) -> int:
    import signal
    import threading

    from git_deployments.watch.daemon import Log, Watcher, instance_lock

    _use_repo(ctx, watch_repo)
    store = ctx.store
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        received.append(signum)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with instance_lock(store.git):
            Watcher(store, log=Log(_level(quiet, verbose))).run(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    # SIGTERM is how a service manager stops it: a normal end; Ctrl-C is an interruption
    return 130 if signal.SIGINT in received else 0


def cmd_sweep(ctx: Context, now: str | None = None, watch_repo: str | None = None,
              quiet: bool = False, verbose: bool = False, as_json: bool = False) -> int:
    from git_deployments.core.intake import clock
    from git_deployments.core.timeutil import iso, parse_datetime
    from git_deployments.watch.daemon import Log, Watcher, instance_lock
    from git_deployments.watch.notify import DETAIL

    # GIT_DEPLOY_NOW stands for --now, as it does for the time of any change
    moment = parse_datetime(now) if now is not None else clock()
    _use_repo(ctx, watch_repo)
    store = ctx.store
    # the log is stamped with the pass's time, as its changes are
    log = Log(_level(quiet, verbose), clock=lambda: moment)
    with instance_lock(store.git):
        result = Watcher(store, log=log).run_once(moment)
    if result.next_deadline is not None:
        log(DETAIL, f"next deadline {iso(result.next_deadline)}")
    if as_json:
        Output(True).json(result.as_json())
    return 0


# --- subscriptions -----------------------------------------------------------------------------


def _global(p: Any, text: str) -> None:
    p.add_argument("--global", dest="personal", action="store_true", help=text)


def cmd_subscribe(ctx: Context, target: str | None, all: bool, on: frozenset[str] | None,
                  exec_command: str | None, webhook: str | None, name: str | None,
                  timeout: int | None, personal: bool = False, as_json: bool = False) -> int:
    from git_deployments.watch.notify import (
        ALL_TARGETS,
        DEFAULT_ON,
        Subscription,
        add_subscription,
        check_webhook,
        read_subscriptions,
        split_command,
    )

    if target is not None and all:
        raise UsageError("give a target or --all, not both (see 'git deploy subscribe -h')")
    if target is None and not all:
        raise UsageError("give a target, or --all for every target (see 'git deploy "
                         "subscribe -h')")
    store = ctx.store
    command = exec_command
    if target is not None:
        store.existing(target)
    if command is not None:
        split_command(command)
    if webhook is not None:
        check_webhook(webhook)
    if name is None:
        taken = {sub.name for sub in read_subscriptions(store.git)}
        base = f"{target or 'all'}-{'exec' if command is not None else 'webhook'}"
        name = next(candidate for candidate in
                    (base if n == 1 else f"{base}-{n}" for n in range(1, len(taken) + 2))
                    if candidate not in taken)
    sub = add_subscription(store, Subscription(
        name=name, target=target or ALL_TARGETS, on=on or DEFAULT_ON, command=command,
        webhook=webhook, timeout=float(timeout) if timeout else None), personal)
    out = Output(as_json)
    if as_json:
        out.json(sub.as_json())
    else:
        out.line(f"subscribed '{sub.name}': {_scope(sub)} on {_statuses_label(sub)} -> "
                 f"{sub.kind} {sub.destination}")
    return 0


def cmd_unsubscribe(ctx: Context, name: str, personal: bool = False, as_json: bool = False) -> int:
    from git_deployments.watch.notify import remove_subscription

    sub = remove_subscription(ctx.store, name, personal)
    out = Output(as_json)
    if as_json:
        out.json(sub.as_json())
    else:
        out.line(f"unsubscribed '{sub.name}'")
    return 0


def cmd_subscriptions(ctx: Context, as_json: bool = False) -> int:
    from git_deployments.watch.notify import Courier, describe_state, read_subscriptions

    store = ctx.store
    rows = []
    for sub in read_subscriptions(store.git):
        data = sub.as_json()
        if sub.problem is None:
            courier = Courier(store, sub)
            data.update(describe_state(courier), pending=courier.pending())
        rows.append((sub, data))
    out = Output(as_json)
    if as_json:
        out.json([data for _, data in rows])
        return 0
    if not rows:
        out.line("no subscriptions; add one with 'git deploy subscribe <target> --exec CMD' "
                 "or '--webhook URL'")
        return 0
    table = []
    for sub, data in rows:
        if sub.problem:
            state = f"skipped: {sub.problem}"
        elif data["failures"]:
            state = f"failing ({data['failures']}x, retry at {data['retry_at']}): " \
                    f"{data['last_error']}"
        else:
            state = f"ok, {data['delivered']} delivered"
        if data.get("pending"):
            state += f", {data['pending']} pending"
        table.append((sub.name, _scope(sub), _statuses_label(sub),
                      f"{sub.kind} {sub.destination}", state))
    out.table(["NAME", "TARGET", "ON", "DELIVERY", "STATE"], table)
    return 0


def _scope(sub: Any) -> str:
    return "every target" if sub.target == "*" else sub.target


def _statuses_label(sub: Any) -> str:
    from git_deployments.watch.notify import EVENT_KINDS

    return "all" if sub.on == frozenset(EVENT_KINDS) else ",".join(sorted(sub.on))
