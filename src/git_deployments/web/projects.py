"""The repositories a server answers for: one, or every repository directly under a root. Each
is a *project*, named by its directory without `.git`."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from git_deployments.access.tokens import TokenStore
from git_deployments.errors import DeployError, NotFound
from git_deployments.git.refs import RefFiles

if TYPE_CHECKING:
    from git_deployments.core.store import Store

SINGLE = "_"  # in single-repository mode, `_` stands for the one project
ANONYMOUS_READ = "deploy.serve.anonymousRead"
HEALTH_BUCKET = 5  # seconds


def project_name(path: Path) -> str:
    """A repository's project name: its directory without `.git` (a checkout's own directory
    when `path` is its `.git`)."""
    if path.name == ".git":
        path = path.parent
    return path.name.removesuffix(".git") or path.name


def _stamp(path: str | Path) -> tuple[int, int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


@dataclass
class Project:
    """One served repository: where it is, its refs as files, and a Store per thread (pygit2
    objects are not shared between threads)."""

    name: str
    path: Path
    common_dir: Path
    refs: RefFiles
    _local: threading.local = field(default_factory=threading.local, repr=False)
    _setting: tuple[object, bool] | None = field(default=None, repr=False)

    @classmethod
    def open(cls, path: Path, name: str | None = None) -> Project:
        from git_deployments.git.repo import open_repository

        git = open_repository(path)
        return cls(name or project_name(path), path, git.common_dir, RefFiles(git.common_dir))

    def store(self) -> Store:
        """This thread's Store of the repository (opened on first use)."""
        store: Store | None = getattr(self._local, "store", None)
        if store is None:
            from git_deployments.core.store import open_store

            store = open_store(self.path)
            self._local.store = store
        return store

    def config_stamp(self) -> object:
        """Changes whenever the repository's config file does (issue patterns, names, and
        whether anonymous reading is on live there)."""
        return _stamp(self._config_path)

    @cached_property
    def _config_path(self) -> str:
        return os.path.join(self.refs.root, "config")

    @cached_property
    def _health_dir(self) -> str:
        from git_deployments.watch.health import state_dir

        return str(state_dir(self.common_dir))

    def health_stamp(self) -> object:
        """Changes whenever the watcher keeps a probe's result, and every HEALTH_BUCKET
        seconds while results are kept: a result grows too old to tell without its file
        changing (the watcher stopped)."""
        try:
            with os.scandir(self._health_dir) as listing:
                found = sorted((item.name, _stamp(item.path)) for item in listing
                               if item.name.endswith(".json"))
        except OSError:
            return None
        return (tuple(found), int(time.time() // HEALTH_BUCKET)) if found else None

    def anonymous_read(self) -> bool:
        """`git config deploy.serve.anonymousRead true`: reading without a token."""
        stamp = self.config_stamp()
        if self._setting is None or self._setting[0] != stamp:
            from git_deployments.git.repo import open_repository

            value = (open_repository(self.path).config_get(ANONYMOUS_READ) or "").lower()
            self._setting = (stamp, value in ("true", "yes", "on", "1"))
        return self._setting[1]


def _repositories_under(root: Path) -> list[Path]:
    """The git repositories directly under `root`: bare ones and checkouts, by name."""
    found = []
    try:
        with os.scandir(root) as listing:
            entries = sorted((item.name, item.path) for item in listing
                             if item.is_dir() and not item.name.startswith("."))
    except OSError as exc:
        raise DeployError(f"cannot read {root}: {exc.strerror or exc}") from None
    for _, path in entries:
        candidate = Path(path)
        if (candidate / ".git").exists() or ((candidate / "HEAD").is_file() and
                                              (candidate / "objects").is_dir()):
            found.append(candidate)
    return found


class Projects:
    """The projects served, and the tokens that open them."""

    def __init__(self, repo: Path | None = None, root: Path | None = None) -> None:
        if (repo is None) == (root is None):
            raise DeployError("serve one repository (--repo) or every repository under a "
                              "directory (--root), not both")
        self.root = root
        self._lock = threading.Lock()
        self._by_name: dict[str, Project] = {}
        self._root_stamp: object = None
        if repo is not None:
            project = Project.open(repo)
            self._by_name = {project.name.lower(): project}
            self.tokens = TokenStore.of_repository(project.common_dir)
        else:
            assert root is not None
            if not root.is_dir():
                raise DeployError(f"--root {root}: not a directory")
            self.tokens = TokenStore.of_root(root)
            self._rescan()

    @property
    def single(self) -> bool:
        return self.root is None

    def _rescan(self) -> None:
        """Look under the root again when its listing changed (a repository added or gone)."""
        assert self.root is not None
        stamp = _stamp(self.root)
        if stamp == self._root_stamp:
            return
        with self._lock:
            found: dict[str, Project] = {}
            for path in _repositories_under(self.root):
                name = project_name(path)
                known = self._by_name.get(name.lower())
                if known is not None and known.path == path:
                    found[name.lower()] = known
                    continue
                if name.lower() in found:
                    continue  # `app` and `app.git` side by side: the first by name is served
                try:
                    found[name.lower()] = Project.open(path, name)
                except DeployError:
                    continue  # not a repository after all
            self._by_name = found
            self._root_stamp = stamp

    def all(self) -> list[Project]:
        if not self.single:
            self._rescan()
        return sorted(self._by_name.values(), key=lambda p: p.name.lower())

    def find(self, text: str) -> Project:
        """`NAME`, `key:NAME` or `id:NAME` (any case); `_` for the one project of a server of
        one repository."""
        if not self.single:
            self._rescan()
        name = text
        for prefix in ("key:", "id:"):
            if name.lower().startswith(prefix):
                name = name[len(prefix):]
                break
        if self.single and name == SINGLE:
            return next(iter(self._by_name.values()))
        found = self._by_name.get(name.removesuffix(".git").lower())
        if found is None:
            raise NotFound(f"unknown project {text[:100]!r}")
        return found
