"""The benchmark: what a write and a status cost, whether that depends on history length, how
many bytes a change adds, and how many writes a second one target takes — as ratios measured in
the same run.

    make bench                        # python bench/run.py: 200,000 commits, 100,000 deployments
    python bench/run.py --quick       # a smoke run on small repositories

The repositories are built once under bench/work/ (git fast-import, see build.py) and copied for
every run, so each run starts from the same state. Times are medians of several runs of the
whole process (`git deploy …` as a person types it, through git), interleaved with the floor —
`python -c 'import pygit2'` — so that a busy machine slows both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
WORK = ROOT / "work"
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))

import build  # noqa: E402 - bench/ is not a package

LAYOUT = 4  # bump when build.py's output changes, so cached repositories are rebuilt


@dataclass(frozen=True)
class Size:
    name: str
    commits: int  # the code history
    small: int  # deployments on the target of the "short history" repository
    mid: int  # ... for status
    big: int  # ... for writes and bytes per change
    rounds: int  # interleaved timing rounds (medians are kept)
    changes: int  # writes whose bytes are counted
    sustained: int  # writes per process for the writes-per-second figures


FULL = Size("full", commits=200_000, small=10, mid=10_000, big=100_000, rounds=15, changes=40,
            sustained=150)
QUICK = Size("quick", commits=5_000, small=10, mid=500, big=2_000, rounds=5, changes=10,
             sustained=30)


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GIT_", "GITHUB_", "GITLAB_", "CI_", "JENKINS_", "TEAMCITY_"))
           and k != "CI"}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), GIT_CONFIG_NOSYSTEM="1",
               NO_COLOR="1", PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               GIT_AUTHOR_NAME="Bench Runner", GIT_AUTHOR_EMAIL="bench@example.com",
               GIT_COMMITTER_NAME="Bench Runner", GIT_COMMITTER_EMAIL="bench@example.com")
    return env


def check(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed in {cwd}: {done.stderr.strip()}")
    return done.stdout


def compile_package(env: dict[str, str]) -> None:
    """Bytecode as an installed package has it (this environment may forbid writing it, and
    recompiling at every start would be timed)."""
    subprocess.run([str(BIN / "python"), "-m", "compileall", "-q",
                    str(ROOT.parent / "src" / "git_deployments")], env=env, check=True,
                   stdout=subprocess.DEVNULL)


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed in {cwd}: {done.stderr.decode().strip()}")
    return elapsed


def race(cwd: Path, env: dict[str, str], commands: list[list[str]], runs: int) -> list[float]:
    """The best wall time of each whole process, runs interleaved so that a busy moment of the
    machine hurts every command alike."""
    times: list[list[float]] = [[] for _ in commands]
    for _ in range(runs):
        for i, args in enumerate(commands):
            times[i].append(timed(args, cwd, env))
    return [min(t) for t in times]


# --- the repositories -------------------------------------------------------------------------


def prepared(size: Size, env: dict[str, str], log: Callable[[str], None]) -> dict[str, Path]:
    """The code history and one shared clone per timeline length, built once and kept."""
    base = WORK / f"{size.name}-v{LAYOUT}"
    marker = base / "ready"
    repos = {n: base / f"d{n}" for n in (size.small, size.mid, size.big)}
    if marker.exists():
        return repos
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    started = time.perf_counter()
    code = build.build_code(base / "code", size.commits)
    log(f"built the code history: {size.commits:,} commits in "
        f"{time.perf_counter() - started:.1f}s")
    for n, path in repos.items():
        started = time.perf_counter()
        build.share(code, path)
        build.build_timeline(path, "prod", n)
        # one pack with a full delta search, as `git gc --aggressive` leaves a repository that
        # has lived a while: the bytes-per-change figure then sees only what the changes add
        check(["git", "repack", "-q", "-a", "-d", "-f", "-l"], path, env)
        log(f"built a timeline of {n:,} deployments in {time.perf_counter() - started:.1f}s")
    marker.write_text("ok\n")
    return repos


def fresh_copy(source: Path, name: str) -> Path:
    dest = WORK / "live" / name
    shutil.rmtree(dest, ignore_errors=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, dest, symlinks=True)
    return dest


def object_bytes(repo: Path) -> int:
    """Bytes in the repository's own object store, packs and their indexes included (the
    alternates, which hold the code history, are not the repository's own)."""
    return sum(path.stat().st_size for path in (repo / ".git" / "objects").rglob("*")
               if path.is_file() and path.parent.name != "info")


# --- the figures ------------------------------------------------------------------------------


@dataclass
class Row:
    figure: str
    value: str
    goal: str = ""
    ok: bool | None = None


