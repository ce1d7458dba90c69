"""The dashboard over HTTP, as a browser meets it: a real `git deploy serve` for the module,
pages and their JSON, signing in and out, CSRF, the headers every answer carries, and the
permission behind every control. (tests/test_dashboard_browser.py drives a real Chromium.)"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Deploy, git
from dashboard_helpers import HOSTILE, Client, Site, form_token, served_site, timeline_tip
from test_serve import Served, serve, token

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "src" / "git_deployments" / "web"
BASE = "/projects/app"
PAGES = (BASE, f"{BASE}/targets/production", f"{BASE}/targets/production/timeline",
         f"{BASE}/targets/production/settings", f"{BASE}/targets/production/deployments/2",
         f"{BASE}/targets/production/deployments/2/timeline",
         f"{BASE}/targets/production/deployments/2/commits",
         f"{BASE}/targets/production/deployments/2/merges",
         f"{BASE}/targets/production/deployments/2/issues",
         f"{BASE}/commit?id=v1.0.0", f"{BASE}/compare?a=production&b=staging")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with served_site(tmp_path_factory) as built:
        yield built


def signed_in(site: Site, which: str) -> Client:
    client = Client(site.served)
    client.sign_in(site.tokens[which])
    return client


def section(page: bytes, name: str) -> str:
    """The live part `name` of a page."""
    text = page.decode()
    begin = text.index(f'<section id="{name}"')
    return text[begin:text.index("</section>", begin)]


def json_links(page: bytes) -> list[str]:
    footer = page.split(b'<footer class="site">', 1)[1]
    return [html.unescape(link.decode()) for link in re.findall(rb'href="(/api/v1/[^"]+)"',
                                                                 footer)]


# --- every answer ---------------------------------------------------------------------------------


def test_every_answer_carries_the_security_headers(site: Site) -> None:
    client = signed_in(site, "view")
    answers = [client.get(BASE), client.get("/static/dashboard.js"),
               client.get(f"{BASE}/targets/nope"), client.get("/api/v1/projects/app/status"),
               site.served.get("/api/v1/projects/app/status"), site.served.get("/healthz"),
               client.post_form(f"{BASE}/targets/production/comments", {"message": "x"})]
    assert [a.status for a in answers] == [200, 200, 404, 200, 401, 200, 403]
    for answer in answers:
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "style-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "same-origin"


def test_pages_have_no_inline_script_or_style(site: Site) -> None:
    client = signed_in(site, "admin")
    for path in PAGES:
        page = client.get(path)
        assert page.status == 200, (path, page.body[:300])
        text = page.body.decode()
        assert re.findall(r"<script\b[^>]*>", text) == \
            [f'<script src="/static/dashboard.js?v={_stamp(text)}" defer>']
        assert " style=" not in text and "<style" not in text
        assert not re.search(r"\son[a-z]+=", text), path  # no event handler attributes


def _stamp(text: str) -> str:
    found = re.search(r'dashboard\.js\?v=([0-9a-f]+)"', text)
    assert found
    return found.group(1)


def test_templates_never_mark_record_text_safe() -> None:
    sources = [*(WEB / "templates").glob("*.html"), WEB / "pages.py"]
    for path in sources:
        text = path.read_text(encoding="utf-8")
        for forbidden in ("|safe", "| safe", "Markup(", "autoescape false", "|e(", "mark_safe"):
            assert forbidden not in text, (path.name, forbidden)


def test_static_assets_are_vendored_with_their_license(site: Site) -> None:
    for name in ("vendor/uplot/uPlot.iife.min.js", "vendor/uplot/uPlot.min.css",
                 "vendor/uplot/LICENSE", "dashboard.css", "favicon.svg"):
        reply = site.served.get(f"/static/{name}")
        assert reply.status == 200 and reply.body, name
    assert b"MIT License" in site.served.get("/static/vendor/uplot/LICENSE").body


# --- reading --------------------------------------------------------------------------------------


def test_every_page_names_its_json_and_shows_what_it_says(site: Site) -> None:
    client = signed_in(site, "view")
    overview = client.get(BASE)
    assert json_links(overview.body) == ["/api/v1/projects/app/status",
                                         "/api/v1/projects/app/incidents?open=true"]
    status = client.get("/api/v1/projects/app/status").json
    text = overview.body.decode()
    for row in status:
        assert f'data-target="{row["target"]}"' in text
        assert row["current"]["version"] in text
    assert "1.1-rc" in text and "deploying" in text and "release notes" not in text
    for path in PAGES:
        page = client.get(path)
        links = json_links(page.body)
        assert links, path
        for link in links:
            data = client.get(link)
            assert data.status == 200 and data.headers["content-type"].startswith(
                "application/json"), (path, link)
            json.loads(data.body)


def test_the_deployment_page_shows_the_record_in_full(site: Site) -> None:
    client = signed_in(site, "view")
    shown = client.get("/api/v1/projects/app/targets/production/deployments/2").json
    page = client.get(f"{BASE}/targets/production/deployments/2").body.decode()
    assert shown["version"] in page and shown["description"] in page
    assert 'href="https://ci.example.com/jobs/1"' in page and ">CI job<" in page
    assert shown["commits"][0]["commit"][:7] in page and ">main<" in page
    for change in shown["history"]:
        assert change["at"] in page  # each status it went through, with its time
    commits = client.get(f"{BASE}/targets/production/deployments/2/commits").body.decode()
    assert "main 2 (BOOK-3)" in commits and "since #1" in commits
    issues = client.get(f"{BASE}/targets/production/deployments/2/issues").body.decode()
    assert "BOOK-3" in issues
    timeline = client.get(f"{BASE}/targets/production/deployments/2/timeline").body.decode()
    assert "#2" in timeline and "none -&gt; current" in timeline
    assert "#3" not in re.sub(r"<footer.*", "", timeline, flags=re.S).split("<main", 1)[1]


def test_a_deployments_own_changes_are_read_back_to_its_creation(site: Site) -> None:
    client = signed_in(site, "view")
    log = site.deploy.json("log", "production", "-n", "0")
    assert isinstance(log, list)
    about_2 = [e for e in log if e["number"] == 2 or any(a.startswith("#2 ") for a in e["also"])]
    path = "/api/v1/projects/app/targets/production/timeline?number=2&limit=1"
    found = []
    while path:
        reply = client.get(path)
        found += reply.json
        link = re.match(r'<([^>]+)>; rel="next"', reply.headers.get("link", ""))
        path = link.group(1) if link else ""
    assert found == about_2 and found[-1]["status"] == "none -> current"
    assert client.get("/api/v1/projects/app/targets/production/timeline?number=99").status == 404


def test_the_target_page_pages_and_filters_as_the_api_does(site: Site) -> None:
    client = signed_in(site, "view")
    api = client.get("/api/v1/projects/app/targets/production/deployments?limit=2")
    assert [d["number"] for d in api.json] == [3, 2]
    assert "before=2" in api.headers["link"]
    first = section(client.get(f"{BASE}/targets/production?limit=2").body, "deployments")
    assert ">#3<" in first and ">#2<" in first and ">#1<" not in first
    older = re.search(r'href="([^"]*before=2[^"]*)" rel="next"', first)
    assert older, "no link to the older page"
    second = section(client.get(html.unescape(older.group(1))).body, "deployments")
    assert ">#1<" in second and ">#3<" not in second and "Newest" in second
    by_status = section(client.get(f"{BASE}/targets/production?status=completed").body,
                        "deployments")
    assert ">#1<" in by_status and ">#2<" not in by_status
    by_branch = section(client.get(f"{BASE}/targets/production?branch=release").body,
                        "deployments")
    assert ">#3<" in by_branch and ">#2<" not in by_branch
    api_branch = client.get("/api/v1/projects/app/targets/production/deployments?branch=release")
    assert [d["number"] for d in api_branch.json] == [3]
    assert client.get(f"{BASE}/targets/production?status=bogus").status == 400


def test_a_commit_page_says_where_it_is_live(site: Site) -> None:
    client = signed_in(site, "view")
    page = client.get(f"{BASE}/commit?id=v1.0.0").body.decode()
    answers = client.get("/api/v1/projects/app/contains/v1.0.0").json
    for answer in answers:
        row = page.split(f'>{answer["target"]}</a>', 1)[1].split("</tr>", 1)[0]
        assert ("not live" not in row) == answer["live"]
        if answer["first_deployment"]:
            assert f'>#{answer["first_deployment"]}<' in row
    assert client.get(f"{BASE}/commit?id=-bad").status == 400


def test_two_targets_side_by_side(site: Site) -> None:
    client = signed_in(site, "view")
    page = client.get(f"{BASE}/compare?a=production&b=staging").body.decode()
    data = client.get("/api/v1/projects/app/targets/production/compare?with=staging").json
    assert [c["subject"] for c in data["only_in_b"]] == ["release fix (BOOK-9)"]
    assert "release fix (BOOK-9)" in page and "Would arrive on production (1)" in page


def test_archived_targets_sit_behind_a_toggle(site: Site) -> None:
    site.deploy("target", "create", "old-box")
    site.deploy("target", "archive", "old-box")
    client = signed_in(site, "view")
    assert 'data-target="old-box"' not in client.get(BASE).body.decode()
    shown = client.get(f"{BASE}?archived=1").body.decode()
    assert 'data-target="old-box"' in shown and "Hide archived targets" in shown


# --- signing in -----------------------------------------------------------------------------------


def test_a_page_without_a_token_offers_the_sign_in_form(site: Site) -> None:
    anonymous = Client(site.served)
    page = anonymous.get(BASE)
    assert page.status == 401 and "www-authenticate" not in page.headers
    assert b'action="/signin"' in page.body and b'name="token"' in page.body
    assert anonymous.get("/api/v1/projects/app/status").status == 401


def test_signing_in_opens_a_session_that_is_never_the_token(site: Site) -> None:
    client = Client(site.served)
    secret = site.tokens["view"]
    reply = client.sign_in(secret)
    assert reply.headers["location"] == "/"
    session = [c for c in client.set_cookies if c.startswith("gd_session=")]
    assert len(session) == 1
    attributes = [part.strip().lower() for part in session[0].split(";")]
    assert "httponly" in attributes and "samesite=strict" in attributes and "path=/" in attributes
    assert all(secret not in cookie for cookie in client.set_cookies)
    assert secret not in json.dumps(client.cookies)
    stored = list((site.repo / ".git" / "git-deployments" / "sessions").iterdir())
    assert stored and all(secret not in p.read_text() for p in stored)
    assert all(client.cookies["gd_session"] not in p.read_text() for p in stored)
    assert client.get(BASE).status == 200
    assert client.get("/api/v1/projects/app/status").status == 200  # the JSON links open too


def test_a_wrong_token_is_told_plainly(site: Site) -> None:
    client = Client(site.served)
    reply = client.submit("/signin", "/signin", {"token": "gdt_nope", "next": "/"})
    assert reply.status == 401 and b"not a token this server knows" in reply.body
    assert "gd_session" not in client.cookies


def test_signing_out_ends_the_session_for_every_copy_of_its_cookie(site: Site) -> None:
    client = signed_in(site, "view")
    copy = Client(site.served, dict(client.cookies))
    assert copy.get(BASE).status == 200
    page = client.get(BASE)
    reply = client.post_form("/signout", {"csrf": form_token(page.body)})
    assert reply.status == 303 and "gd_session" not in client.cookies
    assert copy.get(BASE).status == 401  # the server forgot it: a kept cookie opens nothing


def test_a_revoked_token_ends_its_sessions(site: Site) -> None:
    secret = token(site.repo, "short-lived", "view")
    client = Client(site.served)
    client.sign_in(secret)
    assert client.get(BASE).status == 200
    site.deploy("token", "revoke", "short-lived")
    assert client.get(BASE).status == 401


def test_a_session_never_writes_through_the_api(site: Site) -> None:
    client = signed_in(site, "admin")
    before = timeline_tip(site.repo, "production")
    reply = client.request("POST", "/api/v1/projects/app/targets/production/comments",
                           json.dumps({"message": "through the API"}).encode(),
                           {"Content-Type": "application/json"})
    assert reply.status == 401
    assert timeline_tip(site.repo, "production") == before


# --- forms ----------------------------------------------------------------------------------------


def test_a_form_without_its_csrf_token_is_refused_and_writes_nothing(site: Site) -> None:
    client = signed_in(site, "deploy")
    action = f"{BASE}/targets/production/comments"
    before = timeline_tip(site.repo, "production")
    for fields in ({"message": "no token"}, {"message": "wrong", "csrf": "x" * 43}):
        reply = client.post_form(action, fields)
        assert reply.status == 403 and b"stale or came from another site" in reply.body
    other = signed_in(site, "deploy")  # another session's token is not this one's
    stolen = form_token(other.get(f"{BASE}/targets/production/timeline").body)
    assert client.post_form(action, {"message": "x", "csrf": stolen}).status == 403
    assert timeline_tip(site.repo, "production") == before
    reply = client.submit(f"{BASE}/targets/production/timeline", action,
                          {"message": "deploy window opens at 14:00", "next":
                           f"{BASE}/targets/production/timeline"})
    assert reply.status == 303
    assert reply.headers["location"] == f"{BASE}/targets/production/timeline"
    log = site.deploy.json("log", "production")
    assert log[0]["comment"] == "deploy window opens at 14:00"  # type: ignore[index]
    assert log[0]["by"] == "token:ci <ci@git-deploy.invalid>"  # type: ignore[index]
    page = client.get(f"{BASE}/targets/production/timeline").body.decode()
    assert "deploy window opens at 14:00" in page


def test_a_form_from_elsewhere_cannot_send_its_user_back_elsewhere(site: Site) -> None:
    client = signed_in(site, "deploy")
    reply = client.submit(f"{BASE}/targets/production/timeline",
                          f"{BASE}/targets/production/comments",
                          {"message": "x", "next": "//evil.example/"})
    assert reply.status == 303 and reply.headers["location"].startswith("/projects/app/")


def test_controls_appear_only_with_manual_controls_and_modify_deployments(site: Site) -> None:
    viewer, deployer = signed_in(site, "view"), signed_in(site, "deploy")
    production = f"{BASE}/targets/production"
    staging = f"{BASE}/targets/staging"
    with_buttons = deployer.get(production).body.decode()
    assert 'action="/projects/app/targets/production/deploy"' in with_buttons
    assert "New deployment" in with_buttons and ">Start<" in with_buttons
    for client, path in ((viewer, production), (viewer, f"{production}/deployments/3"),
                         (deployer, staging), (deployer, f"{staging}/deployments/2")):
        page = client.get(path).body.decode()
        assert '/deploy"' not in page and '/status"' not in page
        assert "New deployment" not in page
        assert "<button" not in page.split("<main", 1)[1].split("</main>")[0].replace(
            '<button type="submit" class="button">Filter</button>', "")
    assert "Add a comment" not in viewer.get(f"{production}/timeline").body.decode()
    assert "Edit settings" not in deployer.get(f"{production}/settings").body.decode()


def test_controls_are_refused_where_no_button_is_shown(site: Site) -> None:
    viewer, deployer = signed_in(site, "view"), signed_in(site, "deploy")
    before = {key: timeline_tip(site.repo, key) for key in ("production", "staging")}
    page = viewer.get(f"{BASE}/targets/production")
    reply = viewer.post_form(f"{BASE}/targets/production/deploy",
                             {"csrf": form_token(page.body), "op": "start"})
    assert reply.status == 403 and b"may not modify deployments" in reply.body
    reply = deployer.submit(f"{BASE}/targets/staging", f"{BASE}/targets/staging/deploy",
                            {"op": "finish"})
    assert reply.status == 409 and b"has no manual controls" in reply.body
    assert {key: timeline_tip(site.repo, key) for key in before} == before


def test_manual_controls_drive_a_deployment(site: Site) -> None:
    deployer = signed_in(site, "deploy")
    site.deploy("target", "create", "manual", "--manual-controls")
    base = f"{BASE}/targets/manual"
    reply = deployer.submit(base, f"{base}/deploy", {
        "op": "schedule", "commit": "app:release", "version": "2.0", "next": ""})
    assert reply.status == 303 and reply.headers["location"] == f"{base}/deployments/1"
    page = deployer.get(f"{base}/deployments/1").body.decode()
    assert ">Start<" in page and "scheduled" in page
    # the Start button of a deployment planned for a branch's latest commit starts its tip
    assert 'name="commit" value="app:release:HEAD"' in page
    reply = deployer.submit(f"{base}/deployments/1", f"{base}/deploy",
                            {"op": "start", "commit": "app:release:HEAD"})
    assert reply.status == 303
    assert site.deploy.json("show", "manual", "1")["status"] == "deploying"  # type: ignore[index]
    reply = deployer.submit(f"{base}/deployments/1", f"{base}/deploy",
                            {"op": "finish", "number": "1"})
    assert site.deploy.json("show", "manual", "1")["status"] == "current"  # type: ignore[index]
    reply = deployer.submit(f"{base}/deployments/1", f"{base}/deployments/1/status",
                            {"status": "failed", "reason": "smoke tests failed"})
    assert reply.status == 303 and reply.headers["location"] == f"{base}/deployments/1"
    shown = site.deploy.json("show", "manual", "1")
    assert shown["status"] == "failed"  # type: ignore[index]
    assert shown["history"][-1]["reason"] == "smoke tests failed"  # type: ignore[index]
    assert shown["history"][-1]["by"] == "token:ci <ci@git-deploy.invalid>"  # type: ignore[index]
    refused = deployer.submit(f"{base}/deployments/1", f"{base}/deployments/1/status",
                              {"status": "hanging"})
    assert refused.status == 400 and b"one of scheduled, deploying, current, failed" in \
        refused.body


def test_settings_are_edited_only_with_modify_targets(site: Site) -> None:
    admin, deployer = signed_in(site, "admin"), signed_in(site, "deploy")
    site.deploy("target", "create", "tuned")
    page = f"{BASE}/targets/tuned/settings"
    before = timeline_tip(site.repo, "tuned")
    refused = deployer.post_form(page, {"csrf": form_token(deployer.get(page).body),
                                        "name": "Nope"})
    assert refused.status == 403 and timeline_tip(site.repo, "tuned") == before
    reply = admin.submit(page, page, {"name": "Tuned box", "description": "", "manual_controls":
                                      "on", "hanging_after": "20m", "failed_after": "1h",
                                      "schedule_on_push": "main, release"})
    assert reply.status == 303, reply.body[:400]
    shown = site.deploy.json("target", "show", "tuned")
    assert shown["name"] == "Tuned box" and shown["manual_controls"] is True  # type: ignore
    assert shown["hanging_after"] == 1200 and shown["failed_after"] == 3600  # type: ignore
    assert shown["schedule_on_push"] == ["main", "release"]  # type: ignore[index]
    reply = admin.submit(page, page, {"archived": "true"})
    assert site.deploy.json("target", "show", "tuned")["archived"] is True  # type: ignore


def test_settings_edit_the_health_check_as_the_api_does(site: Site) -> None:
    admin, viewer = signed_in(site, "admin"), signed_in(site, "view")
    site.deploy("target", "create", "probed")
    page = f"{BASE}/targets/probed/settings"

    def health() -> object:
        return site.deploy.json("target", "show", "probed")["health"]  # type: ignore[index]

    before = timeline_tip(site.repo, "probed")
    refused = admin.submit(page, page, {"name": "probed", "health_url": "javascript:alert(1)"})
    assert refused.status == 400 and b"invalid health check URL" in refused.body
    assert timeline_tip(site.repo, "probed") == before and health() is None
    reply = admin.submit(page, page, {
        "name": "probed", "health_url": "https://app.example.com/up", "health_expect": "ok",
        "health_every": "1m", "health_timeout": "5s", "health_failures": "2"})
    assert reply.status == 303, reply.body[:400]
    assert health() == {"url": "https://app.example.com/up", "expect": "ok", "exec": None,
                        "every": 60, "timeout": 5, "failures": 2}
    shown = admin.get(page).body.decode()
    assert 'name="health_url" value="https://app.example.com/up"' in shown
    assert 'name="health_every" value="1m"' in shown
    reply = admin.submit(page, page, {"name": "probed", "health_every": "2m"})
    assert reply.status == 303 and health() == {  # type: ignore[comparison-overlap]
        "url": "https://app.example.com/up", "expect": "ok", "exec": None, "every": 120,
        "timeout": 5, "failures": 2}
    reply = admin.submit(page, page, {"name": "probed", "health_url": "",
                                      "health_exec": "check-app --say 'all good' $HOME;x",
                                      "health_every": "2m", "health_failures": "3"})
    assert reply.status == 303, reply.body[:400]
    assert health() == {"url": None, "expect": None,  # type: ignore[comparison-overlap]
                        "exec": ["check-app", "--say", "all good", "$HOME;x"], "every": 120,
                        "timeout": 5, "failures": 3}
    shown = admin.get(page).body.decode()
    assert "name=\"health_exec\" value=\"check-app --say &#39;all good&#39; &#39;$HOME;x&#39;\"" \
        in shown
    described = section(viewer.get(page).body, "settings")
    assert "run <code>check-app --say all good $HOME;x</code>, every 2m" in described
    viewed = viewer.get(page).body.decode().split("<main", 1)[1].split("</main>")[0]
    assert "<input" not in viewed and "Edit settings" not in viewed
    refused = admin.submit(page, page, {"name": "probed", "health_failures": "x"})
    assert refused.status == 400 and b"invalid health_failures: a whole number" in refused.body
    reply = admin.submit(page, page, {"name": "probed", "health_off": "on",
                                      "health_exec": "check-app", "health_every": "2m"})
    assert reply.status == 303, reply.body[:400]
    assert health() is None
    assert ">Health check</dt><dd>off<" in section(viewer.get(page).body, "settings")


# --- live -----------------------------------------------------------------------------------------


def test_an_open_page_is_304_until_any_writer_moves_its_refs(site: Site) -> None:
    client = signed_in(site, "view")
    path = f"{BASE}/targets/staging"
    first = client.get(path)
    etag = first.headers["etag"]
    assert f'data-etag="{etag}"'.encode() in first.body.replace(b"&#34;", b'"')
    assert client.get(path, **{"If-None-Match": etag}).status == 304
    site.deploy("comment", "production", "-m", "another target moved")
    assert client.get(path, **{"If-None-Match": etag}).status == 304
    site.deploy("comment", "staging", "-m", "this one moved")
    moved = client.get(path, **{"If-None-Match": etag})
    assert moved.status == 200 and moved.headers["etag"] != etag
    other = signed_in(site, "deploy")  # another viewer's page has other controls: its own tag
    assert other.get(path, **{"If-None-Match": moved.headers["etag"]}).status == 200


# --- hostile records ------------------------------------------------------------------------------


def test_hostile_record_text_is_escaped_on_every_page(site: Site) -> None:
    repo = site.repo
    branch = 'x<script>alert("b")</script>'
    git(repo, "branch", branch, "main")
    site.deploy("target", "create", "evil", "--name", HOSTILE, "--description", HOSTILE,
                "--manual-controls")
    site.deploy("finish", "evil", "--commit", f"app:{branch}:HEAD", "--version", HOSTILE,
                "--description", HOSTILE, "--ext-label", HOSTILE,
                "--ext-url", 'https://ci.example.com/"><script>alert(1)</script>')
    # a javascript: link never becomes a record, so no page can be made to carry one
    site.deploy("finish", "evil", "--ext-url", "javascript://ci.example.com/%0Aalert(1)", code=1)
    site.deploy("comment", "evil", "-m", HOSTILE)
    client = signed_in(site, "admin")
    base = f"{BASE}/targets/evil"
    for path in (BASE, base, f"{base}/timeline", f"{base}/settings", f"{base}/deployments/1",
                 f"{base}/deployments/1/timeline", f"{base}/deployments/1/commits",
                 f"{base}/commit?id=main"):
        page = client.get(path).body.decode()
        assert "<script>alert" not in page and "<img src=x" not in page, path
        assert 'href="javascript' not in page.lower(), path
    shown = client.get(base).body.decode()  # shown as the text it is
    assert "&lt;script&gt;alert(" in shown and "&lt;img src=x id=pwned onerror=" in shown
    assert "x&lt;script&gt;alert(" in client.get(f"{base}/deployments/1").body.decode()


# --- more than one repository ---------------------------------------------------------------------


def test_a_server_of_a_root_lists_its_projects_first(tmp_path: Path, repo: Path,
                                                     deploy: Deploy) -> None:
    deploy("target", "create", "production")
    other = tmp_path / "shop"
    other.mkdir()
    git(other, "init", "-q")
    git(other, "commit", "--allow-empty", "-q", "-m", "one")
    Deploy(other)("target", "create", "web")
    served = serve(tmp_path, "--root", str(tmp_path), log=tmp_path / "serve.log")
    try:
        look_at_a_root(served, tmp_path)
    finally:
        served.stop()


def look_at_a_root(served: Served, root: Path) -> None:
    client = Client(served)
    client.sign_in(token(root, "all", "view", "--root", str(root)))
    page = client.get("/").body.decode()
    assert 'href="/projects/app"' in page and 'href="/projects/shop"' in page
    assert b'data-target="web"' in client.get("/projects/shop").body
    shop_only = Client(served)
    shop_only.sign_in(token(root, "shop-reader", "view", "--root", str(root),
                            "--project", "shop"))
    listed = shop_only.get("/").body.decode()
    assert 'href="/projects/shop"' in listed and 'href="/projects/app"' not in listed
    assert shop_only.get("/projects/app").status == 403


def test_a_server_of_one_repository_opens_on_its_overview(site: Site) -> None:
    reply = site.served.get("/")
    assert reply.status == 302 and reply.headers["location"] == BASE


def test_anonymous_reading_opens_pages_without_a_token(tmp_path: Path, repo: Path,
                                                       deploy: Deploy) -> None:
    deploy("target", "create", "production")
    git(repo, "config", "deploy.serve.anonymousRead", "true")
    served = serve(repo, log=tmp_path / "serve.log")
    try:
        anonymous = Client(served)
        page = anonymous.get(BASE)
        assert page.status == 200 and b'data-target="production"' in page.body
        assert b"Sign in" in page.body and b"/deploy" not in page.body
    finally:
        served.stop()


# --- no page reads every record -------------------------------------------------------------------


def test_the_pages_read_a_page_of_records_not_all(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The queries behind the overview, a target's page and a deployment's page read a bounded
    number of records from a target of 300 deployments."""
    import sys

    from git_deployments.core.store import TreeSnapshot, open_store
    from git_deployments.web import queries

    bench = ROOT / "bench"
    sys.path.insert(0, str(bench))
    try:
        import build
    finally:
        sys.path.remove(str(bench))
    code = build.build_code(tmp_path / "code", 400)
    repo = build.share(code, tmp_path / "app")
    build.build_timeline(repo, "prod", 300, code_commits=100)
    read: list[int] = []
    original = TreeSnapshot.record

    def counted(self: TreeSnapshot, number: int) -> object:
        read.append(number)
        return original(self, number)

    monkeypatch.setattr(TreeSnapshot, "record", counted)
    store = open_store(repo)
    asked = {
        "overview": [queries.status("app", False)],
        "target": [queries.target("app", "prod"), queries.deployments("app", "prod")],
        "older page": [queries.deployments("app", "prod", before=120)],
        "deployment": [queries.deployment("app", "prod", 250)],
        "its timeline": [queries.timeline("app", "prod", 30, None, 250)],
    }
    for page, needed in asked.items():
        read.clear()
        for query in needed:
            query.compute(store)
        assert len(read) <= queries.DEFAULT_PAGE + 5, (page, len(read))
    read.clear()
    rows = queries.deployments("app", "prod", before=120).compute(store)
    assert [r["number"] for r in rows] == list(range(119, 69, -1))
    assert read == list(range(119, 69, -1))
