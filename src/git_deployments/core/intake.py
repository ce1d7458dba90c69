"""A front end's input turned into requests: who asks, when, and which commits exactly. The
command line and the server build every request here, so they refuse alike.

With `environment=False` (the server) nothing is taken from the process's environment: no CI
job's branch, commit, link or user, and no GIT_DEPLOY_TARGET; the asker is given as `by`."""

from __future__ import annotations

import getpass
import os
import re
import socket
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from git_deployments.core import ci
from git_deployments.core.model import (
    COMMIT_PATTERN,
    MAX_HEALTH_FAILURES,
    MAX_HEALTH_TIMEOUT,
    REPOSITORY_PATTERN,
    ArchiveTarget,
    Comment,
    CommitRef,
    CreateTarget,
    Delete,
    Deploy,
    Edit,
    EditTarget,
    ExternalLink,
    HealthCheck,
    OpenIncident,
    Request,
    ResolveIncident,
    SetStatus,
    Target,
    branch_is_valid,
    key_problem,
    timeouts_problem,
    url_problem,
)
from git_deployments.core.timeutil import format_duration, now, parse_datetime
from git_deployments.errors import DeployError, InvalidValue, NotFound, UsageError
from git_deployments.git.repo import GitRepo, Person

if TYPE_CHECKING:
    from collections.abc import Mapping

    from git_deployments.core.store import Store

DEFAULT_HANGING = 30 * 60  # what `--hanging-after on` means
DEFAULT_FAILED = 120 * 60

R = TypeVar("R", bound=Request)


def actor(git: GitRepo | None) -> str:
    """Who asks: GIT_DEPLOY_ACTOR, the CI's user, git's identity, else user@host."""
    given = os.environ.get("GIT_DEPLOY_ACTOR")
    if given is not None and not _PERSON.match(given.strip()):
        raise DeployError(f"invalid GIT_DEPLOY_ACTOR {given[:80]!r}: use 'Name <email>'")
    context = ci.detect()
    if context and context.actor:
        return _person(context.actor)
    name, email = os.environ.get("GIT_AUTHOR_NAME"), os.environ.get("GIT_AUTHOR_EMAIL")
    if name and email:
        return str(Person(name, email))
    identity = git.identity() if git else None
    if identity:
        return str(identity)
    user = getpass.getuser()
    return f"{user} <{user}@{socket.gethostname()}>"


_PERSON = re.compile(r"^[^<>\x00-\x1f]+ <[^<>\s]+>\Z")


def _person(text: str) -> str:
    return " ".join(text.split())[:200]


def clock() -> datetime:
    """Now — or GIT_DEPLOY_NOW (ISO 8601), the time to stamp on changes and to measure
    relative times from: for backfilling history, demos and tests."""
    value = os.environ.get("GIT_DEPLOY_NOW", "").strip()
    if not value:
        return now()
    try:
        return parse_datetime(value)
    except DeployError as exc:
        reason = str(exc).split(": ", 1)[-1]
        raise DeployError(f"invalid GIT_DEPLOY_NOW {value!r}: {reason}") from None


def default_target(target: str | None) -> str:
    """The target named on the command line, else a CI job's GIT_DEPLOY_TARGET."""
    if target is not None:
        return target
    context = ci.detect()
    if context is None or context.target is None:
        raise UsageError("the following arguments are required: target (or set "
                         "GIT_DEPLOY_TARGET)")
    problem = key_problem(context.target)
    if problem:
        raise UsageError(f"invalid GIT_DEPLOY_TARGET {context.target!r}: {problem}")
    return context.target


def new_request(cls: type[R], git: GitRepo | None, target: str, **fields: Any) -> R:
    """A request stamped with a fresh id, the time (see `clock`) and the asker."""
    base: dict[str, Any] = {"op_id": uuid.uuid4().hex, "target": target}
    base.setdefault("at", fields.pop("at", None) or clock())
    base.setdefault("by", fields.pop("by", None) or actor(git))
    return cls.model_validate({**base, **fields})  # InvalidValue names what is refused


