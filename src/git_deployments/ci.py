"""What a CI job's environment says: branch, commit, a link to the job, who runs it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


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


def _strip_remote(branch: str | None) -> str | None:
    # Jenkins reports `origin/main`; refs/heads/ prefixes appear in several systems
    if branch is None:
        return None
    for prefix in ("refs/heads/", "origin/", "remotes/origin/"):
        if branch.startswith(prefix):
            branch = branch[len(prefix):]
    return branch or None


def detect(env: Mapping[str, str] | None = None) -> CIContext | None:
    """The CI system running this process, from its environment variables (None outside CI)."""
    env = os.environ if env is None else env
    generic = {
        "target": _get(env, "GIT_DEPLOY_TARGET"),
        "version": _get(env, "GIT_DEPLOY_VERSION"),
    }
    found: CIContext | None = None
    if env.get("GITHUB_ACTIONS") == "true":
        server = _get(env, "GITHUB_SERVER_URL") or "https://github.com"
        repo, run = _get(env, "GITHUB_REPOSITORY"), _get(env, "GITHUB_RUN_ID")
        branch = _get(env, "GITHUB_HEAD_REF")
        if branch is None and env.get("GITHUB_REF_TYPE", "branch") == "branch":
            branch = _get(env, "GITHUB_REF_NAME") or _strip_remote(_get(env, "GITHUB_REF"))
        found = CIContext(
            system="GitHub Actions", branch=branch, commit=_get(env, "GITHUB_SHA"),
            url=f"{server}/{repo}/actions/runs/{run}" if repo and run else None,
            label="GitHub Actions", actor=_get(env, "GITHUB_ACTOR"),
        )
    elif env.get("GITLAB_CI") == "true":
        name, email = _get(env, "GITLAB_USER_NAME"), _get(env, "GITLAB_USER_EMAIL")
        found = CIContext(
            system="GitLab CI",
            branch=_get(env, "CI_COMMIT_BRANCH", "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME",
                        "CI_COMMIT_REF_NAME"),
            commit=_get(env, "CI_COMMIT_SHA"), url=_get(env, "CI_JOB_URL", "CI_PIPELINE_URL"),
            label="GitLab CI",
            actor=f"{name} <{email}>" if name and email else _get(env, "GITLAB_USER_LOGIN"),
        )
    elif _get(env, "TEAMCITY_VERSION"):
        found = CIContext(
            system="TeamCity",
            branch=_strip_remote(_get(env, "TEAMCITY_BUILD_BRANCH", "BUILD_BRANCH")),
            commit=_get(env, "BUILD_VCS_NUMBER"), url=_get(env, "BUILD_URL"),
            label="TeamCity", actor=_get(env, "BUILD_USER"),
        )
    elif _get(env, "JENKINS_URL", "JENKINS_HOME"):
        found = CIContext(
            system="Jenkins",
            branch=_strip_remote(_get(env, "BRANCH_NAME", "GIT_LOCAL_BRANCH", "GIT_BRANCH")),
            commit=_get(env, "GIT_COMMIT"), url=_get(env, "BUILD_URL"),
            label="Jenkins", actor=_get(env, "BUILD_USER_ID", "BUILD_USER"),
        )
    overrides = {
        "branch": _get(env, "GIT_DEPLOY_BRANCH"),
        "commit": _get(env, "GIT_DEPLOY_COMMIT"),
        "url": _get(env, "GIT_DEPLOY_EXT_URL"),
        "label": _get(env, "GIT_DEPLOY_EXT_LABEL"),
        "actor": _get(env, "GIT_DEPLOY_ACTOR"),
        **generic,
    }
    if found is None:
        if not any(overrides.values()):
            return None
        found = CIContext(system="environment")
    merged = {**found.__dict__, **{k: v for k, v in overrides.items() if v}}
    return CIContext(**merged)
