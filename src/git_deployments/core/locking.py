"""A target's write lock: filelock's FileLock on the target's lock file, or where flock exists,
TargetLock — the very same lock (an exclusive flock on the same file, so the two exclude each
other) taken without importing filelock (bench/fastpaths.py measures what that saves)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

try:
    import fcntl as flock
except ImportError:  # no flock here (Windows): filelock's portable lock
    flock = None  # type: ignore[assignment]


def target_lock(path: Path, timeout: float) -> Any:
    """The lock on `path` (a context manager; `acquire(timeout=)` raises filelock's Timeout when
    it waited in vain, as filelock's own FileLock does)."""
    if flock is None:
        from filelock import FileLock

        return FileLock(str(path), timeout=timeout)
    return TargetLock(path, timeout)


class TargetLock:
    """flock on the lock file, exactly as filelock's FileLock (UnixFileLock) takes it. A waiting
    writer polls briefly, then less often."""

    def __init__(self, path: Path, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self._fd: int | None = None
        self._depth = 0

    @property
    def is_locked(self) -> bool:
        return self._fd is not None

    def acquire(self, timeout: float | None = None) -> TargetLock:
        import errno
        import fcntl

        if self._fd is not None:
            self._depth += 1
            return self
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait if wait >= 0 else None
        pause = 0.001
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                if deadline is not None and time.monotonic() >= deadline:
                    from filelock import Timeout

                    raise Timeout(str(self.path)) from None
                import random  # only a writer that waits needs it

                time.sleep(pause * random.uniform(0.5, 1.5))
                pause = min(pause * 2, 0.05)
                continue
            try:
                # the file may have been removed and made anew between our open and our lock:
                # a lock on the old one excludes nobody
                current = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
            if current:
                self._fd, self._depth = fd, 1
                return self
            os.close(fd)

    def release(self, force: bool = False) -> None:
        import fcntl

        if self._fd is None:
            return
        self._depth -= 1
        if self._depth > 0 and not force:
            return
        fd, self._fd, self._depth = self._fd, None, 0
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> TargetLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
