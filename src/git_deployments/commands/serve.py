"""`git deploy serve`: the HTTP API (Starlette on uvicorn, the `server` extra), for one
repository or every repository under a directory."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from git_deployments.commands.common import runs
from git_deployments.errors import DeployError

if TYPE_CHECKING:
    import socket

    from git_deployments.commands.context import Context

APP_FACTORY = "git_deployments.web.app:from_environment"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "serve", help="serve the dashboard and the HTTP API",
        description="Serve the deployments of one repository (bare or not), or of every "
                    "repository under DIR, over HTTP: the dashboard at /, our API under "
                    "/api/v1 and the hosted service's automation endpoints under /api/http. "
                    "Requests carry a token ('git deploy token create'); in the dashboard, "
                    "one signs in by pasting it. SIGTERM finishes the requests in flight, "
                    "then stops.")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--repo", dest="serve_repo", metavar="PATH",
                       help="the repository (default: the one here)")
    where.add_argument("--root", metavar="DIR",
                       help="serve every repository directly under DIR, each a project")
    p.add_argument("--host", default="127.0.0.1",
                   help="the address to listen on (default: 127.0.0.1; put TLS in a reverse "
                        "proxy in front)")
    p.add_argument("--port", type=_port, default=8000,
                   help="the port (default: 8000; 0 picks a free one, printed at start)")
    p.add_argument("--workers", type=_workers, default=1,
                   help="server processes sharing the port (default: 1)")
    runs(p, lambda ctx, a: cmd_serve(ctx, serve_repo=a.serve_repo, root=a.root, host=a.host,
                                     port=a.port, workers=a.workers))


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise DeployError(f"invalid port {text!r}: 0 to 65535")
    return int(text)


def _workers(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise DeployError(f"invalid number of workers {text!r}: 1 to 64")
    return int(text)


def _listen(host: str, port: int) -> socket.socket:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and a
    # keep-alive answer sent in two writes would otherwise wait 40 ms for a delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise DeployError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)  # connections wait in the backlog until the server takes them
    sock.set_inheritable(True)
    return sock


def cmd_serve(ctx: Context, serve_repo: str | None = None, root: str | None = None,
              host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> int:
    import os
    import signal
    import socket
    import sys
    from pathlib import Path

    try:
        import uvicorn
        from uvicorn.supervisors import Multiprocess

        from git_deployments.web.app import CONFIG_VARIABLE, ServeConfig, create_app
    except ImportError as exc:
        raise DeployError(f"git deploy serve needs the server extra ({exc.name} is missing): "
                          "pip install 'git-deployments[server]'") from None
    if root is None:
        repo = serve_repo or ctx.repo_path
        if repo is None:
            git = ctx.git  # the repository here, as every command finds it
            repo = str(git.workdir or git.git_dir)
        config = ServeConfig(repo=str(Path(repo).resolve()), debug=ctx.debug)
    else:
        config = ServeConfig(root=str(Path(root).resolve()), debug=ctx.debug)
    projects = config.projects()  # refuses a wrong --repo or --root before listening
    sock = _listen(host, port)
    os.environ[CONFIG_VARIABLE] = config.to_environment()
    options: dict[str, Any] = {"log_level": "warning", "access_log": False,
                               "lifespan": "on", "server_header": False}
    if workers > 1:
        server_config = uvicorn.Config(APP_FACTORY, factory=True, workers=workers, **options)
    else:
        server_config = uvicorn.Config(create_app(projects, debug=ctx.debug), **options)
    address = sock.getsockname()
    shown = f"[{address[0]}]" if sock.family == socket.AF_INET6 else address[0]
    names = ", ".join(p.name for p in projects.all()) or "none yet"
    print(f"serving {names} on http://{shown}:{address[1]} "
          f"({workers} worker{'s' if workers > 1 else ''})", flush=True)
    # uvicorn finishes the requests in flight on SIGTERM, then raises the signal again: this
    # handler makes that a normal end (exit 0), as a service manager expects
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        if workers > 1:
            Multiprocess(server_config, sockets=[sock]).run()
        else:
            uvicorn.Server(server_config).run(sockets=[sock])
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()
    print("stopped", file=sys.stderr, flush=True)
    return 0
