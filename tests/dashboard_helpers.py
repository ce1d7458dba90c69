"""What the dashboard's tests share: a repository with history served by a real `git deploy
serve` process for a whole test module, and a client that signs in and sends forms as a
browser does (cookies, CSRF tokens, form encoding)."""

from __future__ import annotations

import html
import http.client
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import pytest

from conftest import Deploy, git, hermetic_environment, make_commit
from test_serve import Reply, Served, serve, token

HOSTILE = '<script>alert("x")</script><img src=x id=pwned onerror=alert(1)>'


def make_repo(root: Path) -> Path:
    """A checkout named `app`: main with three commits and a tag, release one ahead of it."""
    path = root / "app"
    path.mkdir()
    git(path, "init", "-q")
    for i in range(3):
        make_commit(path, f"main {i} (BOOK-{i + 1})", f"2026-01-0{i + 1}T00:00:00Z")
    git(path, "tag", "v1.0.0")
    git(path, "checkout", "-q", "-b", "release")
    make_commit(path, "release fix (BOOK-9)", "2026-01-05T00:00:00Z")
    git(path, "checkout", "-q", "main")
    return path


def add_history(repo: Path) -> Deploy:
    """production (manual controls): #1 completed, #2 current, #3 scheduled; staging (none):
    #1 current, #2 deploying; a comment."""
    deploy = Deploy(repo)
    main = git(repo, "rev-parse", "main")
    deploy("target", "create", "production", "--manual-controls", "--name", "Production",
           "--description", "The live site")
    deploy("target", "create", "staging")
    deploy("finish", "production", "--commit", f"app:main:{main}~1", "--version", "0.9")
    deploy("finish", "production", "--commit", f"app:main:{main}", "--version", "1.0.0",
           "--ext-label", "CI job", "--ext-url", "https://ci.example.com/jobs/1",
           "--description", "First real release")
    deploy("schedule", "production", "--commit", "app:release", "--version", "1.1")
    deploy("finish", "staging", "--commit", "app:release:HEAD", "--version", "1.1-rc")
    deploy("start", "staging", "--commit", "app:release:HEAD", "--version", "1.1")
    deploy("comment", "production", "-m", "release notes are out")
    return deploy


@dataclass
class Site:
    """A served repository and its tokens: `view`, `deploy` (view, modify deployments),
    `admin` (all three)."""

    root: Path
    repo: Path
    deploy: Deploy
    served: Served
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        return self.served.url


@contextmanager
def served_site(factory: pytest.TempPathFactory, *args: str) -> Iterator[Site]:
    """A site for a module's tests, in the same hermetic environment each test has."""
    with pytest.MonkeyPatch.context() as patch:
        hermetic_environment(patch, factory.mktemp("home"))
        root = factory.mktemp("site")
        repo = make_repo(root)
        deploy = add_history(repo)
        tokens = {"view": token(repo, "reader", "view"),
                  "deploy": token(repo, "ci", "view,modify-deployments"),
                  "admin": token(repo, "admin", "view,modify-deployments,modify-targets")}
        served = serve(repo, *args, log=root / "serve.log")
        try:
            yield Site(root, repo, deploy, served, tokens)
        finally:
            served.stop()


def timeline_tip(repo: Path, key: str) -> str:
    return git(repo, "rev-parse", f"refs/deployments/{key}")


# --- a client with cookies ------------------------------------------------------------------------


def form_token(page: bytes) -> str:
    found = re.search(rb'name="csrf" value="([^"]+)"', page)
    assert found, "the page has no form with a CSRF token"
    return html.unescape(found.group(1).decode())


@dataclass
class Client:
    """Requests as a browser sends them: its cookies, and forms with the page's CSRF token."""

    served: Served
    cookies: dict[str, str] = field(default_factory=dict)
    set_cookies: list[str] = field(default_factory=list)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Reply:
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        connection = http.client.HTTPConnection(self.served.host, self.served.port, timeout=120)
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            pairs = response.getheaders()
            reply = Reply(response.status, {k.lower(): v for k, v in pairs}, response.read())
        finally:
            connection.close()
        assert b"Traceback" not in reply.body
        for name, value in pairs:
            if name.lower() == "set-cookie":
                self.set_cookies.append(value)
                jar: SimpleCookie = SimpleCookie()
                jar.load(value)
                for key, morsel in jar.items():
                    if morsel["max-age"] == "0" or morsel.value in ("", '""'):
                        self.cookies.pop(key, None)
                    else:
                        self.cookies[key] = morsel.value
        return reply

    def get(self, path: str, **headers: str) -> Reply:
        return self.request("GET", path, headers=headers)

    def post_form(self, path: str, fields: dict[str, str], **headers: str) -> Reply:
        return self.request("POST", path, urlencode(fields).encode(),
                            {"Content-Type": "application/x-www-form-urlencoded", **headers})

    def submit(self, page: str, action: str, fields: dict[str, str]) -> Reply:
        """Open `page`, then send one of its forms to `action` with the page's token."""
        opened = self.get(page)
        assert opened.status == 200, opened.body[:300]
        return self.post_form(action, {"csrf": form_token(opened.body), **fields})

    def sign_in(self, secret: str) -> Reply:
        reply = self.submit("/signin", "/signin", {"token": secret, "next": "/"})
        assert reply.status == 303, reply.body[:500]
        return reply
