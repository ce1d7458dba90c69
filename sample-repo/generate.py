#!/usr/bin/env python3
"""Build the demo repository under sample-repo/out/ — the same commits on every run.

    out/bookshelf              a checkout of a small web application (a book catalogue) with
                               five weeks of history: feature branches merged with issue keys,
                               a release branch, tags v1.0.0 … v1.3.0, a hotfix
    out/server/bookshelf.git   its bare "server" remote, with the server hooks installed

and targets `staging` (deploys `main`) and `production` (deploys `release`) with a history in
every status: completed, failed, a rollback, the current one, one left hanging, one scheduled.

Every commit has fixed dates and identities, so its id is the same on every run. Deployment
records get their times from GIT_DEPLOY_NOW, so the records (and the trees of the timelines)
are the same too on one machine (the watcher signs its changes with the host's name); the
timeline commits' ids differ from run to run, as each change carries a fresh id.

Usage: python sample-repo/generate.py [--out DIR] [--quiet]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
NAME = "bookshelf"
ORG = "bookshelf-example"
PEOPLE = {
    "maya": ("Maya Chen", "maya@bookshelf.example"),
    "tom": ("Tom Okafor", "tom@bookshelf.example"),
    "lena": ("Lena Fischer", "lena@bookshelf.example"),
    "ravi": ("Ravi Patel", "ravi@bookshelf.example"),
}
# variables of CI systems and of git that would leak into the sample from the caller's shell
SCRUBBED_PREFIXES = ("GIT_", "GITHUB_", "GITLAB_", "CI_", "JENKINS_", "TEAMCITY_", "BUILD_")
SCRUBBED = {"CI", "BRANCH_NAME", "CHANGE_ID", "CHANGE_BRANCH", "TAG_NAME", "EMAIL"}


def clean_env() -> dict[str, str]:
    """The caller's environment without git or CI settings, and no user or system git config:
    what makes two runs on two machines give the same commits."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(SCRUBBED_PREFIXES) and k not in SCRUBBED}
    env.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
                "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "TZ": "UTC"})
    # git-deploy next to this interpreter comes first: the server hooks run it too
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def shown(path: Path) -> Path:
    """`path` as the reader typed it: relative to the current directory when inside it."""
    return path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path


def as_person(who: str, when: str) -> dict[str, str]:
    name, email = PEOPLE[who]
    return {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_AUTHOR_DATE": when,
            "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email,
            "GIT_COMMITTER_DATE": when}


# --- the application's history -----------------------------------------------------------------

FILES = {
    "README.md": """\
# bookshelf

A small catalogue of books, served over WSGI.

    python -m bookshelf.app      # http://localhost:8000
    python -m pytest

Deployments are tracked with `git deploy` (targets `staging` and `production`).
""",
    "bookshelf/__init__.py":
        '"""bookshelf: a small catalogue of books."""\n\n__version__ = "0.1.0"\n',
    "bookshelf/app.py": '''\
"""The WSGI application."""

from wsgiref.simple_server import make_server

from bookshelf import views

ROUTES = {"/": views.index}


def app(environ, start_response):
    view = ROUTES.get(environ["PATH_INFO"], views.not_found)
    status, body = view(environ)
    start_response(status, [("Content-Type", "text/html; charset=utf-8")])
    return [body.encode()]


if __name__ == "__main__":
    make_server("", 8000, app).serve_forever()
''',
    "bookshelf/views.py": '''\
"""Pages."""

from bookshelf.catalogue import BOOKS


def index(environ):
    items = "".join(f"<li>{book['title']}</li>" for book in BOOKS)
    return "200 OK", f"<h1>bookshelf</h1><ul>{items}</ul>"


def not_found(environ):
    return "404 Not Found", "<h1>not found</h1>"
''',
    "bookshelf/catalogue.py": '''\
"""The books."""

BOOKS = [
    {"title": "The Left Hand of Darkness", "author": "Ursula K. Le Guin"},
    {"title": "Kindred", "author": "Octavia E. Butler"},
    {"title": "Piranesi", "author": "Susanna Clarke"},
]
''',
    "static/style.css": "body { margin: 0 auto; }\n",
    "tests/test_app.py": '''\
from bookshelf import views


def test_index_lists_books():
    status, body = views.index({})
    assert status == "200 OK" and "Kindred" in body
''',
    "scripts/deploy.py": '''\
#!/usr/bin/env python3
"""Stands in for the real deployment (an upload, a restart): says what it would do."""

import sys

target = sys.argv[1] if len(sys.argv) > 1 else "staging"
print(f"bookshelf: building the release for {target}")
print(f"bookshelf: uploading to {target}.bookshelf.example ... done")
''',
    "CHANGELOG.md": "# Changelog\n",
}

