"""CI awareness: what each system's environment says, and `git deploy` driven by it."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import Deploy, git
from git_deployments.core import ci

SHA = "0123456789abcdef0123456789abcdef01234567"


# --- detection, system by system -----------------------------------------------------------


def test_nothing_outside_ci() -> None:
    assert ci.detect({"PATH": "/bin", "CI": "true"}) is None


def test_github_actions_push() -> None:
    found = ci.detect({
        "GITHUB_ACTIONS": "true", "GITHUB_REF": "refs/heads/release", "GITHUB_REF_NAME": "release",
        "GITHUB_REF_TYPE": "branch", "GITHUB_HEAD_REF": "", "GITHUB_SHA": SHA,
        "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "acme/shop",
        "GITHUB_RUN_ID": "991", "GITHUB_RUN_NUMBER": "17", "GITHUB_WORKFLOW": "deploy",
        "GITHUB_ACTOR": "maya", "GITHUB_ACTOR_ID": "4242",
    })
    assert found == ci.CIContext(
        system="GitHub Actions", branch="release", commit=SHA,
        url="https://github.com/acme/shop/actions/runs/991", label="GitHub Actions deploy #17",
        actor="maya <4242+maya@users.noreply.github.com>")


def test_github_actions_pull_request_tag_and_retry() -> None:
    base = {"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "acme/shop", "GITHUB_RUN_ID": "5"}
    pull = ci.detect({**base, "GITHUB_HEAD_REF": "feature/x", "GITHUB_REF": "refs/pull/3/merge",
                      "GITHUB_REF_NAME": "3/merge", "GITHUB_REF_TYPE": "branch"})
    assert pull is not None and pull.branch == "feature/x"
    tag = ci.detect({**base, "GITHUB_REF": "refs/tags/v1.0", "GITHUB_REF_NAME": "v1.0",
                     "GITHUB_REF_TYPE": "tag", "GITHUB_RUN_ATTEMPT": "2"})
    assert tag is not None and tag.branch is None
    assert tag.url == "https://github.com/acme/shop/actions/runs/5/attempts/2"
    # without GITHUB_REF_TYPE (older runners) the full ref tells a branch from a tag
    old = ci.detect({**base, "GITHUB_REF": "refs/tags/v1.0"})
    assert old is not None and old.branch is None
    main = ci.detect({**base, "GITHUB_REF": "refs/heads/main"})
    assert main is not None and main.branch == "main"


def test_gitlab_ci() -> None:
    base = {"GITLAB_CI": "true", "CI_COMMIT_SHA": SHA, "CI_JOB_NAME": "deploy",
            "CI_JOB_ID": "77", "CI_JOB_URL": "https://gitlab.example/acme/shop/-/jobs/77",
            "GITLAB_USER_NAME": "Tom Okafor", "GITLAB_USER_EMAIL": "tom@example.com"}
    branch = ci.detect({**base, "CI_COMMIT_BRANCH": "main", "CI_COMMIT_REF_NAME": "main"})
    assert branch == ci.CIContext(
        system="GitLab CI", branch="main", commit=SHA,
        url="https://gitlab.example/acme/shop/-/jobs/77", label="GitLab CI deploy #77",
        actor="Tom Okafor <tom@example.com>")
    merge = ci.detect({**base, "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "fix/login",
                       "CI_COMMIT_REF_NAME": "fix/login"})
    assert merge is not None and merge.branch == "fix/login"
    # in a tag pipeline CI_COMMIT_REF_NAME is the tag, which is no branch
    tag = ci.detect({**base, "CI_COMMIT_TAG": "v2.0", "CI_COMMIT_REF_NAME": "v2.0"})
    assert tag is not None and tag.branch is None


def test_jenkins() -> None:
    base = {"JENKINS_URL": "https://ci.example/", "GIT_COMMIT": SHA, "JOB_NAME": "shop/deploy",
            "BUILD_NUMBER": "12", "BUILD_URL": "https://ci.example/job/shop/job/deploy/12/"}
    freestyle = ci.detect({**base, "GIT_BRANCH": "origin/release"})
    assert freestyle == ci.CIContext(
        system="Jenkins", branch="release", commit=SHA,
        url="https://ci.example/job/shop/job/deploy/12/", label="Jenkins shop/deploy #12")
    nested = ci.detect({**base, "GIT_BRANCH": "refs/remotes/origin/a/b"})
    assert nested is not None and nested.branch == "a/b"
    multibranch = ci.detect({**base, "BRANCH_NAME": "main", "GIT_BRANCH": "main",
                             "BUILD_USER": "Lena", "BUILD_USER_EMAIL": "lena@example.com"})
    assert multibranch is not None and multibranch.branch == "main"
    assert multibranch.actor == "Lena <lena@example.com>"
    pull = ci.detect({**base, "BRANCH_NAME": "PR-4", "CHANGE_ID": "4",
                      "CHANGE_BRANCH": "feature/y"})
    assert pull is not None and pull.branch == "feature/y"
    tag = ci.detect({**base, "BRANCH_NAME": "v3.1", "TAG_NAME": "v3.1"})
    assert tag is not None and tag.branch is None


def _properties(path: Path, values: dict[str, str]) -> Path:
    # as java.util.Properties.store writes them: ':' and '=' escaped, a comment header
    lines = ["#TeamCity build properties without 'system.' prefix", "#Mon Mar 03 10:00:00 UTC 2025"]
    for key, value in values.items():
        lines.append(f"{key}={value.replace(':', chr(92) + ':').replace('=', chr(92) + '=')}")
    path.write_text("\n".join(lines) + "\n", encoding="latin-1")
    return path


def test_teamcity_reads_its_properties_files(tmp_path: Path) -> None:
    config = _properties(tmp_path / "config.properties", {
        "teamcity.build.branch": "release", "teamcity.serverUrl": "https://tc.example",
        "teamcity.build.triggeredBy.username": "maya",
    })
    build = _properties(tmp_path / "build.properties", {
        "teamcity.build.id": "3051", "build.vcs.number": SHA,
        "teamcity.configuration.properties.file": str(config),
    })
    env = {"TEAMCITY_VERSION": "2025.03 (build 186049)", "BUILD_NUMBER": "88",
           "TEAMCITY_BUILDCONF_NAME": "Deploy", "BUILD_VCS_NUMBER": SHA,
           "TEAMCITY_BUILD_PROPERTIES_FILE": str(build)}
    assert ci.detect(env) == ci.CIContext(
        system="TeamCity", branch="release", commit=SHA,
        url="https://tc.example/viewLog.html?buildId=3051", label="TeamCity Deploy #88",
        actor="maya <maya@teamcity.invalid>")  # TeamCity gives no email: plainly not a mailbox
    # without a branch specification TeamCity says `<default>`: the VCS root's branch is built
    _properties(config, {"teamcity.build.branch": "<default>",
                         "teamcity.build.vcs.branch.Shop_Git": "refs/heads/main"})
    assert ci.detect(env).branch == "main"  # type: ignore[union-attr]
    # properties files that are missing are no error: the environment still says TeamCity
    missing = ci.detect({**env, "TEAMCITY_BUILD_PROPERTIES_FILE": str(tmp_path / "gone")})
    assert missing is not None and missing.branch is None and missing.commit == SHA


def test_java_properties_syntax(tmp_path: Path) -> None:
    path = tmp_path / "p.properties"
    path.write_text(
        "# comment\n! also a comment\n"
        "plain=value\n"
        "spaced : with spaces  \n"
        "path=C\\:\\\\work\\\\agent\n"
        "long=first \\\n    second\n"
        "unicode=caf\\u00e9\n"
        "key\\ with\\ space=x\n"
        "bare\n", encoding="latin-1")
    assert ci.read_properties(str(path)) == {
        "plain": "value", "spaced": "with spaces  ", "path": "C:\\work\\agent",
        "long": "first second", "unicode": "café", "key with space": "x", "bare": "",
    }


def test_generic_set_alone_and_over_a_system() -> None:
    generic = ci.detect({
        "GIT_DEPLOY_TARGET": "staging", "GIT_DEPLOY_VERSION": "1.4.0",
        "GIT_DEPLOY_BRANCH": "main", "GIT_DEPLOY_COMMIT": SHA,
        "GIT_DEPLOY_EXT_URL": "https://ci.example/build/9", "GIT_DEPLOY_ACTOR": "Deploy Bot",
    })
    assert generic == ci.CIContext(
        system="environment", branch="main", commit=SHA, url="https://ci.example/build/9",
        label="CI job", actor="Deploy Bot", target="staging", version="1.4.0")
    mixed = ci.detect({"GITHUB_ACTIONS": "true", "GITHUB_REF_NAME": "main",
                       "GITHUB_REF_TYPE": "branch", "GIT_DEPLOY_BRANCH": "release",
                       "GIT_DEPLOY_EXT_LABEL": "nightly", "GIT_DEPLOY_TARGET": "production"})
    assert mixed is not None
    assert (mixed.system, mixed.branch, mixed.label, mixed.target) == \
        ("GitHub Actions", "release", "nightly", "production")
    assert ci.detect({"GIT_DEPLOY_TARGET": "  "}) is None


# --- end to end: `git deploy` in a detached CI checkout -------------------------------------


def _ci_env(system: str, commit: str) -> tuple[dict[str, str], str, str]:
    """(environment, expected link URL, expected author) of a job for `release` at `commit`."""
    if system == "github":
        return ({"GITHUB_ACTIONS": "true", "GITHUB_REF": "refs/heads/release",
                 "GITHUB_REF_NAME": "release", "GITHUB_REF_TYPE": "branch", "GITHUB_SHA": commit,
                 "GITHUB_REPOSITORY": "acme/app", "GITHUB_RUN_ID": "31",
                 "GITHUB_ACTOR": "maya", "GITHUB_ACTOR_ID": "7"},
                "https://github.com/acme/app/actions/runs/31",
                "maya <7+maya@users.noreply.github.com>")
    if system == "gitlab":
        return ({"GITLAB_CI": "true", "CI_COMMIT_BRANCH": "release", "CI_COMMIT_SHA": commit,
                 "CI_JOB_URL": "https://gitlab.example/app/-/jobs/5",
                 "GITLAB_USER_NAME": "Tom", "GITLAB_USER_EMAIL": "tom@example.com"},
                "https://gitlab.example/app/-/jobs/5", "Tom <tom@example.com>")
    if system == "jenkins":
        return ({"JENKINS_URL": "https://jenkins.example/", "GIT_BRANCH": "origin/release",
                 "GIT_COMMIT": commit, "BUILD_URL": "https://jenkins.example/job/app/3/"},
                "https://jenkins.example/job/app/3/", "Ada Tester <ada@example.com>")
    if system == "teamcity":
        # TeamCity's branch lives in its properties file; here the job maps it explicitly
        return ({"TEAMCITY_VERSION": "2025.03", "BUILD_VCS_NUMBER": commit,
                 "GIT_DEPLOY_BRANCH": "release",
                 "GIT_DEPLOY_EXT_URL": "https://tc.example/viewLog.html?buildId=8"},
                "https://tc.example/viewLog.html?buildId=8", "Ada Tester <ada@example.com>")
    return ({"GIT_DEPLOY_BRANCH": "release", "GIT_DEPLOY_COMMIT": commit,
             "GIT_DEPLOY_EXT_URL": "https://ci.example/9", "GIT_DEPLOY_ACTOR": "Bot <bot@ci>"},
            "https://ci.example/9", "Bot <bot@ci>")


@pytest.mark.parametrize("system", ["github", "gitlab", "jenkins", "teamcity", "generic"])
def test_start_in_a_detached_ci_checkout(repo: Path, deploy: Deploy, system: str) -> None:
    deploy("target", "create", "production")
    release = git(repo, "rev-parse", "release")
    git(repo, "checkout", "-q", "--detach", "release")
    env, url, author = _ci_env(system, release)
    deploy("start", "production", env=env)
    shown = deploy.json("show", "production")
    assert isinstance(shown, dict)
    assert shown["status"] == "deploying"
    assert shown["commits"] == [{"repository": "app", "branch": "release", "commit": release}]
    assert shown["external_link"]["url"] == url
    assert shown["history"][-1]["by"] == author
    # the job's next step needs no options either
    deploy("finish", "production", env=env)
    assert deploy.json("show", "production")["status"] == "current"  # type: ignore[index]


def test_a_detached_checkout_outside_ci_names_no_branch(repo: Path, deploy: Deploy) -> None:
    deploy("target", "create", "production")
    before = git(repo, "rev-parse", "refs/deployments/production")
    git(repo, "checkout", "-q", "--detach", "release")
    refused = deploy("start", "production", code=1)
    assert refused.stderr.startswith("error: ") and refused.stderr.count("\n") == 1
    assert "--branch" in refused.stderr
    assert git(repo, "rev-parse", "refs/deployments/production") == before
    # --branch says it
    deploy("start", "production", "--branch", "release")
    shown = deploy.json("show", "production")
    assert isinstance(shown, dict) and shown["commits"][0]["branch"] == "release"


def test_target_from_the_environment(repo: Path, deploy: Deploy) -> None:
    deploy("target", "create", "staging")
    env = {"GIT_DEPLOY_TARGET": "staging", "GIT_DEPLOY_VERSION": "2.0.0-rc1"}
    done = deploy("start", env=env)
    assert done.stdout.startswith("staging #1: deploying 2.0.0-rc1")
    deploy("finish", env=env)
    assert deploy.json("show", "staging")["status"] == "current"  # type: ignore[index]
    # a target on the command line wins over the environment
    deploy("target", "create", "production")
    deploy("start", "production", env=env)
    assert deploy.json("show", "production")["version"] == "2.0.0-rc1"  # type: ignore[index]


@pytest.mark.parametrize("env, message", [
    ({}, "the following arguments are required: target"),
    ({"GIT_DEPLOY_TARGET": "Not/A/Key"}, "invalid GIT_DEPLOY_TARGET"),
])
def test_missing_or_bad_target_from_the_environment(repo: Path, deploy: Deploy,
                                                     env: dict[str, str], message: str) -> None:
    deploy("target", "create", "staging")
    before = git(repo, "rev-parse", "refs/deployments/staging")
    result = deploy("start", env=env, code=2)
    assert result.stderr.startswith(f"error: {message}") and result.stderr.count("\n") == 1
    assert git(repo, "rev-parse", "refs/deployments/staging") == before


def test_git_deploy_now_sets_the_time_of_a_change(repo: Path, deploy: Deploy) -> None:
    env = {"GIT_DEPLOY_NOW": "2025-03-03T09:30:00Z"}
    deploy("target", "create", "production", env=env)
    deploy("start", "production", env=env)
    deploy("finish", "production", env={"GIT_DEPLOY_NOW": "2025-03-03T10:15:00+01:00"})
    shown = deploy.json("show", "production")
    assert isinstance(shown, dict)
    assert shown["created_at"] == "2025-03-03T09:30:00Z"
    assert [h["at"] for h in shown["history"]] == ["2025-03-03T09:30:00Z",
                                                   "2025-03-03T09:15:00Z"]
    # the timeline commit's author date is the same moment
    assert git(repo, "log", "-1", "--format=%aI", "refs/deployments/production") == \
        "2025-03-03T09:15:00+00:00"
    # and relative times are measured from it
    status = deploy("status", env={"GIT_DEPLOY_NOW": "2025-03-06T09:15:00Z"})
    assert "3 days" in status.stdout


def test_invalid_git_deploy_now_is_refused(repo: Path, deploy: Deploy) -> None:
    deploy("target", "create", "production")
    before = git(repo, "rev-parse", "refs/deployments/production")
    result = deploy("start", "production", env={"GIT_DEPLOY_NOW": "yesterday"}, code=1)
    assert result.stderr.startswith("error: invalid GIT_DEPLOY_NOW 'yesterday'")
    assert result.stderr.count("\n") == 1
    assert git(repo, "rev-parse", "refs/deployments/production") == before


def test_a_ci_job_in_a_fresh_detached_clone_syncs_with_the_server(
        repo: Path, deploy: Deploy, bare: Path, tmp_path: Path) -> None:
    # what docs/ci/*.md set up: the server has the target; the job clones, checks out the
    # commit detached, and records start and finish with --sync
    if deploy("push", "-h", ok=False).returncode != 0:
        pytest.skip("git deploy push is not available yet")
    deploy("target", "create", "production")
    git(repo, "push", "-q", str(bare), "refs/deployments/*:refs/deployments/*")
    job = tmp_path / "job"
    git(tmp_path, "clone", "-q", str(bare), str(job))
    release = git(job, "rev-parse", "origin/release")
    git(job, "checkout", "-q", "--detach", release)
    env, url, _ = _ci_env("github", release)
    steps = Deploy(job)
    steps("start", "production", "--sync", env=env)
    steps("finish", "production", "--sync", env=env)
    on_server = git(bare, "log", "--format=%s", "refs/deployments/production").splitlines()
    assert on_server[0].startswith("production #1: current")
    assert on_server[1].startswith("production #1: deploying")
    record = git(bare, "show", "refs/deployments/production:deployments/1.yaml")
    assert release in record and url in record


def test_a_job_url_that_is_no_url_is_refused(repo: Path, deploy: Deploy) -> None:
    deploy("target", "create", "production")
    before = git(repo, "rev-parse", "refs/deployments/production")
    result = deploy("start", "production", env={"GIT_DEPLOY_EXT_URL": "build 42"}, code=1)
    assert result.stderr.startswith("error: invalid job URL 'build 42' from the environment")
    assert result.stderr.count("\n") == 1
    assert git(repo, "rev-parse", "refs/deployments/production") == before


def test_a_user_without_an_email_never_gets_the_name_as_the_address() -> None:
    github = ci.detect({"GITHUB_ACTIONS": "true", "GITHUB_ACTOR": "octocat"})
    assert github is not None and github.actor == "octocat <octocat@users.noreply.github.com>"
    gitlab = ci.detect({"GITLAB_CI": "true", "GITLAB_USER_NAME": "Jane Doe",
                        "GITLAB_USER_LOGIN": "jdoe"})
    assert gitlab is not None and gitlab.actor == "Jane Doe <jdoe@gitlab.invalid>"
    jenkins = ci.detect({"JENKINS_URL": "https://j", "BUILD_USER": "Ann Lee"})
    assert jenkins is not None and jenkins.actor == "Ann Lee <Ann-Lee@jenkins.invalid>"


def test_an_actor_that_is_not_name_and_email_is_refused(repo: Path, deploy: Deploy) -> None:
    deploy("target", "create", "prod")
    before = git(repo, "for-each-ref")
    for given in ("nobody", "Bot <>", "<bot@ci>", "Bot <bot@ci> extra"):
        result = deploy("start", "prod", code=1, env={"GIT_DEPLOY_ACTOR": given})
        assert result.stderr.startswith("error: invalid GIT_DEPLOY_ACTOR"), given
    assert git(repo, "for-each-ref") == before
    deploy("start", "prod", env={"GIT_DEPLOY_ACTOR": "Deploy Bot <bot@ci.example>"})
    assert deploy.json("show", "prod", "1")["history"][-1]["by"] == "Deploy Bot <bot@ci.example>"
