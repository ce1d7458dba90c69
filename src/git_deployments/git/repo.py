"""The only pygit2 user: open the repository, read and write objects, move refs safely.

pygit2 is imported on first use: loading libgit2 costs more than a short read-only question
(`git deploy commits`), which reads the few objects it needs through the git program instead
(ProgramRepo) and then runs git for its walk anyway.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from git_deployments.errors import DeployError, InternalError, NotFound

if TYPE_CHECKING:
    import pygit2

    from git_deployments.git.program import Finished
else:

    class _Pygit2:
        """Stands for the pygit2 module until its first use, which imports it."""

        def __getattr__(self, name: str) -> Any:
            import pygit2 as module

            globals()["pygit2"] = module
            return getattr(module, name)

    pygit2 = _Pygit2()

TOOL_NAME = "git-deploy"
TOOL_EMAIL = "git-deploy@localhost"
TREE_MODE = 0o040000  # pygit2.enums.FileMode.TREE
BLOB_MODE = 0o100644  # pygit2.enums.FileMode.BLOB


class RaceLost(Exception):
    """The ref moved between our read and our compare-and-swap."""


@dataclass(frozen=True)
class Person:
    name: str
    email: str

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"

    @classmethod
    def parse(cls, text: str) -> Person:
        name, _, rest = text.partition("<")
        email = rest.rstrip(">").strip()
        return cls(name.strip() or email or "unknown", email or "unknown")


@dataclass(frozen=True)
class CommitInfo:
    id: str
    parents: tuple[str, ...]
    tree: str
    message: str
    author: Person
    author_time: int
    author_offset: int


@dataclass(frozen=True)
class TagInfo:
    name: str
    commit: str
    time: int
    person: Person


class GitRepo:
    def __init__(self, repo: pygit2.Repository) -> None:
        self._repo = repo

    @property
    def repo(self) -> pygit2.Repository:
        return self._repo

    # --- where things are ---------------------------------------------------------------

    @property
    def git_dir(self) -> Path:
        """The common git directory (shared by worktrees): locks and cursors live here."""
        return Path(self.repo.path).resolve()

    @property
    def common_dir(self) -> Path:
        """The git directory every worktree of the repository shares (refs live there): for a
        linked worktree, the one its `commondir` file names; else git_dir itself."""
        own = self.git_dir
        try:
            pointer = (own / "commondir").read_text().strip()
        except OSError:
            return own
        return (own / pointer).resolve()

    @property
    def is_bare(self) -> bool:
        return bool(self.repo.is_bare)

    @property
    def workdir(self) -> Path | None:
        return Path(self.repo.workdir) if self.repo.workdir else None

    def default_repository_name(self) -> str:
        """`deploy.repository` from git config, else the directory name without `.git`."""
        configured = self.config_get("deploy.repository")
        if configured:
            return configured
        base = self.workdir or self.git_dir
        name = base.name
        if name == ".git":
            name = base.parent.name
        return name.removesuffix(".git") or "repo"

    def run_git(self, args: Sequence[str], *, stdin: str | None = None) -> Finished:
        """`git <args>` in this repository, through the one runner of the git program; from
        its top level, where git resolves a relative path such as a remote's URL."""
        from git_deployments.git import program

        return program.run(self.git_dir, args, stdin=stdin, cwd=self.workdir or self.git_dir)

    def config_get(self, name: str) -> str | None:
        try:
            value = self.repo.config[name]
        except (KeyError, pygit2.GitError):
            return None
        return str(value)

    def config_get_all(self, name: str) -> list[str]:
        try:
            return [str(v) for v in self.repo.config.get_multivar(name)]
        except (KeyError, pygit2.GitError):
            return []

    def identity(self) -> Person | None:
        try:
            sig = self.repo.default_signature
        except (KeyError, pygit2.GitError):
            return None
        return Person(sig.name, sig.email)

    # --- refs ---------------------------------------------------------------------------

    def read_ref(self, name: str) -> str | None:
        try:
            ref = self.repo.references.get(name)
        except (pygit2.GitError, ValueError) as exc:
            raise DeployError(f"cannot read ref {name}: {exc}") from None
        if ref is None:
            return None
        try:
            return str(ref.resolve().target)
        except KeyError:  # a symbolic ref to a ref that does not exist: no value, as in git
            return None

    def list_refs(self, prefix: str) -> Iterator[tuple[str, str]]:
        """(name, id) of every ref under `prefix`, sorted by name."""
        for name in sorted(self.repo.raw_listall_references()):
            text = name.decode("utf-8", "replace")
            if text.startswith(prefix):
                target = self.read_ref(text)
                if target is not None:
                    yield text, target

    def update_ref(self, name: str, new: str, old: str | None, message: str) -> None:
        """Compare-and-swap: move `name` from `old` (None: must not exist) to `new`."""
        try:
            if old is None:
                self.repo.create_reference_direct(name, pygit2.Oid(hex=new), False,
                                                  message=message)
                return
            ref = self.repo.references.get(name)
            if ref is None or str(ref.target) != old:
                raise RaceLost(name)
            ref.set_target(pygit2.Oid(hex=new), message)
        except pygit2.AlreadyExistsError:
            raise RaceLost(name) from None
        except (pygit2.GitError, OSError) as exc:
            # libgit2 reports a lock file it cannot create as OSError, other failures as GitError
            text = str(exc)
            if "old reference value does not match" in text or "already exists" in text:
                raise RaceLost(name) from None
            if "locked" in text or ".lock" in text:
                quoted = re.search(r"'([^']+\.lock)'", text)
                lock = Path(quoted.group(1)) if quoted else self.git_dir / f"{name}.lock"
                if lock.exists():
                    raise DeployError(
                        f"ref {name} is locked ({lock} exists); if no git process is running, "
                        "run 'git deploy doctor' to remove the stale lock"
                    ) from None
            reason = getattr(exc, "strerror", None) or text.rstrip(": ")
            raise DeployError(f"cannot update {name}: {reason}") from None

    # --- objects ------------------------------------------------------------------------

    def has_object(self, oid: str) -> bool:
        try:
            found = pygit2.Oid(hex=oid) in self.repo
        except ValueError:
            found = False
        return found

    def object_kind(self, oid: str) -> str | None:
        """"commit", "tree", "blob" or "tag" (from the object's header alone), or None when
        the repository has no such object."""
        try:
            kind, _size = self.repo.odb.read_header(oid)
        except (KeyError, ValueError, pygit2.GitError):
            return None
        return {pygit2.enums.ObjectType.COMMIT: "commit", pygit2.enums.ObjectType.TREE: "tree",
                pygit2.enums.ObjectType.BLOB: "blob",
                pygit2.enums.ObjectType.TAG: "tag"}.get(kind)

    def commit_info(self, oid: str) -> CommitInfo:
        try:
            commit = self.repo[oid]
        except pygit2.GitError as exc:  # stored, but libgit2 cannot parse it (a forged object)
            raise NotFound(f"commit {oid} cannot be parsed: {str(exc).removeprefix(oid + ': ')}"
                           ) from None
        except (KeyError, ValueError):
            raise NotFound(f"commit {oid} is missing from the repository") from None
        if not isinstance(commit, pygit2.Commit):
            raise NotFound(f"{oid} is not a commit")
        try:
            message = commit.message
        except LookupError:  # an encoding header naming no codec Python knows
            raise NotFound(f"commit {oid} declares an unknown message encoding "
                           f"{commit.message_encoding!r}") from None
        return CommitInfo(
            id=str(commit.id),
            parents=tuple(str(p) for p in commit.parent_ids),
            tree=str(commit.tree_id),
            message=message,
            author=Person(commit.author.name, commit.author.email),
            author_time=commit.author.time,
            author_offset=commit.author.offset,
        )

    def read_path(self, tree_id: str, path: str) -> bytes | None:
        """The blob at `path` in tree `tree_id`, or None when there is none."""
        try:
            entry = self.repo[tree_id] / path  # type: ignore[operator]
        except (KeyError, TypeError):
            return None
        if not isinstance(entry, pygit2.Blob):
            return None
        return bytes(entry.data)

    def subtree(self, tree_id: str, path: str) -> str | None:
        """The id of the tree at `path` in tree `tree_id`, or None when there is none."""
        try:
            entry = self.repo[tree_id] / path  # type: ignore[operator]
        except (KeyError, TypeError):
            return None
        return str(entry.id) if isinstance(entry, pygit2.Tree) else None

    def blob_size(self, tree_id: str, path: str) -> int | None:
        try:
            entry = self.repo[tree_id] / path  # type: ignore[operator]
        except (KeyError, TypeError):
            return None
        return entry.size if isinstance(entry, pygit2.Blob) else None

    def changed_paths(self, old_tree: str | None, new_tree: str) -> list[str]:
        """The paths of blobs added, changed or removed between two trees (every path of
        `new_tree` when `old_tree` is None)."""
        new = self.repo[new_tree]
        assert isinstance(new, pygit2.Tree)
        if old_tree is None:
            return [path for path, _oid, _mode in self.walk_tree(new_tree)]
        old = self.repo[old_tree]
        assert isinstance(old, pygit2.Tree)
        deltas = old.diff_to_tree(new).deltas
        return [delta.new_file.path or delta.old_file.path for delta in deltas]

    def walk_tree(self, tree_id: str, prefix: str = "") -> Iterator[tuple[str, str, int]]:
        """(path, object id, filemode) of every blob under a tree, recursively."""
        tree = self.repo[tree_id]
        assert isinstance(tree, pygit2.Tree)
        for entry in tree:
            path = f"{prefix}{entry.name}"
            if entry.filemode == TREE_MODE:
                yield from self.walk_tree(str(entry.id), path + "/")
            else:
                yield path, str(entry.id), entry.filemode

    def tree_of(self, commit: str) -> str:
        """The id of a commit's tree; NotFound as for commit_info."""
        return self.commit_info(commit).tree

    def read_blob(self, oid: str) -> bytes:
        blob = self.repo[oid]
        assert isinstance(blob, pygit2.Blob)
        return bytes(blob.data)

    def write_tree(self, base_tree: str | None, changes: Mapping[str, bytes | None]) -> str:
        """A new tree: `base_tree` with each path set to its bytes (or removed for None).

        Only the trees along the changed paths are rewritten; nothing touches the work tree
        or the index.
        """
        try:
            return self._write_tree(base_tree, changes)
        except (pygit2.GitError, OSError) as exc:
            # a full disk, a read-only object directory: libgit2 raises OSError or GitError
            raise cannot_write(exc) from None

    def _write_tree(self, base_tree: str | None, changes: Mapping[str, bytes | None]) -> str:
        grouped: dict[str, dict[str, bytes | None]] = {}
        for path, data in changes.items():
            head, _, rest = path.partition("/")
            grouped.setdefault(head, {})[rest] = data
        base = self.repo[base_tree] if base_tree else None
        builder = self.repo.TreeBuilder(base.peel(pygit2.Tree)) if base is not None else \
            self.repo.TreeBuilder()
        for name, sub in grouped.items():
            if "" in sub:  # a file directly in this tree
                data = sub[""]
                if data is None:
                    if builder.get(name) is not None:
                        builder.remove(name)
                else:
                    builder.insert(name, self.repo.create_blob(data), BLOB_MODE)
                continue
            existing = builder.get(name)
            sub_base = str(existing.id) if existing is not None and \
                existing.filemode == TREE_MODE else None
            new_sub = self._write_tree(sub_base, sub)
            if len(self.repo[new_sub]) == 0:  # type: ignore[arg-type]
                if existing is not None:
                    builder.remove(name)
            else:
                builder.insert(name, pygit2.Oid(hex=new_sub), TREE_MODE)
        return str(builder.write())

    def divert_writes(self, directory: str | os.PathLike[str]) -> None:
        """From now on, write new objects under `directory`, not into the repository; reads
        still see every object. For checks that build trees only to compare their ids (fsck):
        they work on a read-only repository and leave nothing behind."""
        backend = pygit2.OdbBackendLoose(str(directory), 1, 0)
        self.repo.odb.add_backend(backend, 1 << 20)  # ahead of the repository's own backends

    def create_commit(self, tree: str, parents: list[str], message: str, author: Person,
                      when: int, committer: Person | None = None) -> str:
        author_sig = pygit2.Signature(author.name, author.email, when, 0)
        tool = committer or Person(TOOL_NAME, TOOL_EMAIL)
        import time

        committer_sig = pygit2.Signature(tool.name, tool.email, int(time.time()), 0)
        try:
            oid = self.repo.create_commit(
                None, author_sig, committer_sig, message, pygit2.Oid(hex=tree),
                [pygit2.Oid(hex=p) for p in parents],
            )
        except (pygit2.GitError, OSError) as exc:
            raise cannot_write(exc) from None
        if oid not in self.repo:
            # libgit2 can return the id of a commit it failed to store (a file size limit hit
            # while writing it): never hand that id to a ref
            raise DeployError("cannot write to the repository: the new commit was not stored "
                              "(is the disk full?)")
        return str(oid)

    # --- commits of the tracked code ----------------------------------------------------

    def resolve_commit(self, spec: str) -> str:
        """A full commit id for `spec` (short id, tag, branch, HEAD)."""
        try:
            obj = self.repo.revparse_single(spec)
            commit = obj.peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
            raise NotFound(f"unknown commit {spec!r} in this repository") from None
        return str(commit.id)

    def branch_tip(self, branch: str) -> str | None:
        """The tip of `branch`: the local branch, else a remote-tracking one (origin first);
        `refs/...` is that ref exactly, and `REMOTE/BRANCH` also names a remote-tracking one."""
        if branch.startswith("refs/"):
            return self._peeled(branch)
        for name in (f"refs/heads/{branch}", f"refs/remotes/origin/{branch}",
                     f"refs/remotes/{branch}"):
            target = self._peeled(name)
            if target:
                return target
        for name, _ in self.list_refs("refs/remotes/"):
            if name.endswith(f"/{branch}") and name.count("/") == branch.count("/") + 3:
                return self._peeled(name)
        return None

    def _peeled(self, name: str) -> str | None:
        try:
            ref = self.repo.references.get(name)
            if ref is None:
                return None
            return str(ref.peel(pygit2.Commit).id)
        except (pygit2.GitError, ValueError, KeyError):
            return None

    def head(self) -> tuple[str | None, str | None]:
        """(branch, commit) of HEAD; branch is None when detached, both None when unborn."""
        try:
            if self.repo.head_is_unborn:
                return None, None
            head = self.repo.head
        except pygit2.GitError:
            return None, None
        commit = str(head.peel(pygit2.Commit).id)
        if self.repo.head_is_detached:
            return None, commit
        return head.shorthand, commit

    def commit_links(self, oid: str) -> tuple[int, tuple[str, ...]] | None:
        """A commit's committer time and parents' ids, what a history walk orders by; None
        for one this repository lacks (past a shallow clone's boundary)."""
        try:
            commit = self.repo[oid]
        except (KeyError, ValueError):
            return None
        if not isinstance(commit, pygit2.Commit):
            return None
        return commit.commit_time, tuple(str(parent) for parent in commit.parent_ids)

    def describe(self, commit: str) -> str:
        """`git describe --tags --always` of a commit."""
        try:
            return str(self.repo.describe(
                committish=commit, describe_strategy=pygit2.enums.DescribeStrategy.TAGS,
                show_commit_oid_as_fallback=True,
            ))
        except (pygit2.GitError, KeyError, ValueError):
            return commit[:7]

    def open_other(self, path: Path) -> GitRepo:
        """Another repository (one a target records), opened as this one was."""
        return open_repository(path)

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Whether `ancestor` is reachable from `descendant` (True when equal)."""
        if ancestor == descendant:
            return True
        try:
            return bool(self.repo.descendant_of(descendant, ancestor))
        except (pygit2.GitError, KeyError, ValueError):
            return False

    # --- for commit lists and keep-alive refs (history.py, keep.py) ------------------------

    @property
    def objects_dir(self) -> Path:
        """The object directory, which a worktree shares with its main repository."""
        base = Path(self.repo.path)
        common = base / "commondir"
        if common.is_file():
            base = base / common.read_text().strip()
        return (base / "objects").resolve()

    def is_commit(self, oid: str) -> bool:
        """Whether `oid` names a commit present in this repository."""
        try:
            found = isinstance(self.repo[oid], pygit2.Commit)
        except (KeyError, ValueError):
            found = False
        return found

    def tag_info(self, name: str) -> TagInfo | None:
        """The commit a tag leads to, with the tag's date and tagger (for a lightweight tag,
        the commit's committer); None when the tag leads to no commit."""
        try:
            ref = self.repo.references.get(name)
            if ref is None:
                return None
            obj = self.repo[ref.resolve().target]
            commit = obj.peel(pygit2.Commit)
        except (pygit2.GitError, KeyError, ValueError, pygit2.InvalidSpecError):
            return None
        sig = obj.tagger if isinstance(obj, pygit2.Tag) and obj.tagger is not None \
            else commit.committer
        return TagInfo(name=name.removeprefix("refs/tags/"), commit=str(commit.id),
                       time=int(sig.time), person=Person(sig.name, sig.email))