# (when, who, branch, subject, {path: text appended (or the whole file, for a new path)})
# branch ops: ("branch", name, start), ("merge", when, who, into, source, subject),
# ("tag", when, who, name, branch), ("ff", branch, onto)
HISTORY: list[tuple[object, ...]] = [
    ("2025-02-24T09:12:00+01:00", "maya", "main",
     "Start bookshelf: a catalogue of books over WSGI", FILES),
    ("2025-02-24T15:40:00+01:00", "tom", "main", "List authors next to titles (BOOK-1)",
     {"bookshelf/views.py":
      "\n\ndef byline(book):\n    return f\"{book['title']} by {book['author']}\"\n"}),
    ("2025-02-25T11:05:00+01:00", "lena", "main", "Style the list: one readable column (BOOK-2)",
     {"static/style.css": "main { max-width: 38rem; font-family: Georgia, serif; }\n"}),
    ("2025-02-26T10:20:00+01:00", "maya", "main",
     "Health check at /healthz for the load balancer (BOOK-4)",
     {"bookshelf/health.py":
      '"""For the load balancer."""\n\n\ndef healthz(environ):\n    return "200 OK", "ok"\n'}),
    ("2025-02-27T09:30:00+01:00", "maya", "main", "Release 1.0.0",
     {"CHANGELOG.md": "\n## 1.0.0\n- the book list, authors, a health check\n"}),
    ("tag", "2025-02-27T09:31:00+01:00", "maya", "v1.0.0", "main"),
    ("branch", "release", "main"),

    ("branch", "feature/search", "main"),
    ("2025-03-03T10:00:00+01:00", "tom", "feature/search", "Search books by title (BOOK-7)",
     {"bookshelf/search.py":
      '"""Search."""\n\nfrom bookshelf.catalogue import BOOKS\n\n\n'
      'def by_title(words):\n'
      '    return [b for b in BOOKS if words.lower() in b["title"].lower()]\n'}),
    ("2025-03-03T16:45:00+01:00", "tom", "feature/search", "Search by author too (BOOK-7)",
     {"bookshelf/search.py":
      '\n\ndef by_author(words):\n'
      '    return [b for b in BOOKS if words.lower() in b["author"].lower()]\n'}),
    ("2025-03-04T09:15:00+01:00", "ravi", "main", "Cache the catalogue for 60 seconds (BOOK-9)",
     {"bookshelf/cache.py": '"""A small time-based cache."""\n\nTTL_SECONDS = 60\n'}),
    ("merge", "2025-03-04T14:30:00+01:00", "maya", "main", "feature/search",
     "Merge branch 'feature/search' (BOOK-7)"),
    ("2025-03-05T10:40:00+01:00", "lena", "main",
     "Fix the search box on narrow screens (BOOK-11)",
     {"static/style.css": "input[type=search] { width: 100%; box-sizing: border-box; }\n"}),
    ("2025-03-10T09:00:00+01:00", "maya", "main", "Release 1.1.0",
     {"CHANGELOG.md":
      "\n## 1.1.0\n- search by title and author (BOOK-7)\n- a 60 s catalogue cache (BOOK-9)\n"}),
    ("tag", "2025-03-10T09:01:00+01:00", "maya", "v1.1.0", "main"),
    ("ff", "release", "main"),

    ("branch", "feature/checkout", "main"),
    ("2025-03-12T11:20:00+01:00", "ravi", "feature/checkout",
     "Reserve a book: a checkout form (BOOK-15)",
     {"bookshelf/checkout.py":
      '"""Reserving books."""\n\n\ndef reserve(book, reader):\n'
      '    return {"book": book, "reader": reader}\n'}),
    ("2025-03-13T15:05:00+01:00", "ravi", "feature/checkout",
     "Email a receipt after checkout (BOOK-16)",
     {"bookshelf/checkout.py":
      "\n\ndef receipt(reservation):\n    return f\"You reserved {reservation['book']}\"\n"}),
    ("2025-03-14T10:10:00+01:00", "tom", "main", "Paginate the book list (BOOK-18)",
     {"bookshelf/views.py": "\n\nPAGE_SIZE = 20\n"}),
    ("merge", "2025-03-14T16:00:00+01:00", "maya", "main", "feature/checkout",
     "Merge branch 'feature/checkout' (BOOK-15, BOOK-16)"),
    ("2025-03-17T09:00:00+01:00", "maya", "main", "Release 1.2.0",
     {"CHANGELOG.md": "\n## 1.2.0\n- reserve a book, with a receipt by email (BOOK-15, "
                      "BOOK-16)\n- pages of 20 books (BOOK-18)\n"}),
    ("tag", "2025-03-17T09:01:00+01:00", "maya", "v1.2.0", "main"),
    ("ff", "release", "main"),

    ("branch", "hotfix/checkout-lock", "release"),
    ("2025-03-19T13:30:00+01:00", "lena", "hotfix/checkout-lock",
     "Checkout: send the receipt after releasing the database lock (BOOK-31)",
     {"bookshelf/checkout.py": "\n\n# the receipt is sent once the reservation is committed "
                               "(BOOK-31)\nSEND_AFTER_COMMIT = True\n"}),
    ("merge", "2025-03-20T09:10:00+01:00", "lena", "release", "hotfix/checkout-lock",
     "Merge branch 'hotfix/checkout-lock' into release (BOOK-31)"),
    ("2025-03-20T09:20:00+01:00", "lena", "release", "Release 1.2.1",
     {"CHANGELOG.md": "\n## 1.2.1\n- checkout no longer times out under load (BOOK-31)\n"}),
    ("tag", "2025-03-20T09:21:00+01:00", "lena", "v1.2.1", "release"),
    ("merge", "2025-03-20T10:00:00+01:00", "maya", "main", "release",
     "Merge branch 'release' (BOOK-31)"),

    ("branch", "feature/reviews", "main"),
    ("2025-03-24T10:30:00+01:00", "tom", "feature/reviews",
     "Reviews: readers rate a book from 1 to 5 (BOOK-22)",
     {"bookshelf/reviews.py":
      '"""Ratings."""\n\n\ndef average(ratings):\n'
      '    return round(sum(ratings) / len(ratings), 1) if ratings else None\n'}),
    ("2025-03-25T09:45:00+01:00", "tom", "feature/reviews",
     "Show the average rating in the list (BOOK-23)",
     {"bookshelf/reviews.py": '\n\ndef stars(rating):\n    return "*" * round(rating or 0)\n'}),
    ("merge", "2025-03-25T14:00:00+01:00", "maya", "main", "feature/reviews",
     "Merge branch 'feature/reviews' (BOOK-22, BOOK-23)"),
    ("2025-03-25T16:20:00+01:00", "ravi", "main", "Escape titles everywhere (BOOK-27)",
     {"bookshelf/views.py":
      "\n\ndef escaped(text):\n    from html import escape\n    return escape(text)\n"}),
    ("2025-03-26T11:00:00+01:00", "lena", "main",
     "Dark mode follows the system setting (BOOK-29)",
     {"static/style.css":
      "@media (prefers-color-scheme: dark) { body { background: #111; color: #eee; } }\n"}),
    ("2025-03-27T09:00:00+01:00", "maya", "main", "Release 1.3.0",
     {"CHANGELOG.md": "\n## 1.3.0\n- ratings and reviews (BOOK-22, BOOK-23)\n"
                      "- escaped titles (BOOK-27), dark mode (BOOK-29)\n"}),
    ("tag", "2025-03-27T09:01:00+01:00", "maya", "v1.3.0", "main"),
    ("ff", "release", "main"),
    ("2025-03-28T10:15:00+01:00", "tom", "main",
     "Search ignores accents: 'cafe' finds 'Café' (BOOK-33)",
     {"bookshelf/search.py":
      '\n\ndef folded(text):\n    import unicodedata\n'
      '    decomposed = unicodedata.normalize("NFKD", text)\n'
      '    return decomposed.encode("ascii", "ignore").decode().lower()\n'}),
]


