"""Argument parsing and dispatch; the one place that turns errors into exit codes."""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from git_deployments import __version__
from git_deployments.errors import DeployError, UsageError

# each module registers its subcommands with `register(subparsers)`
COMMAND_MODULES = (
    "git_deployments.commands.reading",
    "git_deployments.commands.targets",
    "git_deployments.commands.deployments",
    "git_deployments.commands.history",
    "git_deployments.commands.sync",
    "git_deployments.commands.hooks",
    "git_deployments.commands.run",
    "git_deployments.commands.care",
    "git_deployments.commands.watch",
    "git_deployments.commands.tokens",
    "git_deployments.commands.serve",
)

# what writing the output can meet (`> /dev/full`, a quota, a file size limit)
_OUTPUT_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})
CO_VARKEYWORDS = 0x08  # a code object's flag for **kwargs
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 3


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} -h')")


class Context:
    """What every command gets: the repository (opened on first use) and global options."""

    def __init__(self, repo_path: str | None, debug: bool, sync_remote: str | None = None) -> None:
        self.repo_path = repo_path
        self.debug = debug
        # set by --sync[=REMOTE] on write commands: fetch, apply, push, retry
        self.sync_remote = sync_remote
        self._store: Any = None

    @property
    def store(self) -> Any:
        if self._store is None:
            from git_deployments.core.store import open_store

            self._store = open_store(self.repo_path)
            if self.sync_remote is not None:
                from git_deployments.sharing.sync import before_write

                # a synced write reads the remote's state (a fresh CI clone has none of its own)
                before_write(self._store, self.sync_remote or None)
        return self._store

    @property
    def opened(self) -> bool:
        return self._store is not None

    @property
    def git(self) -> Any:
        return self.store.git

    def write(self, request: Any) -> Any:
        """Every write command's one way to record a request."""
        if self.sync_remote is not None:
            from git_deployments.sharing.sync import write_synced

            return write_synced(self.store, request, self.sync_remote or None)
        return self.store.write(request)


def build_parser() -> Parser:
    parser = Parser(
        prog="git deploy",
        description="Track what is deployed where, as records in git refs.",
        epilog="'git deploy' alone shows the status of every target. "
               "'git deploy <command> -h' shows a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"git-deploy {__version__}")
    parser.add_argument("--repo", metavar="PATH", help="the repository (default: discover)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", parser_class=Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def dispatch(args: argparse.Namespace, ctx: Context) -> int:
    func: Callable[..., int] = args.func
    code = func.__code__  # not inspect.signature: importing inspect costs every command 4 ms
    wanted = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
    takes_all = bool(code.co_flags & CO_VARKEYWORDS)
    skip = {"func", "command", "repo", "debug", "sync", "target_command"}
    kwargs = {name: value for name, value in vars(args).items()
              if name in wanted or (takes_all and name not in skip)}
    return func(ctx, **kwargs)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("GIT_DEPLOY_DEBUG") == "1"
    try:
        parser = build_parser()
        args = parser.parse_args(argv or ["status"])
        if args.command is None:
            args = parser.parse_args([*argv, "status"])
        ctx = Context(args.repo, args.debug, getattr(args, "sync", None))
        code = dispatch(args, ctx)
        sys.stdout.flush()  # a full disk under `> file` is reported here, not at exit
        return code
    except DeployError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (`git deploy log | head`): not an error
        sys.stderr.close()
        return 0
    except OSError as exc:
        if debug or exc.errno not in _OUTPUT_ERRORS:
            raise
        # the repository's own writes report these as DeployError: this was the output
        print(f"error: cannot write the output: {exc.strerror}", file=sys.stderr)
        _discard_stdout()
        return 1
    except Exception as exc:
        if debug:
            raise
        print(f"internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
              " (run with --debug for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


def _discard_stdout() -> None:
    """Drop what could not be written, so the interpreter's exit does not try again."""
    try:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until exit
    except OSError:
        pass