def cannot_write(exc: Exception) -> DeployError:
    """The error for an object the repository would not take (full disk, read-only, quota)."""
    reason = getattr(exc, "strerror", None) or str(exc).rstrip(": ") or type(exc).__name__
    return DeployError(f"cannot write to the repository: {reason}")


def open_repository(path: str | os.PathLike[str] | None = None, *,
                    for_reading: bool = False) -> GitRepo:
    """The repository at `path`, or the one git's environment and the current directory name.

    Opening from the environment honours GIT_DIR and the object directories git sets while a
    hook runs in quarantine. `for_reading`: a ProgramRepo, for a question that only reads.
    """
    if for_reading:
        where = Path(path) if path is not None else None
        from git_deployments.git import program

        return ProgramRepo(program.discover(where), where)
    return GitRepo(_open(path))


def _open(path: str | os.PathLike[str] | None) -> pygit2.Repository:
    flags = pygit2.enums.RepositoryOpenFlag.FROM_ENV if path is None else \
        pygit2.enums.RepositoryOpenFlag.DEFAULT
    start = str(path) if path is not None else os.getcwd()
    try:
        if path is None and not os.environ.get("GIT_DIR"):
            found = pygit2.discover_repository(start)
            if found is None:
                raise DeployError("not a git repository (or any parent up to /)")
        return pygit2.Repository(start, flags)
    except pygit2.GitError as exc:
        raise DeployError(f"not a git repository: {start} ({exc})") from None
    except OSError as exc:
        raise InternalError(f"cannot open repository {start}: {exc}") from None


