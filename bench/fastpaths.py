"""What each fast path beside a kept library buys a user: whole `git deploy status` and
`git deploy start` processes, with the fast path as it is and with the library doing the work
alone, interleaved with the floor (`python -c 'import pygit2'`).

    python bench/fastpaths.py              # 15 rounds
    python bench/fastpaths.py --rounds 31

The library-only variants run the same command with one seam turned off before it starts: the
records' validation left to pydantic (core/validation.py), the YAML left to ruamel.yaml
(core/records.py), the target lock left to filelock (core/locking.py). Every variant runs as
`python -c` importing the command line, so they differ in that seam alone. Prints medians in
milliseconds and each variant's cost over the fast one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
SRC = Path(__file__).resolve().parent.parent / "src"

RUN = "import sys; from git_deployments.cli import main; sys.exit(main(sys.argv[1:]))"
# each turns one fast path off: the library alone does that work
SEAMS = {
    "fast paths": "",
    "pydantic alone": (
        "from git_deployments.core import validation as v; "
        "v.Record.validate_plain = classmethod(lambda cls, data: v._never(data)); "
        "v.plain_check = lambda *args, **kwargs: v._never; "
    ),
    "ruamel alone": (
        "from git_deployments.core import plainyaml as p; "
        "p.dump = lambda data: None; p.load = lambda *args: p.NOT_PLAIN; "
    ),
    "filelock alone": (
        "from git_deployments.core import locking as l; "
        "l.flock = None; "
    ),
}


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GIT_", "GITHUB_", "GITLAB_", "CI_", "JENKINS_", "TEAMCITY_"))
           and k != "CI"}
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1", NO_COLOR="1",
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               GIT_AUTHOR_NAME="Bench Runner", GIT_AUTHOR_EMAIL="bench@example.com",
               GIT_COMMITTER_NAME="Bench Runner", GIT_COMMITTER_EMAIL="bench@example.com")
    return env


def run(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {done.stderr.strip()}")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds
    python = str(BIN / "python")
    work = Path(tempfile.mkdtemp(prefix="git-deploy-fastpaths-"))
    try:
        env = environment(work)
        subprocess.run([python, "-m", "compileall", "-q", str(SRC / "git_deployments")],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        repo = work / "app"
        repo.mkdir()
        for args in (["git", "init", "-q", "-b", "main"],
                     ["git", "commit", "-q", "--allow-empty", "-m", "first"],
                     ["git", "deploy", "target", "create", "prod"]):
            run(args, repo, env)
        for _ in range(10):  # a target with some history, as status meets it
            run(["git", "deploy", "start", "prod"], repo, env)
            run(["git", "deploy", "finish", "prod"], repo, env)
        times: dict[str, list[float]] = {}
        for _ in range(rounds):
            times.setdefault("floor: python -c 'import pygit2'", []).append(
                run([python, "-c", "import pygit2"], repo, env))
            times.setdefault("git deploy status (as typed)", []).append(
                run(["git", "deploy", "status"], repo, env))
            for name, patch in SEAMS.items():
                for command in ("status", "start"):
                    args = [command] if command == "status" else [command, "prod"]
                    times.setdefault(f"{command}, {name}", []).append(
                        run([python, "-c", patch + RUN, *args], repo, env))
                    if command == "start":  # back to the same state, untimed
                        run(["git", "deploy", "finish", "prod"], repo, env)
        medians = {name: statistics.median(values) * 1000 for name, values in times.items()}
        width = max(len(name) for name in medians)
        for name, value in medians.items():
            line = f"{name:<{width}}  {value:7.1f} ms"
            command = name.split(",")[0]
            fast = medians.get(f"{command}, fast paths")
            if fast and name != f"{command}, fast paths" and "," in name:
                line += f"  {value - fast:+7.1f} ms over the fast paths ({value / fast:.2f}x)"
            print(line)
        print(f"({rounds} interleaved rounds; medians)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
