"""The dashboard: pages rendered on the server (Jinja2, autoescape on) beside the API.

Each page asks the queries the API answers (web/queries.py), so its data is at the JSON URLs
the page names, read by the same paginated services and kept in the same memory. Permissions
are checked by web/auth.py as for the API; every form is checked by sessions.check_form first.

A page's ETag is made from the tips of the refs its queries depend on, who is looking, and the
page's code, before anything is read: the page's script asks again every second with
If-None-Match, and an unchanged page is answered 304 without reading anything. A change by any
writer moves a tip, so the next ask gets the new page and the script swaps in its live parts."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from git_deployments.access.tokens import MODIFY_DEPLOYMENTS, MODIFY_TARGETS, VIEW
from git_deployments.core.model import Status, key_problem
from git_deployments.core.timeutil import format_duration
from git_deployments.errors import DeployError, RuleViolation
from git_deployments.web import api, auth, bodies, cache, queries, sessions
from git_deployments.web.http import ApiError

if TYPE_CHECKING:
    from jinja2 import Environment

    from git_deployments.core.model import Request as Operation
    from git_deployments.core.store import Store
    from git_deployments.web.projects import Project
    from git_deployments.web.queries import Query

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
PAGE_HEADERS = {"Cache-Control": "no-cache", "Vary": "Cookie, Authorization"}
TIMELINE_PAGE = 30
COMMITS_SHOWN = 200
DEPLOY_OPS = ("schedule", "start", "finish", "fail")
# a status's shape beside its colour and its name, so no one needs to tell colours apart
SYMBOLS = {"scheduled": "◷", "deploying": "▶", "hanging": "⚠", "current": "●",
           "failed": "✖", "completed": "✓"}
HEALTH_SYMBOLS = {"ok": "✓", "failing": "⚠", "down": "✖", "recovering": "↻", "unknown": "?"}
DEPLOYMENT_TABS = (("overview", "Overview"), ("timeline", "Timeline"), ("commits", "Commits"),
                   ("merges", "Merges"), ("issues", "Issues"))
TARGET_TABS = (("deployments", "Deployments"), ("timeline", "Timeline"),
               ("settings", "Settings"))
Handler = Callable[[Request, "Project | None"], Awaitable[Response]]
FormHandler = Callable[[Request, "Project | None", dict[str, str]], Awaitable[Response]]


# --- templates ------------------------------------------------------------------------------------


def environment() -> Environment:
    """The templates, every value escaped unless a template says otherwise (none does)."""
    from jinja2 import Environment, FileSystemLoader

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True,
                      trim_blocks=True, lstrip_blocks=True, auto_reload=False)
    env.filters.update(moment=parse_moment, exact=exact, ago=ago, short=short, person=person,
                       duration=duration, web_url=web_url, plural=plural, started=started,
                       span_text=format_duration, when=when, command_line=command_line)
    env.globals.update(SYMBOLS=SYMBOLS, HEALTH_SYMBOLS=HEALTH_SYMBOLS,
                       STATUSES=[s.value for s in Status], BY_HAND=bodies.STATUSES_BY_HAND,
                       TARGET_TABS=TARGET_TABS)
    return env


def command_line(words: Sequence[str]) -> str:
    """A program's words as one line that splits back into them (as the CLI splits it)."""
    from shlex import join

    return join(words)


