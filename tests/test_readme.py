"""The README's commands are what CI runs: a newcomer's path is the tested one."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    """The commands of the first shell block in the README, comments dropped."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```(?:sh|shell|bash|console)\n(.*?)```", text, re.S)
    assert block, "the README has no shell block"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()
            if line.split("#", 1)[0].strip()]


def ci_commands() -> list[str]:
    """What .ci/run runs, after its shell settings and moving to the repository's top."""
    commands = []
    for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith(("set ", "cd ")):
            commands.append(line)
    return commands


def test_ci_runs_the_readme_commands_as_written() -> None:
    assert readme_commands() == ci_commands()


def test_the_first_command_is_the_demo() -> None:
    assert readme_commands()[0] == "make demo"


def test_the_makefile_has_those_targets() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for command in readme_commands():
        program, target = command.split()
        assert program == "make"
        assert re.search(rf"^{re.escape(target)}:", makefile, re.M), target


def test_ci_script_is_executable() -> None:
    assert (ROOT / ".ci" / "run").stat().st_mode & 0o111
