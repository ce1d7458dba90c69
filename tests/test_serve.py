"""`git deploy serve` as clients meet it: a real `git deploy serve` process on a loopback port,
spoken to over HTTP (http.client, and curl for the hosted service's own example requests)."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from conftest import Deploy, git, make_commit

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 60


# --- a server process and a client -------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> dict[str, str]:
        data = self.json
        assert set(data) == {"error"} and set(data["error"]) == {"code", "message"}, data
        return data["error"]


class Served:
    """A running `git deploy serve` and requests to it."""

    def __init__(self, process: subprocess.Popen[str], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80

    def request(self, method: str, path: str, body: Any = None, token: str | None = None,
                headers: dict[str, str] | None = None, raw: bytes | None = None) -> Reply:
        sent = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        connection = http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            connection.request(method, path, body=data, headers=sent)
            response = connection.getresponse()
            reply = Reply(response.status, {k.lower(): v for k, v in response.getheaders()},
                          response.read())
        finally:
            connection.close()
        assert b"Traceback" not in reply.body
        return reply

    def get(self, path: str, token: str | None = None, **headers: str) -> Reply:
        return self.request("GET", path, token=token, headers=headers)

    def post(self, path: str, body: Any = None, token: str | None = None) -> Reply:
        return self.request("POST", path, body=body, token=token)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)


def serve(cwd: Path, *args: str, log: Path) -> Served:
    """Start `git-deploy serve` on a free loopback port (it prints where it listens). The
    program itself, as a service manager runs it: `git deploy` would put git in between, which
    answers SIGTERM by dying of it once its child has stopped."""
    handle = open(log, "w")
    process = subprocess.Popen(["git-deploy", "serve", "--host", "127.0.0.1", "--port", "0",
                                *args], cwd=cwd, stdout=subprocess.PIPE, stderr=handle,
                               text=True)
    handle.close()
    assert process.stdout is not None
    line = process.stdout.readline()
    found = re.search(r"http://\S+", line)
    if found is None:
        process.wait(timeout=READY_TIMEOUT)
        raise AssertionError(f"serve did not start: {line!r} {log.read_text()}")
    served = Served(process, found.group(0), log)
    assert served.get("/healthz").status == 200  # the socket listens before this is printed
    return served


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    """`start(cwd, *args)`: a server, stopped at the end of the test."""
    started: list[Served] = []

    def make(cwd: Path, *args: str) -> Served:
        served = serve(cwd, *args, log=tmp_path / f"serve-{len(started)}.log")
        started.append(served)
        return served

    yield make
    for served in started:
        if served.process.poll() is None:
            served.process.send_signal(signal.SIGTERM)
            try:
                served.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                served.process.kill()
                served.process.wait()


def token(repo: Path, name: str, can: str, *args: str, env: dict[str, str] | None = None) -> str:
    result = Deploy(repo)("token", "create", name, "--can", can, *args, env=env)
    secret = result.stdout.strip()
    assert secret.startswith("gdt_") and "\n" not in secret
    return secret


def refs(path: Path) -> str:
    return git(path, "for-each-ref", "--format=%(refname) %(objectname)")


# --- a repository with history, and tokens -------------------------------------------------------


@pytest.fixture
def history(repo: Path, deploy: Deploy) -> Deploy:
    """production: #1, #2 current, #3 scheduled; staging: #1 current, #2 deploying."""
    main = git(repo, "rev-parse", "main")
    deploy("target", "create", "production", "--manual-controls")
    deploy("target", "create", "staging")
    deploy("finish", "production", "--commit", f"app:main:{main}~1", "--version", "0.9")
    deploy("finish", "production", "--commit", f"app:main:{main}", "--version", "1.0.0")
    deploy("schedule", "production", "--commit", "app:release", "--version", "1.1")
    deploy("finish", "staging", "--commit", "app:release:HEAD", "--version", "1.1-rc")
    deploy("start", "staging", "--commit", "app:release:HEAD", "--version", "1.1")
    deploy("comment", "production", "-m", "release notes are out")
    return deploy


@pytest.fixture
def tokens(repo: Path) -> dict[str, str]:
    return {
        "view": token(repo, "reader", "view"),
        "deploy": token(repo, "ci", "view,modify-deployments"),
        "targets": token(repo, "admin", "view,modify-targets"),
        "only-deploy": token(repo, "blind", "modify-deployments"),
    }


# --- the command line is not slowed by the server -------------------------------------------------