def measure_times(size: Size, repos: dict[str, Path], env: dict[str, str],
                  log: Callable[[str], None]) -> dict[str, float]:
    """Median seconds of each command, rounds interleaved with the floor."""
    py = str(BIN / "python")
    commands: dict[str, tuple[list[str], Path]] = {
        "floor": ([py, "-c", "import pygit2"], repos["small"]),
        "start@small": (["git", "deploy", "start", "prod"], repos["small"]),
        "start@big": (["git", "deploy", "start", "prod"], repos["big"]),
        "finish@small": (["git", "deploy", "finish", "prod"], repos["small"]),
        "finish@big": (["git", "deploy", "finish", "prod"], repos["big"]),
        "status@small": (["git", "deploy", "status"], repos["small"]),
        "status@mid": (["git", "deploy", "status"], repos["mid"]),
        "status@behind": (["git", "deploy", "status"], repos["behind"]),
    }
    for args, cwd in commands.values():  # warm the page cache and the bytecode
        timed(args, cwd, env)
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for n in range(size.rounds):
        for name, (args, cwd) in commands.items():
            samples[name].append(timed(args, cwd, env))
        log(f"timing round {n + 1}/{size.rounds}")
    return {name: statistics.median(values) for name, values in samples.items()}


def far_behind(source: Path, env: dict[str, str]) -> Path:
    """A copy of `source` whose current deployment is main's first commit: every later commit
    of the code history is pending, and `status` must still not walk them all."""
    repo = fresh_copy(source, "behind")
    root = check(["git", "rev-list", "--max-parents=0", "main"], repo, env).split()[0]
    check(["git", "deploy", "finish", "prod", "--commit", f"{build.REPOSITORY}:main:{root}"],
          repo, env)
    return repo


def measure_bytes(size: Size, source: Path, env: dict[str, str]) -> tuple[float, float]:
    """(loose, packed) bytes one change adds at `size.big` deployments.

    Loose: the growth of the object store over `size.changes` changes, as written. Packed: two
    copies, one with those changes and one without, both repacked from scratch the same way
    (`git repack -a -d -f`, the delta search `git gc --aggressive` makes with git's default
    window): the difference is what the changes cost once packed — including that git keeps the
    newest version of a path whole and turns the one before into a delta. A plain `git gc` would
    reuse the old pack's deltas on one side only, and its noise would swamp the figure."""
    repo = fresh_copy(source, "bytes")
    before = object_bytes(repo)
    for n in range(size.changes):
        check(["git", "deploy", "start" if n % 2 == 0 else "finish", "prod"], repo, env)
    loose = (object_bytes(repo) - before) / size.changes
    unchanged = fresh_copy(source, "bytes-unchanged")
    for copy in (repo, unchanged):
        check(["git", "repack", "-q", "-a", "-d", "-f", "-l"], copy, env)
        check(["git", "prune", "--expire=now"], copy, env)
    packed = (object_bytes(repo) - object_bytes(unchanged)) / size.changes
    shutil.rmtree(unchanged)
    return loose, packed


def worker(repo: str, key: str, count: int, start_at: float) -> int:
    """One writer of the writes-per-second figures: `count` writes through Store.write, each a
    `finish` of HEAD that becomes the new current deployment (never refused)."""
    from git_deployments.core import intake
    from git_deployments.core.model import CommitRef, Deploy
    from git_deployments.core.store import open_store

    store = open_store(repo)
    head = store.git.resolve_commit("HEAD")
    refs = [CommitRef(repository=build.REPOSITORY, branch="main", commit=head)]
    while time.time() < start_at:
        time.sleep(0.001)
    started = time.time()
    for n in range(count):
        request = intake.new_request(Deploy, store.git, key, op="finish", commits=refs,
                                     version=f"w{os.getpid()}.{n}")
        store.write(request)
    print(json.dumps({"start": started, "end": time.time(), "writes": count}))
    return 0


