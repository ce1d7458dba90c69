"""Ref tips read straight from git's files backend (loose ref files and packed-refs), for a
server that checks on every request whether what it answered before still holds.

pygit2 (git/repo.py) stays the reader the tool relies on; this is the faster path beside it for
that one question: listing every ref through libgit2 costs ~30 µs a ref, reading the files a
few. tests/test_refs.py holds the two equal. packed-refs is parsed again only when its stat
changes, as git itself does.

Every writer (git, libgit2, this tool) moves a loose ref by renaming a new file over it, and
creates and removes refs and their directories by name, so each change to the refs under a
prefix changes the stat of a directory there. A prefix's refs are therefore listed again only
when a directory's stat changed; otherwise one stat per directory answers. A directory changed
too recently to tell apart from a change in the same tick of the file system's clock (the racy
case git knows from its index) is not trusted until it has settled: until then every call lists
it again, as it does when a symbolic link stands among the refs."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from pathlib import Path

_HEX = frozenset("0123456789abcdef")
Stamp = tuple[int, int, int, int]
Tips = tuple[tuple[str, str], ...]
# how long a directory's last change must lie behind a listing of it for its stat to stand for
# its content: longer than any file system's clock takes to tick (FAT's, 2 s)
SETTLED_NS = 3_000_000_000


def _stamp(path: str) -> Stamp | None:
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _unchanged(directories: tuple[tuple[str, Stamp | None], ...]) -> bool:
    for path, stamp in directories:  # a loop, not all(): this runs on every request
        if _stamp(path) != stamp:
            return False
    return True


class _Listing(NamedTuple):
    """What listing a prefix found, and the stats that stand for it: every directory listed
    (None for one that did not exist) and the packed refs it was merged with."""

    directories: tuple[tuple[str, Stamp | None], ...]
    packed: dict[str, str]
    tips: Tips


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

    def __init__(self, common_dir: Path, settle_ns: int = SETTLED_NS) -> None:
        self.common_dir = common_dir
        self.root = str(common_dir)
        self._packed_path = os.path.join(self.root, "packed-refs")
        self.settle_ns = settle_ns
        self._packed: tuple[Stamp, dict[str, str]] | None = None
        self._no_packed: dict[str, str] = {}  # one object: a listing can tell it is the same
        # path -> (its stat, its value): a loose ref is read again only when its stat changes
        self._loose_seen: dict[str, tuple[Stamp, str | None]] = {}
        # prefix -> its last listing, while its directories' stats stand for it
        self._listings: dict[str, _Listing] = {}
        self.listed = 0  # how many times a prefix was listed (not answered by stats alone)

    def packed(self) -> dict[str, str]:
        """name -> id of every ref in packed-refs (a peeled `^` line belongs to the ref above)."""
        path = self._packed_path
        try:
            info = os.stat(path)
        except FileNotFoundError:
            self._packed = None
            return self._no_packed
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
        stamp = _stamp(path)
        if stamp is None:
            self._loose_seen.pop(path, None)
            return None
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

    def tips(self, prefix: str, packed: dict[str, str] | None = None) -> Tips:
        """(name, value) of every ref under `prefix` (which ends in '/'), sorted by name;
        `packed` is packed() when the caller has just read it."""
        packed = self.packed() if packed is None else packed
        kept = self._listings.get(prefix)
        if kept is not None and kept.packed is packed and _unchanged(kept.directories):
            return kept.tips
        self._listings.pop(prefix, None)
        listing, settled = self._list(prefix, packed)
        if settled:
            self._listings[prefix] = listing
        return listing.tips

    def _list(self, prefix: str, packed: dict[str, str]) -> tuple[_Listing, bool]:
        """Every ref under `prefix`, from every file there, with the stats of its directories
        (each taken before it is read), and whether those stats can stand for what was read:
        not when a directory changed too recently, came or went while it was read, or holds a
        symbolic link."""
        self.listed += 1
        settled_before = time.time_ns() - self.settle_ns
        settled = True
        found = {name: oid for name, oid in packed.items() if name.startswith(prefix)}
        directories: list[tuple[str, Stamp | None]] = []
        pending = [prefix]
        while pending:
            directory = pending.pop()  # a ref name prefix ending in '/'
            path = os.path.join(self.root, directory)
            stamp = _stamp(path)
            directories.append((path, stamp))
            # any change to a directory, even one that sets its modification time back, sets
            # its change time to the file system's clock: a later one shows as a later time
            if stamp is not None and max(stamp[2], stamp[3]) > settled_before:
                settled = False
            try:
                with os.scandir(path) as listing:
                    entries = [(item.name, item.is_dir(follow_symlinks=False),
                                item.is_symlink(), item.path) for item in listing]
            except (FileNotFoundError, NotADirectoryError):
                settled &= directory == prefix and stamp is None  # else it went meanwhile
                continue
            for name, is_dir, is_link, entry in entries:
                settled &= not is_link  # what a link points at changes with no directory
                if is_dir:
                    pending.append(f"{directory}{name}/")
                elif not name.endswith(".lock"):
                    value = self._read_changed(entry)
                    if value is not None:
                        found[directory + name] = value
        return _Listing(tuple(directories), packed, tuple(sorted(found.items()))), settled
