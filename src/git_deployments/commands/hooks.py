"""`git deploy install-hooks` and `git deploy hook <name>` (what the installed scripts run)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from git_deployments.commands.common import runs
from git_deployments.commands.output import Output

if TYPE_CHECKING:
    from git_deployments.commands.context import Context


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "install-hooks", help="install the server hooks (pre-receive, post-receive)",
        description="Install pre-receive (validates pushed timelines) and post-receive "
                    "(schedules deployments on push) into this repository's hooks directory, "
                    "core.hooksPath included. A hook already there is kept as <hook>.legacy "
                    "and runs first.")
    p.add_argument("--server", action="store_true",
                   help="install even though this repository has a work tree")
    runs(p, lambda ctx, a: cmd_install(ctx, server=a.server))

    p = subparsers.add_parser("hook", help="run a server hook (the installed scripts call this)",
                              description="Read the hook's input from stdin, as git gives it.")
    p.add_argument("name", choices=["pre-receive", "post-receive"])
    runs(p, lambda ctx, a: cmd_hook(ctx, name=a.name))


def cmd_install(ctx: Context, server: bool = False) -> int:
    from git_deployments.sharing.hooks import install

    out = Output()
    for line in install(ctx.git, server):
        out.line(line)
    return 0


def cmd_hook(ctx: Context, name: str) -> int:
    from git_deployments.git.repo import open_repository
    from git_deployments.sharing import hooks

    # from the environment: inside git's quarantine, GIT_DIR and the object directories git
    # sets make the pushed (not yet accepted) objects readable
    git = open_repository(ctx.repo_path)
    updates = hooks.read_input(sys.stdin.buffer)  # every line, or the whole push refused
    if name == "pre-receive":
        refusals = hooks.pre_receive(git, updates, os.environ)
        for line in refusals:
            print(f"error: {line}", file=sys.stderr)
        return 1 if refusals else 0
    done, failed = hooks.post_receive(git, updates, os.environ)
    for line in done:
        print(line)
    for line in failed:
        print(f"error: {line}", file=sys.stderr)
    return 1 if failed else 0
