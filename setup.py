"""Builds the native front of `git deploy` (native/git-deploy.c) into the scripts.

The metadata is in pyproject.toml. `git-deploy` is the compiled front, which answers a question
asked before from its saved answer and runs `git-deploy-py` (the Python command) for anything
else. Where no C compiler works, `git-deploy` is the Python command itself (native/git-deploy).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from setuptools import Distribution, setup

# setuptools has no build_scripts of its own; this is its copy of distutils'
from distutils.command.build_scripts import build_scripts  # noqa: E402 isort: skip

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "native" / "git-deploy.c"


class BuildScripts(build_scripts):
    def run(self) -> None:
        super().run()  # native/git-deploy, the Python fallback
        target = Path(self.build_dir) / "git-deploy"
        compiler = shlex.split(os.environ.get("CC", "")) or \
            [c for c in (shutil.which("cc"), shutil.which("gcc")) if c][:1]
        if not compiler:
            print("git-deploy: no C compiler; installing the Python command alone")
            return
        built = target.with_name(".git-deploy.build")
        command = [*compiler, "-O2", "-std=c11", "-Wall", f'-DGIT_DEPLOY_BUILD="{build_id()}"',
                   "-o", str(built), str(SOURCE)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"git-deploy: the native front did not compile; installing the Python "
                  f"command alone\n{done.stderr}")
            built.unlink(missing_ok=True)
            return
        os.replace(built, target)


def build_id() -> str:
    """A hash of the sources: the saved answers of one build are never printed by another."""
    digest = hashlib.sha256()
    for path in [SOURCE, *sorted((HERE / "src" / "git_deployments").rglob("*.py"))]:
        digest.update(path.relative_to(HERE).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


class BinaryDistribution(Distribution):
    """The wheel holds a compiled program, so it is tagged for this platform."""

    def has_ext_modules(self) -> bool:
        return True


setup(
    scripts=["native/git-deploy"],
    cmdclass={"build_scripts": BuildScripts},
    distclass=BinaryDistribution,
)
