"""The one runner of the `git` program: every git process the package starts begins here.

One policy for all of them: an argument list, never a shell; the repository named with
`--git-dir`, and the variables that could point git at another one removed from its
environment; git's own messages in the C locale (they are parsed: a lost push race is read from
them) and its dates in UTC; our standard input never read (it may be a hook's ref list).

`run` reads the output back from a temporary file once git is done, which is quicker than a pipe
when nothing is done with it before the end; `stream` hands it over in pieces while git still
runs, so that a long history walk is parsed (and its answer encoded) as git prints it.
`discover` and `Objects` let a question that only reads find its repository and read a few
objects without loading libgit2 (see git/repo.py, ProgramRepo).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path

from git_deployments.errors import DeployError

# they would point git at another repository than the one named by --git-dir
_REPOSITORY_VARIABLES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR",
                         "GIT_NAMESPACE", "GIT_PREFIX")
# inside a server hook, git's quarantine: they belong to the repository that runs the hook
_OBJECT_VARIABLES = ("GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
                     "GIT_QUARANTINE_PATH")
STREAM_CHUNK = 1 << 16  # the most `stream` reads at once: what a pipe holds by default


@dataclass(frozen=True, slots=True)
class Finished:
    """A git process that ran to its end, whatever its exit code."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def reason(self) -> str:
        """What git said went wrong: its first `fatal:` or `error:` line, else its last line."""
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        for line in lines:
            if line.startswith(("fatal: ", "error: ")):
                return line.split(": ", 1)[1]
        return lines[-1] if lines else f"exit {self.returncode}"


def environment(home: bool = True) -> dict[str, str]:
    """The environment of every git process. `home` is false when git runs in another
    repository than the one git deploy was started in: the quarantine is not that one's."""
    env = {k: v for k, v in os.environ.items() if k not in _REPOSITORY_VARIABLES}
    if not home:
        for name in _OBJECT_VARIABLES:
            env.pop(name, None)
    env.update(TZ="UTC", LC_ALL="C", GIT_OPTIONAL_LOCKS="0")
    return env


def _not_started(exc: OSError) -> DeployError:
    """The error for a git that could not be started."""
    if isinstance(exc, FileNotFoundError):
        return DeployError("the 'git' program is not on PATH: install git, or add the "
                           "directory that holds it to PATH")
    return DeployError(f"cannot run git: {exc.strerror or exc}")


def run(git_dir: Path, args: Sequence[str], *, stdin: str | None = None,
        cwd: Path | None = None, home: bool = True) -> Finished:
    """`git --git-dir=<git_dir> <args>`, run to its end; a DeployError only when git cannot be
    started. `cwd` matters where git resolves a relative path (a remote's URL)."""
    # imported here: a command that never starts git (status, most writes) does not pay for it
    import subprocess
    import tempfile

    command = ("git", f"--git-dir={git_dir}", *args)
    with tempfile.TemporaryFile() as out:
        try:
            done = subprocess.run(command, stdout=out, stderr=subprocess.PIPE,
                                  input=stdin.encode() if stdin is not None else None,
                                  stdin=subprocess.DEVNULL if stdin is None else None,
                                  cwd=cwd, env=environment(home), check=False)
        except OSError as exc:
            raise _not_started(exc) from None
        out.seek(0)
        stdout = out.read().decode("utf-8", "replace")
    return Finished(command[2:], done.returncode, stdout,
                    done.stderr.decode("utf-8", "replace"))


def failed(git_dir: Path, done: Finished) -> DeployError:
    """The error for a git that failed: the command and git's own reason."""
    return DeployError(f"git {done.args[0]} failed in {git_dir}: {done.reason()}")


def stream(git_dir: Path, args: Sequence[str], *, stdin: str | None = None,
           home: bool = True) -> Generator[str, None, None]:
    """`git --git-dir=<git_dir> <args>`'s standard output as it comes, in pieces of text whose
    concatenation is what `output` returns. When git fails, a DeployError with git's own
    reason follows the last piece: what came before it is not the whole answer. Closing the
    iterator early stops git."""
    import codecs
    import subprocess
    import tempfile

    command = ("git", f"--git-dir={git_dir}", *args)
    # stdin and stderr through files: git never waits on a pipe we are not reading
    with tempfile.TemporaryFile() as given, tempfile.TemporaryFile() as errors:
        if stdin is not None:
            given.write(stdin.encode())
            given.seek(0)
        try:
            # GIT_FLUSH=0: git buffers its output as it does into a file (into a pipe, it
            # would write once per commit of a walk)
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors,
                                       stdin=given if stdin is not None else subprocess.DEVNULL,
                                       env={**environment(home), "GIT_FLUSH": "0"})
        except OSError as exc:
            raise _not_started(exc) from None
        assert process.stdout is not None
        pipe = process.stdout.fileno()
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        try:
            while data := os.read(pipe, STREAM_CHUNK):
                text = decoder.decode(data)
                if text:
                    yield text
            rest = decoder.decode(b"", final=True)
            if rest:
                yield rest
            returncode = process.wait()
        finally:
            process.stdout.close()
            if process.returncode is None:  # the reader stopped early, or failed
                process.kill()
                process.wait()
        if returncode != 0:
            errors.seek(0)
            raise failed(git_dir, Finished(command[2:], returncode, "",
                                           errors.read().decode("utf-8", "replace")))


