"""How fast `git deploy metrics` answers on a year of deployments, as a ratio to git listing
the same commits itself in the same run.

    python bench/bench_metrics.py            # 200,000 commits, 1,000 deployments in a year
    python bench/bench_metrics.py --quick    # a small smoke run

The repository is generated under bench/work/ (kept between runs): a main branch whose commits
are spread evenly over one year (git fast-import), and a target `bench` whose timeline is made
by the tool's own state machine (build.py): a deployment about every 8¾ hours of the newest
commit a few hours old; every 25th preceded by a failed attempt, every 40th followed by an
incident opened and resolved, every 50th rolled back. The yardstick is `git log
--format=%H%x00%at` over every range the deployments brought (the previous successful
deployment's commit to this one's; a first deployment: its whole history), one process per
range, from one Python process — what a script asking git for the same facts would run. Both
figures are the best of several runs of the whole process, interleaved.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import build
from run import BIN, WORK, check, compile_package, environment, race

LAYOUT = 1  # bump when what is built here changes, so a kept repository is rebuilt
KEY = "bench"
YEAR_START = datetime(2025, 1, 1, tzinfo=UTC)
YEAR = 365 * 86400
FAILED_EVERY, INCIDENT_EVERY, ROLLBACK_EVERY = 25, 40, 50
GOAL = 2.0
# the yardstick: one `git log` per range, from one Python process
YARDSTICK = (
    "import subprocess, sys\n"
    "for line in open(sys.argv[1]):\n"
    "    subprocess.run(['git', 'log', '--format=%H%x00%at', *line.split()],\n"
    "                   stdout=subprocess.PIPE, check=True)\n"
)


@dataclass(frozen=True)
class Size:
    commits: int
    deployments: int
    runs: int


FULL = Size(commits=200_000, deployments=1_000, runs=3)
QUICK = Size(commits=10_000, deployments=100, runs=2)


def plan(size: Size, commits: list[str], step: int) -> tuple[list[Any], list[str]]:
    """The requests of the year, and the ranges git is asked about: `base..head`, or `head`
    for the first deployment (what each deployment that became current brought)."""
    from git_deployments.core.model import (
        CommitRef,
        CreateTarget,
        Deploy,
        OpenIncident,
        ResolveIncident,
        TargetSettings,
    )

    rng = random.Random(14)
    requests: list[Any] = []
    ranges: list[str] = []
    made = 0

    def stamp(moment: datetime) -> dict[str, Any]:
        nonlocal made
        made += 1
        return {"op_id": f"{made:032x}", "at": moment, "by": build.BY, "target": KEY}

    def ref(commit: str) -> list[CommitRef]:
        return [CommitRef(repository=build.REPOSITORY, branch="main", commit=commit)]

    requests.append(CreateTarget(**stamp(YEAR_START), repository=build.REPOSITORY,
                                 settings=TargetSettings()))
    spacing = YEAR // (size.deployments + 1)
    previous: str | None = None  # what the previous successful deployment deployed
    completed: list[int] = []  # numbers of the deployments that became current, in order
    number = 0
    for n in range(1, size.deployments + 1):
        moment = YEAR_START + timedelta(seconds=n * spacing)
        # the newest commit at least ten minutes, at most six hours old
        written = moment - timedelta(seconds=rng.randint(600, 6 * 3600))
        index = min(len(commits) - 1,
                    int((written - YEAR_START).total_seconds()) // step - 1)
        head = commits[index]
        if n % FAILED_EVERY == 0:
            number += 1
            requests.append(Deploy(**stamp(moment), op="start", commits=ref(head)))
            requests.append(Deploy(**stamp(moment + timedelta(minutes=20)), op="fail"))
        number += 1
        requests.append(Deploy(**stamp(moment + timedelta(minutes=40)), op="finish",
                               version=f"1.{n}.0", commits=ref(head)))
        ranges.append(f"{previous}..{head}" if previous else head)
        previous = head
        completed.append(number)
        if n % INCIDENT_EVERY == 0:
            requests.append(OpenIncident(**stamp(moment + timedelta(minutes=60))))
            requests.append(ResolveIncident(**stamp(moment + timedelta(minutes=80))))
        if n % ROLLBACK_EVERY == 0 and len(completed) > 1:
            number += 1
            back_to = completed[-2]
            requests.append(Deploy(**stamp(moment + timedelta(minutes=100)), op="finish",
                                   rollback_to=back_to))
            back_commit = ranges[-2].split("..")[-1]
            ranges.append(f"{previous}..{back_commit}")
            previous = back_commit
            completed.append(number)
    return requests, ranges


def prepared(size: Size, env: dict[str, str], log: Any) -> tuple[Path, list[str]]:
    """The repository (built once and kept) and the ranges of its deployments."""
    base = WORK / f"metrics-{size.commits}-{size.deployments}-v{LAYOUT}"
    repo = base / "repo"
    ranges_file = base / "ranges.txt"
    if (base / "ready").exists():
        return repo, ranges_file.read_text().splitlines()
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    step = YEAR // size.commits
    started = time.perf_counter()
    build.build_code(repo, size.commits, int(YEAR_START.timestamp()), step)
    log(f"built {size.commits:,} commits over a year in {time.perf_counter() - started:.1f}s")
    commits = check(["git", "rev-list", "--reverse", "main"], repo, env).split()
    requests, ranges = plan(size, commits, step)
    started = time.perf_counter()
    build.fast_import(repo, build.changes_stream(
        KEY, requests, build.LinearHistory(commits), build.MemorySnapshot(everything=True)))
    log(f"built a timeline of {len(requests):,} changes in {time.perf_counter() - started:.1f}s")
    ranges_file.write_text("\n".join(ranges) + "\n")
    (base / "ready").write_text("ok\n")
    return repo, ranges


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--runs", type=int, help="runs per figure (best is kept)")
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    runs = args.runs or size.runs

    def log(text: str) -> None:
        print(f"  … {text}", file=sys.stderr, flush=True)

    home = WORK / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = environment(home)
    compile_package(env)
    repo, ranges = prepared(size, env, log)
    window = ["--since", YEAR_START.strftime("%Y-%m-%dT%H:%M:%SZ"),
              "--until", (YEAR_START + timedelta(seconds=YEAR + 86400)).strftime(
                  "%Y-%m-%dT%H:%M:%SZ")]
    ours = ["git", "deploy", "metrics", KEY, *window, "--json"]
    ranges_file = repo.parent / "ranges.txt"
    theirs = [str(BIN / "python"), "-c", YARDSTICK, str(ranges_file)]

    # the same facts: every deployment, and every commit git lists over the ranges
    data = json.loads(check(ours, repo, env))
    figures = data["targets"][0]
    listed = sum(len(check(["git", "log", "--format=%H", *spec.split()], repo, env).split())
                 for spec in ranges)
    deployments = figures["deployment_frequency"]["deployments"]
    measured = figures["lead_time"]["commits"]
    print(f"history: {size.commits:,} commits over a year; target '{KEY}': {deployments:,} "
          f"deployments became current ({len(ranges):,} ranges), "
          f"{figures['change_failure_rate']['failed']} followed by a failure, "
          f"{figures['time_to_restore']['restores']} restores")
    print(f"commits measured by git deploy: {measured:,}; listed by git log over the same "
          f"ranges: {listed:,}")
    if deployments != len(ranges) or measured != listed:
        print("mismatch: git deploy and git do not see the same deployments and commits")
        return 1
    floor, spent, base = race(repo, env, [["git", "deploy", "--version"], ours, theirs], runs)
    ratio = spent / base
    verdict = "ok" if ratio <= GOAL else "over"
    print(f"best of {runs} runs")
    print(f"{'question':<46} {'git deploy':>10} {'git':>8} {'ratio':>6} {'goal':>5}")
    print(f"{'metrics, a year / git log over its ranges':<46} {spent:>9.3f}s {base:>7.3f}s "
          f"{ratio:>6.2f} {GOAL:>4.1f}x  {verdict}")
    print(f"start-up floor ('git deploy --version'): {floor:.3f}s; git deploy less the floor: "
          f"{max(spent - floor, 0.0) / base:.2f}x")
    return 0 if ratio <= GOAL else 1


if __name__ == "__main__":
    raise SystemExit(main())
