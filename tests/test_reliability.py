"""Nothing lost: concurrent writers, writers killed mid-write, hostile input, full and read-only
disks. Marked `reliability` (`pytest -m reliability` runs it alone); the default run includes it.

Writers that must be many and fast are Python processes calling `Store.write` directly — the same
path `git deploy` takes after parsing its arguments — because 800 operations through the CLI's
start-up would take minutes; alongside them, real `git deploy` processes do part of the work, and
every check at the end goes through the real CLI (`git deploy fsck`, `git deploy doctor`).

This file is also the writers' program: `python tests/test_reliability.py ops|zygote|disk …`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import BIN, Deploy, git
from test_care import age, one_error_line, plant, refs_state

pytestmark = pytest.mark.reliability

HERE = Path(__file__).resolve()
REFUSALS = ("RuleViolation", "NotFound")  # the rules' answers; anything else is a failure


# --- what the writers do ----------------------------------------------------------------------


def branch_commits(repo: Path) -> dict[str, list[str]]:
    return {branch: git(repo, "rev-list", "--reverse", branch).split()
            for branch in ("main", "release")}


def random_request(rng: random.Random, store: Any, key: str,
                   commits: dict[str, list[str]]) -> Any:
    """One operation a person or CI could ask for, chosen at random; many are refused."""
    from git_deployments.core import intake
    from git_deployments.core.model import Comment, Delete, Edit, SetStatus
    from git_deployments.core.model import Deploy as DeployOp

    index = store.snapshot(key).index
    top = max(1, index.next_number - 1) if index is not None else 1
    number = rng.randint(1, top + 1)  # sometimes one that does not exist (yet)
    branch = rng.choice(["main", "release"])
    ref = {"repository": "app", "branch": branch, "commit": rng.choice(commits[branch])}
    op = rng.choices(["schedule", "start", "finish", "fail", "comment", "edit", "set-status",
                      "delete"], weights=[12, 20, 20, 6, 8, 8, 8, 2])[0]
    git = store.git
    if op in ("schedule", "start"):
        return intake.new_request(DeployOp, git, key, op=op, commits=[ref],
                                  version=rng.choice([None, f"1.{number}.{rng.randint(0, 9)}"]))
    if op in ("finish", "fail"):
        return intake.new_request(DeployOp, git, key, op=op,
                                  commits=rng.choice([[], [ref]]))
    if op == "comment":
        return intake.new_request(Comment, git, key, number=rng.choice([None, number]),
                                  text=f"note {rng.random():.6f}")
    if op == "edit":
        return intake.new_request(Edit, git, key, number=number,
                                  description=f"edited {rng.random():.6f}")
    if op == "set-status":
        return intake.new_request(SetStatus, git, key, number=number,
                                  status=rng.choice(["scheduled", "deploying", "current",
                                                     "failed"]))
    return intake.new_request(Delete, git, key, number=number)


def run_ops(repo: str, seed: int, count: int, keys: list[str]) -> int:
    """`count` random operations, round robin over `keys`; one JSON line per outcome."""
    from git_deployments.core.store import open_store
    from git_deployments.errors import DeployError

    store = open_store(repo)
    commits = branch_commits(Path(repo))
    rng = random.Random(seed)
    for n in range(count):
        key = keys[n % len(keys)]
        request = random_request(rng, store, key, commits)
        outcome: dict[str, Any] = {"target": key, "op": request.op, "op_id": request.op_id}
        try:
            result = store.write(request)
            outcome["landed"] = result.commit
        except DeployError as exc:
            outcome["refused"] = type(exc).__name__
            outcome["message"] = str(exc)
        print(json.dumps(outcome), flush=True)
    return 0


def zygote(repo: str, key: str) -> int:
    """Imports once, then for each `fork SEED` line on stdin forks a writer that writes until it
    is killed; prints the writer's pid, then `dead` once it has been reaped."""
    from git_deployments.core import intake
    from git_deployments.core.model import Comment
    from git_deployments.core.model import Deploy as DeployOp
    from git_deployments.core.store import open_store
    from git_deployments.errors import DeployError

    commits = branch_commits(Path(repo))
    open_store(repo).snapshot(key).require()  # warm every import the writer needs
    while line := sys.stdin.readline():
        seed = int(line.split()[1])
        pid = os.fork()
        if pid == 0:
            try:
                store = open_store(repo)
                rng = random.Random(seed)
                while True:
                    branch = rng.choice(["main", "release"])
                    ref = {"repository": "app", "branch": branch,
                           "commit": rng.choice(commits[branch])}
                    op = rng.choice(["start", "finish", "comment"])
                    request = intake.new_request(Comment, store.git, key, text="tick") \
                        if op == "comment" else \
                        intake.new_request(DeployOp, store.git, key, op=op, commits=[ref],
                                           version=f"v{rng.randint(0, 99)}")
                    try:
                        store.write(request)
                    except DeployError:
                        pass  # a rule's refusal; the test checks what the ref says
            finally:
                os._exit(0)
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"dead {status}", flush=True)
    return 0