def measure_sustained(size: Size, source: Path, env: dict[str, str],
                      processes: int) -> float:
    """Writes per second on one target by `processes` writers at once."""
    repo = fresh_copy(source, f"sustained-{processes}")
    start_at = time.time() + 2.0 + 0.3 * processes  # after every worker has started up
    workers = [subprocess.Popen([str(BIN / "python"), __file__, "--worker", str(repo), "prod",
                                 str(size.sustained), str(start_at)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(processes)]
    results = []
    for proc in workers:
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"a writer failed: {err.strip()}")
        results.append(json.loads(out))
    writes = sum(r["writes"] for r in results)
    elapsed = max(r["end"] for r in results) - min(r["start"] for r in results)
    if size.name == "quick":  # a smoke run also checks that every write landed soundly
        check(["git", "deploy", "fsck", "prod"], repo, env)
    return writes / elapsed


def machine() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor() or "?"
    git_version = subprocess.run(["git", "--version"], capture_output=True,
                                 text=True).stdout.strip().removeprefix("git version ")
    return (f"nproc {os.cpu_count()}, CPU {model}, Python {platform.python_version()}, "
            f"git {git_version}")


def table(rows: list[Row]) -> str:
    lines = ["| figure | measured | goal | |", "|---|---|---|---|"]
    for row in rows:
        mark = "" if row.ok is None else ("ok" if row.ok else "**missed**")
        lines.append(f"| {row.figure} | {row.value} | {row.goal} | {mark} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--rounds", type=int, help="timing rounds (default: 15, quick: 5)")
    parser.add_argument("--no-others", action="store_true",
                        help="skip the other benchmarks (bench_*.py)")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        repo, key, count, start_at = args.worker
        return worker(repo, key, int(count), float(start_at))
    size = QUICK if args.quick else FULL
    if args.rounds:
        size = Size(**{**size.__dict__, "rounds": args.rounds})

    def log(text: str) -> None:
        print(f"  … {text}", file=sys.stderr, flush=True)

    home = WORK / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = environment(home)
    os.environ.clear()  # build.py's git calls, too, run in the benchmark's own environment
    os.environ.update(env)
    compile_package(env)
    built = prepared(size, env, log)
    small, mid, big = (built[n] for n in (size.small, size.mid, size.big))
    repos = {"small": fresh_copy(small, "small"), "mid": fresh_copy(mid, "mid"),
             "big": fresh_copy(big, "big"), "behind": far_behind(small, env)}

    t = measure_times(size, repos, env, log)
    log("counting bytes per change")
    loose, packed = measure_bytes(size, big, env)
    log("sustained writes, one process")
    one = measure_sustained(size, small, env, 1)
    log("sustained writes, eight processes")
    eight = measure_sustained(size, small, env, 8)

    floor = t["floor"]
    rows = [Row("floor: `python -c 'import pygit2'`", f"{floor * 1000:.0f} ms")]
    for op in ("start", "finish"):
        ratio = t[f"{op}@small"] / floor
        rows.append(Row(f"`git deploy {op}` ({size.small} deployments) / floor",
                        f"{ratio:.2f}× ({t[f'{op}@small'] * 1000:.0f} ms)", "≤ 2.0×",
                        ratio <= 2.0))
    ratio = t["status@small"] / floor
    rows.append(Row(f"`git deploy status` ({size.small} deployments) / floor",
                    f"{ratio:.2f}× ({t['status@small'] * 1000:.0f} ms)", "≤ 2.0×", ratio <= 2.0))
    for op in ("start", "finish"):
        ratio = t[f"{op}@big"] / t[f"{op}@small"]
        rows.append(Row(f"`git deploy {op}` at {size.big:,} / at {size.small} deployments",
                        f"{ratio:.2f}× ({t[f'{op}@big'] * 1000:.0f} ms)", "≤ 1.2×", ratio <= 1.2))
    ratio = t["status@mid"] / t["status@small"]
    rows.append(Row(f"`git deploy status` at {size.mid:,} / at {size.small} deployments",
                    f"{ratio:.2f}× ({t['status@mid'] * 1000:.0f} ms)", "≈ 1 (O(1))",
                    ratio <= 1.2))
    ratio = t["status@behind"] / floor
    rows.append(Row(f"`git deploy status` with {size.commits - 1:,} pending commits / floor",
                    f"{ratio:.2f}× ({t['status@behind'] * 1000:.0f} ms)", "≤ 2.5×",
                    ratio <= 2.5))
    rows.append(Row(f"bytes per change, loose ({size.big:,} deployments)", f"{loose:,.0f} B",
                    "≤ 2 KiB", loose <= 2048))
    rows.append(Row(f"bytes per change, packed ({size.big:,} deployments)",
                    f"{packed:,.0f} B", "≤ 300 B", packed <= 300))
    rows.append(Row("sustained writes/s, 1 process (Store.write in a loop)", f"{one:.0f}/s"))
    rows.append(Row("sustained writes/s, 8 processes on one target", f"{eight:.0f}/s"))

    print()
    print(f"machine: {machine()}")
    print(f"command: python bench/run.py{' --quick' if args.quick else ''} "
          f"({size.rounds} interleaved rounds, medians)")
    print()
    print(table(rows))
    missed = [row.figure for row in rows if row.ok is False]

    if not args.no_others:
        for script, extra in (("bench_history.py", ["--quick"] if args.quick else []),
                              ("bench_idle.py", ["3"] if args.quick else []),
                              ("bench_serve.py", ["--seconds", "1", "--rounds", "1",
                                                  "--write-seconds", "3"]
                               if args.quick else []),
                              ("bench_pages.py", ["--deployments", "500", "--rounds", "3"]
                               if args.quick else []),
                              ("bench_health.py", ["--rounds", "1"] if args.quick else []),
                              ("bench_metrics.py", ["--quick"] if args.quick else [])):
            if (ROOT / script).exists():
                print(f"\n$ python bench/{script} {' '.join(extra)}".rstrip(), flush=True)
                subprocess.run([str(BIN / "python"), str(ROOT / script), *extra], env=env)
    if missed:
        print(f"\nmissed: {'; '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