def code_stamp() -> str:
    """Changes with any template or static file: part of every page's ETag."""
    digest = hashlib.blake2b(digest_size=8)
    for folder in (TEMPLATES, STATIC):
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                digest.update(path.relative_to(HERE).as_posix().encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def parse_moment(text: str | None) -> datetime | None:
    from git_deployments.core.timeutil import parse_datetime

    if not text:
        return None
    try:
        return parse_datetime(text)
    except DeployError:
        return None


def exact(text: str | None) -> str:
    moment = parse_moment(text)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def ago(text: str | None, now: datetime) -> str:
    from git_deployments.core.timeutil import relative

    moment = parse_moment(text)
    return relative(moment, now) if moment else ""


def when(text: str | None, now: datetime) -> tuple[str, str]:
    """(exact, relative) of an ISO time, each computed once per time and moment of rendering."""
    return _when(text or "", now)


@lru_cache(maxsize=4096)
def _when(text: str, now: datetime) -> tuple[str, str]:
    return exact(text), ago(text, now)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min" + (f" {seconds} s" if seconds and minutes < 10 else "")
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(hours, 24)
    return f"{days} d" + (f" {hours} h" if hours else "")


def short(commit: str | None) -> str:
    return commit[:7] if commit else "latest"


def person(text: str | None) -> str:
    """`Name <email>` -> `Name`."""
    return (text or "").split(" <", 1)[0]


def web_url(text: str | None) -> str | None:
    """A link's address only when it is http(s): `javascript:` and the like stay text."""
    if not text:
        return None
    parts = urlsplit(text.strip())
    return text.strip() if parts.scheme.lower() in ("http", "https") and parts.netloc else None


def started(record: dict[str, Any]) -> str | None:
    """When a deployment last entered `deploying` (what its age in flight counts from)."""
    history = record.get("history") or []
    for change in reversed(history):
        if change.get("status") == "deploying":
            return str(change.get("at"))
    return str(history[-1].get("at")) if history else None


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


# --- addresses ------------------------------------------------------------------------------------


class Urls:
    """The page addresses of one project (names quoted; keys are plain by their rule)."""

    def __init__(self, project: str) -> None:
        self.project = project
        self.home = f"/projects/{quote(project, safe='')}"

    def overview(self, archived: bool = False) -> str:
        return self.home + ("?archived=1" if archived else "")

    def target(self, key: str, tab: str = "deployments", **params: Any) -> str:
        path = f"{self.home}/targets/{key}" + ("" if tab == "deployments" else f"/{tab}")
        return _with(path, params)

    def deployment(self, key: str, number: int, tab: str = "overview", **params: Any) -> str:
        path = f"{self.home}/targets/{key}/deployments/{number}"
        return _with(path + ("" if tab == "overview" else f"/{tab}"), params)

    def commit(self, commit: str | None = None) -> str:
        return _with(f"{self.home}/commit", {"id": commit})

    def compare(self, a: str | None = None, b: str | None = None) -> str:
        return _with(f"{self.home}/compare", {"a": a, "b": b})

    def metrics(self, target: str | None = None, since: str | None = None,
                until: str | None = None) -> str:
        return _with(f"{self.home}/metrics", {"target": target, "since": since,
                                               "until": until})

    def action(self, key: str, name: str) -> str:
        return f"{self.home}/targets/{key}/{name}"

    def status_form(self, key: str, number: int) -> str:
        return f"{self.home}/targets/{key}/deployments/{number}/status"


def _with(path: str, params: dict[str, Any]) -> str:
    given = [(k, str(v)) for k, v in params.items() if v is not None and v != ""]
    return path + (f"?{urlencode(given)}" if given else "")


def local_path(text: str | None, fallback: str) -> str:
    """`text` when it is a path on this site (never another host), else `fallback`."""
    if not text or not text.startswith("/") or text.startswith("//") or "\\" in text or \
            any(ord(c) < 32 for c in text) or len(text) > 2000:
        return fallback
    return text


def _link_before(answer: cache.Answer) -> str | None:
    """The `before` of the next page an answer's `Link` header names."""
    for name, value in answer.headers:
        if name == "Link" and value.startswith("<"):
            target = value[1:value.index(">")]
            return dict(parse_qsl(urlsplit(target).query)).get("before")
    return None


# --- rendering ------------------------------------------------------------------------------------


def viewer(request: Request) -> tuple[str, ...]:
    """Who is looking, as far as a page differs by it (their controls, their form tokens)."""
    user = request.user
    if isinstance(user, auth.TokenUser):
        session = user.session
        who = hashlib.sha256(session.id.encode()).hexdigest()[:16] if session else "bearer"
        return (user.token.name, who, *sorted(request.auth.scopes))
    return ("anonymous",)


def _sources(asked: Sequence[Query]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(source for q in asked for source in q.sources))


def page_etag(request: Request, project: Project | None, asked: Sequence[Query]) -> str:
    state: Any = cache.fingerprint(project, _sources(asked)) if project is not None else ()
    # the queries' own addresses too: one whose window ends now moves on without a ref moving
    key = repr((request.app.state.code_stamp, request.url.path,
                sorted(request.query_params.multi_items()), viewer(request), state,
                [query.url for query in asked]))
    return 'W/"' + hashlib.blake2b(key.encode("utf-8", "surrogateescape"),
                                   digest_size=16).hexdigest() + '"'


def _modified(request: Request, etag: str) -> bool:
    given = request.headers.get("if-none-match")
    return given is None or etag not in [t.strip() for t in given.split(",")]


def common_now(request: Request) -> datetime:
    """The moment this request's page is rendered at (one for the whole page)."""
    from git_deployments.core.intake import clock

    state = request.scope.setdefault("state", {})
    if "now" not in state:
        state["now"] = clock()
    moment: datetime = state["now"]
    return moment


def common(request: Request, project: Project | None) -> dict[str, Any]:
    """What every page's layout needs."""

    user = request.user
    signed_in = isinstance(user, auth.TokenUser)
    projects = request.app.state.projects
    return {
        "request": request,
        "project": project,
        "urls": Urls(project.name) if project is not None else None,
        "root_mode": not projects.single,
        "signed_in": signed_in,
        "user_name": user.token.name if signed_in else None,
        "session_user": signed_in and user.session is not None,
        "can_deploy": project is not None and auth.allowed(request, MODIFY_DEPLOYMENTS,
                                                           project),
        "can_edit_targets": project is not None and auth.allowed(request, MODIFY_TARGETS,
                                                                 project),
        "csrf": sessions.csrf_token(request),
        "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        "now": common_now(request),
        "static": lambda name: f"/static/{name}?v={request.app.state.code_stamp}",
    }


async def render(request: Request, project: Project | None, template: str,
                 asked: dict[str, Query],
                 context: Callable[[dict[str, cache.Answer]], dict[str, Any]] | None = None,
                 status: int = 200) -> Response:
    """A page: 304 when the browser has it, else the queries' answers rendered."""
    etag = page_etag(request, project, list(asked.values()))
    if not _modified(request, etag):
        return cache.not_modified(etag, PAGE_HEADERS)
    answers: dict[str, cache.Answer] = {}
    if project is not None:
        for name, query in asked.items():
            answers[name] = await cache.fetch(request.app.state.cache, project, query)
    values = common(request, project)
    values["data"] = {name: answer.data for name, answer in answers.items()}
    values["json_urls"] = [query.url for query in asked.values()]
    values["etag"] = etag
    if context is not None:
        values.update(context(answers))
    html = request.app.state.templates.get_template(template).render(values)
    response = HTMLResponse(html, status_code=status, headers={**PAGE_HEADERS, "ETag": etag})
    return _with_sign_in_cookie(request, response)


def _with_sign_in_cookie(request: Request, response: Response) -> Response:
    """A page with the sign-in form sets the cookie its CSRF token is checked against."""
    if sessions.session_of(request) is None and "csrf" in request.scope.get("state", {}):
        value = request.scope["state"]["csrf"]
        if request.cookies.get(sessions.SIGN_IN_COOKIE) != value:
            sessions.set_sign_in_cookie(response, request, value)
    return response


def error_page(request: Request, error: ApiError) -> Response:
    """An error as a page: 401 offers the sign-in form, the others say what happened."""
    values = common(request, None)
    values.update(status=error.status, code=error.code, message=error.message,
                  back=_referrer(request),
                  next=values["here"] if request.method == "GET" else _referrer(request),
                  json_urls=[], signin_problem=None)
    html = request.app.state.templates.get_template("error.html").render(values)
    # a page asks for a token through its form, not the browser's own Bearer prompt
    headers = {k: v for k, v in error.headers.items() if k.lower() != "www-authenticate"}
    response = HTMLResponse(html, status_code=error.status, headers={**PAGE_HEADERS, **headers})
    return _with_sign_in_cookie(request, response)


def _referrer(request: Request) -> str:
    """The page a form was sent from, when it is on this site (for a link back)."""
    parts = urlsplit(request.headers.get("referer", ""))
    if parts.netloc != request.url.netloc:
        return "/"
    return local_path(parts.path + (f"?{parts.query}" if parts.query else ""), "/")


def is_page(request: Request) -> bool:
    """Whether the answer should be a page (not the API's JSON)."""
    path = request.url.path
    return not (path.startswith("/api/") or path == "/healthz" or path.startswith("/static/"))


# --- reading pages --------------------------------------------------------------------------------


async def home(request: Request, _: Project | None) -> Response:
    """A server of one repository opens on its overview; of a root, on the list of projects."""
    projects = request.app.state.projects
    if projects.single:
        only = projects.all()[0]
        return RedirectResponse(Urls(only.name).home, status_code=302)
    found = auth.readable_projects(request)
    state = [(p.name, p.refs.tips(queries.DEPLOYMENTS)) for p in found]
    etag = 'W/"' + hashlib.blake2b(repr((request.app.state.code_stamp, viewer(request),
                                         state)).encode(), digest_size=16).hexdigest() + '"'
    if not _modified(request, etag):
        return cache.not_modified(etag, PAGE_HEADERS)
    values = common(request, None)
    values.update(rows=[{"name": name, "url": Urls(name).home, "targets": len(refs)}
                        for name, refs in state], json_urls=["/api/v1/projects"], etag=etag)
    html = request.app.state.templates.get_template("projects.html").render(values)
    return HTMLResponse(html, headers={**PAGE_HEADERS, "ETag": etag})


def _project(project: Project | None) -> Project:
    assert project is not None  # every page under /projects/{project} has one
    return project


async def overview(request: Request, project: Project | None) -> Response:
    served = _project(project)
    archived = api.flag_of(request, "archived") if "archived" in request.query_params else False
    return await render(request, served, "overview.html",
                        {"status": queries.status(served.name, archived),
                         "incidents": queries.project_incidents(served.name, True)},
                        lambda answers: {"archived": archived,
                                         "open_incidents": by_target(answers["incidents"].data)})


def by_target(incidents: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Incidents grouped by their target, oldest first in each."""
    found: dict[str, list[dict[str, Any]]] = {}
    for incident in sorted(incidents, key=lambda i: i["id"]):
        found.setdefault(incident["target"], []).append(incident)
    return found


def _target_queries(served: Project, key: str) -> dict[str, Query]:
    return {"target": queries.target(served.name, key),
            "open_incidents": queries.incidents(served.name, key, True)}


async def target_deployments(request: Request, project: Project | None) -> Response:
    served = _project(project)
    key = api.key_of(request)
    statuses = api.statuses(request)
    branch = api.branch(request)
    limit = api.count_of(request, "limit", queries.DEFAULT_PAGE) or queries.DEFAULT_PAGE
    before = api.count_of(request, "before", None, maximum=10**12)
    asked = {**_target_queries(served, key),
             "deployments": queries.deployments(served.name, key, statuses, branch, limit,
                                                before)}

    def context(answers: dict[str, cache.Answer]) -> dict[str, Any]:
        rows = answers["deployments"].data
        older = rows[-1]["number"] if len(rows) >= limit and rows[-1]["number"] > 1 else None
        return {"tab": "deployments", "key": key,
                "rows": row_views(rows, key, Urls(served.name), common_now(request)),
                "filter_status": statuses[0] if len(statuses) == 1 else "",
                "filter_branch": branch or "", "older": older,
                "limit": limit, "filtered": bool(statuses or branch), "before": before}

    return await render(request, served, "target.html", asked, context)


async def target_timeline(request: Request, project: Project | None) -> Response:
    served = _project(project)
    key = api.key_of(request)
    before = api.timeline_before(request)
    asked = {**_target_queries(served, key),
             "timeline": queries.timeline(served.name, key, TIMELINE_PAGE, before)}
    return await render(request, served, "target.html", asked, lambda answers: {
        "tab": "timeline", "key": key, "before": before,
        "older": _link_before(answers["timeline"])})


async def target_settings(request: Request, project: Project | None) -> Response:
    served = _project(project)
    key = api.key_of(request)
    return await render(request, served, "target.html", _target_queries(served, key),
                        lambda answers: {"tab": "settings", "key": key})


@dataclass(frozen=True, slots=True)
class RefView:
    repository: str | None  # None when the deployment has only this one commit ref
    branch: str
    short: str | None
    url: str | None


@dataclass(frozen=True, slots=True)
class RowView:
    """One line of a target's deployments, its values ready to print (each still escaped)."""

    number: int
    url: str
    status: str
    symbol: str
    rollback_of: int | None
    version: str | None
    refs: tuple[RefView, ...]
    since: str
    since_exact: str
    since_ago: str
    by: str
    by_name: str
    record: dict[str, Any]


def row_views(rows: list[dict[str, Any]], key: str, urls: Urls, now: datetime
              ) -> list[RowView]:
    """A page of deployments as the target page prints them: its 50 lines are most of the
    page, so they are prepared here once rather than worked out in the template."""
    views = []
    for d in rows:
        last = d["history"][-1]
        several = len(d["commits"]) > 1
        refs = tuple(RefView(ref["repository"] if several else None, ref["branch"],
                             short(ref["commit"]) if ref.get("commit") else None,
                             urls.commit(ref["commit"]) if ref.get("commit") else None)
                     for ref in d["commits"])
        since_exact, since_ago = when(last["at"], now)
        views.append(RowView(d["number"], urls.deployment(key, d["number"]), d["status"],
                             SYMBOLS.get(d["status"], "?"), d.get("rollback_of"),
                             d.get("version"), refs, last["at"], since_exact, since_ago,
                             last["by"], person(last["by"]), d))
    return views


def _tab(request: Request, allowed: Sequence[tuple[str, str]]) -> str:
    tab = str(request.path_params.get("tab", allowed[0][0]))
    if tab not in {name for name, _ in allowed}:
        raise ApiError(404, "not_found", f"no such page: {request.url.path[:200]}")
    return tab


async def deployment(request: Request, project: Project | None) -> Response:
    served = _project(project)
    key, number = api.key_of(request), api.number_of(request)
    tab = _tab(request, DEPLOYMENT_TABS)
    asked = {"target": queries.target(served.name, key),
             "deployment": queries.deployment(served.name, key, number),
             "incidents": queries.incidents(served.name, key)}
    before = None
    if tab == "timeline":
        before = api.timeline_before(request)
        asked["timeline"] = queries.timeline(served.name, key, TIMELINE_PAGE, before, number)
    elif tab == "commits":
        asked["commits"] = queries.commits(served.name, key, number, COMMITS_SHOWN)
    elif tab in ("merges", "issues"):
        asked["issues"] = queries.issues(served.name, key, number)

    def context(answers: dict[str, cache.Answer]) -> dict[str, Any]:
        record = answers["deployment"].data
        attributed = [i for i in answers["incidents"].data if i["deployment"] == number]
        values: dict[str, Any] = {"tab": tab, "key": key, "number": number,
                                  "tabs": DEPLOYMENT_TABS, "before": before,
                                  "stages": stages(record),
                                  "incidents": sorted(attributed, key=lambda i: i["id"])}
        if "timeline" in answers:
            values["older"] = _link_before(answers["timeline"])
        return values

    return await render(request, served, "deployment.html", asked, context)


def stages(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The statuses a deployment went through, each with how long it lasted (the last: so
    far, shown as `since`)."""
    history = record.get("history") or []
    found = []
    for n, change in enumerate(history):
        start = parse_moment(change.get("at"))
        end = parse_moment(history[n + 1].get("at")) if n + 1 < len(history) else None
        lasted = (end - start).total_seconds() if start and end else None
        found.append({**change, "lasted": lasted, "ongoing": end is None})
    return found


async def commit_page(request: Request, project: Project | None) -> Response:
    """Where a commit (an id or a tag) is live, and which deployment first shipped it."""
    served = _project(project)
    text = (request.query_params.get("id") or "").strip()
    asked: dict[str, Query] = {}
    if text:
        asked["contains"] = queries.contains(served.name, api.commit_spec(text))
    return await render(request, served, "commit.html", asked,
                        lambda answers: {"commit": text})


async def compare_page(request: Request, project: Project | None) -> Response:
    """Two targets side by side: what promoting `b` to `a` would bring, and what `a` has that
    `b` has not."""
    served = _project(project)
    a = (request.query_params.get("a") or "").strip()
    b = (request.query_params.get("b") or "").strip()
    asked = {"targets": queries.targets(served.name, False)}
    if a and b:
        for key in (a, b):
            if key_problem(key):
                raise ApiError(400, "invalid_value", f"invalid target key {key[:100]!r}")
        asked["compare"] = queries.compare(served.name, a, b)
    return await render(request, served, "compare.html", asked,
                        lambda answers: {"a": a, "b": b})


METRIC_NAMES = (("deployment_frequency", "Deployment frequency"), ("lead_time", "Lead time"),
                ("change_failure_rate", "Change failure rate"),
                ("time_to_restore", "Time to restore"))


async def metrics_page(request: Request, project: Project | None) -> Response:
    """The four DORA figures of each target and of all together, with their bands, and two
    charts per week (drawn by static/metrics.js from the data in the page)."""
    served = _project(project)
    keys = api.metrics_targets(request)
    window = api.metrics_window(request)
    asked = {"targets": queries.targets(served.name, False),
             "metrics": queries.metrics(served.name, keys, window)}

    def context(answers: dict[str, cache.Answer]) -> dict[str, Any]:
        data = answers["metrics"].data
        entries = list(data["targets"])
        if len(entries) > 1:
            entries.append(data["total"])
        return {"chosen": keys[0] if len(keys) == 1 else "",
                "since_text": request.query_params.get("since", ""),
                "until_text": request.query_params.get("until", ""),
                "entries": entries, "metric_names": METRIC_NAMES,
                "charts": charts(entries)}

    return await render(request, served, "metrics.html", asked, context)


def charts(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """What static/metrics.js draws, as JSON text for a data- attribute (escaped like any
    attribute value; the script reads it back with getAttribute), and the same per week as
    rows of a table for those who do not see the charts."""
    import json
    from datetime import date

    if not entries:
        return {"deployments": "", "lead_time": "", "weeks": [], "labels": [],
                "lead_time_unit": "hours"}
    weeks = entries[0]["series"]["weeks"]
    stamps = [int(datetime.combine(date.fromisoformat(w), datetime.min.time(),
                                   tzinfo=UTC).timestamp()) for w in weeks]
    labels = [entry["target"] or "all targets" for entry in entries]

    medians = [v for entry in entries for v in entry["series"]["lead_time_median_seconds"]
               if v is not None]
    # hours, or days once a week's median passes three days
    unit, size = ("days", 86400) if medians and max(medians) > 3 * 86400 else ("hours", 3600)

    def scaled(value: int | None) -> float | None:
        return None if value is None else round(value / size, 2)

    deployments = {"x": stamps, "unit": "deployments",
                   "series": [{"label": label, "values": entry["series"]["deployments"]}
                              for label, entry in zip(labels, entries, strict=True)]}
    lead_time = {"x": stamps, "unit": f"{unit} (median)",
                 "series": [{"label": label,
                             "values": [scaled(v) for v in
                                        entry["series"]["lead_time_median_seconds"]]}
                            for label, entry in zip(labels, entries, strict=True)]}
    rows = [{"week": week,
             "cells": [(entry["series"]["deployments"][i],
                        entry["series"]["lead_time_median_seconds"][i]) for entry in entries]}
            for i, week in enumerate(weeks)]
    return {"deployments": json.dumps(deployments, separators=(",", ":")),
            "lead_time": json.dumps(lead_time, separators=(",", ":")),
            "labels": labels, "weeks": rows, "lead_time_unit": unit}


# --- forms ----------------------------------------------------------------------------------------


def form_route(handler: FormHandler) -> Handler:
    """A form's handler, given the form once its CSRF token checked (guard checks the
    permission before)."""

    async def checked(request: Request, project: Project | None) -> Response:
        form = await sessions.check_form(request)
        return await handler(request, project, form)

    checked.__name__ = handler.__name__
    return checked


def _body(body: bodies.Body, form: dict[str, str], names: Sequence[str]) -> dict[str, Any]:
    """A form's fields as the API body's values (so they are checked as the API checks them)."""
    values: dict[str, Any] = {}
    for name in names:
        spec = body.fields[name]
        text = form.get(name, "").strip()
        if spec.kind == "boolean":
            if name in form:
                values[name] = text in ("on", "true", "1", "yes")
            continue
        if not text:
            continue
        if spec.kind == "number":
            if not (text.isascii() and text.isdigit()) or len(text) > 12:
                noun = "a deployment number" if name in ("number", "deployment") else \
                    "a whole number"
                raise ApiError(400, "invalid_value", f"invalid {name}: {noun}")
            values[name] = int(text)
        elif spec.kind == "strings":
            values[name] = [part.strip() for part in text.replace(",", "\n").splitlines()
                            if part.strip()]
        else:
            values[name] = text
    return body.read(values)


def _done(form: dict[str, str], fallback: str) -> Response:
    return RedirectResponse(local_path(form.get("next"), fallback), status_code=303)


def _manual(build: Callable[[Store, str], Operation], key: str
            ) -> Callable[[Store, str], Operation]:
    """`build`, refused unless the target has manual controls: the dashboard's buttons act only
    where a target's operators turned them on (the API and the CLI are for automation)."""

    def checked(store: Store, by: str) -> Operation:
        target, _ = store.existing(key).require()
        if not target.manual_controls:
            raise RuleViolation(f"target '{key}' has no manual controls (git deploy target "
                                f"edit {key} --manual-controls turns them on)")
        return build(store, by)

    return checked


async def deploy_form(request: Request, project: Project | None,
                      form: dict[str, str]) -> Response:
    """Start, finish, fail or schedule by hand: the buttons and the "New deployment" form."""
    key = api.key_of(request)
    op = form.get("op", "")
    if op not in DEPLOY_OPS:
        raise ApiError(400, "invalid_value", f"invalid op {op[:20]!r}: one of "
                                             f"{', '.join(DEPLOY_OPS)}")
    values = _body(bodies.DEPLOY, form, ("version", "commit", "description", "ext_label",
                                         "ext_url", "at", "number", "reason"))
    result = await api.perform(request, project, _manual(api.deploy_build(op, key, values), key),
                               api.written)
    fallback = Urls(_project(project).name).target(key)
    number = (result.get("deployment") or {}).get("number")
    if number is not None and not form.get("next"):
        fallback = Urls(_project(project).name).deployment(key, number)
    return _done(form, fallback)


async def status_form(request: Request, project: Project | None,
                      form: dict[str, str]) -> Response:
    from git_deployments.core import intake

    key, number = api.key_of(request), api.number_of(request)
    values = _body(bodies.STATUS, form, ("status", "reason"))
    await api.perform(request, project, _manual(lambda store, by: intake.set_status_request(
        store, key, number, values["status"], values.get("reason"), by), key), api.written)
    return _done(form, Urls(_project(project).name).deployment(key, number))


async def comment_form(request: Request, project: Project | None,
                       form: dict[str, str]) -> Response:
    from git_deployments.core import intake

    key = api.key_of(request)
    values = _body(bodies.COMMENT, form, ("message", "number"))
    await api.perform(request, project, lambda store, by: intake.comment_request(
        store, key, values.get("number"), values["message"], by), api.written)
    return _done(form, Urls(_project(project).name).target(key, "timeline"))


SETTINGS_FIELDS = ("name", "description", "manual_controls", "hanging_after", "failed_after",
                   "start_requires_schedule", "schedule_on_push", "health_off")
HEALTH_FIELDS = ("health_url", "health_expect", "health_exec", "health_every", "health_timeout",
                 "health_failures")


async def settings_form(request: Request, project: Project | None,
                        form: dict[str, str]) -> Response:
    from git_deployments.core import intake

    key = api.key_of(request)
    if "archived" in form:
        archived = form["archived"] == "true"
        await api.perform(request, project, lambda store, by: intake.archive_target_request(
            store, key, archived, by), api.written_target)
    else:
        # unticked boxes are not sent: the form says which boxes it showed
        shown = {name: form.get(name, "off") for name in ("manual_controls",
                                                          "start_requires_schedule")}
        values = _body(bodies.TARGET_EDIT, {**form, **shown}, SETTINGS_FIELDS + HEALTH_FIELDS)
        if values.get("health_off"):  # the box removes the check: the fields shown go with it
            values = {name: value for name, value in values.items()
                      if name not in HEALTH_FIELDS}
        if "schedule_on_push" not in values:
            values["no_schedule_on_push"] = True
        await api.perform(request, project, lambda store, by: intake.edit_target_request(
            store, key, values, by), api.written_target)
    return _done(form, Urls(_project(project).name).target(key, "settings"))


# --- signing in and out ---------------------------------------------------------------------------


async def sign_in_page(request: Request, _: Project | None) -> Response:
    values = common(request, None)
    values.update(next=local_path(request.query_params.get("next"), "/"), json_urls=[],
                  signin_problem=None)
    html = request.app.state.templates.get_template("signin.html").render(values)
    return _with_sign_in_cookie(request, HTMLResponse(html, headers=PAGE_HEADERS))


async def sign_in(request: Request, _: Project | None, form: dict[str, str]) -> Response:
    from git_deployments.core.intake import clock

    secret = form.get("token", "").strip()
    tokens = request.app.state.projects.tokens
    try:
        token = tokens.find(secret) if secret else None
    except DeployError as exc:
        raise ApiError(500, "internal_error", f"tokens cannot be checked: {exc}") from None
    problem = None
    if token is None:
        problem = "That is not a token this server knows. Paste the whole secret " \
                  "(it starts with gdt_)."
    elif token.state(clock()) != "active":
        problem = f"Token '{token.name}' is {token.state(clock())}."
    if problem is not None or token is None:
        values = common(request, None)
        values.update(next=local_path(form.get("next"), "/"), json_urls=[],
                      signin_problem=problem)
        html = request.app.state.templates.get_template("signin.html").render(values)
        return HTMLResponse(html, status_code=401, headers=PAGE_HEADERS)
    old = request.cookies.get(sessions.COOKIE)
    store: sessions.SessionStore = request.app.state.sessions
    if old:
        store.end(old)
    expires = token.expires_at.timestamp() if token.expires_at else None
    session = store.create(token.name, token.digest, expires)
    response = RedirectResponse(local_path(form.get("next"), "/"), status_code=303)
    sessions.set_session_cookie(response, request, session)
    response.delete_cookie(sessions.SIGN_IN_COOKIE, path="/", httponly=True, samesite="strict")
    return response


async def sign_out(request: Request, _: Project | None, form: dict[str, str]) -> Response:
    session = sessions.session_of(request)
    if session is not None:
        request.app.state.sessions.end(session.id)
    response = RedirectResponse("/", status_code=303)
    sessions.clear_session_cookie(response, request)
    return response


# --- the routes -----------------------------------------------------------------------------------

PROJECT = "/projects/{project}"
TARGET = PROJECT + "/targets/{key}"
DEPLOYMENT = TARGET + "/deployments/{n}"

PAGES: tuple[tuple[str, str, Handler, str | None], ...] = (
    ("GET", "/", home, None),
    ("GET", "/signin", sign_in_page, None),
    ("POST", "/signin", form_route(sign_in), None),
    ("POST", "/signout", form_route(sign_out), None),
    ("GET", PROJECT, overview, VIEW),
    ("GET", PROJECT + "/commit", commit_page, VIEW),
    ("GET", PROJECT + "/compare", compare_page, VIEW),
    ("GET", PROJECT + "/metrics", metrics_page, VIEW),
    ("GET", TARGET, target_deployments, VIEW),
    ("GET", TARGET + "/timeline", target_timeline, VIEW),
    ("GET", TARGET + "/settings", target_settings, VIEW),
    ("POST", TARGET + "/settings", form_route(settings_form), MODIFY_TARGETS),
    ("POST", TARGET + "/deploy", form_route(deploy_form),
     MODIFY_DEPLOYMENTS),
    ("POST", TARGET + "/comments", form_route(comment_form),
     MODIFY_DEPLOYMENTS),
    ("GET", DEPLOYMENT, deployment, VIEW),
    ("GET", DEPLOYMENT + "/{tab}", deployment, VIEW),
    ("POST", DEPLOYMENT + "/status", form_route(status_form),
     MODIFY_DEPLOYMENTS),
)


def routes() -> list[BaseRoute]:
    from starlette.staticfiles import StaticFiles

    found: list[BaseRoute] = [
        Route(path, auth.guard(permission, handler), methods=[method],
              name=f"page {method.lower()} {path}")
        for method, path, handler, permission in PAGES]
    found.append(Mount("/static", StaticFiles(directory=str(STATIC)), name="static"))
    return found
