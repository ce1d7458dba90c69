"""Small pieces the command modules share: wiring, option groups and argument converters."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from git_deployments.errors import DeployError, UsageError

if TYPE_CHECKING:
    from git_deployments.commands.context import Context

# what a parsed command line runs: it hands each option to its command function by keyword, so
# a renamed parameter is a type error, and an option the parser lacks fails test_cli_wiring.py
Run: TypeAlias = "Callable[[Context, argparse.Namespace], int]"


def runs(parser: argparse.ArgumentParser, run: Run) -> None:
    parser.set_defaults(run=run)


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", dest="as_json", action="store_true",
                        help="print machine-readable JSON")


def add_write_options(parser: argparse.ArgumentParser) -> None:
    """Options every write command takes."""
    add_json(parser)
    parser.add_argument("--sync", nargs="?", const="", default=None, metavar="REMOTE",
                        help="fetch from the remote first and push the change (default remote: "
                             "origin); replays and retries when another clone raced")


# Converters raise DeployError (exit 1: an invalid value), which argparse lets through, rather
# than ArgumentTypeError (exit 2: the command line's shape is wrong).


def number(text: str) -> int:
    from git_deployments.core.model import MAX_NUMBER

    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_NUMBER)) or \
            not 1 <= int(text) <= MAX_NUMBER:
        raise DeployError(f"invalid deployment number {text!r}: expected 1, 2, 3...")
    return int(text)


def count(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise DeployError(f"invalid count {text!r}: expected 0, 1, 2...")
    return int(text)


def target_key(text: str) -> str:
    from git_deployments.core.model import key_problem

    problem = key_problem(text)
    if problem:
        raise DeployError(f"invalid target key {text!r}: {problem}")
    return text


def duration(text: str) -> int:
    from git_deployments.core.timeutil import parse_duration

    return parse_duration(text)


def duration_or_off(text: str) -> int | str:
    from git_deployments.core.timeutil import parse_duration

    if text.lower() in ("off", "none", "disabled"):
        return "off"
    if text.lower() == "on":
        return "on"
    return parse_duration(text)


def require(value: Any, message: str) -> Any:
    if value is None:
        raise UsageError(message)
    return value