def build_code(repo: Path, run: Runner) -> None:
    run.git(repo, "init", "-q", "--initial-branch=main", ".")
    checked_out = "main"
    for step in HISTORY:
        kind = step[0]
        if kind == "branch":
            _, name, start = step
            run.git(repo, "branch", str(name), str(start))
        elif kind == "ff":
            _, branch, onto = step
            run.git(repo, "branch", "-f", str(branch), str(onto))
        elif kind == "tag":
            _, when, who, name, branch = step
            run.git(repo, "tag", "-a", str(name), str(branch), "-m", f"{NAME} {str(name)[1:]}",
                    env=as_person(str(who), str(when)))
        elif kind == "merge":
            _, when, who, into, source, subject = step
            checked_out = _checkout(run, repo, checked_out, str(into))
            run.git(repo, "merge", "-q", "--no-ff", "--no-edit", "-m", str(subject),
                    str(source), env=as_person(str(who), str(when)))
        else:
            when, who, branch, subject, changes = step
            checked_out = _checkout(run, repo, checked_out, str(branch))
            for path, text in changes.items():  # type: ignore[attr-defined]
                file = repo / path
                file.parent.mkdir(parents=True, exist_ok=True)
                with file.open("a") as handle:
                    handle.write(text)
                if path.startswith("scripts/"):
                    file.chmod(0o755)
            run.git(repo, "add", "-A")
            run.git(repo, "commit", "-q", "-m", str(subject), env=as_person(str(who), str(when)))
    _checkout(run, repo, checked_out, "main")
    for name in ("feature/search", "feature/checkout", "hotfix/checkout-lock",
                 "feature/reviews"):
        run.git(repo, "branch", "-q", "-d", name)  # merged: gone, as a team would leave it


