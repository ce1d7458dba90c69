"""Every command line reaches its command function: each parser's `run` reads only options that
parser defines and passes them to parameters the function has. A renamed parameter is also a
type error (mypy); this catches the other half, an option renamed or moved."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from git_deployments.cli import COMMAND_MODULES, build_parser
from git_deployments.commands.context import Context
from git_deployments.errors import DeployError


def commands(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()
             ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """(command words, parser) for every command, `target create` included."""
    found = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found = True
            for name, sub in action.choices.items():
                yield from commands(sub, (*words, name))
    if not found and words:
        yield words, parser


def smallest_command_line(parser: argparse.ArgumentParser) -> list[str]:
    """What the parser requires, each value the first choice or `1` (a valid key, number,
    count and name alike)."""
    argv: list[str] = []
    for action in parser._actions:
        value = str(next(iter(action.choices))) if action.choices else "1"
        if not action.option_strings:
            if action.nargs not in ("?", "*"):
                argv.append(value)
        elif action.required:
            argv += [action.option_strings[0], value]
    for group in parser._mutually_exclusive_groups:
        if group.required:
            argv += group._group_actions[0].option_strings[:1]
            if group._group_actions[0].nargs != 0:
                argv.append("1")
    return argv


COMMANDS = list(commands(build_parser()))


def test_every_command_is_found() -> None:
    names = {" ".join(words) for words, _ in COMMANDS}
    assert {"status", "target create", "target unarchive", "finish", "run", "hook",
            "subscribe", "import-tags", "backups"} <= names
    assert len(names) >= 35


@pytest.mark.parametrize("words", [words for words, _ in COMMANDS], ids=" ".join)
def test_a_command_line_reaches_its_function(words: tuple[str, ...], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    parser = dict(COMMANDS)[words]
    tail = ["--", "true"] if words == ("run",) else []
    line = [*words, *smallest_command_line(parser), *tail]
    args = build_parser(line).parse_args(line)  # the parser of the command's own module
    # no repository here: every command stops at its first use of one, with a DeployError,
    # after its options were read and handed over (an AttributeError or TypeError otherwise)
    empty = tmp_path / "not-a-repository"
    empty.mkdir()
    monkeypatch.chdir(empty)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    with pytest.raises(DeployError):
        args.run(Context(str(empty), debug=False), args)


def registered(line: list[str]) -> set[str]:
    """The commands the parser built for `line` knows."""
    found = next(a for a in build_parser(line)._actions
                 if isinstance(a, argparse._SubParsersAction))
    return set(found.choices)


def test_a_command_line_builds_the_parsers_of_its_own_module_alone() -> None:
    for module, names in COMMAND_MODULES.items():
        alone = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module).register(alone)
        assert tuple(alone.choices) == names  # the table says what each module registers
    every = {words[0] for words, _ in COMMANDS}
    assert every == {name for names in COMMAND_MODULES.values() for name in names}
    history = set(COMMAND_MODULES["git_deployments.commands.history"])
    assert registered(["commits", "prod"]) == history
    assert registered(["--debug", "--repo", "commits", "pending", "x"]) == history
    assert registered(["--repo=/tmp", "keep"]) == history
    # no command, help, a word that names no command: every command, for help and errors
    for line in ([], ["--debug"], ["-h"], ["--version"], ["nope"], ["--rep", "x", "commits"]):
        assert registered(line) == every
