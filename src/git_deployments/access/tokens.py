"""Bearer tokens for `git deploy serve`, kept in a repository's local state (never in a ref, so
never pushed or fetched): `$GIT_DIR/git-deployments/tokens.json`, or `DIR/.git-deployments/` for
a server of every repository under DIR.

Only a SHA-256 digest of each secret is stored; a secret is 32 random bytes from `secrets`, so
a digest cannot be turned back into it. The file is replaced atomically under a lock, so two
`git deploy token` commands, or one beside a running server, never lose each other's change.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from git_deployments.core.timeutil import iso, parse_datetime
from git_deployments.errors import DeployError, NotFound

VIEW = "view"
MODIFY_DEPLOYMENTS = "modify-deployments"
MODIFY_TARGETS = "modify-targets"
PERMISSIONS = (VIEW, MODIFY_DEPLOYMENTS, MODIFY_TARGETS)
PERMISSION_NAMES = {
    VIEW: "view deployments",
    MODIFY_DEPLOYMENTS: "modify deployments",
    MODIFY_TARGETS: "modify deployment targets",
}

FORMAT = "git-deployments-tokens/1"
FILE_NAME = "tokens.json"
SECRET_PREFIX = "gdt_"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}\Z")
MAX_TOKENS = 1000
MAX_FILE_BYTES = 1 << 20
LOCK_TIMEOUT = 10.0


def identity_of(name: str) -> str:
    """Who a change made with token `name` is recorded as: a `Name <email>` whose address is
    plainly not a mailbox (the .invalid domain)."""
    return f"token:{name} <{name}@git-deploy.invalid>"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


def parse_permissions(text: str) -> tuple[str, ...]:
    """`view,modify-deployments` -> the permissions, in their canonical order."""
    given = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [p for p in given if p not in PERMISSIONS]
    if unknown or not given:
        raise DeployError(f"invalid permissions {text!r}: use one or more of "
                          f"{', '.join(PERMISSIONS)}, separated by commas")
    return tuple(p for p in PERMISSIONS if p in given)


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name) or ".." in name:
        raise DeployError(f"invalid token name {name!r}: use 1-63 of a-z 0-9 . _ - starting "
                          "with a letter or digit")
    return name


@dataclass(frozen=True)
class Token:
    name: str
    digest: str
    permissions: tuple[str, ...]
    project: str | None
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def state(self, now: datetime) -> str:
        """`active`, `expired` or `revoked`."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"

    @property
    def identity(self) -> str:
        return identity_of(self.name)

    def allows(self, permission: str, project: str | None) -> bool:
        """Whether this token grants `permission` on `project` (state is checked apart)."""
        if permission not in self.permissions:
            return False
        return self.project is None or project is None or \
            self.project.lower() == project.lower()

    def as_json(self, now: datetime) -> dict[str, Any]:
        """What `token list --json` shows: everything but the digest."""
        return {"name": self.name, "permissions": list(self.permissions),
                "project": self.project, "created_at": iso(self.created_at),
                "expires_at": iso(self.expires_at) if self.expires_at else None,
                "revoked_at": iso(self.revoked_at) if self.revoked_at else None,
                "state": self.state(now)}

    def stored(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.digest, "permissions": list(self.permissions),
                "project": self.project, "created_at": iso(self.created_at),
                "expires_at": iso(self.expires_at) if self.expires_at else None,
                "revoked_at": iso(self.revoked_at) if self.revoked_at else None}

    @classmethod
    def load(cls, data: Any, where: str) -> Token:
        try:
            if not isinstance(data, dict):
                raise TypeError("not an object")
            name = check_name(str(data["name"]))
            sha = str(data["sha256"])
            if not re.fullmatch(r"[0-9a-f]{64}", sha):
                raise ValueError("bad digest")
            permissions = tuple(p for p in PERMISSIONS if p in list(data["permissions"]))
            project = data.get("project")
            if project is not None and not isinstance(project, str):
                raise ValueError("bad project")

            def moment(value: Any) -> datetime | None:
                return None if value is None else parse_datetime(str(value))

            created = moment(data["created_at"])
            if created is None:
                raise ValueError("no creation time")
            return cls(name, sha, permissions, project, created, moment(data.get("expires_at")),
                       moment(data.get("revoked_at")))
        except (KeyError, TypeError, ValueError, DeployError) as exc:
            raise DeployError(f"{where}: a token entry is invalid ({exc}); fix or remove the "
                              "file") from None