def _checkout(run: Runner, repo: Path, current: str, branch: str) -> str:
    if current != branch:
        run.git(repo, "checkout", "-q", branch)
    return branch


# --- the deployments ---------------------------------------------------------------------------


def github_job(run_id: int, number: int, actor: str, actor_id: int, branch: str,
               sha: str) -> dict[str, str]:
    """What GitHub Actions puts in a deploy job's environment."""
    return {"GITHUB_ACTIONS": "true", "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_REPOSITORY": f"{ORG}/{NAME}", "GITHUB_RUN_ID": str(run_id),
            "GITHUB_RUN_NUMBER": str(number), "GITHUB_WORKFLOW": "deploy",
            "GITHUB_REF": f"refs/heads/{branch}", "GITHUB_REF_NAME": branch,
            "GITHUB_REF_TYPE": "branch", "GITHUB_SHA": sha, "GITHUB_ACTOR": actor,
            "GITHUB_ACTOR_ID": str(actor_id)}


def record_history(repo: Path, run: Runner) -> None:
    def sha(rev: str) -> str:
        return run.git(repo, "rev-parse", f"{rev}^{{commit}}")

    def main_at(subject: str) -> str:
        return run.git(repo, "log", "--format=%H", "-1", "--fixed-strings", f"--grep={subject}",
                       "main")

    def ci(job: int, who: str, branch: str, commit: str) -> dict[str, str]:
        logins = {"maya": ("maya-chen", 5120), "tom": ("tokafor", 7733), "lena": ("lfischer", 9012),
                  "ravi": ("ravi-p", 4488)}
        login, login_id = logins[who]
        return github_job(14000000000 + job * 7919, job, login, login_id, branch, commit)

    ref = f"{NAME}:%s:%s"
    steps: list[tuple[str, str, dict[str, str] | None, list[str]]] = [
        ("2025-02-24T09:30:00Z", "maya", None,
         ["target", "create", "staging", "--name", "Staging",
          "--description", "staging.bookshelf.example: every merge to main lands here first",
          "--hanging-after", "30m", "--failed-after", "2h", "--schedule-on-push", "main"]),
        ("2025-02-24T09:32:00Z", "maya", None,
         ["target", "create", "production", "--name", "Production",
          "--description", "bookshelf.example: releases from the release branch",
          "--hanging-after", "30m", "--failed-after", "2h", "--manual-controls"]),
    ]
    # staging: deploys main, by CI
    staging = [
        (1, "maya", "v1.0.0", "2025-02-27T13:00:00Z", "2025-02-27T13:06:00Z", None),
        (2, "maya", main_at("Merge branch 'feature/search'"), "2025-03-04T15:00:00Z",
         "2025-03-04T15:04:00Z", "exit status 1"),
        (3, "lena", main_at("Fix the search box"), "2025-03-05T10:00:00Z",
         "2025-03-05T10:05:00Z", None),
        (4, "maya", "v1.1.0", "2025-03-10T08:30:00Z", "2025-03-10T08:36:00Z", None),
        (5, "maya", "v1.2.0", "2025-03-17T08:30:00Z", "2025-03-17T08:37:00Z", None),
        (6, "maya", main_at("Merge branch 'release'"), "2025-03-20T09:30:00Z",
         "2025-03-20T09:35:00Z", None),
        (7, "lena", main_at("Dark mode"), "2025-03-26T10:30:00Z", "2025-03-26T10:36:00Z", None),
    ]
    for job, who, rev, started, ended, failure in staging:
        commit = sha(rev)
        env = ci(100 + job, who, "main", commit)
        steps.append((started, who, env, ["start", "staging", "--commit", ref % ("main", commit)]))
        if failure:
            steps.append((ended, who, env, ["fail", "staging", "--reason", failure]))
        else:
            steps.append((ended, who, env, ["finish", "staging"]))
    # v1.3.0 starts on staging and is never heard of again: the sweep finds it hanging
    v130 = sha("v1.3.0")
    steps.append(("2025-03-27T08:30:00Z", "maya", ci(108, "maya", "main", v130),
                  ["start", "staging", "--commit", ref % ("main", v130)]))
    # the watcher's pass at the deadline: 30 minutes after the start, staging's hanging-after
    steps.append(("2025-03-27T09:00:00Z", "maya", None, ["sweep", "--now", "2025-03-27T09:00:00Z"]))
    # the push of BOOK-33 to main scheduled the next one (what the server hook does)
    steps.append(("2025-03-28T09:16:00Z", "tom", None,
                  ["schedule", "staging", "--commit", f"{NAME}:main",
                   "--description", "scheduled by the push to main"]))

    # production: deploys release; scheduled by people, run by CI
    production = [
        (1, "maya", "v1.0.0", "2025-02-27T16:00:00Z", "2025-02-28T09:00:00Z",
         "2025-02-28T09:07:00Z"),
        (2, "maya", "v1.1.0", "2025-03-10T15:00:00Z", "2025-03-11T09:00:00Z",
         "2025-03-11T09:06:00Z"),
        (3, "ravi", "v1.2.0", "2025-03-17T15:00:00Z", "2025-03-18T09:00:00Z",
         "2025-03-18T09:08:00Z"),
    ]
    for job, who, tag, scheduled, started, finished in production:
        commit = sha(tag)
        env = ci(200 + job, who, "release", commit)
        steps.append((scheduled, who, None,
                      ["schedule", "production", "--commit", ref % ("release", tag),
                       "--at", started]))
        steps.append((started, who, env, ["start", "production"]))
        steps.append((finished, who, env, ["finish", "production"]))
    # 1.2.0 broke checkout under load: an incident, and back to 1.1.0 the next morning
    steps.append(("2025-03-19T07:50:00Z", "lena", None,
                  ["incident", "open", "production", "-m",
                   "checkout times out under load (BOOK-31)"]))
    steps.append(("2025-03-19T08:10:00Z", "lena", None,
                  ["comment", "production", "3", "-m",
                   "checkout times out under load since 1.2.0 (BOOK-31); rolling back"]))
    steps.append(("2025-03-19T08:25:00Z", "lena", None,
                  ["finish", "production", "--commit", ref % ("release", "v1.1.0"),
                   "--reason", "roll back: checkout times out under load (BOOK-31)"]))
    steps.append(("2025-03-19T08:40:00Z", "lena", None,
                  ["incident", "resolve", "production", "-m",
                   "checkout is fast again on 1.1.0"]))
    # the hotfix release 1.2.1 goes out the day after
    commit = sha("v1.2.1")
    env = ci(204, "lena", "release", commit)
    steps.append(("2025-03-20T10:30:00Z", "lena", env, ["start", "production"]))
    steps.append(("2025-03-20T10:37:00Z", "lena", env, ["finish", "production"]))

    for when, who, ci_env, args in steps:
        if args[0] == "sweep" and not run.has_command("sweep"):
            run.note("git deploy sweep is not available yet: staging #8 stays 'deploying'")
            continue
        name, email = PEOPLE[who]
        env = {"GIT_DEPLOY_NOW": when, "GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
               **(ci_env or {})}
        run.deploy(repo, *args, env=env)