def parse_commit_ref(spec: str, home: str) -> tuple[str, str | None, str | None]:
    """`REPO:BRANCH[:COMMIT|HEAD]` -> (repository, branch, commit-ish or None).

    A spec without ':' is a commit-ish of this repository on the branch given elsewhere.
    """
    if len(spec) > 400 or any(ord(c) < 32 for c in spec):
        raise DeployError(f"invalid commit ref {spec[:40]!r}")
    parts = spec.split(":")
    if len(parts) == 1:
        return home, None, parts[0] or None
    if len(parts) > 3 or not all(parts[:2]):
        raise DeployError(
            f"invalid commit ref {spec!r}: use REPO:BRANCH[:COMMIT], e.g. "
            f"{home}:main:HEAD")
    repository, branch = parts[0], parts[1]
    commit = parts[2] if len(parts) == 3 and parts[2] else None
    return repository, branch, commit


def check_names(repository: str, branch: str) -> None:
    if not REPOSITORY_PATTERN.match(repository):
        raise DeployError(f"invalid repository name {repository!r}")
    if not branch_is_valid(branch):
        raise DeployError(f"invalid branch name {branch!r}")


def resolve_refs(git: GitRepo, target: Target, specs: list[str], *, branch: str | None,
                 op: str, environment: bool = True) -> list[CommitRef]:
    """Full commit refs for `--commit` values; with none given, this checkout's (or the CI's)
    branch and commit, except for finish and fail, which then mean the deployment in flight."""
    context = ci.detect() if environment else None
    refs: list[CommitRef] = []
    if not specs:
        if op in ("finish", "fail") and branch is None:
            return []
        return [default_ref(git, target, branch, context)]
    for spec in specs:
        repository, ref_branch, commitish = parse_commit_ref(spec, target.repository)
        ref_branch = ref_branch or branch or (context.branch if context else None) or \
            git.head()[0]
        if ref_branch is None:
            raise DeployError(f"no branch known for {spec!r}: use REPO:BRANCH:COMMIT or --branch")
        check_names(repository, ref_branch)
        names = target.repository_names()
        if repository not in names:
            raise DeployError(f"target '{target.key}' has no repository '{repository}' "
                              f"(it lists: {', '.join(names)})")
        commit = resolve_in(git, target, repository, ref_branch, commitish, context)
        refs.append(CommitRef(repository=repository, branch=ref_branch, commit=commit))
    return refs


def default_ref(git: GitRepo, target: Target, branch: str | None,
                context: ci.CIContext | None) -> CommitRef:
    head_branch, head_commit = git.head()
    chosen = branch or (context.branch if context else None) or head_branch
    commit = context.commit if context and context.commit else head_commit
    if chosen is None:
        if head_commit is None:
            raise DeployError("no --commit given and HEAD has no commit; "
                              "pass --commit REPO:BRANCH[:COMMIT]")
        raise DeployError("HEAD is detached and no CI branch is known; "
                          "pass --branch BRANCH or --commit REPO:BRANCH:COMMIT")
    if branch and head_branch and branch != head_branch:
        commit = git.branch_tip(branch) or commit
    if commit is None:
        raise DeployError("no --commit given and HEAD has no commit; "
                          "pass --commit REPO:BRANCH[:COMMIT]")
    check_names(target.repository, chosen)
    return CommitRef(repository=target.repository, branch=chosen,
                     commit=git.resolve_commit(commit))


def resolve_in(git: GitRepo, target: Target, repository: str, branch: str,
               commitish: str | None, context: ci.CIContext | None) -> str | None:
    """The full id of `commitish` in `repository` (None stays None: "latest")."""
    if commitish is None:
        return None
    repo = git if repository == target.repository else _other(git, target, repository)
    if commitish == "HEAD":
        if repo is None:
            raise NotFound(f"cannot resolve HEAD of {repository}:{branch}: repository "
                           f"'{repository}' is not available here; give the full commit id")
        tip = repo.branch_tip(branch)
        if tip is None and repo is git:
            head_branch, head_commit = git.head()
            ci_branch = context.branch if context else None
            if branch in (head_branch, ci_branch):
                tip = (context.commit if context and context.commit else None) or head_commit
        if tip is None:
            raise NotFound(f"branch '{branch}' not found in repository '{repository}'")
        return tip
    if repo is None:
        if COMMIT_PATTERN.match(commitish.lower()):
            return commitish.lower()
        raise NotFound(f"cannot resolve {commitish!r}: repository '{repository}' is not "
                       "available here; give the full 40-hex commit id")
    if commitish.startswith("-"):
        raise DeployError(f"invalid commit {commitish!r}")
    try:
        return repo.resolve_commit(commitish)
    except NotFound:
        if repo is not git:
            raise NotFound(f"unknown commit {commitish!r} in repository '{repository}'") from None
        raise


