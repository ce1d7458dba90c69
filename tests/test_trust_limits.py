"""Every limit lives in the records' model, so the command line, the server's pre-receive hook,
fsck, pull and every reader refuse the same values with the same words; and one target the
watcher cannot handle is named and skipped while the others are served."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import Deploy, git
from git_deployments.core import machine, model
from git_deployments.core.intake import new_request
from git_deployments.core.model import Comment, Edit, EditTarget, ExternalLink, Request, Status
from git_deployments.core.model import Deploy as DeployRequest
from git_deployments.core.store import Store
from git_deployments.core.timeutil import later
from git_deployments.errors import InvalidValue
from git_deployments.git.repo import open_repository
from test_hooks import REF, push, refused, shared  # noqa: F401
from test_notify import Recorder
from test_store import plant
from test_sync import CloneFactory, clone, ref_of, server  # noqa: F401
from test_watch_daemon import Daemon, daemons, wait_for  # noqa: F401

DURATION_LIMIT = "must be between 1s and 365d"
TIME_LIMIT = "must be between 1970-01-01 and 9000-01-01 (UTC)"
T0 = "2026-01-01T00:00:00Z"


def one_error(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused command prints (and nothing else, no traceback)."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# --- the holes the command line alone could open ----------------------------------------------


def test_the_command_line_cannot_make_a_deadline_past_the_end_of_time(repo: Path,
                                                                      deploy: Deploy) -> None:
    line = one_error(deploy("target", "create", "s", "--failed-after", "366d", code=1))
    assert line == f"error: invalid duration '366d': {DURATION_LIMIT}"
    deploy("target", "create", "s", "--failed-after", "365d")
    line = one_error(deploy("start", "s", "--commit", "app:main:HEAD", code=1,
                            env={"GIT_DEPLOY_NOW": "9999-12-29T00:00:00Z"}))
    assert line == f"error: invalid GIT_DEPLOY_NOW '9999-12-29T00:00:00Z': {TIME_LIMIT}"
    line = one_error(deploy("schedule", "s", "--commit", "app:main", "--at",
                            "9000-01-01T00:00:00Z", code=1))
    assert line == f"error: invalid time '9000-01-01T00:00:00Z': {TIME_LIMIT}"
    assert deploy("sweep").returncode == 0
    assert deploy.json("list", "s") == []


def test_timeouts_out_of_order_are_refused_in_the_model_words(repo: Path,
                                                              deploy: Deploy) -> None:
    deploy("target", "create", "s", "--failed-after", "10m")
    line = one_error(deploy("target", "edit", "s", "--hanging-after", "1h", code=1))
    assert line == ("error: invalid timeouts: hanging after (1h) must be shorter than failed "
                    "after (10m)")
    with pytest.raises(InvalidValue) as refusal:
        model.Target.model_validate({
            "key": "s", "name": "s", "repository": "app", "repositories": [{"name": "app"}],
            "hanging_after": 3600, "failed_after": 600, "created_at": T0})
    assert f"error: {refusal.value}" == line


def test_deadlines_never_overflow() -> None:
    """Deadline arithmetic holds at the last time there is, whatever a record says."""
    end = datetime.max.replace(tzinfo=UTC)
    assert later(datetime(8999, 12, 31, tzinfo=UTC), 10**12) == end
    assert later(datetime(2026, 1, 1, tzinfo=UTC), 60) == datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    start = datetime(9999, 12, 29, tzinfo=UTC)
    target = model.Target.model_validate({
        "key": "s", "name": "s", "repository": "app", "repositories": [{"name": "app"}],
        "hanging_after": 60, "failed_after": 120, "created_at": T0})
    record = model.Deployment.model_validate({
        "number": 1, "status": "deploying", "commits": [], "created_at": T0,
        "updated_at": T0, "history": [{"status": "deploying", "at": T0, "by": "a <a@b>",
                                       "op": "start"}]})
    # values no record may hold, put in place without validation (as a bug might)
    record = record.model_copy(update={"created_at": start, "history": [
        record.history[0].model_copy(update={"at": start})]})
    target = target.model_copy(update={"failed_after": 10**12})
    assert machine.is_due(record, target, datetime(9999, 12, 31, tzinfo=UTC)) is Status.HANGING
    assert machine.next_deadline(record, target) == later(start, 60)


# --- hostile records: readers name them, the watcher skips them -------------------------------

Rewrite = Callable[[str], str]


def replaced(old: str, new: str) -> Rewrite:
    def rewrite(text: str) -> str:
        assert old in text, text
        return text.replace(old, new)

    return rewrite


HOSTILE = {
    "huge-timeout": ("target.yaml", replaced("failed_after: 3600", "failed_after: 1000000000000"),
                     f"target.yaml: invalid failed after: {DURATION_LIMIT}"),
    "year-9999": ("deployments/1.yaml", replaced(T0, "9999-12-29T00:00:00Z"),
                  f"deployments/1.yaml: invalid created at: {TIME_LIMIT}"),
    "before-1970": ("deployments/1.yaml", replaced(f"'{T0}'", "'0001-01-01T00:00:00+01:00'"),
                    f"deployments/1.yaml: invalid created at: {TIME_LIMIT}"),
    "number-as-text": ("deployments/1.yaml", replaced("number: 1\n", "number: '1'\n"),
                       "deployments/1.yaml: invalid number: Input should be a valid integer"),
    "huge-number": ("deployments/1.yaml", replaced("number: 1\n", f"number: 1{'0' * 5000}\n"),
                    "deployments/1.yaml: record is not valid YAML"),
    "javascript-link": ("deployments/1.yaml",
                        replaced("url: https://ci.example/1", "url: javascript:alert(1)"),
                        ("deployments/1.yaml: invalid external link.url: expected an http:// "
                         "or https:// URL")),
}


def start_at_t0(deploy: Deploy, key: str, *options: str) -> None:
    deploy("target", "create", key, *options)
    deploy("start", key, "--commit", "app:main:HEAD", "--ext-url", "https://ci.example/1",
           env={"GIT_DEPLOY_NOW": T0})


def make_hostile(repo: Path, deploy: Deploy, case: str, key: str = "a-bad") -> str:
    """Target `key` with deployment #1 in flight, its tip then replaced (git plumbing) by a
    commit holding the hostile record; returns the refusal every reader gives."""
    start_at_t0(deploy, key, "--failed-after", "1h")
    path, rewrite, reason = HOSTILE[case]
    text = git(repo, "show", f"refs/deployments/{key}:{path}") + "\n"
    plant(repo, {path: rewrite(text).encode()}, key)
    return reason


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_readers_name_a_hostile_record_and_its_fault(repo: Path, deploy: Deploy,
                                                     case: str) -> None:
    reason = make_hostile(repo, deploy, case)
    tip = git(repo, "rev-parse", "refs/deployments/a-bad")
    where = f"error: refs/deployments/a-bad@{tip[:12]}:"
    reading = [["show", "a-bad", "1"], ["list", "a-bad"], ["show", "a-bad", "1", "--json"]]
    if case == "huge-timeout":
        reading.append(["target", "show", "a-bad"])
    for args in reading:
        line = one_error(deploy(*args, code=1))
        assert line.startswith(f"{where}{reason}"), (args, line)


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_sweep_skips_a_hostile_target_and_serves_the_others(tmp_path: Path, repo: Path,
                                                            deploy: Deploy, case: str) -> None:
    reason = make_hostile(repo, deploy, case)
    start_at_t0(deploy, "prod", "--hanging-after", "1m")
    rec = Recorder(tmp_path, "rec")
    deploy("subscribe", "--all", "--exec", rec.command(), "--on", "hanging")
    result = deploy("sweep", "--now", "2026-01-01T00:05:00Z", "--json")
    skipped = [line for line in result.stderr.splitlines() if "a-bad" in line]
    assert len(skipped) == 1, result.stderr
    assert re.fullmatch(rf"\S+ a-bad: skipped: cannot apply its timeouts: "
                        rf"refs/deployments/a-bad@[0-9a-f]{{12}}:{re.escape(reason)}.*",
                        skipped[0]), skipped
    assert "Traceback" not in result.stderr
    # the good target was served: its timeout written, its subscriber told
    timeouts = json.loads(result.stdout)["timeouts"]
    assert [(t["target"], t["number"], t["to"]) for t in timeouts] == [("prod", 1, "hanging")]
    assert deploy.json("show", "prod", "1")["status"] == "hanging"  # type: ignore[index]
    assert rec.changes() == [("prod", 1, "deploying", "hanging")]


def test_the_watcher_outlives_a_hostile_target(tmp_path: Path, repo: Path, deploy: Deploy,
                                               daemons: list[Daemon]) -> None:  # noqa: F811
    make_hostile(repo, deploy, "huge-timeout")
    deploy("target", "create", "prod", "--hanging-after", "2s")
    rec = Recorder(tmp_path, "rec")
    deploy("subscribe", "--all", "--exec", rec.command(), "--on", "deploying,hanging")
    daemon = Daemon(repo, tmp_path / "watch.log").start()
    daemons.append(daemon)
    deploy("start", "prod")
    wait_for(lambda: deploy.json("show", "prod", "1")["status"] == "hanging",  # type: ignore[index]
             "the good target's timeout")
    wait_for(lambda: ("prod", 1, "deploying", "hanging") in rec.changes(), "its notification")
    assert daemon.proc is not None and daemon.proc.poll() is None
    skipped = [line for line in daemon.text().splitlines() if "a-bad: skipped" in line]
    assert len(skipped) == 1 and f"invalid failed after: {DURATION_LIMIT}" in skipped[0], \
        daemon.text()
    assert "Traceback" not in daemon.text()
    code, _ = daemon.stop(signal.SIGTERM)
    assert code == 0


# --- forged pushes: the server's hook refuses what the command line refuses -------------------


def forge_consistent(deploy: Deploy, request: Request, message: tuple[str, str],
                     files: dict[str, tuple[str, str]] | None = None) -> str:
    """A timeline commit whose recorded request and tree agree, as a hand-written tool would
    make them: `request` prepared legitimately, then the same value rewritten in its recorded
    request (`message`: old, new) and in its records (`files`: path -> old, new)."""
    gitrepo = open_repository(deploy.cwd)
    tip = gitrepo.read_ref(REF)
    legit = Store(gitrepo).prepare("production", tip, request)
    info = gitrepo.commit_info(legit.commit)
    changes = {}
    for path, (old, new) in (files or {}).items():
        raw = gitrepo.read_path(info.tree, path)
        assert raw is not None and old.encode() in raw, (path, raw)
        changes[path] = raw.replace(old.encode(), new.encode())
    tree = gitrepo.write_tree(info.tree, changes) if changes else info.tree
    assert message[0] in info.message, info.message
    return gitrepo.create_commit(tree, [tip] if tip else [], info.message.replace(*message),
                                 info.author, info.author_time)


def production_request(deploy: Deploy, cls: type[Request], **fields: object) -> Request:
    return new_request(cls, open_repository(deploy.cwd), "production", **fields)


FORGERIES: dict[str, tuple[Callable[[Deploy], str], str]] = {
    "hanging-after-huge": (
        lambda a: forge_consistent(
            a, production_request(a, EditTarget, settings={"hanging_after": 60}),
            ('"hanging_after":60', '"hanging_after":1000000000000'),
            {"target.yaml": ("hanging_after: 60\n", "hanging_after: 1000000000000\n")}),
        f"invalid settings.hanging after: {DURATION_LIMIT}"),
    "javascript-link": (
        lambda a: forge_consistent(
            a, production_request(a, Edit, number=1, external_link=ExternalLink(
                label="CI", url="https://ci.example/1")),
            ('"url":"https://ci.example/1"', '"url":"javascript:alert(1)"'),
            {"deployments/1.yaml": ("url: https://ci.example/1", "url: javascript:alert(1)")}),
        "invalid external link.url: expected an http:// or https:// URL"),
    "number-as-text": (
        lambda a: forge_consistent(a, production_request(a, Comment, number=1, text="hi"),
                                   ('"number":1', '"number":"1"')),
        "invalid number: Input should be a valid integer"),
    "before-1970": (
        lambda a: forge_consistent(a, production_request(a, Comment, text="hi",
                                                         at=datetime(2026, 1, 1, tzinfo=UTC)),
                                   (f'"at":"{T0}"', '"at":"1969-12-31T23:59:59Z"')),
        f"invalid at: {TIME_LIMIT}"),
    "year-9999": (
        lambda a: forge_consistent(a, production_request(a, Comment, text="hi",
                                                         at=datetime(2026, 1, 1, tzinfo=UTC)),
                                   (f'"at":"{T0}"', '"at":"9999-12-30T00:00:00Z"')),
        f"invalid at: {TIME_LIMIT}"),
}


@pytest.mark.parametrize("case", sorted(FORGERIES))
def test_a_forged_push_past_the_limits_is_refused_by_the_hook(shared: Deploy,  # noqa: F811
                                                              server: Path,  # noqa: F811
                                                              case: str) -> None:
    forge, reason = FORGERIES[case]
    commit = forge(shared)
    before = ref_of(server)
    [line] = refused(push(shared, f"{commit}:{REF}"))
    assert line == f"error: {REF}: {commit[:12]}: recorded request is invalid ({reason})"
    assert ref_of(server) == before


def test_hook_pull_fsck_and_command_line_refuse_alike(shared: Deploy,  # noqa: F811
                                                      server: Path,  # noqa: F811
                                                      clone: CloneFactory) -> None:  # noqa: F811
    forge, reason = FORGERIES["hanging-after-huge"]
    commit = forge(shared)
    [hook] = refused(push(shared, f"{commit}:{REF}"))
    assert hook.endswith(f"({reason})")
    # the command line: the same words for the same limit
    line = one_error(shared("target", "edit", "production", "--hanging-after", "400d", code=1))
    assert line == f"error: invalid duration '400d': {DURATION_LIMIT}"
    # on the server by other means (an administrator's update-ref): pull leaves it out
    landed = subprocess.run(["git", "push", "origin", f"{commit}:refs/heads/forged"],
                            cwd=shared.cwd, capture_output=True, text=True, check=False)
    assert landed.returncode == 0, landed.stderr
    git(server, "update-ref", REF, commit)
    b = clone("b")
    pulled = b("pull", ok=False)
    assert reason in pulled.stdout + pulled.stderr, (pulled.stdout, pulled.stderr)
    assert ref_of(b.cwd) is None
    # in a clone by other means (a fetch or an update-ref without the tool): fsck names it
    git(shared.cwd, "update-ref", REF, commit)
    checked = shared("fsck", ok=False)
    assert checked.returncode == 1 and reason in checked.stdout + checked.stderr, \
        (checked.stdout, checked.stderr)


def test_the_limits_are_the_models(shared: Deploy) -> None:  # noqa: F811
    """The command line made these requests; the same values in a recorded request are refused
    with the same reason (the model is the judge)."""
    gitrepo = open_repository(shared.cwd)
    with pytest.raises(InvalidValue, match=re.escape(DURATION_LIMIT)):
        new_request(EditTarget, gitrepo, "production", settings={"failed_after": 366 * 86400})
    with pytest.raises(InvalidValue, match="invalid number: Input should be a valid "):
        new_request(DeployRequest, gitrepo, "production", op="finish", number="3")
    with pytest.raises(InvalidValue, match=re.escape(TIME_LIMIT)):
        new_request(Comment, gitrepo, "production", text="x",
                    at=datetime(1969, 12, 31, tzinfo=UTC))
