"""Saved answers: a question asked again is answered without running Python.

`commits`, `pending` and `compare` answer from refs that rarely move and from commits that
never change. When one of them answers (to a pipe or a file, with exit code 0 and nothing on
stderr), the answer is saved with the refs it was computed from and the value each had. The
native front of `git deploy` (native/git-deploy.c) prints a saved answer when every one of
those refs still has that value, which costs about what `git rev-parse` costs; otherwise it
runs the Python command, which answers and saves again.

An answer is not saved when computing it looked at anything else that can change: the list of
refs, HEAD, a name resolved by git's rules, the config, another repository, the clock, or a
commit the repository lacks. The repository's own code records what it read (`note_ref`) and
what it looked at that cannot be checked this way (`taint`). Nor is anything saved where git's
view of history is more than the objects (a shallow clone, grafts, replace refs), in a linked
worktree, while GIT_NAMESPACE or config given on git's command line is in effect, or when the
process was not started by the front (GIT_DEPLOY_FRONT names the front's build).

The file, `<git-dir>/git-deployments/answers/<16 hex digits of the key's FNV-1a hash>`:

    git-deploy answer 1\\n
    key <length>\\n<key bytes>\\n
    ref <id, or - for a ref that did not exist> <ref name>\\n      (any number)
    obj <id of a commit that must still be in the repository>\\n   (any number)
    body <length>\\n<the bytes printed>

The key is what the answer depends on besides refs: the format, the front's build (a hash of
the project's sources, so code that changed never prints an older answer), the working
directory, the arguments and the environment variables in KEY_ENV, each NUL-ended.
native/git-deploy.c builds the same bytes; change both or neither. `GIT_DEPLOY_ANSWERS=0`
turns saving and serving off.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

FORMAT = "1"
MAGIC = b"git-deploy answer 1\n"
# the commands whose answers are saved (their reads are all noted or tainted)
SAVED = frozenset({"commits", "pending", "compare"})
MAX_BODY = 32 << 20
KEEP = 128  # answers kept per repository; the oldest go first
# the environment variables that can change an answer, in the order the key lists them
KEY_ENV = (
    "GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM", "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NO_REPLACE_OBJECTS", "GIT_REPLACE_REF_BASE",
    "GIT_CONFIG_NOSYSTEM", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM",
    "HOME", "XDG_CONFIG_HOME", "GIT_DEPLOY_TARGET", "GIT_DEPLOY_NOW", "GIT_DEPLOY_COLOR",
    "GIT_DEPLOY_DEBUG", "NO_COLOR", "TERM", "TZ", "LC_ALL", "LC_CTYPE", "LANG",
    "PYTHONIOENCODING", "PYTHONUTF8",
)
# while one of these is set, refs or config are not what the files say: nothing is saved
REFUSE_ENV = ("GIT_NAMESPACE", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT")
# the front that started this process (its build: a hash of the project's sources)
FRONT = "GIT_DEPLOY_FRONT"


class Recorder:
    """What one command read: refs with their values, per repository, and whether it looked
    at anything a saved answer could not check."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.refs: dict[str, dict[str, str | None]] = {}
        self.objects: dict[str, set[str]] = {}
        self.tainted: str | None = None
        self.body = ""  # what the command printed
        self.stderr_used = False

    def note(self, git_dir: Path, name: str, value: str | None) -> None:
        seen = self.refs.setdefault(str(git_dir), {})
        if seen.setdefault(name, value) != value:
            self.taint(f"{name} moved while the command ran")

    def note_object(self, git_dir: Path, oid: str) -> None:
        self.objects.setdefault(str(git_dir), set()).add(oid)

    def taint(self, why: str) -> None:
        if self.tainted is None:
            self.tainted = why


_recorder: Recorder | None = None


def active() -> bool:
    return _recorder is not None


def note_ref(git_dir: Path, name: str, value: str | None) -> None:
    """A ref was read and had `value` (None: it did not exist)."""
    if _recorder is not None:
        _recorder.note(git_dir, name, value)


def note_object(git_dir: Path, oid: str) -> None:
    """A commit was found: the answer depends on it staying (it may be pruned after its
    branch was force-pushed)."""
    if _recorder is not None:
        _recorder.note_object(git_dir, oid)


def taint(why: str) -> None:
    """The command looked at something a saved answer cannot check: do not save it."""
    if _recorder is not None:
        _recorder.taint(why)


def enabled() -> bool:
    """Whether this process may save answers: it was started by the native front (nothing
    else would print them), and neither the user nor git's environment says otherwise."""
    env = os.environ
    return bool(env.get(FRONT)) and env.get("GIT_DEPLOY_ANSWERS") != "0" and \
        not any(name in env for name in REFUSE_ENV)