def _other(git: GitRepo, target: Target, repository: str) -> GitRepo | None:
    """Another repository of the target, where its recorded location is found from here."""
    from git_deployments.core.store import GitOracle

    return GitOracle(git, target).repo_for(repository)


def external_link(label: str | None, url: str | None,
                  environment: bool = True) -> ExternalLink | None:
    """--ext-label/--ext-url, else the CI job's link."""
    if label is None and url is None:
        context = ci.detect() if environment else None
        if context and context.url:
            problem = url_problem(context.url)
            if problem:
                raise DeployError(f"invalid job URL {context.url!r} from the environment "
                                  f"({context.system}): {problem}")
            return ExternalLink(label=context.label or context.system, url=context.url)
        return None
    problem = url_problem(url) if url else None
    if problem:
        raise DeployError(f"invalid --ext-url {url!r}: {problem}")
    if url and not label:
        label = "CI job"  # what a link is called when nobody named it
    return ExternalLink(label=label or "", url=url or "")


def positive_number(text: str) -> int:
    if not text.isdigit() or int(text) < 1 or len(text) > 12:
        raise UsageError(f"invalid deployment number {text!r}")
    return int(text)


# --- the requests of the write commands -----------------------------------------------------------


def deploy_request(store: Store, op: str, target: str | None, *, version: str | None = None,
                   commits: list[str] | None = None, branch: str | None = None,
                   ext_label: str | None = None, ext_url: str | None = None,
                   description: str | None = None, reason: str | None = None,
                   at: str | None = None, number: int | None = None, by: str | None = None,
                   environment: bool = True) -> Deploy:
    """The request of schedule/start/finish/fail: `commits` are REPO:BRANCH[:COMMIT] specs."""
    if environment:
        target = default_target(target)
    elif target is None:
        raise DeployError("no target given")
    specs = list(commits or [])
    snap = store.existing(target)
    record_target, _ = snap.require()
    refs = resolve_refs(store.git, record_target, specs, branch=branch, op=op,
                        environment=environment)
    context = ci.detect() if environment else None
    if version is None and context and context.version and (specs or op in ("schedule",
                                                                           "start")):
        version = context.version
    fields: dict[str, Any] = {
        "op": op, "commits": refs, "version": version, "description": description,
        "reason": reason, "external_link": external_link(ext_label, ext_url, environment),
    }
    if at is not None:
        fields["scheduled_for"] = parse_datetime(at, reference=clock())
    if number is not None:
        fields["number"] = number
    return new_request(Deploy, store.git, target, by=by, **fields)


def set_status_request(store: Store, target: str, number: int, status: str,
                       reason: str | None = None, by: str | None = None) -> SetStatus:
    store.existing(target)
    return new_request(SetStatus, store.git, target, number=number, status=status,
                       reason=reason, by=by)


def edit_request(store: Store, target: str, number: int, *, version: str | None = None,
                 description: str | None = None, ext_label: str | None = None,
                 ext_url: str | None = None, at: str | None = None,
                 by: str | None = None) -> Edit:
    """An edit of display fields; a link given in part keeps the other part."""
    _, record = store.deployment(target, number)
    link = None
    if ext_label is not None or ext_url is not None:
        old = record.external_link
        link = external_link(
            ext_label if ext_label is not None else (old.label if old else ""),
            ext_url if ext_url is not None else (old.url if old else ""), environment=False)
    return new_request(
        Edit, store.git, target, number=number, version=version, description=description,
        external_link=link, scheduled_for=parse_datetime(at) if at else None, by=by)


