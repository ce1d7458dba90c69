"""The dashboard in a real Chromium (Debian's, at /usr/bin/chromium), driven by Playwright:
live updates after a CLI write, manual controls by token, hostile records kept inert, and pages
that fit a phone and a desktop. Screenshots go to $GIT_DEPLOY_SCREENSHOTS (default: this
module's temporary directory).

Without a browser these tests are skipped, saying why; with GIT_DEPLOY_BROWSER_TESTS=required
(as .ci/run sets) they fail instead. Playwright never downloads a browser here."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import git
from dashboard_helpers import HOSTILE, Site, served_site

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
# read when the module is imported: the hermetic fixture clears GIT_* for each test
REQUIRED = os.environ.get("GIT_DEPLOY_BROWSER_TESTS", "") == "required"
SHOTS = os.environ.get("GIT_DEPLOY_SCREENSHOTS", "")
LIVE_TIMEOUT_MS = 2000  # the page's promise: a change shows within 2 s, without a reload
BASE = "/projects/app"


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[test]')"
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = _missing()
    if missing is not None:
        if REQUIRED:
            pytest.fail(f"GIT_DEPLOY_BROWSER_TESTS=required, but {missing}")
        pytest.skip(f"browser tests need a browser: {missing}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Site]:
    with served_site(tmp_path_factory) as built:
        yield built


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(SHOTS) if SHOTS else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Watched:
    """A page that records every dialog and every script error it meets."""

    def __init__(self, browser: Any, site: Site, width: int = 1280) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": 900},
                                           base_url=site.url)
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", lambda message: self.errors.append(message.text)
                     if message.type == "error" else None)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def sign_in(self, secret: str) -> None:
        self.page.goto("/signin")
        self.page.get_by_role("textbox", name=re.compile("^Token")).fill(secret)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url(re.compile(r".*/projects/app$"))

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_page(browser: Any, site: Site) -> Iterator[Any]:
    opened: list[Watched] = []

    def make(width: int = 1280) -> Watched:
        watched = Watched(browser, site, width)
        opened.append(watched)
        return watched

    yield make
    for watched in opened:
        watched.close()


def card(page: Any, key: str) -> Any:
    return page.locator(f'li.card[data-target="{key}"]')


# --- live -----------------------------------------------------------------------------------------


def test_an_open_overview_shows_a_cli_finish_within_two_seconds(site: Site,
                                                                 open_page: Any) -> None:
    from playwright.sync_api import expect

    watched = open_page()
    watched.sign_in(site.tokens["view"])
    page = watched.page
    current = card(page, "production").locator("dd.current .version")
    expect(current).to_have_text("1.0.0")
    release = git(site.repo, "rev-parse", "release")
    site.deploy("finish", "production", "--commit", f"app:release:{release}",
                "--version", "1.1.0")
    # the page that was already open, not reloaded: its script brings the change
    expect(current).to_have_text("1.1.0", timeout=LIVE_TIMEOUT_MS)
    expect(card(page, "production").locator("dd.current .sha")).to_have_text(release[:7])
    fresh = open_page()
    fresh.sign_in(site.tokens["view"])
    expect(card(fresh.page, "production").locator("dd.current .version")).to_have_text("1.1.0")
    # the other target's card and the open page's state are untouched by the swap
    expect(card(page, "staging").locator("dd.in-flight .badge")).to_contain_text("deploying")
    assert watched.dialogs == [] and watched.errors == []


def test_an_open_deployment_page_follows_a_change_from_the_cli(site: Site,
                                                               open_page: Any) -> None:
    from playwright.sync_api import expect

    watched = open_page()
    watched.sign_in(site.tokens["view"])
    page = watched.page
    page.goto(f"{BASE}/targets/staging/deployments/2")
    badge = page.locator("#head .badge").first
    expect(badge).to_contain_text("deploying")
    site.deploy("finish", "staging")
    expect(badge).to_contain_text("current", timeout=LIVE_TIMEOUT_MS)
    assert watched.errors == []


# --- manual controls ------------------------------------------------------------------------------


def test_manual_controls_work_with_a_modify_token(site: Site, open_page: Any) -> None:
    from playwright.sync_api import expect

    site.deploy("target", "create", "manual", "--manual-controls", "--name", "Manual box")
    watched = open_page()
    watched.sign_in(site.tokens["deploy"])
    page = watched.page
    page.goto(f"{BASE}/targets/manual")
    form = page.locator("form.stack").filter(has=page.get_by_label("Action"))
    form.get_by_label("Action").select_option("schedule")
    form.get_by_label("Commit").fill("app:release")
    form.get_by_label("Version").fill("3.0")
    form.get_by_role("button", name="Record it").click()
    page.wait_for_url(re.compile(r".*/targets/manual$"))
    rows = page.locator("#deployments tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator(".badge")).to_contain_text("scheduled")
    rows.first.get_by_role("button", name="Start").click()
    expect(page.locator("#deployments tbody tr").first.locator(".badge")).to_contain_text(
        "deploying")
    page.locator("#deployments tbody tr").first.get_by_role("button", name="Finish").click()
    expect(page.locator("#deployments tbody tr").first.locator(".badge")).to_contain_text(
        "current")
    page.goto(f"{BASE}/targets/manual/deployments/1")
    page.get_by_label("Set status").select_option("failed")
    page.get_by_label("Reason").fill("rolled back by hand")
    page.get_by_role("button", name="Set", exact=True).click()
    expect(page.locator("#head .badge").first).to_contain_text("failed")
    shown = site.deploy.json("show", "manual", "1")
    assert shown["status"] == "failed"  # type: ignore[index]
    assert [h["status"] for h in shown["history"]] == [  # type: ignore[index]
        "scheduled", "deploying", "current", "failed"]
    assert shown["history"][-1]["by"] == "token:ci <ci@git-deploy.invalid>"  # type: ignore
    page.goto(f"{BASE}/targets/manual/timeline")
    page.get_by_label("Comment", exact=True).fill("back to 2.x tomorrow")
    page.get_by_role("button", name="Comment").click()
    expect(page.locator("#timeline .comment").first).to_have_text("back to 2.x tomorrow")
    assert watched.dialogs == [] and watched.errors == []
    # signing out ends it: the controls are gone and the pages ask for a token
    page.get_by_role("button", name="Sign out").click()
    page.goto(f"{BASE}/targets/manual")
    expect(page.get_by_role("heading", name="Sign in to see this")).to_be_visible()
    expect(page.locator("main form[action$='/deploy']")).to_have_count(0)


def test_no_buttons_with_a_view_only_token(site: Site, open_page: Any) -> None:
    from playwright.sync_api import expect

    watched = open_page()
    watched.sign_in(site.tokens["view"])
    page = watched.page
    for path in (f"{BASE}/targets/production", f"{BASE}/targets/production/deployments/3",
                 f"{BASE}/targets/production/timeline", f"{BASE}/targets/production/settings"):
        page.goto(path)
        main = page.locator("main")
        expect(main.locator("form[method=post]")).to_have_count(0)
        expect(main.get_by_role("button", name=re.compile("Start|Finish|Fail|Set|Record it|"
                                                          "Comment|Save"))).to_have_count(0)
        expect(main.get_by_text("New deployment")).to_have_count(0)


def test_the_keyboard_reaches_the_tabs_and_the_controls(site: Site, open_page: Any) -> None:
    watched = open_page()
    watched.sign_in(site.tokens["deploy"])
    page = watched.page
    page.goto(f"{BASE}/targets/production/deployments/2")
    page.keyboard.press("Tab")  # the skip link comes first
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    reached = []
    for _ in range(40):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.textContent.trim()"))
    assert "Commits" in reached and "Timeline" in reached and "Set" in reached
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # the focused control shows it
    assert page.locator('nav.tabs a[aria-current="page"]').inner_text() == "Overview"


# --- hostile records ------------------------------------------------------------------------------


def test_hostile_text_in_every_field_stays_inert(site: Site, open_page: Any) -> None:
    from playwright.sync_api import expect

    branch = 'x<script>alert("branch")</script>'
    git(site.repo, "branch", branch, "main")
    site.deploy("target", "create", "hostile", "--name", HOSTILE, "--description", HOSTILE,
                "--manual-controls")
    site.deploy("schedule", "hostile", "--commit", f"app:{branch}", "--version", HOSTILE,
                "--description", HOSTILE, "--ext-label", HOSTILE,
                "--ext-url", "https://ci.example.com/job?q=%22%3E%3Cimg%20src=x%20onerror=alert(1)%3E")
    site.deploy("finish", "hostile", "--commit", f"app:{branch}:HEAD", "--version", HOSTILE,
                "--description", HOSTILE, "--ext-label", HOSTILE,
                "--ext-url", "https://ci.example.com/job?q=%22%3E%3Cimg%20src=x%20onerror=alert(1)%3E")
    site.deploy("comment", "hostile", "-m", HOSTILE)
    watched = open_page()
    watched.sign_in(site.tokens["admin"])
    page = watched.page
    base = f"{BASE}/targets/hostile"
    for path in (BASE, base, f"{base}/timeline", f"{base}/settings",
                 f"{base}/deployments/2", f"{base}/deployments/2/timeline",
                 f"{base}/deployments/2/commits", f"{base}/deployments/1",
                 f"{BASE}/commit?id=main", f"{BASE}/compare?a=production&b=hostile"):
        page.goto(path)
        page.wait_for_timeout(50)  # let anything that would run, run
        assert page.locator("#pwned").count() == 0, path
        injected = page.evaluate("""() => [...document.scripts].filter(
            s => !s.src.includes('/static/dashboard.js')).length""")
        assert injected == 0, path
        assert page.locator('a[href^="javascript"]').count() == 0, path
        assert page.locator("img").count() == 0, path
    page.goto(base)
    expect(page.get_by_role("heading", level=1)).to_have_text(HOSTILE)
    page.goto(f"{base}/deployments/2")
    link = page.locator("dd .external")
    expect(link).to_contain_text(HOSTILE)
    # the model refuses javascript: links; an https one carrying markup stays one link
    assert link.evaluate("e => e.tagName") in ("A", "SPAN")
    assert page.locator('a[href^="javascript"]').count() == 0
    expect(page.locator(".branch").first).to_have_text(branch)
    page.goto(f"{base}/timeline")
    expect(page.locator("#timeline .comment").first).to_have_text(HOSTILE)
    # a live swap brings record text in as text too
    site.deploy("comment", "hostile", "-m", HOSTILE.replace("pwned", "pwned-live"))
    expect(page.locator("#timeline .comment").first).to_contain_text("pwned-live",
                                                                     timeout=LIVE_TIMEOUT_MS)
    assert page.locator("#pwned, #pwned-live").count() == 0
    assert watched.dialogs == [], watched.dialogs
    assert not [e for e in watched.errors if "Content Security Policy" not in e], watched.errors


# --- metrics -------------------------------------------------------------------------------------


def test_the_metrics_page_draws_its_charts(site: Site, open_page: Any, shots: Path) -> None:
    from playwright.sync_api import expect

    watched = open_page()
    watched.sign_in(site.tokens["view"])
    page = watched.page
    page.get_by_role("link", name="Metrics").click()
    page.wait_for_url(re.compile(r".*/projects/app/metrics$"))
    # uPlot draws each chart on a canvas, with its legend naming the targets
    expect(page.locator("#charts .chart canvas")).to_have_count(2)
    expect(page.locator("#charts .chart").first.locator(".u-legend")).to_contain_text(
        "production")
    band = page.locator('tr[data-target="production"] [data-metric="deployment_frequency"] '
                        '.band')
    expect(band).to_have_text(re.compile(r"^(elite|high|medium|low)$"))
    width = page.locator("#charts .chart canvas").first.evaluate("c => c.width")
    assert width > 0
    page.screenshot(path=str(shots / "metrics-1280.png"), full_page=True)
    # a deployment from the CLI reaches the open page, and its charts are drawn again (once)
    site.deploy("target", "create", "metrics-live")
    site.deploy("finish", "metrics-live", "--commit", "app:main:HEAD")
    live = page.locator('tr[data-target="metrics-live"] [data-metric="deployment_frequency"]')
    expect(live).to_contain_text("1 deployment on 1 day", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#charts .chart canvas")).to_have_count(2)
    expect(page.locator("#charts .chart").first.locator(".u-legend")).to_contain_text(
        "metrics-live")
    assert watched.dialogs == [] and watched.errors == [], watched.errors


# --- made for phones and desktops -----------------------------------------------------------------


@pytest.mark.parametrize("width", [375, 1280])
def test_pages_fit_the_screen(site: Site, open_page: Any, shots: Path, width: int) -> None:
    site.deploy("schedule", "production", "--commit",
                "app:release", "--version", "1.2.0-a-rather-long-release-candidate-name",
                "--description", "Spring catalogue: covers, search, and the new reading list",
                "--at", "2099-01-01T10:00:00Z")
    watched = open_page(width)
    watched.sign_in(site.tokens["deploy"])
    page = watched.page
    for name, path in (("overview", BASE), ("target", f"{BASE}/targets/production"),
                       ("deployment", f"{BASE}/targets/production/deployments/2")):
        page.goto(path)
        file = shots / f"{name}-{width}.png"
        page.screenshot(path=str(file), full_page=True)
        assert file.stat().st_size > 0
        scroll, inner = page.evaluate(
            "[document.documentElement.scrollWidth, window.innerWidth]")
        assert scroll <= inner, (name, width, scroll, inner)
    assert watched.errors == []


def test_dark_or_light_follows_the_system(site: Site, browser: Any, shots: Path) -> None:
    colours = {}
    for scheme in ("light", "dark"):
        context = browser.new_context(color_scheme=scheme, base_url=site.url,
                                      viewport={"width": 1280, "height": 900})
        try:
            page = context.new_page()
            page.goto("/signin")
            colours[scheme] = page.evaluate("getComputedStyle(document.body).backgroundColor")
            if scheme == "dark":
                page.screenshot(path=str(shots / "signin-dark-1280.png"))
        finally:
            context.close()
    assert colours["light"] != colours["dark"]