def key(argv: Sequence[str], cwd: str | None = None, build: str | None = None) -> bytes:
    build = build if build is not None else os.environ.get(FRONT, "")
    parts = [f"git-deploy answers {FORMAT} {build}".encode(),
             os.fsencode(cwd if cwd is not None else os.getcwd()),
             str(len(argv)).encode(), *(os.fsencode(a) for a in argv)]
    for name in KEY_ENV:
        value = os.environb.get(os.fsencode(name))
        parts.append(b"-" if value is None else b"=" + value)
    return b"".join(p + b"\0" for p in parts)


def fnv1a(data: bytes) -> int:
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def answers_dir(git_dir: Path) -> Path:
    return git_dir / "git-deployments" / "answers"


def encode(key_bytes: bytes, refs: dict[str, str | None], objects: set[str],
           body: bytes) -> bytes:
    lines = [MAGIC, b"key %d\n" % len(key_bytes), key_bytes, b"\n"]
    for name in sorted(refs):
        lines.append(b"ref %s %s\n" % ((refs[name] or "-").encode(), name.encode()))
    for oid in sorted(objects):
        lines.append(b"obj %s\n" % oid.encode())
    lines.append(b"body %d\n" % len(body))
    lines.append(body)
    return b"".join(lines)


def save(git_dir: Path, key_bytes: bytes, refs: dict[str, str | None], objects: set[str],
         body: bytes) -> None:
    """Write the answer atomically (a reader sees the old file or the new one); any failure
    only means the next question is answered by Python again."""
    import tempfile  # only here: it costs every command's start-up 4 ms

    folder = answers_dir(git_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(encode(key_bytes, refs, objects, body))
            os.replace(temporary, folder / f"{fnv1a(key_bytes):016x}")
        except BaseException:
            os.unlink(temporary)
            raise
        _prune(folder)
    except OSError:
        pass


def _prune(folder: Path) -> None:
    entries = []
    with os.scandir(folder) as listing:
        for entry in listing:
            try:
                entries.append((entry.stat().st_mtime_ns, entry.path))
            except OSError:
                continue
    entries.sort()
    for _, path in entries[:max(0, len(entries) - KEEP)]:
        try:
            os.unlink(path)
        except OSError:
            pass


@contextmanager
def recording(command: str | None, argv: Sequence[str]) -> Iterator[Recorder | None]:
    """Around a command: when its answer may be saved, collect what it prints (printed when
    the command ends) and what it reads; `finish()` then saves it."""
    global _recorder
    stdout = sys.stdout
    if command not in SAVED or not enabled() or stdout is None or stdout.isatty():
        yield None
        return
    recorder = Recorder(argv)
    captured = io.StringIO()
    stderr = sys.stderr
    _recorder = recorder
    sys.stdout = captured
    sys.stderr = _Watched(stderr, recorder)
    try:
        yield recorder
    finally:
        _recorder = None
        sys.stdout, sys.stderr = stdout, stderr
        recorder.body = captured.getvalue()
        stdout.write(recorder.body)


class _Watched(io.TextIOBase):
    """stderr, noting that something was written to it."""

    def __init__(self, stream: io.TextIOBase | object, recorder: Recorder) -> None:
        self._stream = stream
        self._recorder = recorder

    def write(self, text: str) -> int:
        self._recorder.stderr_used = True
        return self._stream.write(text)  # type: ignore[attr-defined,no-any-return]

    def flush(self) -> None:
        self._stream.flush()  # type: ignore[attr-defined]

    def isatty(self) -> bool:
        return bool(self._stream.isatty())  # type: ignore[attr-defined]


def history_is_rewritten(git_dir: Path) -> bool:
    """A linked worktree, a shallow clone (its cut moves on fetch), grafts or replace refs: git's
    view of history is not just the objects, and the native front answers nothing here."""
    if any(os.path.lexists(git_dir / name) for name in ("commondir", "shallow", "info/grafts")):
        return True
    try:
        with os.scandir(git_dir / "refs" / "replace") as replace:
            if any(replace):
                return True
    except FileNotFoundError:
        pass
    except OSError:
        return True
    try:
        with open(git_dir / "packed-refs", "rb") as packed:
            return b" refs/replace/" in packed.read()
    except FileNotFoundError:
        return False
    except OSError:
        return True


def finish(recorder: Recorder, git_dir: Path | None, exit_code: int) -> None:
    """Save what `recording` collected, when it is an answer that may be reused."""
    if recorder.tainted or exit_code != 0 or recorder.stderr_used or git_dir is None:
        return
    if set(recorder.refs) - {str(git_dir)} or set(recorder.objects) - {str(git_dir)}:
        return  # another repository was read
    if history_is_rewritten(git_dir):
        return
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    try:
        body = recorder.body.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return
    if len(body) > MAX_BODY:
        return
    save(git_dir, key(recorder.argv), recorder.refs.get(str(git_dir), {}),
         recorder.objects.get(str(git_dir), set()), body)