class TokenStore:
    """The tokens of one repository (or of one root of repositories)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / FILE_NAME
        # the file's signature when last read, its tokens, and each token by its digest
        self._cached: tuple[tuple[int, int, int], list[Token], dict[str, Token]] | None = None

    @classmethod
    def of_repository(cls, common_dir: Path) -> TokenStore:
        return cls(common_dir / "git-deployments")

    @classmethod
    def of_root(cls, root: Path) -> TokenStore:
        return cls(root / ".git-deployments")

    # --- reading ---

    def tokens(self) -> list[Token]:
        """Every token, read again only when the file changed (a server asks on each request)."""
        return self._current()[0]

    def _current(self) -> tuple[list[Token], dict[str, Token]]:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return [], {}
        except OSError as exc:
            raise DeployError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        signature = (info.st_ino, info.st_size, info.st_mtime_ns)
        if self._cached is not None and self._cached[0] == signature:
            return self._cached[1], self._cached[2]
        tokens = self._read()
        by_digest = {token.digest: token for token in tokens}  # the last of a digest wins
        self._cached = (signature, tokens, by_digest)
        return tokens, by_digest

    def _read(self) -> list[Token]:
        try:
            with open(self.path, "rb") as handle:
                raw = handle.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise DeployError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        if len(raw) > MAX_FILE_BYTES:
            raise DeployError(f"{self.path} is larger than {MAX_FILE_BYTES} bytes")
        try:
            data = json.loads(raw)
        except ValueError:
            raise DeployError(f"{self.path} is not valid JSON; fix or remove the file") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or \
                not isinstance(data.get("tokens"), list):
            raise DeployError(f"{self.path}: unknown format (expected {FORMAT})")
        return [Token.load(entry, str(self.path)) for entry in data["tokens"][:MAX_TOKENS]]

    def find(self, secret: str) -> Token | None:
        """The token whose secret this is, whatever its state; None when there is none."""
        if not secret.startswith(SECRET_PREFIX) or len(secret) > 200:
            return None
        # looked up by its digest, at the same cost however many tokens there are: nobody can
        # steer a SHA-256 digest, so how long a lookup takes tells nothing of the digests kept
        return self._current()[1].get(digest(secret))

    # --- writing ---

    def create(self, name: str, permissions: tuple[str, ...], *, now: datetime,
               expires_in: int | None = None, project: str | None = None) -> tuple[Token, str]:
        """A new token and its secret (shown once: only its digest is kept)."""
        check_name(name)
        if not permissions:
            raise DeployError("a token needs at least one permission (--can)")
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        expires = now + timedelta(seconds=expires_in) if expires_in else None
        token = Token(name, digest(secret), permissions, project, now, expires)
        with self._locked():
            tokens = self._read()
            if any(t.name == name for t in tokens):
                raise DeployError(f"token '{name}' exists already (names are never reused, "
                                  "so the timeline's 'token:NAME' stays unambiguous)")
            if len(tokens) >= MAX_TOKENS:
                raise DeployError(f"{self.path} holds {MAX_TOKENS} tokens already")
            self._write([*tokens, token])
        return token, secret

    def revoke(self, name: str, *, now: datetime) -> Token:
        with self._locked():
            tokens = self._read()
            for i, token in enumerate(tokens):
                if token.name == name:
                    if token.revoked_at is not None:
                        return token
                    tokens[i] = replace(token, revoked_at=now)
                    self._write(tokens)
                    return tokens[i]
        known = ", ".join(t.name for t in tokens) or "none yet"
        raise NotFound(f"unknown token '{name}' (tokens: {known})")

    def _locked(self) -> Any:
        from filelock import FileLock, Timeout

        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DeployError(f"cannot write to {self.directory}: {exc.strerror or exc}") \
                from None

        class Held:
            def __init__(self, lock: FileLock) -> None:
                self.lock = lock

            def __enter__(self) -> None:
                try:
                    self.lock.acquire()
                except Timeout:
                    raise DeployError(f"another git deploy holds {self.lock.lock_file}; try "
                                      "again") from None

            def __exit__(self, *exc: object) -> None:
                self.lock.release()

        return Held(FileLock(str(self.path) + ".lock", timeout=LOCK_TIMEOUT))

    def _write(self, tokens: list[Token]) -> None:
        """Write the whole file anew beside it, then rename it over: readers see the old file
        or the new one, never a part."""
        payload = json.dumps({"format": FORMAT, "tokens": [t.stored() for t in tokens]},
                             indent=2) + "\n"
        temporary = self.path.with_name(f".{FILE_NAME}.{os.getpid()}.tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise DeployError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        self._cached = None
