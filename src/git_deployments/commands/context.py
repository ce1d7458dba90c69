"""What every command receives: the repository's store (opened on first use) and the global
options; the one way a write command records a request."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from git_deployments.core.model import Request
    from git_deployments.core.store import Store, WriteResult
    from git_deployments.git.repo import GitRepo


class Context:
    def __init__(self, repo_path: str | None, debug: bool = False,
                 sync_remote: str | None = None) -> None:
        self.repo_path = repo_path
        self.debug = debug
        # set by --sync[=REMOTE] on write commands: fetch, apply, push, retry
        self.sync_remote = sync_remote
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            from git_deployments.core.store import open_store

            self._store = open_store(self.repo_path)
            if self.sync_remote is not None:
                from git_deployments.sharing.sync import before_write

                # a synced write reads the remote's state (a fresh CI clone has none of its own)
                before_write(self._store, self.sync_remote or None)
        return self._store

    @property
    def store_for_reading(self) -> Store:
        """The store, for a command that only reads and then runs git: it reads through the git
        program until it needs libgit2 (git/repo.py, ProgramRepo), so a question that runs git
        anyway does not load libgit2 first."""
        if self._store is None and self.sync_remote is None:
            from git_deployments.core.store import open_store

            self._store = open_store(self.repo_path, for_reading=True)
        return self.store

    @property
    def git(self) -> GitRepo:
        return self.store.git

    def write(self, request: Request) -> WriteResult:
        """Every write command's one way to record a request."""
        if self.sync_remote is not None:
            from git_deployments.sharing.sync import write_synced

            return write_synced(self.store, request, self.sync_remote or None)
        return self.store.write(request)
