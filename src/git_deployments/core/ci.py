"""What a CI job's environment says: branch, commit, a link to the job, who runs it.

Each system is read from the variables it documents; a generic `GIT_DEPLOY_*` set (target,
version, branch, commit, external label and URL, actor) is read on top, so any CI — or a system
whose branch is not in its environment — can be wired with a few exported variables.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

# the generic set: GIT_DEPLOY_<NAME> -> CIContext field
GENERIC = {
    "TARGET": "target", "VERSION": "version", "BRANCH": "branch", "COMMIT": "commit",
    "EXT_LABEL": "label", "EXT_URL": "url", "ACTOR": "actor",
}
MAX_PROPERTIES_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class CIContext:
    system: str
    branch: str | None = None
    commit: str | None = None
    url: str | None = None
    label: str | None = None
    actor: str | None = None
    target: str | None = None
    version: str | None = None


def _get(env: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def _branch_name(ref: str | None) -> str | None:
    """A branch name from what CI systems report: `main`, `refs/heads/main`, `origin/main`,
    `refs/remotes/origin/main`. Tags and other refs are not branches."""
    if ref is None:
        return None
    for prefix in ("refs/heads/", "refs/remotes/origin/", "remotes/origin/", "origin/"):
        if ref.startswith(prefix):
            return ref[len(prefix):] or None
    if ref.startswith("refs/"):
        return None
    return ref


def _person(name: str | None, email: str | None, system: str,
            login: str | None = None) -> str | None:
    """`Name <email>` of the job's user. Without an email the system gives, the address is
    made from the login under `<system>.invalid` (RFC 2606: never a real mailbox), so it is
    plainly not a person's address, and never the name copied into the email."""
    if not name:
        return None
    if not email:
        local = re.sub(r"[^A-Za-z0-9._+-]+", "-", login or name).strip("-.") or "user"
        email = f"{local}@{system}.invalid"
    return f"{name} <{email}>"


def github_actions(env: Mapping[str, str]) -> CIContext:
    server = _get(env, "GITHUB_SERVER_URL") or "https://github.com"
    repo, run = _get(env, "GITHUB_REPOSITORY"), _get(env, "GITHUB_RUN_ID")
    # a pull request's run names its source branch in GITHUB_HEAD_REF; a push names the branch
    # in GITHUB_REF_NAME (and a tag there when GITHUB_REF_TYPE is `tag`)
    branch = _get(env, "GITHUB_HEAD_REF")
    ref_type = _get(env, "GITHUB_REF_TYPE")
    if branch is None and ref_type == "branch":
        branch = _get(env, "GITHUB_REF_NAME")
    elif branch is None and ref_type is None:
        branch = _branch_name(_get(env, "GITHUB_REF"))
    url = f"{server}/{repo}/actions/runs/{run}" if repo and run else None
    attempt = _get(env, "GITHUB_RUN_ATTEMPT")
    if url and attempt and attempt != "1":
        url += f"/attempts/{attempt}"
    login, login_id = _get(env, "GITHUB_ACTOR"), _get(env, "GITHUB_ACTOR_ID")
    # GitHub's no-reply address, so the timeline's author is a person git can show
    email = f"{login_id}+{login}@users.noreply.github.com" if login_id else \
        f"{login}@users.noreply.github.com"  # the older no-reply form, without the id
    number = _get(env, "GITHUB_RUN_NUMBER")
    workflow = _get(env, "GITHUB_WORKFLOW")
    label = " ".join(part for part in ("GitHub Actions", workflow,
                                       f"#{number}" if number else None) if part)
    return CIContext(system="GitHub Actions", branch=branch, commit=_get(env, "GITHUB_SHA"),
                     url=url, label=label, actor=_person(login, email, "github"))


def gitlab_ci(env: Mapping[str, str]) -> CIContext:
    # CI_COMMIT_REF_NAME is the tag in a tag pipeline: only a branch pipeline names a branch
    branch = _get(env, "CI_COMMIT_BRANCH", "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME")
    if branch is None and not _get(env, "CI_COMMIT_TAG"):
        branch = _get(env, "CI_COMMIT_REF_NAME")
    job = _get(env, "CI_JOB_NAME")
    job_id = _get(env, "CI_JOB_ID")
    label = " ".join(part for part in ("GitLab CI", job, f"#{job_id}" if job_id else None)
                     if part)
    return CIContext(
        system="GitLab CI", branch=branch, commit=_get(env, "CI_COMMIT_SHA"),
        url=_get(env, "CI_JOB_URL", "CI_PIPELINE_URL"), label=label,
        actor=_person(_get(env, "GITLAB_USER_NAME") or _get(env, "GITLAB_USER_LOGIN"),
                      _get(env, "GITLAB_USER_EMAIL"), "gitlab", _get(env, "GITLAB_USER_LOGIN")),
    )


