#!/usr/bin/env python3
"""A guided walk through git deploy on the sample repository (what `make demo` runs).

It builds the sample (generate.py), then shows the life of a deployment, printing each command
before its output, as you would type it in sample-repo/out/bookshelf. The demo's clock is fixed
(GIT_DEPLOY_NOW), so its dates and relative times are the same on every run. A step whose
command this git deploy does not have yet is skipped with a note.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import generate

DAY = "2025-03-31"
RELEASE = "v1.3.0"


class Demo:
    def __init__(self, work: Path) -> None:
        self.work = work
        # Maya Chen, who has this checkout, types the commands (and pushes)
        name, email = generate.PEOPLE["maya"]
        self.env = {**generate.clean_env(), "GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
                    "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}
        self.clock = f"{DAY}T09:00:00Z"
        self._has: dict[str, bool] = {}

    def section(self, title: str, text: str) -> None:
        print(f"\n\033[1m== {title}\033[0m" if self.colour else f"\n== {title}")
        for line in text.strip().splitlines():
            print(f"   {line.strip()}")
        print(flush=True)

    @property
    def colour(self) -> bool:
        return sys.stdout.isatty() and "NO_COLOR" not in self.env

    def at(self, time: str) -> None:
        """Move the demo's clock (what GIT_DEPLOY_NOW says) to `time` on the demo's day."""
        self.clock = f"{DAY}T{time}:00Z"

    def has(self, command: str) -> bool:
        if command not in self._has:
            probe = subprocess.run(["git", "deploy", command, "-h"], cwd=self.work,
                                   env=self.env, capture_output=True)
            self._has[command] = probe.returncode == 0
        return self._has[command]

    def deploy(self, *args: str) -> None:
        """Show and run `git deploy ARGS` (or say why it is skipped)."""
        if args and not self.has(args[0]):
            print(f"$ git deploy {shlex.join(args)}")
            print(f"   (skipped: this git deploy has no '{args[0]}' command yet)\n", flush=True)
            return
        self.run(["git", "deploy", *args])

    def run(self, argv: Sequence[str], extra: dict[str, str] | None = None) -> None:
        print(f"$ {shlex.join(argv)}", flush=True)
        env = {**self.env, "GIT_DEPLOY_NOW": self.clock, **(extra or {})}
        result = subprocess.run(list(argv), cwd=self.work, env=env)
        print(flush=True)
        if result.returncode != 0:
            raise SystemExit(f"demo: '{shlex.join(argv)}' failed (exit {result.returncode})")


def main() -> int:
    print("Building the sample repository (sample-repo/generate.py) ...", flush=True)
    out = generate.HERE / "out"
    work = generate.generate(out)
    demo = Demo(work)
    print(f"\nEvery command below runs in {generate.shown(work)}")
    print(f"(the demo's clock starts at {DAY} 09:00 UTC and moves on as the story does, "
          "through GIT_DEPLOY_NOW: its dates and relative times are the same on every run)")

    demo.section("1. What runs where", """
        bookshelf has two targets. 'git deploy' alone shows what is current on each and since
        when, what is in flight, what is scheduled, and how many commits wait on the branch.
    """)
    demo.deploy()
    demo.deploy("list", "production")
    demo.deploy("show", "production", "4")

    demo.section(f"2. {RELEASE} goes to production: schedule, start, finish", """
        A release is planned for 11:00. Starting names only the branch: the deployment
        scheduled for it is the one that starts, with its commit. Finishing it makes it current;
        the previous current deployment becomes completed.
    """)
    demo.deploy("schedule", "production", "--commit", f"bookshelf:release:{RELEASE}",
                "--at", f"{DAY}T11:00:00Z", "--description", "ratings, reviews and dark mode")
    demo.at("11:00")
    demo.deploy("start", "production", "--commit", "bookshelf:release")
    demo.deploy("status")
    demo.at("11:07")
    demo.deploy("finish", "production")
    demo.deploy("list", "production", "-n", "3")

    demo.section("3. What the deployment brought, and what still waits", """
        The commits since the previous successful deployment, the issues they name, what is
        on the branch but not deployed yet, and where a commit is live.
    """)
    demo.deploy("commits", "production")
    demo.deploy("issues", "production")
    demo.deploy("pending", "staging")
    demo.deploy("contains", "v1.2.1")
    demo.deploy("compare", "staging", "production")

    demo.section("4. A deployment that went quiet: timeouts", """
        staging #8 started on 27 March and was never heard of again; 30 minutes later the
        watcher marked it hanging. Staging fails deployments 2 hours after they start:
        'git deploy sweep' (the watcher's pass, run once) applies that now, at 11:20.
    """)
    demo.deploy("show", "staging", "8")
    demo.at("11:20")
    demo.deploy("sweep", "--now", f"{DAY}T11:20:00Z")
    demo.deploy("list", "staging", "-n", "3")

    demo.section("5. A CI job in one line: git deploy run", """
        'run' starts the deployment (here the one scheduled for main), runs the deploy script,
        and finishes it - or fails it with the exit status, which it passes on.
    """)
    demo.at("11:30")
    demo.deploy("run", "staging", "--", "./scripts/deploy.py", "staging")
    demo.deploy("list", "staging", "-n", "3")

    demo.section("6. Incidents, and how well the team delivers", """
        Production's 1.2.0 broke checkout in March: an incident, resolved after the rollback.
        Now staging has one of its own. Incidents are timeline changes like the others, and
        'git deploy metrics' reads them with everything else to give the four DORA figures.
    """)
    demo.deploy("incidents")
    demo.at("11:40")
    demo.deploy("incident", "open", "staging", "-m",
                "search finds nothing for accented titles (BOOK-36)")
    demo.deploy("status")
    demo.at("11:55")
    demo.deploy("incident", "resolve", "staging", "-m", "fixed by the search index rebuild")
    demo.deploy("metrics", "--since", "2025-02-24")

    demo.section("7. The timeline is plain git", """
        Every change is one commit on refs/deployments/<target>: git log reads it, git push
        and git fetch carry it.
    """)
    demo.run(["git", "log", "-n", "6", "--date=format:%Y-%m-%d %H:%M",
              "--format=%h %ad %<(13,trunc)%an %s", "refs/deployments/staging"])

    demo.section("8. A push to main schedules staging", """
        The server runs the hooks 'git deploy install-hooks' put there: pre-receive checks
        every pushed change of a timeline, post-receive schedules a deployment when a branch
        that a target lists in schedule_on_push moves. First the demo's changes go up.
    """)
    demo.deploy("push")
    demo.at("12:00")
    (work / "NOTES.md").write_text("Exact title matches come first in search (BOOK-35).\n")
    demo.run(["git", "add", "NOTES.md"])
    demo.run(["git", "commit", "-q", "-m", "Search: exact title matches first (BOOK-35)"],
             extra={"GIT_AUTHOR_DATE": demo.clock, "GIT_COMMITTER_DATE": demo.clock})
    demo.run(["git", "push", "-q", "origin", "main"])
    demo.deploy("pull")
    demo.deploy("list", "staging", "-n", "2")

    print(f"That was the life of a deployment. Try your own commands in {generate.shown(work)};"
          " 'git deploy -h' lists them all, 'git deploy --help' is the manual, and 'make serve'"
          " opens it all in a browser.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
