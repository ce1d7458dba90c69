"""The target lock is filelock's lock: TargetLock and filelock.FileLock on the same file exclude
each other, in one process and across processes, and each lets the other in once released."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock, Timeout

from git_deployments.core.locking import TargetLock, target_lock

HOLD = ("import sys, time\n"
        "from filelock import FileLock\n"
        "from git_deployments.core.locking import TargetLock\n"
        "kind, path = sys.argv[1], sys.argv[2]\n"
        "lock = FileLock(path) if kind == 'filelock' else TargetLock(__import__('pathlib')"
        ".Path(path), 10)\n"
        "with lock:\n"
        "    print('held', flush=True)\n"
        "    sys.stdin.readline()\n")
TRY = ("import sys\n"
       "from filelock import FileLock, Timeout\n"
       "from git_deployments.core.locking import TargetLock\n"
       "kind, path = sys.argv[1], sys.argv[2]\n"
       "lock = FileLock(path) if kind == 'filelock' else TargetLock(__import__('pathlib')"
       ".Path(path), 10)\n"
       "try:\n    lock.acquire(timeout=0.3)\nexcept Timeout:\n    print('kept out')\n"
       "else:\n    print('got it')\n    lock.release()\n")


def attempt(kind: str, path: Path) -> str:
    done = subprocess.run([sys.executable, "-c", TRY, kind, str(path)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("holder, other", [("target", "filelock"), ("filelock", "target"),
                                           ("target", "target")])
def test_the_two_locks_exclude_each_other_across_processes(tmp_path: Path, holder: str,
                                                           other: str) -> None:
    path = tmp_path / "prod.lock"
    held = subprocess.Popen([sys.executable, "-c", HOLD, holder, str(path)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert held.stdout is not None and held.stdout.readline().strip() == "held"
        assert attempt(other, path) == "kept out"
    finally:
        assert held.stdin is not None
        held.stdin.write("\n")
        held.stdin.close()
        assert held.wait(timeout=60) == 0
    assert attempt(other, path) == "got it"


def test_the_two_locks_exclude_each_other_in_one_process(tmp_path: Path) -> None:
    path = tmp_path / "prod.lock"
    ours = TargetLock(path, 10)
    with ours:
        with pytest.raises(Timeout):
            FileLock(str(path)).acquire(timeout=0.1)
        with ours:  # re-entrant, as FileLock is
            assert ours.is_locked
        assert ours.is_locked
    assert not ours.is_locked
    with FileLock(str(path)), pytest.raises(Timeout):
        TargetLock(path, 10).acquire(timeout=0.1)
    with target_lock(path, 10):  # the seam the store takes its lock from
        with pytest.raises(Timeout):
            FileLock(str(path)).acquire(timeout=0.1)
