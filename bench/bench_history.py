"""How fast `git deploy commits|contains|pending|compare` answer on a big history, as ratios to
git itself answering the same question in the same run.

    python bench/bench_history.py            # 200,000 commits, 1,000 deployments
    python bench/bench_history.py --quick    # a small smoke run

The history is generated with `git fast-import` under bench/work/ (kept between runs); the
deployments come from release tags through `git deploy import-tags`, the same tags `git tag
--contains` then searches. Every figure is the best of several runs of the whole process, git
deploy and git alike (so git deploy's Python start-up counts: it is printed as the floor).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import compile_package, race

ROOT = Path(__file__).resolve().parent
WORK = ROOT / "work"
BIN = Path(sys.executable).parent
T0 = 1_500_000_000  # the first commit's time; each next one a minute later
MERGE_EVERY = 100  # a two-commit side branch is merged every this many mainline commits


@dataclass(frozen=True)
class Size:
    commits: int
    tags: int
    short: int  # N of the short range
    long: int  # N of the long range
    pending: int
    runs: int


FULL = Size(commits=200_000, tags=1_000, short=1_000, long=40_000, pending=1_000, runs=5)
QUICK = Size(commits=6_000, tags=50, short=100, long=2_000, pending=200, runs=2)


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1", NO_COLOR="1", TZ="UTC",
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return env


def run(cwd: Path, env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(list(args), cwd=cwd, env=env, input=stdin, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def fast_import_stream(size: Size) -> str:
    """A main branch with a merged side branch every MERGE_EVERY commits, and `size.tags`
    annotated release tags spread evenly over the main branch's first-parent line."""
    out: list[str] = ["blob\nmark :1\ndata 6\nhello\n"]
    mark = 1
    main_marks: list[int] = []
    when = T0
    made = 0

    def commit(ref: str, subject: str, parent: int | None, merge: int | None = None) -> int:
        nonlocal mark, when, made
        mark += 1
        when += 60
        made += 1
        who = f"Dev {made % 17} <dev{made % 17}@example.com> {when} +0000"
        data = subject.encode()
        out.append(f"commit {ref}\nmark :{mark}\nauthor {who}\ncommitter {who}\n"
                   f"data {len(data)}\n{subject}\n")
        if parent is not None:
            out.append(f"from :{parent}\n")
        else:
            out.append("M 100644 :1 README\n")
        if merge is not None:
            out.append(f"merge :{merge}\n")
        out.append("\n")
        return mark

    while made < size.commits:
        i = len(main_marks)
        parent = main_marks[-1] if main_marks else None
        if i > 10 and i % MERGE_EVERY == 0 and made + 3 <= size.commits:
            side = commit("refs/heads/side", f"side work {i} (ABC-{i % 900 + 1})",
                          main_marks[-3])
            side = commit("refs/heads/side", f"side fix {i}", side)
            main_marks.append(commit("refs/heads/main",
                                     f"Merge pull request #{i} from dev/side-{i}", parent, side))
        else:
            main_marks.append(commit("refs/heads/main", f"change {i}: tweak module {i % 97} "
                                     f"(#{i % 5000})", parent))
    step = max(1, len(main_marks) // size.tags)
    tagged = main_marks[::-1][::step][:size.tags]  # newest first, evenly spaced
    for n, target in enumerate(reversed(tagged), 1):
        stamp = T0 + 60 * target  # about its commit's time
        out.append(f"tag rel-{n:05d}\nfrom :{target}\ntagger Rel <rel@example.com> {stamp} "
                   f"+0000\ndata 7\nrelease\n")
    return "".join(out)


def build(size: Size, env: dict[str, str]) -> tuple[Path, float, float]:
    """The repository (reused when bench/work holds one of this size) and how long the history
    and the import took."""
    name = f"history-{size.commits}-{size.tags}"
    repo = WORK / name / "big"
    done_marker = WORK / name / "ready"
    if done_marker.exists():
        return repo, 0.0, 0.0
    shutil.rmtree(WORK / name, ignore_errors=True)
    repo.mkdir(parents=True)
    run(repo, env, "git", "init", "-q", "-b", "main")
    started = time.perf_counter()
    run(repo, env, "git", "fast-import", "--quiet", stdin=fast_import_stream(size))
    run(repo, env, "git", "reset", "-q", "--hard", "main")
    run(repo, env, "git", "branch", "-q", "-D", "side")
    history_time = time.perf_counter() - started
    started = time.perf_counter()
    run(repo, env, "git", "deploy", "import-tags", "bench", "--pattern", "rel-*",
        "--branch", "main")
    import_time = time.perf_counter() - started
    done_marker.write_text("ok\n")
    return repo, history_time, import_time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument("--runs", type=int, help="runs per figure (best is kept)")
    parser.add_argument("--commit-graph", action="store_true",
                        help="write a commit-graph first (both sides get faster)")
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    runs = args.runs or size.runs
    home = WORK / "home"
    home.mkdir(parents=True, exist_ok=True)
    (home / ".gitconfig").write_text("[user]\n\tname = Bench\n\temail = bench@example.com\n"
                                     "[init]\n\tdefaultBranch = main\n[gc]\n\tauto = 0\n")
    env = environment(home)
    compile_package(env)
    repo, history_time, import_time = build(size, env)
    if args.commit_graph:
        run(repo, env, "git", "commit-graph", "write", "--reachable")
    else:
        graph = repo / ".git" / "objects" / "info" / "commit-graph"
        graph.unlink(missing_ok=True)
        shutil.rmtree(repo / ".git" / "objects" / "info" / "commit-graphs", ignore_errors=True)

    total = int(run(repo, env, "git", "rev-list", "--count", "main"))
    first_parent = run(repo, env, "git", "rev-list", "--first-parent", "main").split()
    print(f"history: {total:,} commits"
          + (f" (fast-import {history_time:.1f}s)" if history_time else " (reused)")
          + f"; target 'bench': {size.tags:,} deployments from tags"
          + (f" (import-tags {import_time:.1f}s)" if import_time else ""))
    print(f"commit-graph: {'yes' if args.commit_graph else 'no'}; best of {runs} runs")

    # target 'span': three deployments a short and a long range apart, below the tip
    def count(range_: str) -> int:
        return int(run(repo, env, "git", "rev-list", "--count", range_))

    def back(start: int, wanted: int) -> int:
        """The first-parent position whose range up to `start` has about `wanted` commits
        (a bisection: merges bring side commits, so positions and counts differ a little)."""
        low, high = start + 1, len(first_parent) - 1
        while low < high:
            middle = (low + high) // 2
            if count(f"{first_parent[middle]}..{first_parent[start]}") < wanted:
                low = middle + 1
            else:
                high = middle
        return low

    c2 = size.pending
    if _exists(repo, env, "refs/deployments/span"):  # made by an earlier run
        listed = json.loads(run(repo, env, "git", "deploy", "list", "span", "--json"))
        spans = [r["commits"][0]["commit"] for r in sorted(listed, key=lambda r: r["number"])]
    else:
        c1 = back(c2, size.long)
        c0 = back(c1, size.short)
        spans = [first_parent[c0], first_parent[c1], first_parent[c2]]
        run(repo, env, "git", "deploy", "target", "create", "span")
        for commit in spans:
            run(repo, env, "git", "deploy", "finish", "span", "--commit", f"big:main:{commit}")

    rows: list[tuple[str, list[str], list[str], float]] = []
    short_n, long_n = count(f"{spans[0]}..{spans[1]}"), count(f"{spans[1]}..{spans[2]}")
    rows.append((f"commits, N={short_n:,}", ["git", "deploy", "commits", "span", "2"],
                 ["git", "rev-list", "--count", f"{spans[0]}..{spans[1]}"], 1.2))
    rows.append((f"commits, N={long_n:,}", ["git", "deploy", "commits", "span", "3"],
                 ["git", "rev-list", "--count", f"{spans[1]}..{spans[2]}"], 1.2))
    # the same listing as git gives it: id, author, email, date and subject of every commit
    rows.append((f"commits --json, N={long_n:,} / git log",
                 ["git", "deploy", "commits", "span", "3", "--json"],
                 ["git", "log", "--format=%H%x00%an%x00%ae%x00%aI%x00%s",
                  f"{spans[1]}..{spans[2]}"], 1.5))
    old, recent = first_parent[len(first_parent) // 2], first_parent[min(500, c2)]
    for label, commit in (("old", old), ("recent", recent)):
        rows.append((f"contains ({label} commit), {size.tags:,} deployments",
                     ["git", "deploy", "contains", commit, "--target", "bench"],
                     ["git", "tag", "--contains", commit], 1.5))
    pending_n = count(f"{spans[2]}..main")
    rows.append((f"pending, N={pending_n:,}", ["git", "deploy", "pending", "span"],
                 ["git", "rev-list", "--count", f"{spans[2]}..main"], 1.0))
    bench_current = run(repo, env, "git", "rev-parse", f"rel-{size.tags:05d}^{{}}").strip()
    rows.append(("compare", ["git", "deploy", "compare", "span", "bench"],
                 ["git", "rev-list", "--left-right", "--count", f"{spans[2]}...{bench_current}"],
                 1.0))

    floor_command = ["git", "deploy", "--version"]
    print(f"{'question':<42} {'git deploy':>10} {'git':>8} {'ratio':>6} {'goal':>5}"
          f"  {'less start-up':>13}")
    floors = []
    for label, ours, theirs, goal in rows:
        floor, spent, base = race(repo, env, [floor_command, ours, theirs], runs)
        floors.append(floor)
        ratio = spent / base
        verdict = "ok" if ratio <= goal else "over"
        # the same question less the start-up floor: what the answer itself costs
        print(f"{label:<42} {spent:>9.3f}s {base:>7.3f}s {ratio:>6.2f} "
              f"{goal:>4.1f}x  {max(spent - floor, 0.0) / base:>12.2f}x  {verdict}")
    print(f"start-up floor ('git deploy --version'): {min(floors):.3f}s best, "
          f"{statistics.median(floors):.3f}s median of the best per question")
    return 0


def _exists(repo: Path, env: dict[str, str], ref: str) -> bool:
    return subprocess.run(["git", "rev-parse", "--verify", "-q", ref], cwd=repo, env=env,
                          capture_output=True).returncode == 0


if __name__ == "__main__":
    raise SystemExit(main())
