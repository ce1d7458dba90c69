"""How soon the watcher writes a health check's transitions.

Starts `git deploy watch` on a fresh repository whose target probes a loopback HTTP server (in
this process) every second, with `--health-failures 2`. Each round turns the server unhealthy
(503) until the incident is opened, then healthy until it is resolved, and prints two lags:

- open: from the server's answer to the Nth failing probe to the incident's commit on the ref;
- resolve: from its answer to the Nth passing probe to the resolution's commit.

The server notes when it answered; the ref's file is looked at every 5 ms. A figure, not a
test: `python bench/bench_health.py [--rounds 3] [--every 1] [--failures 2]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench_idle import start_watcher

POLL = 0.005


class Service:
    """A loopback server answering 200 or 503 as `healthy` says, noting each answer's time."""

    def __init__(self) -> None:
        self.healthy = True
        self.answers: list[tuple[float, int]] = []
        self.lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                code = 200 if service.healthy else 503
                body = b"ok\n" if code == 200 else b"down\n"
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                with service.lock:
                    service.answers.append((time.time(), code))

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/health"

    def answered_since(self, since: float, code: int) -> list[float]:
        with self.lock:
            return [at for at, answered in self.answers if at >= since and answered == code]


def run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    return subprocess.run(args, cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def wait_tip_change(repo: Path, old: str, env: dict[str, str], limit: float) -> tuple[str, float]:
    """The ref's new tip and when it was seen (time.time())."""
    ref = repo / ".git" / "refs" / "deployments" / "prod"
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            tip = ref.read_text().strip()
        except OSError:  # being replaced, or packed: ask git
            tip = run(["git", "rev-parse", "refs/deployments/prod"], repo, env)
        if tip != old:
            return tip, time.time()
        time.sleep(POLL)
    raise SystemExit(f"no change on the ref within {limit:.0f}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--every", type=int, default=1, help="the probe interval, seconds")
    parser.add_argument("--failures", type=int, default=2)
    options = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-health-"))
    env = {**os.environ, "HOME": str(work), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
    env.pop("GIT_DEPLOY_NOW", None)
    deploy = [sys.executable, "-m", "git_deployments"]
    repo = work / "app"
    service = Service()
    watcher: subprocess.Popen[bytes] | None = None
    opened: list[float] = []
    resolved: list[float] = []
    try:
        run(["git", "init", "-q", "-b", "main", str(repo)], work, env)
        run(["git", "commit", "-q", "--allow-empty", "-m", "first"], repo, env)
        run([*deploy, "target", "create", "prod", "--health-url", service.url,
             "--health-every", f"{options.every}s", "--health-timeout", "1s",
             "--health-failures", str(options.failures)], repo, env)
        tip = run(["git", "rev-parse", "refs/deployments/prod"], repo, env)
        state = repo / ".git/git-deployments/health/prod.json"
        watcher = start_watcher(deploy, repo, env, state)
        if watcher is None:
            print("the watcher did not probe", file=sys.stderr)
            return 1
        limit = 10.0 + 3 * options.every * options.failures
        for _ in range(options.rounds):
            flipped = time.time()
            service.healthy = False
            tip, seen = wait_tip_change(repo, tip, env, limit)
            failing = service.answered_since(flipped, 503)
            opened.append(seen - failing[options.failures - 1])
            flipped = time.time()
            service.healthy = True
            tip, seen = wait_tip_change(repo, tip, env, limit)
            passing = service.answered_since(flipped, 200)
            resolved.append(seen - passing[options.failures - 1])
    finally:
        if watcher is not None and watcher.poll() is None:
            watcher.send_signal(signal.SIGTERM)
            watcher.wait(timeout=10)
        service.server.shutdown()
        service.server.server_close()
        shutil.rmtree(work, ignore_errors=True)

    def ms(values: list[float]) -> str:
        return ", ".join(f"{v * 1000:.0f}" for v in values)

    print(f"health check every {options.every}s, incident after {options.failures} failures, "
          f"{options.rounds} rounds")
    print(f"  open:    Nth failing answer -> incident commit: median "
          f"{statistics.median(opened) * 1000:.0f} ms (each: {ms(opened)})")
    print(f"  resolve: Nth passing answer -> resolution commit: median "
          f"{statistics.median(resolved) * 1000:.0f} ms (each: {ms(resolved)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