def jenkins(env: Mapping[str, str]) -> CIContext:
    if _get(env, "CHANGE_ID"):
        # a multibranch pull request build: BRANCH_NAME is `PR-12`, the source is CHANGE_BRANCH
        branch = _get(env, "CHANGE_BRANCH")
    else:
        tag = _get(env, "TAG_NAME")
        multibranch = _get(env, "BRANCH_NAME")
        if multibranch == tag:
            multibranch = None
        branch = multibranch or _branch_name(_get(env, "GIT_LOCAL_BRANCH", "GIT_BRANCH"))
    job, number = _get(env, "JOB_NAME"), _get(env, "BUILD_NUMBER")
    label = " ".join(part for part in ("Jenkins", job, f"#{number}" if number else None) if part)
    return CIContext(
        system="Jenkins", branch=branch, commit=_get(env, "GIT_COMMIT"),
        url=_get(env, "BUILD_URL", "RUN_DISPLAY_URL"), label=label,
        # set by the Build User Vars plugin, when installed
        actor=_person(_get(env, "BUILD_USER", "BUILD_USER_ID"), _get(env, "BUILD_USER_EMAIL"),
                      "jenkins", _get(env, "BUILD_USER_ID")),
    )


def teamcity(env: Mapping[str, str]) -> CIContext:
    # TeamCity puts the branch and the server's address in its properties files, not in the
    # environment: TEAMCITY_BUILD_PROPERTIES_FILE names one, which names the configuration's
    props = read_properties(_get(env, "TEAMCITY_BUILD_PROPERTIES_FILE"))
    config = read_properties(props.get("teamcity.configuration.properties.file"))
    every = {**config, **props}
    branch = every.get("teamcity.build.branch")
    if branch in (None, "", "<default>"):
        # no branch specification: the VCS root's branch (`refs/heads/main`) is the one built
        roots = sorted(k for k in every if k.startswith("teamcity.build.vcs.branch."))
        branch = every.get(roots[0]) if roots else every.get("vcsroot.branch")
    server, build_id = every.get("teamcity.serverUrl"), every.get("teamcity.build.id")
    url = f"{server.rstrip('/')}/viewLog.html?buildId={build_id}" if server and build_id else None
    conf, number = _get(env, "TEAMCITY_BUILDCONF_NAME"), _get(env, "BUILD_NUMBER")
    label = " ".join(part for part in ("TeamCity", conf, f"#{number}" if number else None)
                     if part)
    return CIContext(
        system="TeamCity", branch=_branch_name(branch),
        commit=_get(env, "BUILD_VCS_NUMBER") or every.get("build.vcs.number"),
        url=url, label=label,
        actor=_person(every.get("teamcity.build.triggeredBy.username"), None, "teamcity"),
    )


def read_properties(path: str | None) -> dict[str, str]:
    """A Java .properties file as TeamCity writes it (empty when absent or unreadable)."""
    if not path:
        return {}
    try:
        file = Path(path)
        if file.stat().st_size > MAX_PROPERTIES_BYTES:
            return {}
        text = file.read_text(encoding="latin-1")
    except OSError:
        return {}
    found: dict[str, str] = {}
    logical = ""
    for raw in text.splitlines():
        line = raw.lstrip()
        if not logical and (not line or line.startswith(("#", "!"))):
            continue
        # an odd number of trailing backslashes continues the line
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2:
            logical += line[:-1]
            continue
        logical += line
        key, value = _split_property(logical)
        found[key] = value
        logical = ""
    return found


_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _split_property(line: str) -> tuple[str, str]:
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\":
            i += 2
            continue
        if ch in "=: \t\f":
            break
        i += 1
    key, rest = line[:i], line[i:].lstrip(" \t\f")
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(" \t\f")
    return _unescape(key), _unescape(rest)


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2:i + 6]):
                out.append(chr(int(text[i + 2:i + 6], 16)))
                i += 6
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def detect(env: Mapping[str, str] | None = None) -> CIContext | None:
    """The CI system running this process, from its environment (None outside CI and without
    any GIT_DEPLOY_* variable). GIT_DEPLOY_* values override what the system says."""
    env = os.environ if env is None else env
    found: CIContext | None = None
    if env.get("GITHUB_ACTIONS") == "true":
        found = github_actions(env)
    elif env.get("GITLAB_CI") == "true":
        found = gitlab_ci(env)
    elif _get(env, "TEAMCITY_VERSION"):
        found = teamcity(env)
    elif _get(env, "JENKINS_URL") or (_get(env, "JENKINS_HOME") and _get(env, "BUILD_ID")):
        found = jenkins(env)
    given = {field: _get(env, f"GIT_DEPLOY_{name}") for name, field in GENERIC.items()}
    overrides = {field: value for field, value in given.items() if value}
    if found is None:
        if not overrides:
            return None
        found = CIContext(system="environment")
    if "url" in overrides and "label" not in overrides and found.system == "environment":
        overrides["label"] = "CI job"
    return replace(found, **overrides)

