#!/usr/bin/env python3
"""Serve the sample repository's dashboard on this machine only: `make serve`.

Reading needs no token, for this sample alone (its own git config gets
deploy.serve.anonymousRead); a token that may also drive deployments, valid for a day, is
printed for trying the manual controls on production. The sample is built first if `make demo`
has not built it yet.

Usage: python sample-repo/serve.py [--port 8000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

import generate

HOST = "127.0.0.1"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    work = generate.HERE / "out" / "bookshelf"
    if not (work / ".git").is_dir():
        print("Building the sample repository first (sample-repo/generate.py) ...", flush=True)
        work = generate.generate(generate.HERE / "out", quiet=True)
    # the one installed beside this Python first (`.venv/bin` when run as `make serve` does)
    program = shutil.which("git-deploy", path=os.pathsep.join(
        [os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    if program is None:
        print("error: git-deploy is not installed here: run 'make setup' first",
              file=sys.stderr)
        return 1
    env = generate.clean_env()
    subprocess.run(["git", "config", "deploy.serve.anonymousRead", "true"], cwd=work,
                   env=env, check=True)
    name = "try-" + datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    made = subprocess.run([program, "token", "create", name, "--can",
                           "view,modify-deployments", "--expires", "1d"], cwd=work, env=env,
                          capture_output=True, text=True)
    url = f"http://{HOST}:{args.port}/"
    print(f"\nThe dashboard of {generate.shown(work)}: open {url} in a browser.")
    print("Reading needs no token here (this sample only).")
    if made.returncode == 0:
        print(f"To try the manual controls on production, sign in with this token (valid for "
              f"a day):\n    {made.stdout.strip()}")
    print("Ctrl-C stops the server.\n", flush=True)
    os.chdir(work)
    os.execve(program, [program, "serve", "--repo", str(work), "--host", HOST, "--port",
                        str(args.port)], env)
    return 0  # not reached: the server takes over this process


if __name__ == "__main__":
    raise SystemExit(main())