def delete_request(store: Store, target: str, number: int, by: str | None = None) -> Delete:
    store.deployment(target, number)
    return new_request(Delete, store.git, target, number=number, by=by)


def comment_request(store: Store, target: str, number: int | None, message: str,
                    by: str | None = None) -> Comment:
    if not message.strip():
        raise DeployError("invalid comment: it is empty")
    if number is not None:
        store.deployment(target, number)
    else:
        store.existing(target)
    return new_request(Comment, store.git, target, number=number, text=message, by=by)


def _happened_at(at: str | None) -> datetime | None:
    """`--at`: when something happened, if earlier than now (ISO 8601, 'now' or -DURATION)."""
    if at is None:
        return None
    reference = clock()
    value = at.strip()
    if value.startswith("-"):
        from git_deployments.core.timeutil import parse_duration

        return reference - timedelta(seconds=parse_duration(value[1:]))
    return parse_datetime(at, reference=reference)


def open_incident_request(store: Store, target: str, *, reason: str | None = None,
                          deployment: int | None = None, at: str | None = None,
                          by: str | None = None) -> OpenIncident:
    """An incident opening: attributed to `deployment`, else to the current one; `at` when it
    began, if earlier than now."""
    if deployment is not None:
        store.deployment(target, deployment)
    else:
        store.existing(target)
    return new_request(OpenIncident, store.git, target, reason=reason or None,
                       deployment=deployment, happened_at=_happened_at(at), by=by)


def resolve_incident_request(store: Store, target: str, incident: int | None = None, *,
                             reason: str | None = None, at: str | None = None,
                             by: str | None = None) -> ResolveIncident:
    """An open incident resolved (`incident` None: the only one open); `at` when it ended."""
    store.existing(target)
    return new_request(ResolveIncident, store.git, target, id=incident, reason=reason or None,
                       happened_at=_happened_at(at), by=by)


# --- the requests of the target commands ----------------------------------------------------------


