"""Ref tips read straight from git's files backend (loose ref files and packed-refs), for a
server that checks on every request whether what it answered before still holds.

pygit2 (git/repo.py) stays the reader the tool relies on; this is the faster path beside it for
that one question: listing every ref through libgit2 costs ~30 µs a ref, reading the files a
few. tests/test_refs.py holds the two equal. packed-refs is parsed again only when its stat
changes, as git itself does."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

_HEX = frozenset("0123456789abcdef")


def _value(raw: bytes) -> str | None:
    """A loose ref file's content: an object id, or `ref: NAME` for a symbolic ref."""
    text = raw.decode("utf-8", "replace").strip()
    if text.startswith("ref: "):
        return text
    if len(text) in (40, 64) and set(text) <= _HEX:
        return text
    return None  # half-written or foreign: git would not take it either


class RefFiles:
    """The refs of one repository, read from its common git directory."""

    def __init__(self, common_dir: Path) -> None:
        self.common_dir = common_dir
        self.root = str(common_dir)
        self._packed: tuple[tuple[int, int, int, int], dict[str, str]] | None = None
        # path -> (its stat, its value): a loose ref is read again only when its stat changes
        self._loose_seen: dict[str, tuple[tuple[int, int, int, int], str | None]] = {}

    def packed(self) -> dict[str, str]:
        """name -> id of every ref in packed-refs (a peeled `^` line belongs to the ref above)."""
        path = os.path.join(self.root, "packed-refs")
        try:
            info = os.stat(path)
        except FileNotFoundError:
            self._packed = None
            return {}
        stamp = (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        if self._packed is not None and self._packed[0] == stamp:
            return self._packed[1]
        refs: dict[str, str] = {}
        try:
            with open(path, "rb") as handle:
                for line in handle:
                    if line.startswith((b"#", b"^")):
                        continue
                    oid, _, name = line.rstrip(b"\n").partition(b" ")
                    if name:
                        refs[name.decode("utf-8", "replace")] = oid.decode("ascii", "replace")
        except FileNotFoundError:
            refs = {}
        self._packed = (stamp, refs)
        return refs

    def _loose(self, name: str) -> str | None:
        return self._read_changed(os.path.join(self.root, name))

    def _read_changed(self, path: str) -> str | None:
        """A loose ref's value, read again only when its stat differs from the last read. git
        moves a ref by renaming a new file over it, so a move gives a new inode and change
        time (as git trusts stat data for packed-refs and its index, so does this)."""
        try:
            info = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            self._loose_seen.pop(path, None)
            return None
        stamp = (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        seen = self._loose_seen.get(path)
        if seen is not None and seen[0] == stamp:
            return seen[1]
        value = self._read(path)
        if len(self._loose_seen) > 65536:
            self._loose_seen.clear()  # refs come and go: forget them all now and then
        self._loose_seen[path] = (stamp, value)
        return value

    @staticmethod
    def _read(path: str) -> str | None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        try:
            return _value(os.read(fd, 4096))
        except IsADirectoryError:
            return None
        finally:
            os.close(fd)

    def tip(self, name: str, packed: dict[str, str] | None = None) -> str | None:
        """The value of one ref: its loose file, else its packed-refs line."""
        loose = self._loose(name)
        if loose is not None:
            return loose
        return (self.packed() if packed is None else packed).get(name)

    def tips(self, prefix: str, packed: dict[str, str] | None = None
             ) -> tuple[tuple[str, str], ...]:
        """(name, value) of every ref under `prefix` (which ends in '/'), sorted by name;
        `packed` is packed() when the caller has just read it."""
        packed = self.packed() if packed is None else packed
        found = {name: oid for name, oid in packed.items() if name.startswith(prefix)}
        pending = [prefix]
        while pending:
            directory = pending.pop()  # a ref name prefix ending in '/'
            try:
                with os.scandir(os.path.join(self.root, directory)) as listing:
                    entries = [(item.name, item.is_dir(follow_symlinks=False), item.path)
                               for item in listing]
            except (FileNotFoundError, NotADirectoryError):
                continue
            for name, is_dir, path in entries:
                if is_dir:
                    pending.append(f"{directory}{name}/")
                elif not name.endswith(".lock"):
                    value = self._read_changed(path)
                    if value is not None:
                        found[directory + name] = value
        return tuple(sorted(found.items()))