# what ProgramRepo asks `git cat-file` about itself; anything else goes to libgit2
_FULL_ID = re.compile(r"^[0-9a-f]{40}\Z")
_PLAIN_PATH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*\Z")
_PLAIN_REF = re.compile(r"^refs/[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*\Z")


class ProgramRepo(GitRepo):
    """A repository whose ref reads, commit trees, blobs by path and commit checks go through
    the git program (`for-each-ref`, one `cat-file --batch`), and everything else through
    libgit2, opened on first need. For a question that only reads and then runs git anyway:
    loading libgit2 would cost it more than the question. GitRepo stays the judge: each read
    gives what GitRepo's gives (tests/test_git_repo.py)."""

    def __init__(self, git_dir: Path, path: Path | None = None, *, home: bool = True) -> None:
        import weakref

        from git_deployments.git.program import Objects

        self._git_dir = git_dir
        self._path = path  # as given to open_repository: where libgit2 opens it
        self._home = home
        self._opened: pygit2.Repository | None = None
        self._trees: set[str] = set()  # ids read as a commit's tree: known to be trees
        # started at once: git starts up while the ref is read
        self._objects = Objects(git_dir, home=home)
        weakref.finalize(self, self._objects.close)  # git's cat-file ends with this, or at exit

    @property
    def repo(self) -> pygit2.Repository:
        if self._opened is None:
            self._opened = _open(self._path)
        return self._opened

    @property
    def git_dir(self) -> Path:
        return self._git_dir

    def read_ref(self, name: str) -> str | None:
        if not _PLAIN_REF.match(name) or ".." in name or name.endswith((".", ".lock")):
            return super().read_ref(name)
        from git_deployments.git import program

        # for-each-ref matches the name exactly (cat-file would also try refs/heads/<name>…)
        done = program.run(self._git_dir, ["for-each-ref", "--format=%(objectname) %(refname)",
                                           name], home=self._home)
        if not done.ok:
            raise DeployError(f"cannot read ref {name}: {done.reason()}")
        for line in done.stdout.splitlines():
            oid, _, refname = line.partition(" ")
            if refname == name:
                return oid
        return None

    def tree_of(self, commit: str) -> str:
        if not _FULL_ID.match(commit):
            return super().tree_of(commit)
        found = self._objects.read(commit)
        if found is None:
            raise NotFound(f"commit {commit} is missing from the repository")
        _, kind, content = found
        if kind != "commit":
            raise NotFound(f"{commit} is not a commit")
        headers = content.split(b"\n\n", 1)[0].split(b"\n")
        tree = headers[0].removeprefix(b"tree ").decode("ascii", "replace")
        if not headers[0].startswith(b"tree ") or not _FULL_ID.match(tree):
            raise NotFound(f"commit {commit} cannot be parsed: it names no tree")
        for header in headers:
            if header.startswith(b"encoding "):
                _check_encoding(commit, header.removeprefix(b"encoding ").decode("utf-8",
                                                                                 "replace"))
        self._trees.add(tree)
        return tree

    def read_path(self, tree_id: str, path: str) -> bytes | None:
        if tree_id not in self._trees or not _PLAIN_PATH.match(path):
            return super().read_path(tree_id, path)
        found = self._objects.read(f"{tree_id}:{path}")
        if found is None or found[1] != "blob":
            return None
        return found[2]

    def is_commit(self, oid: str) -> bool:
        if not _FULL_ID.match(oid):
            return super().is_commit(oid)
        found = self._objects.read(oid)
        return found is not None and found[1] == "commit"

    def open_other(self, path: Path) -> GitRepo:
        from git_deployments.git import program

        return ProgramRepo(program.discover(path), path, home=False)



def _check_encoding(commit: str, encoding: str) -> None:
    """NotFound, as libgit2's reading of the message gives it, for an encoding Python lacks."""
    import codecs

    try:
        codecs.lookup(encoding)
    except LookupError:
        raise NotFound(f"commit {commit} declares an unknown message encoding "
                       f"{encoding!r}") from None