def disk_scenario(repo: str, kind: str) -> int:
    """Run inside `unshare -m` (a private mount namespace, so nothing outlives this process):
    make the disk full or the repository read-only, try a write through the real CLI, and
    report what happened as JSON."""
    report: dict[str, Any] = {}
    source = Path(repo)

    def deploy(*args: str, cwd: Path) -> dict[str, Any]:
        done = subprocess.run(["git", "deploy", *args], cwd=cwd, capture_output=True, text=True)
        return {"code": done.returncode, "stdout": done.stdout, "stderr": done.stderr}

    def mount(*args: str) -> bool:
        done = subprocess.run(["mount", *args], capture_output=True, text=True)
        if done.returncode != 0:
            report.setdefault("mount_errors", []).append(done.stderr.strip())
        return done.returncode == 0

    def tip(cwd: Path) -> str:
        return git(cwd, "rev-parse", "refs/deployments/prod")

    if kind == "full":
        disk = source.parent / "disk"
        disk.mkdir()
        if not mount("-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)):
            print(json.dumps({"skip": f"cannot mount a tmpfs: {report['mount_errors']}"}))
            return 0
        app = disk / "app"
        shutil.copytree(source, app, symlinks=True)
        report["before"] = tip(app)
        filler = disk / "filler"
        with open(filler, "wb") as handle:
            try:
                while True:
                    handle.write(b"\0" * 65536)
                    handle.flush()
            except OSError:
                pass
        report["write"] = deploy("finish", "prod", "--commit", "app:main:HEAD", cwd=app)
        report["after"] = tip(app)
        report["status"] = deploy("status", cwd=app)
        filler.unlink()
        report["fsck"] = deploy("fsck", cwd=app)
        report["retry"] = deploy("finish", "prod", "--commit", "app:main:HEAD", cwd=app)
        report["fsck_after"] = deploy("fsck", cwd=app)
    else:
        where = source / ".git" / "objects" if kind == "ro-objects" else source
        if not (mount("--bind", str(where), str(where)) and
                mount("-o", "remount,ro,bind", str(where))):
            print(json.dumps({"skip": f"cannot bind-mount read-only: {report['mount_errors']}"}))
            return 0
        report["before"] = tip(source)
        report["write"] = deploy("finish", "prod", "--commit", "app:main:HEAD", cwd=source)
        report["after"] = tip(source)
        report["status"] = deploy("status", cwd=source)
        report["fsck"] = deploy("fsck", cwd=source)
    print(json.dumps(report))
    return 0


# --- helpers ----------------------------------------------------------------------------------


def timeline_op_ids(repo: Path, key: str) -> list[str]:
    from git_deployments.core.store import open_store
    from git_deployments.core.timeline import recorded_request

    store = open_store(repo)
    return [recorded_request(info.message).op_id for info in store.timeline(key)]


def assert_clear_refusal(outcome: dict[str, Any]) -> None:
    assert outcome["refused"] in REFUSALS, outcome
    message = outcome["message"]
    assert message and "\n" not in message and "Traceback" not in message, outcome


def run_main(repo: Path, *argv: str) -> tuple[int, str, str]:
    """`git deploy --repo REPO ARGV…` in this process: the CLI's code, without a process
    start-up per example."""
    from git_deployments.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["--repo", str(repo), *argv])
        except SystemExit as exc:  # -h and --version print and exit, as argparse does
            code = exc.code if isinstance(exc.code, int) else 0
    return code, out.getvalue(), err.getvalue()


