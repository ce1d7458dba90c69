"""The metrics over HTTP: the API answers what `git deploy metrics --json` prints, and the
dashboard's page shows the four figures with their bands in words and carries its charts' data
for static/metrics.js (tests/test_dashboard_browser.py sees them drawn)."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from markupsafe import escape

from conftest import hermetic_environment
from dashboard_helpers import HOSTILE, Client
from test_metrics import Built, build_history
from test_serve import Served, serve, token

SINCE, UNTIL = "2026-03-02T00:00:00Z", "2026-03-30T00:00:00Z"
API = "/api/v1/projects/app/metrics"
PAGE = "/projects/app/metrics"
QUERY = f"since={SINCE}&until={UNTIL}"


@dataclass
class Site:
    built: Built
    served: Served
    view: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with pytest.MonkeyPatch.context() as patch:
        hermetic_environment(patch, tmp_path_factory.mktemp("home"))
        root = tmp_path_factory.mktemp("site")
        built = build_history(root)
        # a target whose name is hostile: the page lists target names in its form
        built.deploy("target", "create", "hostile", "--name", HOSTILE)
        view = token(built.repo, "reader", "view")
        served = serve(built.repo, log=root / "serve.log")
        try:
            yield Site(built, served, view)
        finally:
            served.stop()


def signed_in(site: Site) -> Client:
    client = Client(site.served)
    client.sign_in(site.view)
    return client


def test_the_api_answers_what_the_command_prints(site: Site) -> None:
    printed = json.loads(site.built.deploy("metrics", "--since", SINCE, "--until", UNTIL,
                                           "--json").stdout)
    answer = site.served.get(f"{API}?{QUERY}", token=site.view)
    assert answer.status == 200 and answer.headers["content-type"].startswith(
        "application/json")
    assert answer.json == printed
    assert [t["target"] for t in answer.json["targets"]] == ["hostile", "prod", "staging"]
    prod = answer.json["targets"][1]
    assert prod["change_failure_rate"] == {"failed": 3, "deployments": 4, "rate": 0.75,
                                           "band": "low"}
    # one target, two (repeated or comma-separated): only those, and the total of them
    one = site.served.get(f"{API}?target=prod&{QUERY}", token=site.view).json
    assert [t["target"] for t in one["targets"]] == ["prod"] and one["targets"][0] == prod
    two = site.served.get(f"{API}?target=prod,staging&{QUERY}", token=site.view).json
    assert two["total"] == printed["total"]
    # kept under its ETag: asked again with it, 304
    again = site.served.request("GET", f"{API}?{QUERY}", token=site.view,
                                headers={"If-None-Match": answer.headers["etag"]})
    assert again.status == 304


def test_without_until_the_window_ends_at_the_minute(site: Site) -> None:
    data = site.served.get(API, token=site.view).json
    until = datetime.fromisoformat(data["until"].replace("Z", "+00:00"))
    since = datetime.fromisoformat(data["since"].replace("Z", "+00:00"))
    assert until.second == 0 and until - since == timedelta(days=90)
    weeks = site.served.get(f"{API}?since=12w", token=site.view).json
    assert weeks["until"] == data["until"] or weeks["until"] > data["until"]


@pytest.mark.parametrize(("query", "status", "message"), [
    ("since=yesterdayish", 400, "invalid since 'yesterdayish': use a span before until such as "
                                "90d, 12w or 36h, or a date such as 2026-01-01"),
    (f"since={UNTIL}&until={SINCE}", 400, f"since ({UNTIL}) must be before until ({SINCE})"),
    ("until=soonish", 400, "invalid until 'soonish'"),
    ("target=Bad", 400, "invalid target key 'Bad'"),
    ("target=nope", 404, "unknown target 'nope'"),
])
def test_the_api_refuses_bad_input(site: Site, query: str, status: int, message: str) -> None:
    answer = site.served.get(f"{API}?{query}", token=site.view)
    assert answer.status == status
    assert answer.error["message"].startswith(message)


def test_the_api_needs_view(site: Site) -> None:
    assert site.served.get(f"{API}?{QUERY}").status == 401
    described = site.served.get("/api/v1/openapi.json").json
    assert "get" in described["paths"]["/api/v1/projects/{project}/metrics"]


def charts(page: str) -> dict[str, Any]:
    found = re.findall(r'data-chart="([^"]*)"', page)
    assert len(found) == 2
    deployments, lead_time = (json.loads(html.unescape(text)) for text in found)
    return {"deployments": deployments, "lead_time": lead_time}


def test_the_page_shows_the_figures_with_their_bands_in_words(site: Site) -> None:
    client = signed_in(site)
    page = client.get(f"{PAGE}?{QUERY}")
    assert page.status == 200, page.body[:300]
    text = page.body.decode()
    rows = dict(re.findall(r'<tr data-target="([^"]+)"[^>]*>(.*?)</tr>', text, re.S))
    assert set(rows) == {"hostile", "prod", "staging", "*"}

    def cell(target: str, metric: str) -> str:
        found = re.search(rf'data-metric="{metric}">(.*?)</td>', rows[target], re.S)
        assert found
        return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())

    assert cell("prod", "deployment_frequency") == "1.0 a week high 4 deployments on 3 days"
    assert cell("prod", "lead_time") == ("6 h elite median of 4 commits; 90th percentile "
                                         "24 h")
    assert cell("prod", "change_failure_rate") == ("75.0% low 3 of 4 deployments followed by "
                                                   "a failure")
    assert cell("prod", "time_to_restore") == "30 min elite median of 2 restores"
    assert cell("staging", "time_to_restore") == "nothing restored no data"
    assert cell("hostile", "lead_time") == "no commits no data"
    assert cell("*", "deployment_frequency") == "1.25 a week high 5 deployments on 4 days"
    # the bands are words in the page, their colours only beside them
    assert text.count('class="band band-low"') == 3  # the failure rates of prod, staging, all
    # the charts' data: the API's series, per target and all together
    api = client.get(f"{API}?{QUERY}").json
    drawn = charts(text)
    weeks = [int(datetime.fromisoformat(w + "T00:00:00+00:00").timestamp())
             for w in api["total"]["series"]["weeks"]]
    assert drawn["deployments"]["x"] == weeks == drawn["lead_time"]["x"]
    assert [s["label"] for s in drawn["deployments"]["series"]] == \
        ["hostile", "prod", "staging", "all targets"]
    assert drawn["deployments"]["series"][1]["values"] == [2, 2, 0, 0]
    # in days: staging's first week has a median of 4 days (above three, so days for all)
    assert drawn["lead_time"]["unit"] == "days (median)"
    assert drawn["lead_time"]["series"][1]["values"] == [0.25, 1.0, None, None]
    assert drawn["lead_time"]["series"][2]["values"] == [4.0, None, None, None]
    # and the same per week as a table, for anyone who does not see the charts
    assert "The weekly figures as a table" in text
    # the window the page shows, and where its data is
    assert "2026-03-02 00:00:00 UTC" in text and "2026-03-30 00:00:00 UTC" in text
    footer = text.split('<footer class="site">', 1)[1]
    assert html.escape(f"{API}?since={SINCE.replace(':', '%3A')}") in footer


def test_the_page_loads_only_static_scripts_and_escapes_names(site: Site) -> None:
    client = signed_in(site)
    text = client.get(PAGE).body.decode()
    scripts = re.findall(r'<script src="([^"]+)" defer></script>', text)
    assert [s.split("?")[0] for s in scripts] == [
        "/static/dashboard.js", "/static/vendor/uplot/uPlot.iife.min.js", "/static/metrics.js"]
    assert len(re.findall(r"<script\b", text)) == 3
    escaped = str(escape(HOSTILE))
    assert HOSTILE not in text and escaped in text  # a target's name, escaped as text
    markup = text.replace(escaped, "")
    assert " style=" not in markup and "<style" not in markup
    assert not re.search(r"\son[a-z]+=", markup)
    for path in ("/static/metrics.js", "/static/vendor/uplot/uPlot.min.css"):
        assert client.get(path).status == 200
    # every page's navigation leads here
    overview = client.get("/projects/app").body.decode()
    assert f'<a href="{PAGE}">Metrics</a>' in overview


def test_the_page_refuses_a_bad_window_as_a_page(site: Site) -> None:
    client = signed_in(site)
    page = client.get(f"{PAGE}?since=yesterdayish")
    assert page.status == 400 and page.headers["content-type"].startswith("text/html")
    assert "invalid since &#39;yesterdayish&#39;" in page.body.decode()
    assert site.served.get(PAGE).status == 401  # not signed in
