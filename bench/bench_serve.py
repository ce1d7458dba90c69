"""`git deploy serve` under load, on loopback only, set against a Starlette hello-world served
the same way on the same machine.

    python bench/bench_serve.py [--seconds S] [--rounds R]

Reads: `GET /api/v1/projects/_/status` (answered from memory while no ref moves) at 1 and 32
concurrent keep-alive clients, interleaved round by round with the hello-world app on the same
uvicorn settings; requests per second and p50/p99 latency, medians over the rounds. Goal:
≥ 0.5× the hello-world's throughput, p99 ≤ 25 ms.

Writes: start+finish pairs per second from 8 concurrent clients (each on its own target) while
`git deploy` writers in the same repository and a clone pushing its timeline (`--sync`, through
pre-receive) run beside them; then every write must have landed exactly once and
`git deploy fsck` must be clean.

Every load is bounded in requests and in time, and stops by itself. Exit 1 when a goal is
missed or a write is lost.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
MAX_REQUESTS = 200_000  # per measurement, whatever the time allows
READ_GOAL_RATIO = 0.5
READ_GOAL_P99_MS = 25.0

HELLO = """
import socket, sys
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def hello(request):
    return JSONResponse({"hello": "world"})

app = Starlette(routes=[Route("/", hello)])
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # as serve does
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", 0))
sock.listen(2048)
print(f"serving on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                        server_header=False)
uvicorn.Server(config).run(sockets=[sock])
"""


# --- a bounded HTTP/1.1 keep-alive load generator (asyncio, raw sockets) -----------------------


@dataclass
class Load:
    requests: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000


async def _client(port: int, request: bytes, deadline: float, budget: list[int],
                  latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        while budget[0] > 0 and time.perf_counter() < deadline:
            budget[0] -= 1
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise SystemExit(f"unexpected answer: {head[:80]!r}")
            length = re.search(rb"(?i)content-length:\s*(\d+)", head)
            await reader.readexactly(int(length.group(1)) if length else 0)
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


def load(port: int, path: str, clients: int, seconds: float, token: str | None = None) -> Load:
    headers = f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n"
    if token:
        headers += f"Authorization: Bearer {token}\r\n"
    request = (headers + "\r\n").encode()

    async def run() -> Load:
        budget = [MAX_REQUESTS]
        latencies: list[float] = []
        started = time.perf_counter()
        await asyncio.gather(*(_client(port, request, started + seconds, budget, latencies)
                               for _ in range(clients)))
        return Load(len(latencies), time.perf_counter() - started, latencies)

    return asyncio.run(run())


# --- servers -----------------------------------------------------------------------------------


class Server:
    def __init__(self, args: Sequence[str], cwd: Path, env: dict[str, str], log: Path) -> None:
        with open(log, "w") as handle:
            self.process = subprocess.Popen(list(args), cwd=cwd, env=env, text=True,
                                            stdout=subprocess.PIPE, stderr=handle)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        found = re.search(r"http://[^:]+:(\d+)", line)
        if found is None:
            self.process.kill()
            raise SystemExit(f"server did not start: {line!r} {log.read_text()[-2000:]}")
        self.port = int(found.group(1))

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=120)


def run(args: Sequence[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=300)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {result.stderr}")
    return result.stdout


def post(port: int, path: str, body: dict[str, object], token: str) -> int:
    connection = http.client.HTTPConnection(HOST, port, timeout=120)
    try:
        connection.request("POST", path, body=json.dumps(body),
                           headers={"Authorization": f"Bearer {token}",
                                    "Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


# --- the repository ---------------------------------------------------------------------------


def prepare(work: Path, env: dict[str, str], deploy: list[str]) -> tuple[Path, str]:
    """A bare server repository with hooks, a code history, three targets with deployments,
    eight targets for the writers, and a token."""
    source = work / "app"
    run(["git", "init", "-q", "-b", "main", str(source)], work, env)
    for i in range(30):
        run(["git", "commit", "-q", "--allow-empty", "-m", f"change {i}"], source, env)
        if i % 10 == 9:
            run(["git", "tag", f"v1.{i // 10}"], source, env)
    server = work / "srv" / "app.git"
    server.parent.mkdir()
    run(["git", "clone", "-q", "--bare", str(source), str(server)], work, env)
    run([*deploy, "install-hooks"], server, env)
    for key in ("production", "staging", "qa"):
        run([*deploy, "target", "create", key, "--hanging-after", "30m"], server, env)
        for n in range(3):
            run([*deploy, "finish", key, "--commit", f"app:main:main~{9 - n}"], server, env)
        run([*deploy, "start", key, "--commit", "app:main:HEAD"], server, env)
    for n in range(8):
        run([*deploy, "target", "create", f"w{n}"], server, env)
    run([*deploy, "target", "create", "cli"], server, env)
    token = run([*deploy, "token", "create", "bench", "--can", "view,modify-deployments"],
                server, env).strip()
    return server, token


# --- measurements -------------------------------------------------------------------------------


def reads(ours: Server, hello: Server, token: str, seconds: float, rounds: int
          ) -> dict[int, tuple[Load, Load]]:
    path = "/api/v1/projects/_/status"
    load(ours.port, path, 4, 0.5, token)  # warm: the first answer is computed, then kept
    load(hello.port, "/", 4, 0.5)
    found: dict[int, tuple[Load, Load]] = {}
    for clients in (1, 32):
        mine: list[Load] = []
        theirs: list[Load] = []
        for _ in range(rounds):  # interleaved, so a busy moment slows both alike
            mine.append(load(ours.port, path, clients, seconds, token))
            theirs.append(load(hello.port, "/", clients, seconds))
        found[clients] = (_median(mine), _median(theirs))
    return found


def _median(loads: list[Load]) -> Load:
    return sorted(loads, key=lambda item: item.rate)[len(loads) // 2]


def writes(ours: Server, server: Path, work: Path, token: str, env: dict[str, str],
           deploy: list[str], seconds: float) -> tuple[float, list[str]]:
    """Pairs per second, and what went wrong (nothing, if every write landed once)."""
    clone = work / "clone"
    run(["git", "clone", "-q", server.as_uri(), str(clone)], work, env)
    run(["git", "config", "deploy.repository", "app"], clone, env)
    run([*deploy, "init"], clone, env)
    run([*deploy, "target", "create", "pushed", "--sync"], clone, env)
    stop = threading.Event()
    done = {"pairs": 0, "cli": 0, "pushed": 0}
    per_target = [0] * 8
    problems: list[str] = []
    lock = threading.Lock()
    max_pairs = 2000  # per client: bounded whatever the time allows

    def client(n: int) -> None:
        for _ in range(max_pairs):
            if stop.is_set():
                return
            for op in ("start", "finish"):
                code = post(ours.port, f"/api/v1/projects/_/targets/w{n}/deployments/{op}",
                            {"commit": ["app:main:HEAD"], "version": "bench"}, token)
                if code != 200:
                    with lock:
                        problems.append(f"w{n} {op}: HTTP {code}")
                    return
                with lock:
                    per_target[n] += 1
            with lock:
                done["pairs"] += 1

    def cli_writer() -> None:
        while not stop.is_set():
            result = subprocess.run([*deploy, "comment", "cli", "-m", "beside the server"],
                                    cwd=server, env=env, capture_output=True, text=True)
            with lock:
                if result.returncode == 0:
                    done["cli"] += 1
                else:
                    problems.append(f"cli: {result.stderr.strip()}")

    def pusher() -> None:
        while not stop.is_set():
            result = subprocess.run([*deploy, "comment", "pushed", "-m", "pushed", "--sync"],
                                    cwd=clone, env=env, capture_output=True, text=True)
            with lock:
                if result.returncode == 0:
                    done["pushed"] += 1
                else:
                    problems.append(f"push: {result.stderr.strip()}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    threads += [threading.Thread(target=cli_writer), threading.Thread(target=pusher)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=300)
    elapsed = time.perf_counter() - started
    expected = {**{f"w{n}": 1 + per_target[n] for n in range(8)}, "cli": 1 + done["cli"],
                "pushed": 1 + done["pushed"]}
    for key, count in expected.items():
        ops = run(["git", "log", "--format=%(trailers:key=Deploy-Op-Id,valueonly)",
                   f"refs/deployments/{key}"], server, env).split()
        if len(ops) != count or len(set(ops)) != count:
            problems.append(f"{key}: {len(ops)} changes ({len(set(ops))} distinct), "
                            f"{count} expected")
    fsck = subprocess.run([*deploy, "fsck"], cwd=server, env=env, capture_output=True,
                          text=True)
    if fsck.returncode != 0:
        problems.append(f"fsck: {fsck.stdout.strip()} {fsck.stderr.strip()}")
    print(f"  beside them: {done['cli']} git deploy writes in the repository, "
          f"{done['pushed']} pushes from a clone; {sum(expected.values())} changes checked")
    return done["pairs"] / elapsed, problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per read measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per figure")
    parser.add_argument("--write-seconds", type=float, default=10.0)
    options = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    env = {**os.environ, "HOME": str(work), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
    env.pop("GIT_DEPLOY_NOW", None)
    deploy = [str(Path(sys.executable).parent / "git-deploy")]
    servers: list[Server] = []
    try:
        print("preparing a repository (a bare server with hooks, 11 targets)...", flush=True)
        server, token = prepare(work, env, deploy)
        ours = Server([*deploy, "serve", "--host", HOST, "--port", "0"], server, env,
                      work / "serve.log")
        servers.append(ours)
        hello = Server([sys.executable, "-c", HELLO], work, env, work / "hello.log")
        servers.append(hello)
        print(f"reads: {options.rounds} interleaved rounds of {options.seconds:.0f}s each, "
              "medians", flush=True)
        failed = False
        for clients, (mine, theirs) in reads(ours, hello, token, options.seconds,
                                             options.rounds).items():
            ratio = mine.rate / theirs.rate
            p99 = mine.percentile(0.99)
            met = ratio >= READ_GOAL_RATIO and p99 <= READ_GOAL_P99_MS
            failed |= not met
            print(f"  {clients:>2} client{'s' if clients > 1 else ' '}  GET …/status "
                  f"{mine.rate:7.0f} req/s  p50 {mine.percentile(0.5):5.1f} ms  "
                  f"p99 {p99:5.1f} ms  |  hello world {theirs.rate:7.0f} req/s  "
                  f"p50 {theirs.percentile(0.5):5.1f} ms  p99 {theirs.percentile(0.99):5.1f} ms"
                  f"  |  {ratio:.2f}× ({'met' if met else 'missed'}: ≥ {READ_GOAL_RATIO}×, "
                  f"p99 ≤ {READ_GOAL_P99_MS:.0f} ms)", flush=True)
        hello.stop()
        servers.remove(hello)
        print(f"writes: 8 clients for {options.write_seconds:.0f}s", flush=True)
        rate, problems = writes(ours, server, work, token, env, deploy, options.write_seconds)
        print(f"  start+finish pairs: {rate:.1f}/s; "
              + ("every write landed exactly once, fsck clean" if not problems
                 else "PROBLEMS: " + "; ".join(problems[:5])))
        code = ours.stop()
        servers.remove(ours)
        print(f"server stopped by SIGTERM: exit {code}")
        return 1 if failed or problems or code != 0 else 0
    finally:
        for left in servers:
            left.process.kill()
            left.process.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
