"""The watcher's CPU use while idle: nothing due for an hour, nothing changing.

Starts `git deploy watch` on a fresh repository with a deployment in flight (a deadline an hour
away) and a subscription, lets it idle, and prints the CPU time its process used meanwhile, read
from /proc/<pid>/stat. A figure, not a test: `python bench/bench_idle.py [SECONDS]`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc/<pid>/stat (fields 14 and 15)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / TICKS


def run(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    subprocess.run(args, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)


def start_watcher(deploy: list[str], repo: Path, env: dict[str, str],
                  ready: Path) -> subprocess.Popen[bytes] | None:
    """`git deploy watch` started in `repo`, once `ready` exists (within 30 s); None when it
    exited or never got there (it is stopped then)."""
    watcher = subprocess.Popen([*deploy, "watch", "--quiet"], cwd=repo, env=env)
    deadline = time.monotonic() + 30
    while not ready.exists():
        if time.monotonic() > deadline or watcher.poll() is not None:
            watcher.kill()
            watcher.wait()
            return None
        time.sleep(0.05)
    return watcher


def main() -> int:
    idle = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    work = Path(tempfile.mkdtemp(prefix="bench-idle-"))
    env = {**os.environ, "HOME": str(work), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
    env.pop("GIT_DEPLOY_NOW", None)
    deploy = [sys.executable, "-m", "git_deployments"]
    repo = work / "app"
    try:
        run(["git", "init", "-q", "-b", "main", str(repo)], work, env)
        run(["git", "commit", "-q", "--allow-empty", "-m", "first"], repo, env)
        run([*deploy, "target", "create", "production", "--hanging-after", "1h"], repo, env)
        run([*deploy, "start", "production"], repo, env)
        run([*deploy, "subscribe", "production", "--exec", "true"], repo, env)
        # the watcher process itself (not a `git` wrapper), so its pid is the one to read
        watcher = start_watcher(deploy, repo, env, repo / ".git/git-deployments/watch/pid")
        if watcher is None:
            print("the watcher did not start", file=sys.stderr)
            return 1
        time.sleep(1.0)  # start-up (imports, the first pass) is not idling
        before, started = cpu_seconds(watcher.pid), time.monotonic()
        time.sleep(idle)
        used, elapsed = cpu_seconds(watcher.pid) - before, time.monotonic() - started
        watcher.send_signal(signal.SIGTERM)
        code = watcher.wait(timeout=10)
        print(f"watcher idle for {elapsed:.1f}s: {used:.2f}s CPU "
              f"({used / elapsed * 100:.2f}% of one core; clock tick {1 / TICKS:.2f}s); "
              f"exit {code} on SIGTERM")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
