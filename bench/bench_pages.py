"""The dashboard's target page against the API, for a target of 10,000 deployments, on loopback.

    python bench/bench_pages.py [--deployments 10000] [--rounds 15]

A target page shows the target's settings and its newest 50 deployments: the API answers the
same data at two URLs (`…/targets/prod` and `…/targets/prod/deployments?limit=50`). Cold: the
target's ref moves (a comment through the API) before each side is asked, so nothing is in
memory: the API computes its two answers, the page computes the same two (through the same
queries) and renders them. Warm: nothing moves, the answers are in memory and the page is
rendered again. Requests go one at a time, API and page alternating which goes first; the
figures are medians of the rounds.

Printed: the page's time over the API's for the same data (goal: at most 3), and over the
deployments answer alone; then the same with everything kept in memory (no ref moved). Exit 1
when the goal is missed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# the benchmarks' repository builder, next to this file
sys.path.insert(0, str(Path(__file__).resolve().parent))

import build

HOST = "127.0.0.1"
GOAL = 3.0
KEY = "prod"


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({"HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "Bench",
                "GIT_AUTHOR_EMAIL": "bench@example.com", "GIT_COMMITTER_NAME": "Bench",
                "GIT_COMMITTER_EMAIL": "bench@example.com"})
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def request(port: int, method: str, path: str, token: str,
            body: dict[str, object] | None = None) -> tuple[float, int, bytes]:
    """One request on a fresh connection: (seconds until the whole answer was read, status,
    body)."""
    headers = {"Authorization": f"Bearer {token}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    connection = http.client.HTTPConnection(HOST, port, timeout=120)
    try:
        connection.connect()
        started = time.perf_counter()
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        return time.perf_counter() - started, response.status, payload
    finally:
        connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deployments", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=15)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    env = environment(work)
    os.environ.clear()
    os.environ.update(env)  # build.py's git commands run in it too
    server = None
    try:
        print(f"building a target of {options.deployments} deployments ...", flush=True)
        repo = build.build_code(work / "app", 1200)
        build.build_timeline(repo, KEY, options.deployments)
        deploy = [sys.executable, "-m", "git_deployments"]
        subprocess.run([*deploy, "fsck", KEY], cwd=repo, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        token = subprocess.run([*deploy, "token", "create", "bench", "--can",
                                "view,modify-deployments"], cwd=repo, env=env, check=True,
                               capture_output=True, text=True).stdout.strip()
        server = subprocess.Popen([*deploy, "serve", "--repo", str(repo), "--host", HOST,
                                   "--port", "0"], cwd=repo, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert server.stdout is not None
        found = re.search(r"http://[^:]+:(\d+)", server.stdout.readline())
        if found is None:
            print("the server did not start", file=sys.stderr)
            return 1
        port = int(found.group(1))
        project = repo.name
        api = [f"/api/v1/projects/{project}/targets/{KEY}",
               f"/api/v1/projects/{project}/targets/{KEY}/deployments?limit=50"]
        page = f"/projects/{project}/targets/{KEY}"

        def api_seconds() -> tuple[float, float]:
            settings, status, _ = request(port, "GET", api[0], token)
            listed, status2, body = request(port, "GET", api[1], token)
            assert status == status2 == 200 and len(json.loads(body)) == 50
            return settings + listed, listed

        def page_seconds() -> float:
            seconds, status, body = request(port, "GET", page, token)
            assert status == 200 and body.count(b'<tr class="status-row-') == 50
            return seconds

        for _ in range(3):  # the first requests pay for imports and opening the repository
            api_seconds()
            page_seconds()
        figures: dict[str, list[float]] = {"cold api": [], "cold api list": [], "cold page": [],
                                           "warm api": [], "warm api list": [],
                                           "warm page": []}
        comment = f"/api/v1/projects/{project}/targets/{KEY}/comments"
        def move() -> None:
            _, status, _ = request(port, "POST", comment, token, {"message": "moved"})
            assert status == 200

        for n in range(options.rounds):
            for state in ("cold", "warm"):
                # cold: the ref moves before each side, so neither finds the other's answers
                # (a page and the API share them) nor its own
                for side in (("api", "page") if n % 2 else ("page", "api")):
                    if state == "cold":
                        move()
                    if side == "api":
                        both, listed = api_seconds()
                        figures[f"{state} api"].append(both)
                        figures[f"{state} api list"].append(listed)
                    else:
                        figures[f"{state} page"].append(page_seconds())
        median = {name: statistics.median(values) for name, values in figures.items()}
        print(f"target of {options.deployments} deployments, newest 50 shown, medians of "
              f"{options.rounds} rounds (ms):")
        for state in ("cold", "warm"):
            print(f"  {state}: page {median[f'{state} page'] * 1000:.1f}, API for the same data "
                  f"{median[f'{state} api'] * 1000:.1f} (of which the deployments "
                  f"{median[f'{state} api list'] * 1000:.1f})")
        cold = median["cold page"] / median["cold api"]
        print(f"page / API, the same data, nothing in memory: {cold:.2f} (goal <= {GOAL:g})")
        print(f"page / API, the deployments answer alone, nothing in memory: "
              f"{median['cold page'] / median['cold api list']:.2f}")
        print(f"page / API, the same data, answers in memory: "
              f"{median['warm page'] / median['warm api']:.2f}")
        return 0 if cold <= GOAL else 1
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
