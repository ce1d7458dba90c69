"""Argument parsing and dispatch; the one place that turns errors into exit codes."""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from git_deployments import __version__
from git_deployments.commands.context import Context
from git_deployments.errors import DeployError, UsageError

if TYPE_CHECKING:
    from git_deployments.commands.common import Run

# each module registers its subcommands with `register(subparsers)`, and what each one runs;
# the commands it registers are named here so that a command line builds its own alone (a
# module's imports and its parsers cost a short command more than its answer);
# tests/test_cli_wiring.py holds this to what the modules register
COMMAND_MODULES = {
    "git_deployments.commands.reading": ("status", "list", "show", "log"),
    "git_deployments.commands.targets": ("target",),
    "git_deployments.commands.deployments": ("schedule", "start", "finish", "fail",
                                             "set-status", "edit", "delete", "comment"),
    "git_deployments.commands.incidents": ("incident", "incidents"),
    "git_deployments.commands.history": ("commits", "pending", "contains", "compare", "issues",
                                         "rollback", "import-tags", "keep"),
    "git_deployments.commands.metrics": ("metrics",),
    "git_deployments.commands.sync": ("init", "pull", "push", "sync", "backups"),
    "git_deployments.commands.hooks": ("install-hooks", "hook"),
    "git_deployments.commands.run": ("run",),
    "git_deployments.commands.care": ("fsck", "doctor"),
    "git_deployments.commands.watch": ("watch", "sweep", "subscribe", "unsubscribe",
                                       "subscriptions"),
    "git_deployments.commands.tokens": ("token",),
    "git_deployments.commands.serve": ("serve",),
}
_GLOBAL_FLAGS = ("--debug",)
_GLOBAL_VALUES = ("--repo",)  # a global option followed by its value

# what writing the output can meet (`> /dev/full`, a quota, a file size limit)
_OUTPUT_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 3


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} -h')")


def build_parser(argv: Sequence[str] | None = None) -> Parser:
    """The parser of every command; given the command line, of its command alone when the line
    plainly names one (anything else gets every command: help, a usage error, the default)."""
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
    named = _command_module(argv) if argv is not None else None
    for name in COMMAND_MODULES if named is None else (named,):
        importlib.import_module(name).register(subparsers)
    return parser


def _command_module(argv: Sequence[str]) -> str | None:
    """The module that registers the command `argv` names, or None: no command, an option this
    cannot read, or a word that names none."""
    words = iter(argv)
    for word in words:
        if word in _GLOBAL_FLAGS or word.startswith(tuple(f"{o}=" for o in _GLOBAL_VALUES)):
            continue
        if word in _GLOBAL_VALUES:
            next(words, None)
            continue
        return next((module for module, names in COMMAND_MODULES.items() if word in names),
                    None)
    return None


def dispatch(args: argparse.Namespace, ctx: Context) -> int:
    run: Run = args.run  # set by each command's parser (commands/common.py: runs)
    return run(ctx, args)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("GIT_DEPLOY_DEBUG") == "1"
    try:
        parser = build_parser(argv)
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
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        print(f"internal error: {type(exc).__name__}: {first_line}"
              " (run with --debug for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


def _discard_stdout() -> None:
    """Drop what could not be written, so the interpreter's exit does not try again."""
    try:
        sys.stdout = open(os.devnull, "w")  # lives until exit
    except OSError:
        pass