# --- putting it together ----------------------------------------------------------------------


class Runner:
    """Runs git as a process and `git deploy` in this process (the same entry point that
    `git deploy` runs, without a Python start-up per change: the sample builds in seconds)."""

    def __init__(self) -> None:
        self.env = clean_env()

    def git(self, cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(["git", *args], cwd=cwd, env={**self.env, **(env or {})},
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"generate.py: 'git {' '.join(args)}' failed in {cwd} "
                             f"(exit {result.returncode}):\n{result.stderr.strip()}")
        return result.stdout.strip()

    def deploy(self, cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
        code, out, err = self._in_process(["--repo", str(cwd), *args], env)
        if code != 0:
            raise SystemExit(f"generate.py: 'git deploy {' '.join(args)}' failed in {cwd} "
                             f"(exit {code}):\n{err.strip()}")
        return out.strip()

    def has_command(self, name: str) -> bool:
        """Whether this git deploy has the subcommand (so the sample builds as features land)."""
        return self._in_process([name, "-h"], None)[0] == 0

    def note(self, text: str) -> None:
        print(f"note: {text}", file=sys.stderr)

    def _in_process(self, argv: list[str], env: dict[str, str] | None) -> tuple[int, str, str]:
        import contextlib
        import io

        from git_deployments.cli import main

        saved = dict(os.environ)
        out, err = io.StringIO(), io.StringIO()
        try:
            os.environ.clear()
            os.environ.update({**self.env, **(env or {})})
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = main(argv)
                except SystemExit as exc:  # -h, --version
                    code = exc.code if isinstance(exc.code, int) else 1
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return code, out.getvalue(), err.getvalue()


def generate(out: Path, quiet: bool = False) -> Path:
    """Build the sample under `out` (replacing it); returns the checkout's path."""
    run = Runner()
    if out.exists():
        # replace a previous sample, never a directory that holds something else
        if not {p.name for p in out.iterdir()} <= {NAME, "server"}:
            raise SystemExit(f"generate.py: {out} holds other files; give an empty --out")
        shutil.rmtree(out)
    work, server = out / NAME, out / "server" / f"{NAME}.git"
    work.mkdir(parents=True)
    server.parent.mkdir()
    build_code(work, run)
    record_history(work, run)

    run.git(out, "init", "-q", "--bare", "--initial-branch=main", str(server))
    hooks = run.has_command("install-hooks")
    if hooks:
        run.deploy(server, "install-hooks")
    else:
        run.note("git deploy install-hooks is not available yet: the server has no hooks")
    run.git(work, "remote", "add", "origin", str(server))
    run.git(work, "push", "-q", "origin", "main", "release", "--tags")
    run.git(work, "branch", "-q", "--set-upstream-to=origin/main", "main")
    # the timelines go up (the server's pre-receive checks every change)
    if run.has_command("init") and run.has_command("push"):
        run.deploy(work, "init")
        run.deploy(work, "push")
    else:
        run.note("git deploy init/push are not available yet: the timelines go up with git push")
        run.git(work, "push", "-q", "origin", "refs/deployments/*:refs/deployments/*")
    # the checkout's own settings, for the demo's commits and anyone trying things by hand
    name, email = PEOPLE["maya"]
    run.git(work, "config", "user.name", name)
    run.git(work, "config", "user.email", email)
    if not quiet:
        tags = run.git(work, "tag", "--list").split()
        commits = run.git(work, "rev-list", "--count", "--branches")
        print(f"built {shown(work)}: {commits} commits, tags {', '.join(tags)}, targets "
              f"staging and production; server {server.name}{' with hooks' if hooks else ''}")
    return work


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "out", help="where (replaced)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    generate(args.out.resolve(), args.quiet)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