def output(git_dir: Path, args: Sequence[str], *, stdin: str | None = None,
           home: bool = True) -> str:
    """`git --git-dir=<git_dir> <args>`'s standard output; a DeployError with git's own reason
    when it fails."""
    done = run(git_dir, args, stdin=stdin, home=home)
    if not done.ok:
        raise failed(git_dir, done)
    return done.stdout


def discover(path: Path | None = None) -> Path:
    """The git directory of the repository at `path` (its work tree, its git directory, or a
    directory inside it), else at the current directory: searched upwards as libgit2 searches
    when git/repo.py opens one (which looks from a directory, so GIT_DIR does not name it, and
    does not here either; git runs a hook where its GIT_DIR is)."""
    import subprocess

    env = {**environment(), "LC_ALL": "C"}
    start = str(path) if path is not None else os.getcwd()
    if path is not None and not path.is_dir():
        raise DeployError(f"not a git repository: {start} (no such directory)")
    try:
        done = subprocess.run(["git", "rev-parse", "--absolute-git-dir"], cwd=start, env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, check=False)
    except OSError as exc:
        raise _not_started(exc) from None
    if done.returncode != 0:
        if path is None and not os.environ.get("GIT_DIR"):
            raise DeployError("not a git repository (or any parent up to /)")
        reason = Finished(("rev-parse",), done.returncode, "",
                          done.stderr.decode("utf-8", "replace")).reason()
        raise DeployError(f"not a git repository: {start} ({reason})")
    return Path(os.fsdecode(done.stdout.rstrip(b"\n"))).resolve()


class Objects:
    """A repository's objects, read through one `git cat-file --batch` that runs until closed:
    a few reads cost a git process rather than loading libgit2."""

    def __init__(self, git_dir: Path, *, home: bool = True) -> None:
        import subprocess
        import tempfile

        self.git_dir = git_dir
        self._errors = tempfile.TemporaryFile()
        try:
            self._process = subprocess.Popen(
                ("git", f"--git-dir={git_dir}", "cat-file", "--batch"), stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=self._errors, env=environment(home))
        except OSError as exc:
            self._errors.close()
            raise _not_started(exc) from None

    def read(self, name: str) -> tuple[str, str, bytes] | None:
        """(id, type, content) of the object `name` names (an id, or TREE:PATH), or None when
        there is none. `name` is one line without spaces."""
        process = self._process
        assert process.stdin is not None and process.stdout is not None
        if not name or any(c in name for c in " \t\n"):
            raise ValueError(f"not an object name for git cat-file: {name!r}")
        try:
            process.stdin.write(name.encode() + b"\n")
            process.stdin.flush()
            header = process.stdout.readline().split()
            if len(header) == 2 and header[1] in (b"missing", b"ambiguous"):
                return None
            if len(header) != 3:
                raise self._failed()
            content = process.stdout.read(int(header[2]) + 1)
        except (OSError, ValueError):
            raise self._failed() from None
        if len(content) != int(header[2]) + 1:
            raise self._failed()
        return header[0].decode(), header[1].decode(), content[:-1]

    def _failed(self) -> DeployError:
        """The error for a git that stopped answering: its own reason."""
        self._end()
        self._errors.seek(0)
        stderr = self._errors.read().decode("utf-8", "replace")
        return failed(self.git_dir, Finished(("cat-file",), self._process.returncode or 1, "",
                                             stderr))

    def _end(self) -> None:
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None and not stream.closed:
                try:
                    stream.close()
                except OSError:  # git is gone: what it was not given does not matter
                    pass
        self._process.wait()

    def close(self) -> None:
        """End git (it ends with its input)."""
        self._end()
        self._errors.close()