def test_no_other_command_imports_the_server_libraries(repo: Path, deploy: Deploy) -> None:
    deploy("target", "create", "production")
    script = (
        "import sys\n"
        "from git_deployments import cli\n"
        "for argv in (['status'], ['target', 'list'], ['token', 'list'], ['start', "
        "'production'], ['serve', '-h']):\n"
        "    try:\n"
        "        cli.main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('starlette', 'uvicorn', 'jinja2', 'anyio', 'h11', 'httptools', 'uvloop'))\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=repo, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout, result.stdout


# --- tokens ---------------------------------------------------------------------------------------


def test_a_token_is_shown_once_and_stored_hashed_outside_every_ref(repo: Path,
                                                                   deploy: Deploy) -> None:
    before = refs(repo)
    result = deploy("token", "create", "ci", "--can", "view,modify-deployments",
                    "--expires", "90d")
    secret = result.stdout.strip()
    assert "created token 'ci'" in result.stderr and "shown only now" in result.stderr
    stored = (repo / ".git" / "git-deployments" / "tokens.json").read_text()
    assert secret not in stored
    import hashlib

    assert hashlib.sha256(secret.encode()).hexdigest() in stored
    assert refs(repo) == before  # nothing in any ref: never pushed, never fetched
    listed = deploy.json("token", "list")
    assert listed == [{"name": "ci", "permissions": ["view", "modify-deployments"],
                       "project": None, "created_at": listed[0]["created_at"],
                       "expires_at": listed[0]["expires_at"], "revoked_at": None,
                       "state": "active"}]
    assert secret not in deploy("token", "list").stdout
    assert (repo / ".git" / "git-deployments" / "tokens.json").stat().st_mode & 0o077 == 0


def test_token_mistakes_are_one_line_and_change_nothing(repo: Path, deploy: Deploy) -> None:
    deploy("token", "create", "ci", "--can", "view")
    stored = (repo / ".git" / "git-deployments" / "tokens.json").read_text()
    for args in (["create", "ci", "--can", "view"],                # a name is never reused
                 ["create", "other", "--can", "view,deploy"],      # no such permission
                 ["create", "Bad Name", "--can", "view"],
                 ["create", "other", "--can", "view", "--expires", "soon"],
                 ["revoke", "nobody"]):
        result = deploy("token", *args, code=1)
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, args
    assert (repo / ".git" / "git-deployments" / "tokens.json").read_text() == stored


def test_revoked_and_expired_tokens_are_refused(repo: Path, history: Deploy, start: Any) -> None:
    good = token(repo, "good", "view")
    gone = token(repo, "gone", "view")
    old = token(repo, "old", "view", "--expires", "1d",
                env={"GIT_DEPLOY_NOW": "2020-01-01T00:00:00Z"})
    served = start(repo)
    assert served.get("/api/v1/projects/_/status", good).status == 200
    assert served.get("/api/v1/projects/_/status", gone).status == 200
    history("token", "revoke", "gone")
    states = {t["name"]: t["state"] for t in history.json("token", "list")}
    assert states == {"good": "active", "gone": "revoked", "old": "expired"}
    for secret, word in ((gone, "revoked"), (old, "expired"), ("gdt_" + "x" * 43, "unknown")):
        reply = served.get("/api/v1/projects/_/status", secret)
        assert reply.status == 401 and word in reply.error["message"]
        assert reply.headers["www-authenticate"].startswith("Bearer")
    reply = served.request("GET", "/api/v1/projects/_/status",
                           headers={"Authorization": "Basic eDp5"})
    assert reply.status == 401 and reply.error["code"] == "unauthorized"


def test_each_secret_finds_its_own_token_and_no_other(repo: Path, deploy: Deploy) -> None:
    from git_deployments.access.tokens import TokenStore
    from git_deployments.git.repo import open_repository

    secrets = {name: token(repo, name, "view") for name in ("a", "b", "c")}
    store = TokenStore.of_repository(open_repository(repo).common_dir)
    found = {name: store.find(secret) for name, secret in secrets.items()}
    assert {name: t.name if t else None for name, t in found.items()} == {"a": "a", "b": "b",
                                                                         "c": "c"}
    assert store.find(secrets["a"][:-1]) is None and store.find("gdt_" + "x" * 43) is None
    deploy("token", "revoke", "b")  # the file changes: the next lookup reads it again
    revoked = store.find(secrets["b"])
    assert revoked is not None and revoked.revoked_at is not None


# --- reading: every endpoint answers what the command line's --json says -----------------------


def test_every_read_endpoint_answers_the_cli_json(repo: Path, history: Deploy, tokens: Any,
                                                  start: Any) -> None:
    served = start(repo)
    view = tokens["view"]
    main = git(repo, "rev-parse", "main")
    base = "/api/v1/projects/app"
    pairs = [
        ("/status", ["status"]),
        ("/status?all=true", ["status", "--all"]),
        ("/targets", ["target", "list"]),
        ("/targets/production", ["target", "show", "production"]),
        ("/targets/production/deployments", ["list", "production"]),
        ("/targets/production/deployments?status=current,completed", [
            "list", "production", "--status", "current", "--status", "completed"]),
        ("/targets/production/deployments/2", ["show", "production", "2"]),
        ("/targets/production/deployments/2/commits", ["commits", "production", "2"]),
        ("/targets/production/deployments/2/issues", ["issues", "production", "2"]),
        ("/targets/production/timeline", ["log", "production"]),
        ("/targets/production/pending", ["pending", "production"]),
        ("/targets/production/compare?with=staging", ["compare", "production", "staging"]),
        (f"/contains/{main}", ["contains", main]),
        ("/contains/v1.0.0", ["contains", "v1.0.0"]),
    ]
    for path, args in pairs:
        reply = served.get(base + path, view)
        assert reply.status == 200, (path, reply.body)
        assert reply.headers["content-type"] == "application/json"
        assert reply.json == history.json(*args), path
    # `_` is the one project; its name in any case, key: and id: name it too
    for name in ("_", "APP", "key:app", "id:App"):
        assert served.get(f"/api/v1/projects/{name}/status", view).json == \
            history.json("status")
    assert served.get("/api/v1/projects", view).json == [{"name": "app", "targets": 2}]
    assert served.get("/healthz").json == {"status": "ok"}
    document = served.get("/api/v1/openapi.json").json
    assert document["openapi"].startswith("3.")
    assert "/api/http/projects/{project}/automation/deployments/start" in document["paths"]
    listed = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    from git_deployments.web.app import ENDPOINTS

    assert listed == {(e.method, re.sub(r":\w+}", "}", e.path)) for e in ENDPOINTS}


def test_lists_come_a_page_at_a_time(repo: Path, history: Deploy, tokens: Any,
                                     start: Any) -> None:
    served = start(repo)
    seen: list[int] = []
    path: str | None = "/api/v1/projects/_/targets/production/deployments?limit=1"
    while path:
        reply = served.get(path, tokens["view"])
        seen += [d["number"] for d in reply.json]
        link = re.match(r'<([^>]+)>; rel="next"', reply.headers.get("link", ""))
        path = link.group(1) if link else None
    assert seen == [3, 2, 1]
    entries: list[str] = []
    path = "/api/v1/projects/_/targets/production/timeline?limit=2"
    while path:
        reply = served.get(path, tokens["view"])
        entries += [e["timeline_commit"] for e in reply.json]
        link = re.match(r'<([^>]+)>; rel="next"', reply.headers.get("link", ""))
        path = link.group(1) if link else None
    assert entries == [e["timeline_commit"] for e in history.json("log", "production")]
    bad = served.get("/api/v1/projects/_/targets/production/timeline?before=" + "1" * 40,
                     tokens["view"])
    assert bad.status == 404


# --- writing: every write endpoint, through the CLI's rules, as the token's name ----------------


def test_every_write_endpoint_goes_through_the_cli_rules(repo: Path, history: Deploy,
                                                         tokens: Any, start: Any) -> None:
    served = start(repo)
    admin, ci = tokens["targets"], tokens["deploy"]
    base = "/api/v1/projects/_/targets"
    created = served.post(base, {"key": "qa", "name": "QA", "manual_controls": True,
                                 "hanging_after": "10m", "failed_after": 3600}, admin)
    assert created.status == 201, created.body
    assert created.json["key"] == "qa" and created.json["hanging_after"] == 600
    assert history.json("target", "show", "qa")["failed_after"] == 3600
    edited = served.request("PATCH", f"{base}/qa", {"description": "the QA rig"}, admin)
    assert edited.status == 200 and edited.json["description"] == "the QA rig"
    release = git(repo, "rev-parse", "release")
    for op, extra in (("schedule", {"at": "2030-01-01T10:00:00Z"}), ("start", {}),
                      ("finish", {"number": 1})):
        reply = served.post(f"{base}/qa/deployments/{op}",
                            {"version": "2.0", "commit": [f"app:release:{release[:8]}"],
                             "ext_url": "https://ci.example.com/1", **extra}, ci)
        assert reply.status == 200, (op, reply.body)
        assert reply.json["deployment"]["number"] == 1
    assert history.json("show", "qa", "1")["status"] == "current"
    failed = served.post(f"{base}/qa/deployments/fail", {"commit": ["app:main:HEAD"]}, ci)
    assert failed.status == 200 and failed.json["deployment"]["status"] == "failed"
    status = served.post(f"{base}/qa/deployments/2/status", {"status": "current",
                                                               "reason": "fixed by hand"}, ci)
    assert status.status == 200, status.body
    edit = served.request("PATCH", f"{base}/qa/deployments/2", {"description": "hotfix"}, ci)
    assert edit.status == 200 and edit.json["deployment"]["description"] == "hotfix"
    comment = served.post(f"{base}/qa/comments", {"message": "looks good", "number": 2}, ci)
    assert comment.status == 200
    deleted = served.request("DELETE", f"{base}/qa/deployments/1", token=ci)
    assert deleted.status == 200
    archived = served.request("PATCH", f"{base}/qa", {"archived": True}, admin)
    assert archived.status == 200 and archived.json["archived"] is True
    log = history.json("log", "qa")
    assert [e["op"] for e in log] == ["target-archive", "delete", "comment", "edit",
                                      "set-status", "fail", "finish", "start", "schedule",
                                      "target-edit", "target-create"]
    assert {e["by"] for e in log} == {"token:admin <admin@git-deploy.invalid>",
                                      "token:ci <ci@git-deploy.invalid>"}
    assert history("fsck").returncode == 0


def test_the_reference_examples_sent_with_curl(tmp_path: Path, start: Any) -> None:
    """The hosted service's own requests, as its documentation writes them (a real short id
    in place of its placeholder), against a repository named as in its examples."""
    work = tmp_path / "my-web-app"
    work.mkdir()
    git(work, "init", "-q", "-b", "release")
    commit = make_commit(work, "first release")
    bare = tmp_path / "srv" / "my-web-app.git"
    bare.parent.mkdir()
    git(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    on_server = Deploy(bare)
    on_server("install-hooks")
    on_server("target", "create", "production-server")
    secret = token(bare, "space", "view,modify-deployments")
    served = start(bare)

    def curl(op: str, body: str, project: str = "id:project-id") -> Any:
        url = f"{served.url}/api/http/projects/{project}/automation/deployments/{op}"
        result = subprocess.run(
            ["curl", "-sS", "-X", "POST", url, "-H", f"Authorization: Bearer {secret}",
             "-H", "Accept: application/json", "-H", "Content-Type: application/json",
             "--data-binary", body, "-w", "\n%{http_code}"],
            capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        payload, _, code = result.stdout.rpartition("\n")
        return int(code), json.loads(payload)

    # an unknown project is a 404, as is the placeholder name of the examples
    code, answer = curl("schedule", '{"targetIdentifier": "key:production-server"}')
    assert code == 404 and answer["error"]["code"] == "not_found"
    schedule = ('{ "targetIdentifier": "key:production-server", "version": "1.0.0", '
                '"commitRefs": [ { "repositoryName": "my-web-app", "branch": "release", '
                f'"commit": "{commit[:7]}" }} ] }}')
    code, answer = curl("schedule", schedule, "id:my-web-app")
    assert code == 200 and answer["status"] == "scheduled" and answer["number"] == 1
    assert answer["commits"] == [{"repository": "my-web-app", "branch": "release",
                                  "commit": commit}]
    start_body = schedule.replace("key:production-server", "id:production-server")
    code, answer = curl("start", start_body, "key:my-web-app")
    assert code == 200 and answer["status"] == "deploying" and answer["number"] == 1
    finish = ('{ "targetIdentifier": "key:production-server", "version": "1.0.0", '
              '"commitRefs": [ { "repositoryName": "my-web-app", "branch": "release" } ] }')
    code, answer = curl("finish", finish, "my-web-app")
    assert code == 200 and answer["status"] == "current"
    assert set(answer) == set(on_server.json("show", "production-server", "1"))
    assert answer == on_server.json("show", "production-server", "1")
    code, answer = curl("fail", finish, "MY-WEB-APP")
    assert code == 409 and answer["error"]["code"] == "refused"
    # every field of the body at once, and the reference's optional ones
    full = json.dumps({"targetIdentifier": "key:production-server", "version": "1.0.1",
                       "commitRefs": [{"repositoryName": "my-web-app", "branch": "release",
                                       "commit": "HEAD"}],
                       "externalLinkLabel": "My CI/CD service",
                       "externalLinkUrl": "https://mycicdservice.url",
                       "description": "from the pipeline", "scheduledStart": 1893456000000,
                       "syncWithAutomationJob": True})
    code, answer = curl("schedule", full, "my-web-app")
    assert code == 200 and answer["external_link"] == {"label": "My CI/CD service",
                                                       "url": "https://mycicdservice.url"}
    assert answer["scheduled_for"] == "2030-01-01T00:00:00Z"
    assert answer["description"] == "from the pipeline"
    assert on_server("fsck").returncode == 0


def test_a_ci_job_with_nothing_but_curl(tmp_path: Path, start: Any) -> None:
    """docs/ci/http.md's job, run as it is written, against a server next to a bare
    repository with the hooks installed."""
    text = (ROOT / "docs" / "ci" / "http.md").read_text(encoding="utf-8")
    script = re.search(r"## The job\n\n```sh\n(.*?)```", text, re.S)
    assert script is not None
    work = tmp_path / "shop"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    commit = make_commit(work, "ship it")
    bare = tmp_path / "srv" / "shop.git"
    bare.parent.mkdir()
    git(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    Deploy(bare)("install-hooks")
    Deploy(bare)("target", "create", "production")
    secret = token(bare, "ci", "modify-deployments")
    served = start(bare)
    job = tmp_path / "job"
    job.mkdir()
    (job / "job.sh").write_text(script.group(1))
    env = {**os.environ, "DEPLOY_URL": served.url, "DEPLOY_TOKEN": secret,
           "DEPLOY_PROJECT": "shop", "DEPLOY_TARGET": "production", "DEPLOY_VERSION": "3.1.4",
           "DEPLOY_BRANCH": "main", "DEPLOY_COMMIT": commit}
    for outcome, status in (("exit 0", "current"), ("exit 3", "failed")):
        (job / "deploy.sh").write_text(f"#!/bin/sh\n{outcome}\n")
        (job / "deploy.sh").chmod(0o755)
        result = subprocess.run(["sh", "job.sh"], cwd=job, env=env, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == (0 if status == "current" else 3), result.stderr
        answers = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
        assert [a["status"] for a in answers] == ["deploying", status]
    shown = Deploy(bare).json("list", "production")
    assert [(d["number"], d["status"], d["version"]) for d in shown] == [
        (2, "failed", "3.1.4"), (1, "current", "3.1.4")]
    assert Deploy(bare)("fsck").returncode == 0


# --- permissions -------------------------------------------------------------------------------


def test_each_permission_opens_its_own_endpoints_only(repo: Path, history: Deploy,
                                                      tokens: Any, start: Any) -> None:
    served = start(repo)
    base = "/api/v1/projects/_/targets"
    reads = ["/api/v1/projects", "/api/v1/projects/_/status", base, f"{base}/production",
             f"{base}/production/deployments", f"{base}/production/deployments/1",
             f"{base}/production/deployments/1/commits", f"{base}/production/deployments/1/issues",
             f"{base}/production/timeline", f"{base}/production/pending",
             f"{base}/production/compare?with=staging", "/api/v1/projects/_/contains/main"]
    deployment_writes = [
        ("POST", f"{base}/production/comments", {"message": "hi"}),
        ("PATCH", f"{base}/production/deployments/1", {"description": "x"}),
        ("POST", f"{base}/production/deployments/2/status", {"status": "failed"}),
        ("POST", "/api/http/projects/app/automation/deployments/schedule",
         {"targetIdentifier": "key:production", "commitRefs": [
             {"repositoryName": "app", "branch": "feature"}]}),
        ("DELETE", f"{base}/production/deployments/1", None),
    ]
    target_writes = [("PATCH", f"{base}/staging", {"description": "pre-production"}),
                     ("POST", base, {"key": "extra"})]
    allowed = {
        None: set(),
        "view": {"read"},
        "deploy": {"read", "deployments"},
        "targets": {"read", "targets"},
        "only-deploy": {"deployments"},
    }
    for who, can in allowed.items():
        secret = tokens[who] if who else None
        for path in reads:
            reply = served.get(path, secret)
            expected = 200 if "read" in can else (401 if secret is None else 403)
            assert reply.status == expected, (who, path, reply.body)
        for kind, writes in (("deployments", deployment_writes), ("targets", target_writes)):
            for method, path, body in writes:
                if kind in can:
                    continue  # done once below, where it changes something
                before = refs(repo)
                reply = served.request(method, path, body, secret)
                expected = 401 if secret is None else 403
                assert reply.status == expected, (who, method, path, reply.body)
                assert reply.error["code"] == ("unauthorized" if secret is None
                                               else "forbidden")
                assert refs(repo) == before
    for method, path, body in deployment_writes:
        assert served.request(method, path, body, tokens["only-deploy"]).status == 200, path
    for method, path, body in target_writes:
        reply = served.request(method, path, body, tokens["targets"])
        assert reply.status in (200, 201), (path, reply.body)


def test_anonymous_reading_only_where_the_operator_turns_it_on(repo: Path, history: Deploy,
                                                              tokens: Any, start: Any) -> None:
    served = start(repo)
    assert served.get("/api/v1/projects/_/status").status == 401
    assert served.get("/api/v1/projects").status == 401
    git(repo, "config", "deploy.serve.anonymousRead", "true")
    assert served.get("/api/v1/projects/_/status").json == history.json("status")
    assert served.get("/api/v1/projects").json == [{"name": "app", "targets": 2}]
    before = refs(repo)
    reply = served.post("/api/v1/projects/_/targets/production/comments", {"message": "hi"})
    assert reply.status == 401 and refs(repo) == before
    git(repo, "config", "deploy.serve.anonymousRead", "false")
    assert served.get("/api/v1/projects/_/status").status == 401


def test_a_root_serves_each_repository_as_a_project(tmp_path: Path, start: Any) -> None:
    root = tmp_path / "repos"
    root.mkdir()
    for name in ("Shop", "blog"):
        work = tmp_path / "work" / name
        work.mkdir(parents=True)
        git(work, "init", "-q", "-b", "main")
        make_commit(work, f"{name} 1")
        git(tmp_path, "clone", "-q", "--bare", str(work), str(root / f"{name}.git"))
        Deploy(root / f"{name}.git")("target", "create", "production")
    (root / "notes").mkdir()  # not a repository: not a project
    everything = token(root, "ops", "view,modify-deployments", "--root", str(root))
    shop_only = token(root, "shop-ci", "view,modify-deployments", "--root", str(root),
                      "--project", "shop")
    listed = Deploy(root).json("token", "list", "--root", str(root))
    assert [t["project"] for t in listed] == [None, "shop"]
    served = start(tmp_path, "--root", str(root))
    assert served.get("/api/v1/projects", everything).json == [
        {"name": "blog", "targets": 1}, {"name": "Shop", "targets": 1}]
    assert served.get("/api/v1/projects", shop_only).json == [{"name": "Shop", "targets": 1}]
    body = {"targetIdentifier": "key:production",
            "commitRefs": [{"repositoryName": "blog", "branch": "main", "commit": "HEAD"}]}
    assert served.post("/api/http/projects/blog/automation/deployments/finish", body,
                       everything).status == 200
    refused = served.post("/api/http/projects/blog/automation/deployments/finish", body,
                          shop_only)
    assert refused.status == 403 and "project 'shop'" in refused.error["message"]
    assert served.get("/api/v1/projects/key:SHOP/status", shop_only).status == 200
    assert served.get("/api/v1/projects/_/status", everything).status == 404
    assert served.get("/api/v1/projects/nowhere/status").status == 401  # no names to strangers
    # a repository added later is served without a restart
    work = tmp_path / "work" / "docs"
    work.mkdir(parents=True)
    git(work, "init", "-q", "-b", "main")
    make_commit(work, "docs 1")
    git(tmp_path, "clone", "-q", "--bare", str(work), str(root / "docs.git"))
    assert [p["name"] for p in served.get("/api/v1/projects", everything).json] == [
        "blog", "docs", "Shop"]


# --- errors ---------------------------------------------------------------------------------------


def test_every_error_is_json_with_its_status_and_writes_nothing(repo: Path, history: Deploy,
                                                                tokens: Any,
                                                                start: Any) -> None:
    served = start(repo)
    ci, view = tokens["deploy"], tokens["view"]
    base = "/api/v1/projects/_/targets/production"
    before = refs(repo)
    cases: list[tuple[int, str, Reply]] = [
        (400, "invalid_json", served.request("POST", f"{base}/comments", token=ci,
                                             raw=b'{"message": ', headers={
                                                 "Content-Type": "application/json"})),
        (400, "invalid_json", served.request("POST", f"{base}/comments", token=ci,
                                             raw=b'["a list"]', headers={
                                                 "Content-Type": "application/json"})),
        (400, "invalid_value", served.post(f"{base}/comments", {"message": 42}, ci)),
        (400, "invalid_value", served.post(f"{base}/comments", {"mesage": "typo"}, ci)),
        (400, "invalid_value", served.post(f"{base}/deployments/start",
                                           {"commit": ["app:no such branch"]}, ci)),
        (400, "invalid_value", served.post(f"{base}/deployments/start", {"at": "+1h"}, ci)),
        (400, "invalid_value", served.get("/api/v1/projects/_/targets/Not_A_Key", view)),
        (400, "invalid_value", served.get(f"{base}/deployments?limit=many", view)),
        (400, "invalid_value", served.get(f"{base}/deployments/zero", view)),
        (400, "invalid_value", served.get(f"{base}/compare", view)),
        (401, "unauthorized", served.get(f"{base}/deployments")),
        (401, "unauthorized", served.post(f"{base}/comments", {"message": "hi"})),
        (403, "forbidden", served.post(f"{base}/comments", {"message": "hi"}, view)),
        (404, "not_found", served.get("/api/v1/projects/elsewhere/status", view)),
        (404, "not_found", served.get("/api/v1/projects/_/targets/nowhere", view)),
        (404, "not_found", served.get(f"{base}/deployments/99", view)),
        (404, "not_found", served.post(f"{base}/deployments/99/status",
                                       {"status": "failed"}, ci)),
        (404, "not_found", served.get("/api/v1/projects/_/contains/no-such-commit", view)),
        (404, "not_found", served.get("/api/v1/no/such/endpoint", view)),
        (405, "method_not_allowed", served.request("PUT", f"{base}/comments", token=ci)),
        (409, "refused", served.post("/api/v1/projects/_/targets/staging/deployments/2/status",
                                     {"status": "failed"}, ci)),  # no manual controls
        (409, "refused", served.post(f"{base}/deployments/finish", None, ci)),  # none in flight
        (413, "too_large", served.post(f"{base}/comments", {"message": "x" * 70_000}, ci)),
        (415, "not_json", served.request("POST", f"{base}/comments", token=ci,
                                         raw=b"message=hi", headers={
                                             "Content-Type": "application/x-www-form-urlencoded"
                                         })),
    ]
    for status, code, reply in cases:
        assert (reply.status, reply.error["code"]) == (status, code), (status, reply.body)
        assert reply.headers["content-type"] == "application/json"
        assert reply.error["message"]
    # a body that streams past the limit without saying its length
    connection = http.client.HTTPConnection(served.host, served.port, timeout=60)
    connection.request("POST", f"{base}/comments", body=iter([b'{"message": "', b"x" * 70_000,
                                                              b'"}']),
                       headers={"Authorization": f"Bearer {ci}",
                                "Content-Type": "application/json"}, encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 413 and json.loads(response.read())["error"]["code"] == "too_large"
    connection.close()
    assert refs(repo) == before  # no error wrote anything
    # the CLI refuses in the same words
    refusal = served.post(f"{base}/deployments/finish", None, ci).error["message"]
    assert refusal == history("finish", "production", code=1).stderr.strip().removeprefix(
        "error: ")


def test_one_access_log_line_per_request(repo: Path, history: Deploy, tokens: Any,
                                         tmp_path: Path, start: Any) -> None:
    served = start(repo)
    paths = ["/healthz", "/api/v1/projects/_/status", "/nowhere"]
    for path in paths:
        served.get(path, tokens["view"])
    served.post("/api/v1/projects/_/targets/production/comments", {"message": "x"},
                tokens["deploy"])
    assert served.stop() == 0
    lines = (tmp_path / "serve-0.log").read_text().splitlines()
    logged = [line for line in lines if '"' in line]
    assert len(logged) == 5  # the readiness check, three reads and one write
    assert re.match(r'127\.0\.0\.1:\d+ token:reader "GET /api/v1/projects/_/status" 200 \d+ '
                    r'[\d.]+ms$', logged[2])
    assert 'token:ci "POST /api/v1/projects/_/targets/production/comments" 200' in logged[4]
    assert '"GET /nowhere" 404' in logged[3]


def test_an_unexpected_error_is_a_500_with_the_headers_and_one_log_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing in the real server fails unexpectedly on purpose: the layer every answer passes
    is given an application that does, and spoken to in ASGI."""
    import asyncio
    import io

    from git_deployments.web.app import SECURITY_HEADERS, EveryAnswer

    async def failing(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/late":
            await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("boom\nsecond line")

    def call(path: str) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": path, "query_string": b"a=1",
                 "headers": [], "client": ("127.0.0.1", 4000)}
        asyncio.run(EveryAnswer(failing, stream=log)(scope, receive, send))
        return sent

    log = io.StringIO()
    start, body = call("/early")
    assert start["status"] == 500 and set(SECURITY_HEADERS) <= set(start["headers"])
    assert json.loads(body["body"])["error"]["code"] == "internal_error"
    assert b"boom" not in body["body"]
    assert capsys.readouterr().err == "internal error on GET /early: RuntimeError: boom\n"
    with pytest.raises(RuntimeError):  # begun: the connection is cut instead
        call("/late")
    lines = log.getvalue().splitlines()
    assert re.match(r'127\.0\.0\.1:4000 - "GET /early\?a=1" 500 \d+ [\d.]+ms$', lines[0])
    assert re.match(r'127\.0\.0\.1:4000 - "GET /late\?a=1" 200 0 [\d.]+ms$', lines[1])
    assert len(lines) == 2


# --- reads from memory, fresh whenever a ref moves -----------------------------------------------


def test_reads_are_kept_until_any_writer_moves_a_ref(repo: Path, history: Deploy, tokens: Any,
                                                     bare: Path, start: Any) -> None:
    served = start(repo)
    view = tokens["view"]
    path = "/api/v1/projects/_/status"
    first = served.get(path, view)
    etag = first.headers["etag"]
    again = served.get(path, view)
    assert again.headers["etag"] == etag and again.body == first.body
    unchanged = served.get(path, view, **{"If-None-Match": etag})
    assert unchanged.status == 304 and unchanged.body == b""

    def fresh() -> Reply:
        nonlocal etag
        reply = served.get(path, view, **{"If-None-Match": etag})
        assert reply.status == 200 and reply.headers["etag"] != etag
        assert reply.json == history.json("status")
        etag = reply.headers["etag"]
        return reply

    history("finish", "staging")  # the CLI in the same repository
    assert fresh().json[1]["current"]["number"] == 2
    make_commit(repo, "another fix")  # a branch moved: pending changes
    assert fresh().json[1]["pending"] == 1
    history("target", "edit", "staging", "--hanging-after", "1m", "--failed-after", "2m")
    history("start", "staging", "--commit", "app:release:HEAD")
    fresh()
    history("sweep", "--now", "+1h")  # the watcher's pass: timeouts as ordinary changes
    assert fresh().json[1]["in_flight"] is None
    # a ref that a push brings in (fetch from a server into this repository)
    other = Deploy(bare)
    other("target", "create", "pushed")
    git(repo, "fetch", "-q", str(bare), "refs/deployments/pushed:refs/deployments/pushed")
    assert [row["target"] for row in fresh().json] == ["production", "pushed", "staging"]
    git(repo, "pack-refs", "--all")  # the same tips, packed: the same answer
    assert served.get(path, view, **{"If-None-Match": etag}).status == 304


def test_a_kept_etag_is_the_etag_of_its_state(repo: Path) -> None:
    """The ETags the cache remembers are etag_of's, whatever states come and go."""
    from git_deployments.web import queries
    from git_deployments.web.cache import AnswerCache, etag_of
    from git_deployments.web.projects import Project

    project = Project.open(repo)
    kept = AnswerCache(max_entries=3)
    asked = [queries.status(project.name, False), queries.status(project.name, True),
             queries.target(project.name, "production")]
    states = [(None,), ((1, 2, 3, 4), (("refs/deployments/a", "0" * 40),)),
              ((1, 2, 3, 4), (("refs/deployments/a", "1" * 40),)), ()]
    for _ in range(2):
        for query in asked:
            for state in states:
                assert kept.etag(project, query, state) == \
                    etag_of(project, query.path, query.params, state)
    assert len({kept.etag(project, asked[0], state) for state in states}) == len(states)


# --- stopping -------------------------------------------------------------------------------------


def test_sigterm_finishes_the_requests_in_flight_then_exits_0(repo: Path, history: Deploy,
                                                              tokens: Any, start: Any) -> None:
    served = start(repo)
    body = json.dumps({"message": "sent slowly"}).encode()
    slow = socket.create_connection((served.host, served.port), timeout=60)
    slow.sendall((f"POST /api/v1/projects/_/targets/production/comments HTTP/1.1\r\n"
                  f"Host: {served.host}\r\nAuthorization: Bearer {tokens['deploy']}\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                  ).encode() + body[:5])
    # a full answer on another connection: the server has read everything sent before it
    assert served.get("/healthz").status == 200
    served.process.send_signal(signal.SIGTERM)
    slow.sendall(body[5:])
    answer = b""
    while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
        chunk = slow.recv(65536)
        if not chunk:
            break
        answer += chunk
    slow.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert served.process.wait(timeout=60) == 0
    assert history.json("log", "production")[0]["op"] == "comment"


# --- nothing lost: every writer beside the server --------------------------------------------


def test_no_write_is_lost_or_applied_twice(tmp_path: Path, repo: Path, start: Any) -> None:
    """Two server processes (--workers 2) taking start/finish pairs from eight clients, while
    `git deploy` writes in the same repository, a clone pushes through pre-receive and the
    watcher applies timeouts."""
    server = tmp_path / "srv" / "app.git"
    server.parent.mkdir()
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(server))
    on_server = Deploy(server)
    on_server("install-hooks")
    clients, pairs = 8, 4
    for n in range(clients):
        on_server("target", "create", f"t{n}")
    on_server("target", "create", "cli")
    on_server("target", "create", "slow", "--hanging-after", "1m", "--failed-after", "2m")
    on_server("start", "slow", "--commit", "app:main:HEAD")
    secret = token(server, "ci", "view,modify-deployments")
    served = start(server, "--workers", "2")
    local = tmp_path / "clone"
    git(tmp_path, "clone", "-q", server.as_uri(), str(local))
    git(local, "config", "deploy.repository", "app")
    pusher = Deploy(local)
    pusher("init")
    pusher("target", "create", "pushed", "--sync")
    outcomes: dict[str, list[int]] = {}
    lock = threading.Lock()

    def note(kind: str, code: int) -> None:
        with lock:
            outcomes.setdefault(kind, []).append(code)

    def http_client(n: int) -> None:
        for _ in range(pairs):
            for op in ("start", "finish"):
                reply = served.post(f"/api/v1/projects/_/targets/t{n}/deployments/{op}",
                                    {"commit": ["app:main:HEAD"], "version": "1"}, secret)
                note(f"t{n}", reply.status)

    def cli_writer() -> None:
        for i in range(6):
            note("cli", on_server("comment", "cli", "-m", f"note {i}", ok=False).returncode)

    def push_writer() -> None:
        for i in range(3):
            note("pushed", pusher("comment", "pushed", "-m", f"pushed {i}", "--sync",
                                  ok=False).returncode)

    def watcher() -> None:
        note("slow", on_server("sweep", "--now", "+1h", ok=False).returncode)

    threads = [threading.Thread(target=http_client, args=(n,)) for n in range(clients)]
    threads += [threading.Thread(target=cli_writer), threading.Thread(target=push_writer),
                threading.Thread(target=watcher)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert all(not thread.is_alive() for thread in threads)
    for n in range(clients):
        assert outcomes[f"t{n}"] == [200] * (2 * pairs)
    assert outcomes["cli"] == [0] * 6 and outcomes["pushed"] == [0] * 3
    assert outcomes["slow"] == [0]
    expected = {**{f"t{n}": 1 + 2 * pairs for n in range(clients)}, "cli": 7, "pushed": 4}
    for key in (*expected, "slow"):
        log = git(server, "log", "--format=%H", f"refs/deployments/{key}").splitlines()
        ops = git(server, "log", "--format=%(trailers:key=Deploy-Op-Id,valueonly)",
                  f"refs/deployments/{key}").split()
        assert len(ops) == len(log) == len(set(ops)), key  # every change once
        if key in expected:
            assert len(log) == expected[key], key
    assert on_server.json("show", "slow", "1")["status"] == "failed"  # by the watcher's pass
    shown = on_server.json("list", "t0")
    assert [d["status"] for d in shown] == ["current"] + ["completed"] * (pairs - 1)
    assert on_server("fsck").returncode == 0
    assert served.stop() == 0


def test_a_target_that_cannot_be_read_never_hides_the_others(repo: Path, history: Deploy,
                                                            tokens: Any, start: Any) -> None:
    from test_store import plant

    plant(repo, {"index.yaml": b"a: &b [1]\nc: *b\n"}, "staging")
    served = start(repo)
    rows = served.get("/api/v1/projects/_/status", tokens["view"]).json
    assert rows[0]["target"] == "production" and rows[0]["current"]["number"] == 2
    assert rows[1]["target"] == "staging" and "anchors are not allowed" in rows[1]["error"]
    reply = served.get("/api/v1/projects/_/targets/staging", tokens["view"])
    assert (reply.status, reply.error["code"]) == (500, "corrupt_record")
    assert "refs/deployments/staging@" in reply.error["message"]
    before = refs(repo)
    refused = served.post("/api/v1/projects/_/targets/staging/comments", {"message": "hi"},
                          tokens["deploy"])
    assert refused.status == 500 and refs(repo) == before
