"""The README's commands are what CI runs: a newcomer's path is the tested one."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands(optional: bool = True) -> list[str]:
    """The commands of the first shell block in the README, comments dropped; those whose
    comment starts with 'optional' only when asked."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```(?:sh|shell|bash|console)\n(.*?)```", text, re.S)
    assert block, "the README has no shell block"
    commands = []
    for line in block.group(1).splitlines():
        command, _, comment = line.partition("#")
        if command.strip() and (optional or not comment.strip().startswith("optional")):
            commands.append(command.strip())
    return commands


def ci_commands() -> list[str]:
    """What .ci/run runs, after its shell settings, moving to the repository's top, and
    preparing the machine (the browser the tests need, and the variables that say so)."""
    commands = []
    for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith(("set ", "cd ", "export ", "if ", "then ", "fi")):
            commands.append(line)
    return commands


def test_ci_runs_the_readme_commands_as_written() -> None:
    assert readme_commands(optional=False) == ci_commands()


def test_the_optional_command_serves_the_sample() -> None:
    assert readme_commands() == [*ci_commands(), "make serve"]


def test_ci_installs_the_browser_and_makes_its_tests_required() -> None:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "apt-get install -y chromium" in script and "/usr/bin/chromium" in script
    assert "GIT_DEPLOY_BROWSER_TESTS=required" in script
    assert "playwright install" not in script  # the system's browser, never a download


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
