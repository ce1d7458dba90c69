"""`git deploy token create|list|revoke`: the bearer tokens `git deploy serve` accepts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from git_deployments.commands.common import add_json, runs
from git_deployments.commands.output import Output
from git_deployments.errors import DeployError

if TYPE_CHECKING:
    from datetime import datetime

    from git_deployments.access.tokens import TokenStore
    from git_deployments.commands.context import Context


def register(subparsers: Any) -> None:
    token = subparsers.add_parser(
        "token", help="create, list and revoke the server's access tokens",
        description="Tokens for 'git deploy serve', kept hashed in this repository's local "
                    "state (never in a ref, so never pushed), or with --root in DIR's.")
    sub = token.add_subparsers(dest="token_command", metavar="<subcommand>", required=True,
                               parser_class=type(token))

    create = sub.add_parser("create", help="create a token and print its secret (only now)")
    create.add_argument("name", help="a name for it, recorded as who made each change "
                                     "(token:NAME)")
    create.add_argument("--can", required=True, metavar="PERMISSION,...",
                        help="view, modify-deployments, modify-targets (comma-separated)")
    create.add_argument("--expires", metavar="DURATION|never", default="never",
                        help="how long it is valid, e.g. 90d (default: never expires)")
    create.add_argument("--project", metavar="NAME",
                        help="only for this project (a repository under --root)")
    _where(create)
    add_json(create)
    runs(create, lambda ctx, a: cmd_create(ctx, name=a.name, can=a.can, expires=a.expires,
                                           project=a.project, root=a.root, as_json=a.as_json))

    listing = sub.add_parser("list", help="every token, its permissions and state")
    _where(listing)
    add_json(listing)
    runs(listing, lambda ctx, a: cmd_list(ctx, root=a.root, as_json=a.as_json))

    revoke = sub.add_parser("revoke", help="refuse a token from now on")
    revoke.add_argument("name")
    _where(revoke)
    add_json(revoke)
    runs(revoke, lambda ctx, a: cmd_revoke(ctx, name=a.name, root=a.root, as_json=a.as_json))


def _where(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", metavar="DIR",
                   help="the tokens of 'git deploy serve --root DIR' (default: this "
                        "repository's)")


def token_store(ctx: Context, root: str | None) -> TokenStore:
    from git_deployments.access.tokens import TokenStore

    if root is None:
        return TokenStore.of_repository(ctx.git.common_dir)
    directory = Path(root)
    if not directory.is_dir():
        raise DeployError(f"--root {root}: not a directory")
    return TokenStore.of_root(directory.resolve())


def _now() -> datetime:
    from git_deployments.core.intake import clock

    return clock()


def cmd_create(ctx: Context, name: str, can: str, expires: str = "never",
               project: str | None = None, root: str | None = None,
               as_json: bool = False) -> int:
    from git_deployments.access.tokens import PERMISSION_NAMES, check_name, parse_permissions
    from git_deployments.core.model import REPOSITORY_PATTERN
    from git_deployments.core.timeutil import iso, parse_duration

    check_name(name)
    permissions = parse_permissions(can)
    expires_in = None if expires.strip().lower() == "never" else parse_duration(expires)
    if project is not None and not REPOSITORY_PATTERN.match(project.removesuffix(".git")):
        raise DeployError(f"invalid project name {project!r}")
    store = token_store(ctx, root)
    token, secret = store.create(name, permissions, now=_now(), expires_in=expires_in,
                                 project=project.removesuffix(".git") if project else None)
    out = Output(as_json)
    if as_json:
        out.json({**token.as_json(_now()), "secret": secret})
        return 0
    out.line(secret)
    grants = ", ".join(PERMISSION_NAMES[p] for p in token.permissions)
    until = f"until {iso(token.expires_at)}" if token.expires_at else "with no expiry"
    scope = f" on project '{token.project}'" if token.project else ""
    print(f"created token '{name}': {grants}{scope}, {until}. The secret above is shown only "
          "now; send it as 'Authorization: Bearer <secret>'", file=sys.stderr)
    return 0


def cmd_list(ctx: Context, root: str | None = None, as_json: bool = False) -> int:
    from git_deployments.core.timeutil import iso

    store = token_store(ctx, root)
    now = _now()
    tokens = store.tokens()
    out = Output(as_json)
    if as_json:
        out.json([t.as_json(now) for t in tokens])
        return 0
    if not tokens:
        out.line("no tokens; create one with 'git deploy token create NAME --can view'")
        return 0
    out.table(["NAME", "CAN", "PROJECT", "EXPIRES", "STATE"], [
        (t.name, ",".join(t.permissions), t.project or "-",
         iso(t.expires_at) if t.expires_at else "never", t.state(now))
        for t in tokens])
    return 0


def cmd_revoke(ctx: Context, name: str, root: str | None = None, as_json: bool = False) -> int:
    store = token_store(ctx, root)
    token = store.revoke(name, now=_now())
    out = Output(as_json)
    if as_json:
        out.json(token.as_json(_now()))
    else:
        out.line(f"revoked token '{name}'")
    return 0