def assert_failed_cleanly(code: int, out: str, err: str, before: str, repo: Path,
                          args: tuple[str, ...]) -> None:
    assert code in (1, 2), (args, code, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), (args, err)
    assert "Traceback" not in out + err
    assert refs_state(repo) == before, args


@pytest.fixture
def target(repo: Path, deploy: Deploy) -> Path:
    deploy("target", "create", "prod", "--manual-controls")
    return repo


# --- many writers at once ---------------------------------------------------------------------


def test_eight_writers_on_one_target_and_on_their_own_at_once(repo: Path, deploy: Deploy) -> None:
    """8 Python writers × 100 random operations, alternating between one shared target and a
    target of their own, while 4 real `git deploy` processes write to the shared target too."""
    deploy("target", "create", "shared", "--manual-controls")
    for n in range(8):
        deploy("target", "create", f"own-{n}", "--manual-controls")
    writers = [subprocess.Popen([sys.executable, str(HERE), "ops", str(repo), str(1000 + n),
                                 "100", "shared", f"own-{n}"], cwd=repo, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for n in range(8)]
    cli_outcomes: list[tuple[list[str], subprocess.CompletedProcess[str]]] = []

    def cli_writer(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(6):
            args = rng.choice([["start", "shared", "--commit", "app:main:HEAD"],
                               ["finish", "shared"], ["fail", "shared"],
                               ["schedule", "shared", "--commit", "app:release:HEAD"],
                               ["comment", "shared", "-m", "from the CLI"]])
            cli_outcomes.append((args, deploy(*args, "--json", ok=False)))

    threads = [threading.Thread(target=cli_writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    outcomes: list[dict[str, Any]] = []
    for proc in writers:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
        outcomes += [json.loads(line) for line in out.splitlines()]
    for thread in threads:
        thread.join()

    assert len(outcomes) == 800
    landed: dict[str, list[str]] = {}
    for outcome in outcomes:
        if "landed" in outcome:
            landed.setdefault(outcome["target"], []).append(outcome["op_id"])
        else:
            assert_clear_refusal(outcome)
    cli_landed = []
    for args, result in cli_outcomes:
        if result.returncode == 0:
            cli_landed.append(json.loads(result.stdout)["timeline_commit"])
        else:
            assert result.returncode == 1, (args, result.stderr)
            one_error_line(result)
    kinds = Counter(o.get("refused", "landed") for o in outcomes)
    assert kinds["landed"] > 300, kinds  # mostly legal: this tests writes more than refusals

    # no lost update and none applied twice: each timeline holds exactly its landed operations
    for key in ["shared", *(f"own-{n}" for n in range(8))]:
        recorded = timeline_op_ids(repo, key)
        assert len(recorded) == len(set(recorded))
        expected = set(landed.get(key, []))
        mine = set(recorded[:-1])  # the oldest is `target create`
        if key == "shared":
            assert expected <= mine and len(mine - expected) == len(cli_landed)
        else:
            assert mine == expected
    timeline = git(repo, "rev-list", "refs/deployments/shared").split()
    assert set(cli_landed) <= set(timeline)

    # every commit replays to exactly its tree, and the index equals the records at the tip
    result = deploy("fsck", "--json")
    assert json.loads(result.stdout)["ok"] is True
    # and the invariants hold at every commit along the way
    from git_deployments.core.store import open_store
    from git_deployments.core.verify import verify_index

    store = open_store(repo)
    for commit in timeline[:-1]:
        verify_index(store.git, "shared", commit)


def test_the_write_lock_and_filelock_exclude_each_other(target: Path) -> None:
    """The store's lock is flock on the target's lock file: the same lock filelock's FileLock
    takes there, so any holder of either kind keeps a writer of the other kind out."""
    from filelock import FileLock, Timeout

    from git_deployments.core.store import open_store

    store = open_store(target)
    path = store.lock_path("prod")
    with store.lock("prod"):
        with pytest.raises(Timeout):
            FileLock(str(path)).acquire(timeout=0.2)
        program = ("import sys; from filelock import Timeout\n"
                   "from git_deployments.core.store import open_store\n"
                   "try:\n    open_store(sys.argv[1]).lock('prod').acquire(timeout=0.3)\n"
                   "except Timeout:\n    print('kept out')\n")
        holder = subprocess.run([sys.executable, "-c", program, str(target)],
                                capture_output=True, text=True)
        assert holder.stdout.strip() == "kept out", holder.stderr
    with FileLock(str(path)):
        with pytest.raises(Timeout):
            store.lock("prod").acquire(timeout=0.2)
    with store.lock("prod"):  # free again once both let go
        pass


# --- writers killed at random moments ---------------------------------------------------------


def write_or_doctor(repo: Path, deploy: Deploy, store: Any) -> bool:
    """One write after a kill; when a lock the killed writer left stops it, `git deploy doctor`
    must clear it and the write then succeed. True when doctor was needed."""
    from git_deployments.core import intake
    from git_deployments.core.model import Comment
    from git_deployments.errors import DeployError

    request = intake.new_request(Comment, store.git, "prod", text="after a kill")
    try:
        store.write(request)
        return False
    except DeployError as exc:
        assert "git deploy doctor" in str(exc), exc
    for lock in (repo / ".git").rglob("*.lock"):
        age(lock, 60)  # the writer is dead: its lock is as stale as it will ever be
    result = deploy("doctor")
    assert "removed refs/deployments/prod.lock" in result.stdout, result.stdout
    store.write(request)
    return True


def test_writers_killed_at_random_moments(target: Path, deploy: Deploy) -> None:
    """200 writers killed with SIGKILL: 180 forked from a process that has imported the store
    (so a kill lands inside a write, not in Python's start-up) and 20 real `git deploy`."""
    from git_deployments.core.store import open_store
    from git_deployments.core.verify import verify_commit

    repo = target
    store = open_store(repo)
    rng = random.Random(2026)
    parent = subprocess.Popen([sys.executable, str(HERE), "zygote", str(repo), "prod"], cwd=repo,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert parent.stdin is not None and parent.stdout is not None
    doctored = 0
    try:
        for round_ in range(200):
            if round_ % 10 == 9:
                op = rng.choice([["start", "prod", "--commit", "app:main:HEAD"],
                                 ["finish", "prod"], ["comment", "prod", "-m", "cli"]])
                writer = subprocess.Popen([str(BIN / "git-deploy"), *op], cwd=repo,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(rng.uniform(0.0, 0.6))
                writer.kill()
                writer.wait()
            else:
                parent.stdin.write(f"fork {rng.randrange(1 << 30)}\n")
                parent.stdin.flush()
                pid = int(parent.stdout.readline())
                time.sleep(rng.uniform(0.0, 0.05))
                os.kill(pid, signal.SIGKILL)
                assert parent.stdout.readline().startswith("dead")
            # the ref points at a whole, valid change
            tip = store.git.read_ref("refs/deployments/prod")
            assert tip is not None
            verify_commit(store.git, "prod", tip)
            doctored += write_or_doctor(repo, deploy, store)
    finally:
        parent.stdin.close()
        parent.wait(timeout=60)
    # locks and temporary objects the kills left: doctor removes them once they are old enough
    for leftover in [*(repo / ".git" / "objects").glob("tmp_object_git2_*"),
                     *(repo / ".git").rglob("*.lock")]:
        age(leftover, 60)
    deploy("doctor")
    assert not list((repo / ".git" / "objects").glob("tmp_object_git2_*"))
    assert deploy("doctor").stdout == "nothing to fix: no stale locks or temporary files\n"
    result = deploy("fsck")
    assert result.stdout.startswith("prod: ") and result.stdout.endswith(" checked, ok\n")
    git(repo, "fsck", "--no-dangling")
    print(f"doctor was needed after {doctored} of 200 kills")


# --- hostile input ----------------------------------------------------------------------------

FUZZ = settings(max_examples=250, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
# what argv can carry (no NUL), mostly short, sometimes long, often odd
argument = st.one_of(
    st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
            max_size=40),
    st.text("-:.@/ \t\n\r\x1b\x7fHEADmain0123456789abcdef~^{}[]*?", max_size=60),
    st.integers(min_value=200, max_value=5000).map(lambda n: "v" * n),
    st.sampled_from(["", "-", "--", "-1", "0", "HEAD", "main", ":", "app::", "app:main:",
                     "app:main:HEAD:x", "app:../x:HEAD", "app:main:" + "f" * 40,
                     "app:ma in:HEAD", "x" * 64, "prod.lock", "a..b", "1e9", "99999999999999",
                     "0s", "-5m", "367d", "1h-1m", "2026-02-30T00:00:00Z", "+", "+1y",
                     "javascript:alert(1)", "file:///etc/passwd", "\u202eevil"]),
).filter(lambda text: text != "--debug")

COMMANDS = [
    ("target key", lambda a: ["start", a, "--commit", "app:main:HEAD"]),
    ("version", lambda a: ["start", "prod", "--commit", "app:main:HEAD", "--version", a]),
    ("commit ref", lambda a: ["schedule", "prod", "--commit", a]),
    ("branch", lambda a: ["start", "prod", "--branch", a]),
    ("number", lambda a: ["edit", "prod", a, "--description", "x"]),
    ("status", lambda a: ["set-status", "prod", "1", a]),
    ("duration", lambda a: ["target", "edit", "prod", "--hanging-after", a]),
    ("date", lambda a: ["schedule", "prod", "--commit", "app:main", "--at", a]),
    ("link", lambda a: ["finish", "prod", "--commit", "app:main:HEAD", "--ext-url", a]),
    ("repository", lambda a: ["target", "edit", "prod", "--repository", a]),
    ("shown", lambda a: ["show", a]),
]


@FUZZ
@given(which=st.integers(0, len(COMMANDS) - 1), value=argument)
@example(which=0, value="Prod")
@example(which=1, value="1.0\n2.0")
@example(which=2, value="app:main:HEAD:HEAD")
@example(which=6, value="0")
def test_hostile_arguments(target: Path, which: int, value: str) -> None:
    """Whatever a value holds, the command either does its job or stops with one `error:` line,
    exit 1 or 2, and nothing written; never a traceback."""
    _, build = COMMANDS[which]
    args = tuple(build(value))
    before = refs_state(target)
    code, out, err = run_main(target, *args)
    if code == 0:
        return  # a legal value: written as asked (fsck below checks the result)
    assert_failed_cleanly(code, out, err, before, target, args)


def test_hostile_arguments_through_the_real_cli(target: Path, deploy: Deploy) -> None:
    before = refs_state(target)
    for args in (["start", "prod", "--version", "a\nb"], ["start", "Nope"],
                 ["schedule", "prod", "--commit", "app:main:" + "0" * 40 + ":x"],
                 ["target", "edit", "prod", "--hanging-after", "forever"],
                 ["edit", "prod", "1" * 30, "--description", "x"],
                 ["finish", "prod", "--commit", "other:main:HEAD"]):
        result = deploy(*args, ok=False)
        assert result.returncode in (1, 2), (args, result)
        one_error_line(result)
    assert refs_state(target) == before
    deploy("fsck")


def deep(n: int) -> bytes:
    return b"number: " + b"[" * n + b"]" * n + b"\n"


def bomb(n: int) -> bytes:
    lines = [b"a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [b"a%d: &a%d [" % (i, i) + b", ".join([b"*a%d" % (i - 1)] * 9) + b"]"
              for i in range(1, n + 1)]
    return b"\n".join(lines) + b"\n"


def yaml_dump(data: Any) -> bytes:
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    stream = io.StringIO()
    yaml.dump(data, stream)
    return stream.getvalue().encode()


def yaml_load(raw: bytes) -> Any:
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(raw)


def hostile_content(valid: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """Bytes no reader may accept in place of a record whose valid form is `valid`."""
    wrong_value = st.recursive(st.none() | st.integers() | st.text(max_size=10),
                               lambda inner: st.lists(inner, max_size=3), max_leaves=6)
    wrong_types = st.tuples(st.sampled_from(sorted(valid)), wrong_value).map(
        lambda kv: yaml_dump({**valid, kv[0]: {"bogus": kv[1]}}))
    unknown_field = st.tuples(st.text("abcxyz_", min_size=1, max_size=8), wrong_value).map(
        lambda kv: yaml_dump({**valid, f"x_{kv[0]}": kv[1]}))
    return st.one_of(
        st.binary(max_size=80).map(lambda b: b"\xff" + b),  # never UTF-8
        st.integers(9, 3000).map(deep),
        st.integers(1, 9).map(bomb),
        st.integers(520 * 1024, 600 * 1024).map(lambda n: b"description: " + b"x" * n),
        wrong_types,
        unknown_field,
        # broken flow syntax (one that parses is a mapping far short of a record)
        st.text(max_size=60).filter(lambda t: "next_number" not in t).map(
            lambda t: ("{" + t).encode()),
        st.sampled_from([b"", b"---\n", b"- 1\n- 2\n", b"!!python/object:os.system ls\n",
                         b"number: !!binary aGVsbG8=\n", b"%YAML 9.9\n---\na: 1\n",
                         b"\xef\xbb\xbf\x00\x00"]),
    )


@pytest.fixture
def in_flight(target: Path, deploy: Deploy) -> Path:
    """`prod` with #1 current and #2 in flight: every command below reads the index, the target
    and #2."""
    deploy("finish", "prod", "--commit", "app:main:HEAD")
    deploy("start", "prod", "--commit", "app:release:HEAD")
    return target


READERS_AND_WRITERS = [
    ("status",), ("show", "prod", "2"), ("list", "prod"), ("target", "show", "prod"),
    ("start", "prod", "--commit", "app:main:HEAD"), ("finish", "prod"), ("fail", "prod"),
    ("edit", "prod", "2", "--version", "x"), ("fsck",)]


@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_hostile_records_planted_in_the_ref(in_flight: Path, data: st.DataObject) -> None:
    """A planted format, target, index or in-flight record that is not valid: every command that
    reads it stops with one clear `error:` line and exit 1, writes nothing, never crashes."""
    repo = in_flight
    original = git(repo, "rev-parse", "refs/deployments/prod")
    path = data.draw(st.sampled_from(["format", "target.yaml", "index.yaml",
                                      "deployments/2.yaml"]), label="path")
    if path == "format":
        content = data.draw(st.binary(max_size=40).filter(
            lambda b: b[:64].decode("utf-8", "replace").strip() != "git-deployments/1"),
            label="format")
    else:
        valid = yaml_load(git(repo, "show", f"{original}:{path}").encode() + b"\n")
        content = data.draw(hostile_content(valid), label="content")
    try:
        plant(repo, "prod", {path: content}, base=original)
        before = refs_state(repo)
        for args in READERS_AND_WRITERS:
            if path.startswith("deployments/") and args[0] == "target":
                continue  # `target show` reads no deployment
            code, out, err = run_main(repo, *args)
            assert code == 1, (path, args, code, out, err)
            assert_failed_cleanly(code, out, err, before, repo, args)
        code, out, err = run_main(repo, "log", "prod")  # reads commit messages (and format)
        assert code in (0, 1) and "Traceback" not in err
        if code:
            assert_failed_cleanly(code, out, err, before, repo, ("log", "prod"))
    finally:
        git(repo, "update-ref", "refs/deployments/prod", original)


# --- full and read-only disks -----------------------------------------------------------------


def no_space_limits() -> None:
    """In the child: every file may grow to 0 bytes, and exceeding that is an error (EFBIG), not
    the SIGXFSZ that would kill the process — a disk that is full for this process only."""
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))


@pytest.fixture
def busy(target: Path, deploy: Deploy) -> Path:
    deploy("start", "prod", "--commit", "app:main:HEAD")
    return target


def test_no_room_for_new_objects(busy: Path, deploy: Deploy) -> None:
    before = refs_state(busy)
    for args in (["finish", "prod"], ["comment", "prod", "-m", "hello"],
                 ["target", "create", "other"]):
        result = subprocess.run(["git", "deploy", *args], cwd=busy, capture_output=True,
                                text=True, preexec_fn=no_space_limits)
        assert result.returncode == 1, (args, result.stderr)
        line = one_error_line(result)
        assert line.startswith("error: cannot write to the repository: "), line
        assert refs_state(busy) == before
    deploy("status")
    deploy("fsck")
    deploy("finish", "prod")
    deploy("fsck")


def in_private_mounts(repo: Path, kind: str) -> dict[str, Any]:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) to mount a tmpfs or a read-only bind mount")
    done = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable,
                           str(HERE), "disk", str(repo), kind], capture_output=True, text=True,
                          timeout=300)
    if done.returncode != 0 and "unshare" in done.stderr:
        pytest.skip(f"cannot make a mount namespace: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    if "skip" in report:
        pytest.skip(report["skip"])
    return report


def assert_write_refused(report: dict[str, Any], reason: str) -> None:
    write = report["write"]
    assert write["code"] == 1, write
    lines = write["stderr"].splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot write to the repository: "), \
        write
    assert reason in lines[0], lines[0]
    assert report["after"] == report["before"]
    assert report["status"]["code"] == 0, report["status"]
    assert report["fsck"]["code"] == 0, report["fsck"]


def test_a_full_disk(busy: Path) -> None:
    report = in_private_mounts(busy, "full")
    assert_write_refused(report, "No space left on device")
    assert report["retry"]["code"] == 0 and report["fsck_after"]["code"] == 0, report


def test_a_read_only_repository(busy: Path, deploy: Deploy) -> None:
    before = refs_state(busy)
    report = in_private_mounts(busy, "ro-repo")
    assert_write_refused(report, "Read-only file system")
    assert refs_state(busy) == before
    deploy("finish", "prod")  # writable again outside the namespace


def test_a_read_only_object_directory(busy: Path, deploy: Deploy) -> None:
    before = refs_state(busy)
    report = in_private_mounts(busy, "ro-objects")
    assert_write_refused(report, "Read-only file system")
    assert refs_state(busy) == before
    deploy("finish", "prod")
    deploy("fsck")


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    if mode == "ops":
        raise SystemExit(run_ops(rest[0], int(rest[1]), int(rest[2]), rest[3:]))
    if mode == "zygote":
        raise SystemExit(zygote(rest[0], rest[1]))
    if mode == "disk":
        raise SystemExit(disk_scenario(rest[0], rest[1]))
    raise SystemExit(f"unknown mode {mode!r}")