def repositories_with(specs: list[str], existing: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`existing` with each NAME[=LOCATION] of `specs` added, or its location replaced."""
    repos = [dict(r) for r in existing]
    for spec in specs:
        name, sep, location = spec.partition("=")
        entry = {"name": name, "location": location if sep and location else None}
        for repo in repos:
            if repo["name"] == name:
                repo["location"] = entry["location"]
                break
        else:
            repos.append(entry)
    return repos


def check_timeouts(settings: Mapping[str, Any], current: tuple[Any, Any]) -> None:
    """The records' rule (hanging after < failed after), checked before anything is asked of
    the repository, in the model's words."""
    hanging = settings.get("hanging_after", current[0])
    failed = settings.get("failed_after", current[1])
    problem = timeouts_problem(hanging if isinstance(hanging, int) else None,
                               failed if isinstance(failed, int) else None)
    if problem:
        raise DeployError(f"invalid timeouts: {problem}")


HEALTH_OPTIONS = ("health_url", "health_expect", "health_exec", "health_every",
                  "health_timeout", "health_failures")


def split_program(text: str) -> list[str]:
    """A health check's program as its words: split as a shell would, never run by one."""
    import shlex

    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise DeployError(f"invalid health check program {text[:80]!r}: {exc}") from None
    if not words:
        raise DeployError("invalid health check program: it is empty")
    return words


def health_setting(options: Mapping[str, Any], current: HealthCheck | None,
                   ) -> HealthCheck | str | None:
    """The health check the options ask for: a whole check (given settings over `current`),
    "off", or None when no health option is given."""
    from git_deployments.core.machine import health_edited

    given = {name: options[name] for name in HEALTH_OPTIONS if options.get(name) is not None}
    if options.get("health_off"):
        if given:
            raise DeployError("--health-off removes the health check: give it alone, without "
                              "the other --health-* options")
        return "off"
    if not given:
        return None
    url = given.get("health_url")
    if url is not None:
        problem = url_problem(url)
        if problem:
            raise DeployError(f"invalid health check URL {url[:80]!r}: {problem}")
    program = given.get("health_exec")
    words = split_program(program) if program is not None else None
    for name in ("health_every", "health_timeout", "health_failures"):
        value = given.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise DeployError(f"invalid {name.replace('_', ' ')} {value!r}")
    timeout = given.get("health_timeout")
    if timeout is not None and not 1 <= timeout <= MAX_HEALTH_TIMEOUT:
        raise DeployError(f"invalid health check timeout {format_duration(timeout)}: must be "
                          f"between 1s and {format_duration(MAX_HEALTH_TIMEOUT)}")
    failures = given.get("health_failures")
    if failures is not None and not 1 <= failures <= MAX_HEALTH_FAILURES:
        raise DeployError(f"invalid health check failures {failures}: must be between 1 and "
                          f"{MAX_HEALTH_FAILURES}")
    try:
        return health_edited(current, {
            "url": url, "expect": given.get("health_expect"), "exec": words,
            "every": given.get("health_every"), "timeout": timeout, "failures": failures})
    except InvalidValue as exc:
        text = str(exc)  # the model's words: "invalid timeout: ..." or a sentence of its own
        raise DeployError(f"invalid health check {text.removeprefix('invalid ')}"
                          if text.startswith("invalid ") else text) from None


def target_settings(options: Mapping[str, Any], existing: list[dict[str, Any]],
                    current_timeouts: tuple[Any, Any] = (None, None),
                    current_health: HealthCheck | None = None) -> dict[str, Any]:
    """The settings the target options ask for (those given; None is not given)."""
    settings: dict[str, Any] = {}
    if options.get("name") is not None and not str(options["name"]).strip():
        raise DeployError("invalid name: must not be empty (the key is shown when none is set)")
    for name in ("name", "description", "manual_controls", "start_requires_schedule",
                 "schedule_on_push"):
        if options.get(name) is not None:
            settings[name] = options[name]
    if settings.get("schedule_on_push"):  # each branch once, in the order given
        settings["schedule_on_push"] = list(dict.fromkeys(settings["schedule_on_push"]))
    if options.get("no_schedule_on_push"):
        settings["schedule_on_push"] = []
    for name, default in (("hanging_after", DEFAULT_HANGING), ("failed_after", DEFAULT_FAILED)):
        value = options.get(name)
        if value is not None:
            settings[name] = default if value == "on" else value
    check_timeouts(settings, current_timeouts)
    health = health_setting(options, current_health)
    if health is not None:
        settings["health"] = health if isinstance(health, str) else health.model_dump()
    repositories = repositories_with(options.get("repository") or [], existing)
    removed = set(options.get("remove_repository") or [])
    if options.get("repository") or removed:
        settings["repositories"] = [r for r in repositories if r["name"] not in removed]
    return settings


def create_target_request(store: Store, key: str, options: Mapping[str, Any],
                          by: str | None = None) -> CreateTarget:
    """`target create`: the repository holding the ref is named now and recorded."""
    git = store.git
    home = git.default_repository_name()
    existing = [{"name": home, "location": None}]
    settings = target_settings(options, existing)
    settings.setdefault("repositories", existing)
    if home in (options.get("remove_repository") or []):
        raise DeployError(f"'{home}' holds the target's ref and cannot be removed")
    return new_request(CreateTarget, git, key, repository=home, settings=settings, by=by)


def edit_target_request(store: Store, key: str, options: Mapping[str, Any],
                        by: str | None = None) -> EditTarget:
    target, _ = store.existing(key).require()
    if target.repository in (options.get("remove_repository") or []):
        raise DeployError(f"'{target.repository}' holds the target's ref and cannot be removed")
    existing = [r.model_dump() for r in target.repositories]
    settings = target_settings(options, existing, (target.hanging_after, target.failed_after),
                               target.health)
    if not settings:
        raise DeployError("nothing to change: give at least one option (see "
                          "'git deploy target edit -h')")
    return new_request(EditTarget, store.git, key, settings=settings, by=by)


def archive_target_request(store: Store, key: str, archived: bool,
                           by: str | None = None) -> ArchiveTarget:
    store.existing(key).require()
    return new_request(ArchiveTarget, store.git, key, archived=archived, by=by)
