"""`git deploy run <target> … -- COMMAND [ARGS…]`: start a deployment, run the command, then
finish it when the command succeeds or fail it (with the reason) when it does not."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from git_deployments.commands.common import add_write_options, runs
from git_deployments.commands.deployments import (
    DeployOptions,
    add_deploy_options,
    add_target_argument,
    deploy_request,
    report,
)
from git_deployments.errors import DeployError, UsageError

if TYPE_CHECKING:
    from git_deployments.commands.context import Context

USAGE_TAIL = "git deploy run <target> [options] -- COMMAND [ARGS...]"
EXIT_NOT_FOUND = 127
EXIT_CANNOT_RUN = 126
FORWARDED = ("SIGINT", "SIGTERM")


class _SplitAtDashes(argparse.ArgumentParser):
    """Parses what comes before `--`; what follows is the command, untouched (argparse alone
    would take the command's own options, or stop at the target)."""

    def parse_known_args(self, args: Iterable[str] | None = None,
                         namespace: Any = None) -> tuple[Any, list[str]]:
        words = list(sys.argv[1:] if args is None else args)
        if "--" in words:
            cut = words.index("--")
            head, tail = words[:cut], words[cut + 1:]
        else:
            head, tail = words, []
        parsed, extras = super().parse_known_args(head, namespace)
        if extras and ("--" in words or all(word.startswith("-") for word in extras)):
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        if extras:
            raise UsageError(f"put '--' before the command: {USAGE_TAIL}")
        parsed.argv = tail
        return parsed, []


def register(subparsers: Any) -> None:
    text = "start a deployment, run a command, then finish or fail it by the command's exit"
    p = subparsers.add_parser(
        "run", help=text, usage="%(prog)s [-h] [options] [target] -- COMMAND [ARGS...]",
        description=text[0].upper() + text[1:] + ". The command runs without a shell, its "
        "output passes through, SIGINT and SIGTERM are forwarded to it, and 'git deploy run' "
        "exits with its status (127: not found, 128+N: killed by signal N). git deploy's own "
        "lines go to stderr.")
    # the parser's class comes from the subparsers action; this one also splits at `--`
    p.__class__ = type("RunParser", (_SplitAtDashes, type(p)), {})
    add_target_argument(p)
    add_deploy_options(p)
    add_write_options(p)
    p.set_defaults(argv=[])
    runs(p, lambda ctx, a: cmd_run(ctx, options=DeployOptions.parsed(a), argv=a.argv,
                                   as_json=a.as_json))


def cmd_run(ctx: Context, options: DeployOptions, argv: list[str], as_json: bool = False) -> int:
    from git_deployments.core import intake
    from git_deployments.core.model import Deploy, Status

    if not argv:
        raise UsageError(f"no command to run: {USAGE_TAIL}")
    started = ctx.write(deploy_request(ctx, "start", options))
    report(started, as_json, sys.stderr)
    record = started.record
    assert record is not None  # a start always names its deployment
    status, why = run_command(argv)

    key = started.key
    latest = ctx.store.existing(key).record(record.number)
    if status != 0 and latest is not None and latest.status == Status.FAILED:
        # already failed while the command ran (a timeout): a second record would be noise
        sys.stderr.write(f"{key} #{record.number} was already failed; {why}\n")
        return status
    # exactly the deployment this run started: refused if someone moved it on meanwhile
    end = intake.new_request(Deploy, ctx.git, key, op="finish" if status == 0 else "fail",
                             number=record.number, reason=why)
    try:
        ended = ctx.write(end)
    except DeployError as exc:
        outcome = "succeeded" if status == 0 else f"failed ({why})"
        raise DeployError(f"the command {outcome}, but it was not recorded: {exc}") from None
    report(ended, as_json, sys.stderr)
    if why and not as_json:
        sys.stderr.write(f"  {why}\n")
    return status


def run_command(argv: list[str]) -> tuple[int, str | None]:
    """Run `argv` (no shell) with SIGINT and SIGTERM forwarded; (exit status, why it failed)."""
    import signal
    import subprocess

    child: subprocess.Popen[bytes] | None = None
    pending: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if child is None:
            pending.append(signum)  # arrived before the child existed: deliver it once it does
        else:
            try:
                child.send_signal(signum)
            except ProcessLookupError:
                pass

    forwarded = [getattr(signal, name) for name in FORWARDED]
    previous = {sig: signal.signal(sig, forward) for sig in forwarded}
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            child = subprocess.Popen(argv)
        except FileNotFoundError:
            return EXIT_NOT_FOUND, f"command not found: {argv[0]}"
        except PermissionError:
            return EXIT_CANNOT_RUN, f"permission denied: {argv[0]}"
        except OSError as exc:
            return EXIT_CANNOT_RUN, f"cannot run {argv[0]}: {exc.strerror or exc}"
        for signum in pending:
            child.send_signal(signum)
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code < 0:
        return 128 - code, f"killed by signal {-code}"
    if code > 0:
        return code, f"exit status {code}"
    return 0, None
