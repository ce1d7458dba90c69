"""The four DORA figures (docs/metrics.md): the pure computation on records and incidents made
by hand, then `git deploy metrics` on a history built with known dates, each figure worked out
in the comments and asserted exactly."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import Deploy, git, hermetic_environment, make_commit
from git_deployments.core.model import Deployment, Incident, Status, StatusChange
from git_deployments.errors import DeployError
from git_deployments.history import metrics
from git_deployments.history.metrics import (
    FAILURE_RATE,
    FREQUENCY,
    LEAD_TIME,
    RESTORE,
    TargetHistory,
    Window,
    measure,
    percentile,
    together,
    window_of,
)

BY = "Ada Tester <ada@example.com>"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def record(number: int, *changes: tuple[str, str], rollback_of: int | None = None
           ) -> Deployment:
    """A deployment whose history is `changes`: (status, ISO time) pairs."""
    history = [StatusChange(status=Status(status), at=at(when), by=BY, op="finish")
               for status, when in changes]
    return Deployment(number=number, status=history[-1].status, commits=[],
                      created_at=history[0].at, updated_at=history[-1].at, history=history,
                      rollback_of=rollback_of)


def incident(number: int, deployment: int | None, opened: str,
             resolved: str | None = None) -> Incident:
    return Incident(id=number, deployment=deployment, opened_at=at(opened), opened_by=BY,
                    resolved_at=at(resolved) if resolved else None,
                    resolved_by=BY if resolved else None)


# four weeks from Monday 2 March 2026: a count of n deployments is n/4 a week
MARCH = Window(at("2026-03-02T00:00:00Z"), at("2026-03-30T00:00:00Z"))


# --- the pure computation ------------------------------------------------------------------------


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([7], 50) == 7 and percentile([7], 90) == 7
    # rank ceil(p/100 * n): the 5th and the 9th of ten
    assert percentile([10, 1, 9, 2, 8, 3, 7, 4, 6, 5], 50) == 5
    assert percentile(list(range(1, 11)), 90) == 9
    assert percentile([1, 2, 3, 4], 50) == 2  # the lower middle: no averaging
    # 0.9 * 70 is 63.00000000000001 in floating point: the rank is 63 all the same
    assert percentile(list(range(1, 71)), 90) == 63


def test_the_bands_and_their_edges() -> None:
    # frequency, a week: elite from 7 (once a day), high from 1, medium from once in 30 days
    assert [FREQUENCY.band(v) for v in (7, 6.99, 1, 0.99, 7 / 30, 0.2)] == \
        ["elite", "high", "high", "medium", "medium", "low"]
    # lead time: elite below a day, high below a week, medium below 30 days
    assert [LEAD_TIME.band(v) for v in (86399, 86400, 604799, 604800, 2591999, 2592000)] == \
        ["elite", "high", "high", "medium", "medium", "low"]
    # change failure rate: at most 5%, 10%, 15%
    assert [FAILURE_RATE.band(v) for v in (0.0, 0.05, 0.0501, 0.10, 0.15, 0.1501)] == \
        ["elite", "elite", "high", "high", "medium", "low"]
    # time to restore: below an hour, a day, a week
    assert [RESTORE.band(v) for v in (3599, 3600, 86399, 86400, 604800)] == \
        ["elite", "high", "high", "medium", "low"]
    assert LEAD_TIME.band(None) is None
    bands = metrics.bands_json()
    assert bands["year"] == 2023 and "2023 Accelerate State of DevOps" in bands["report"]
    assert bands["lead_time"] == {"unit": "seconds", "comparison": "<", "elite": 86400,
                                  "high": 604800, "medium": 2592000}


def test_the_window() -> None:
    now = at("2026-03-30T00:00:00Z")
    assert window_of(None, None, now) == Window(at("2025-12-30T00:00:00Z"), now)
    assert window_of("4w", None, now) == MARCH
    assert window_of("28d", "2026-03-30T00:00:00Z", at("2027-01-01T00:00:00Z")) == MARCH
    assert window_of("2026-03-02T00:00:00Z", None, now) == MARCH
    assert window_of("36h", None, now).since == at("2026-03-28T12:00:00Z")
    with pytest.raises(DeployError, match="invalid --since 'yesterdayish'"):
        window_of("yesterdayish", None, now)
    with pytest.raises(DeployError, match="invalid until 'soon'"):
        window_of(None, "soon", now, prefix="")
    with pytest.raises(DeployError, match=r"--since \(2026-03-30T00:00:00Z\) must be before "
                                          r"--until \(2026-03-02T00:00:00Z\)"):
        window_of("2026-03-30T00:00:00Z", "2026-03-02T00:00:00Z", now)
    assert at("2026-03-02T00:00:00Z") in MARCH and at("2026-03-30T00:00:00Z") not in MARCH
    assert [w.day for w in Window(at("2026-03-04T12:00:00Z"),
                                  at("2026-03-16T00:00:00Z")).weeks()] == [2, 9]


def test_each_kind_of_failure_and_what_is_not_one() -> None:
    records = [
        record(1, ("current", "2026-03-02T10:00:00Z"), ("completed", "2026-03-03T10:00:00Z")),
        # 2: an incident names it
        record(2, ("current", "2026-03-03T10:00:00Z"), ("completed", "2026-03-04T10:00:00Z")),
        # 3: the next one to become current rolls it back
        record(3, ("current", "2026-03-04T10:00:00Z"), ("completed", "2026-03-05T10:00:00Z")),
        record(4, ("current", "2026-03-05T10:00:00Z"), ("completed", "2026-03-07T10:00:00Z"),
               rollback_of=3),
        # 5 fails while 4 is current: 4 is followed by a failure
        record(5, ("deploying", "2026-03-06T09:00:00Z"), ("failed", "2026-03-06T10:00:00Z")),
        # 6 is current until 7; 8 fails after 7 became current, so it is 7's failure, not 6's
        record(6, ("current", "2026-03-07T10:00:00Z"), ("completed", "2026-03-08T10:00:00Z")),
        record(7, ("current", "2026-03-08T10:00:00Z")),
        record(8, ("deploying", "2026-03-09T09:00:00Z"), ("failed", "2026-03-09T10:00:00Z")),
    ]
    # an incident for 1 opened long after: still 1's (attributed, whatever the time)
    history = TargetHistory("prod", records, [incident(1, 2, "2026-03-03T12:00:00Z"),
                                               incident(2, None, "2026-03-04T12:00:00Z")])
    shipped = {s.number: s.failed for s in metrics.shipped(history, MARCH)}
    assert shipped == {1: False, 2: True, 3: True, 4: True, 6: False, 7: True}
    figures = measure(history, MARCH).as_json()
    assert figures["change_failure_rate"] == {"failed": 4, "deployments": 6,
                                              "rate": 0.6667, "band": "low"}


def test_restores_count_only_what_started_in_the_window_and_was_put_right() -> None:
    records = [
        record(1, ("current", "2026-03-02T10:00:00Z"), ("completed", "2026-03-10T10:20:00Z")),
        # failed at 10:00, the next deployment current at 10:20: 20 minutes
        record(2, ("deploying", "2026-03-10T09:00:00Z"), ("failed", "2026-03-10T10:00:00Z")),
        record(3, ("current", "2026-03-10T10:20:00Z")),
        # failed before the window: not counted, though restored inside it
        record(4, ("deploying", "2026-03-01T09:00:00Z"), ("failed", "2026-03-01T10:00:00Z")),
        # failed in the window, nothing current after: not restored, not counted
        record(5, ("deploying", "2026-03-20T09:00:00Z"), ("failed", "2026-03-20T10:00:00Z")),
    ]
    incidents = [
        incident(1, 1, "2026-03-05T00:00:00Z", "2026-03-05T02:00:00Z"),  # 2 hours
        incident(2, 3, "2026-03-12T00:00:00Z"),  # still open: not counted
        incident(3, 3, "2026-03-29T23:00:00Z", "2026-04-02T23:00:00Z"),  # 4 days: counted
        incident(4, 1, "2026-03-30T00:00:00Z", "2026-03-30T00:10:00Z"),  # at until: outside
    ]
    found = measure(TargetHistory("prod", records, incidents), MARCH).as_json()
    # [1200, 7200, 345600]: the 2nd of three
    assert found["time_to_restore"] == {"restores": 3, "median_seconds": 7200, "band": "high"}


def test_lead_times_drop_commits_dated_after_their_deployment() -> None:
    records = [record(1, ("current", "2026-03-02T12:00:00Z"))]
    moment = int(at("2026-03-02T12:00:00Z").timestamp())
    # an hour, a day, and one dated an hour after the deployment (a clock ahead): dropped
    history = TargetHistory("prod", records, brought={1: [moment - 3600, moment - 86400,
                                                          moment + 3600]})
    found = measure(history, MARCH).as_json()
    assert found["lead_time"] == {"commits": 2, "median_seconds": 3600, "p90_seconds": 86400,
                                  "band": "elite"}


def test_nothing_in_the_window_has_no_bands() -> None:
    found = measure(TargetHistory("prod", []), MARCH).as_json()
    assert found["deployment_frequency"] == {"deployments": 0, "per_week": 0.0,
                                             "days_with_deployment": 0, "band": None}
    assert found["lead_time"] == {"commits": 0, "median_seconds": None, "p90_seconds": None,
                                  "band": None}
    assert found["change_failure_rate"] == {"failed": 0, "deployments": 0, "rate": None,
                                            "band": None}
    assert found["time_to_restore"] == {"restores": 0, "median_seconds": None, "band": None}
    assert found["series"] == {"weeks": ["2026-03-02", "2026-03-09", "2026-03-16",
                                         "2026-03-23"],
                               "deployments": [0, 0, 0, 0],
                               "lead_time_median_seconds": [None, None, None, None]}


def test_the_total_is_computed_over_every_deployment_not_averaged() -> None:
    # a: one deployment, no failure; b: three deployments, each rolled back or failed after
    a = TargetHistory("a", [record(1, ("current", "2026-03-02T10:00:00Z"))])
    b = TargetHistory("b", [
        record(1, ("current", "2026-03-03T10:00:00Z"), ("completed", "2026-03-04T10:00:00Z")),
        record(2, ("current", "2026-03-04T10:00:00Z"), ("completed", "2026-03-05T10:00:00Z"),
               rollback_of=1),
        record(3, ("current", "2026-03-05T10:00:00Z"), ("failed", "2026-03-05T11:00:00Z"))],
        [incident(1, 2, "2026-03-04T11:00:00Z", "2026-03-04T12:00:00Z")])
    parts = [measure(a, MARCH), measure(b, MARCH)]
    total = together(parts, MARCH).as_json()
    # 3 failed of 4: 0.75 (the average of 0 and 1 would be 0.5)
    assert total["target"] is None
    assert total["change_failure_rate"] == {"failed": 3, "deployments": 4, "rate": 0.75,
                                            "band": "low"}
    assert total["deployment_frequency"] == {"deployments": 4, "per_week": 1.0,
                                             "days_with_deployment": 4, "band": "high"}
    # the incident (an hour); 3's failure was never followed by another current one
    assert total["time_to_restore"] == {"restores": 1, "median_seconds": 3600,
                                        "band": "high"}
    assert total["series"]["deployments"] == [4, 0, 0, 0]


# --- end to end: a history with known dates ------------------------------------------------------
#
# Window [Mon 2026-03-02 00:00, Mon 2026-03-30 00:00) UTC: 28 days, four weeks.
#
# commits on main (author dates):  c0 02-01 00:00   c1 03-01 00:00   c2 03-01 18:00
#                                  c3 03-03 00:00   c4 03-09 00:00   c5 03-20 00:00 (dated
#                                  after the deployment that ships it)   c6 03-20 12:00
# prod:
#   #1 current 02-10 00:00 (c0)             before the window
#   #2 current 03-02 00:00 (c2)             at `since`: in. Brings c1 (1 day), c2 (6 h)
#   #3 deploying 03-03 01:00, failed 02:00  fails while #2 is current: #2 failed
#   #4 current 03-03 05:00 (c3)             brings c3 (5 h); restores #3's failure in 3 h
#   #5 current 03-10 00:00 (c5)             brings c4 (1 day); c5 dated after it: dropped
#   #6 rollback to #4, current 03-10 06:00  rolls #5 back: #5 failed. Brings nothing
#   incident 1 opened 03-16 00:00           on #6 (current then): #6 failed; resolved 00:30,
#                                           restored in 30 minutes
#   incident 2 opened 03-25 00:00           on #6 too; still open: no restore counted
#   #7 current 03-30 00:00 (c6)             at `until`: out
# staging:
#   #1 current 03-05 00:00 (c2)             its first deployment: all its history, c0 (32
#                                           days), c1 (4 days), c2 (3 days 6 h)
#   #2 deploying 03-20 00:00, failed 01:00  #1 failed; never restored, so not counted
# old: archived, left out unless named.


@dataclass
class Built:
    repo: Path
    deploy: Deploy
    commits: dict[str, str]


def deploy_at(deploy: Deploy, when: str, *args: str, ok: bool = True) -> Any:
    return deploy(*args, env={"GIT_DEPLOY_NOW": when}, ok=ok)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    with pytest.MonkeyPatch.context() as patch:
        hermetic_environment(patch, tmp_path_factory.mktemp("home"))
        yield build_history(tmp_path_factory.mktemp("metrics"))


def build_history(root: Path) -> Built:
    """The history described above, in `root`/app (the web tests serve it too)."""
    repo = root / "app"
    repo.mkdir()
    git(repo, "init", "-q")
    commits = {}
    for name, date in (("c0", "2026-02-01T00:00:00Z"), ("c1", "2026-03-01T00:00:00Z"),
                       ("c2", "2026-03-01T18:00:00Z"), ("c3", "2026-03-03T00:00:00Z"),
                       ("c4", "2026-03-09T00:00:00Z"), ("c5", "2026-03-20T00:00:00Z"),
                       ("c6", "2026-03-20T12:00:00Z")):
        commits[name] = make_commit(repo, name, date)
    deploy = Deploy(repo)

    def ref(name: str) -> str:
        return f"app:main:{commits[name]}"

    for key in ("prod", "staging", "old"):
        deploy_at(deploy, "2026-01-01T00:00:00Z", "target", "create", key)
    deploy_at(deploy, "2026-02-10T00:00:00Z", "finish", "prod", "--commit", ref("c0"))
    deploy_at(deploy, "2026-03-02T00:00:00Z", "finish", "prod", "--commit", ref("c2"))
    deploy_at(deploy, "2026-03-03T01:00:00Z", "start", "prod", "--commit", ref("c3"))
    deploy_at(deploy, "2026-03-03T02:00:00Z", "fail", "prod")
    deploy_at(deploy, "2026-03-03T05:00:00Z", "finish", "prod", "--commit", ref("c3"))
    deploy_at(deploy, "2026-03-10T00:00:00Z", "finish", "prod", "--commit", ref("c5"))
    deploy_at(deploy, "2026-03-10T06:00:00Z", "rollback", "prod", "--finish")
    deploy_at(deploy, "2026-03-16T00:00:00Z", "incident", "open", "prod", "-m", "500s")
    deploy_at(deploy, "2026-03-16T00:30:00Z", "incident", "resolve", "prod")
    deploy_at(deploy, "2026-03-25T00:00:00Z", "incident", "open", "prod", "-m", "slow")
    deploy_at(deploy, "2026-03-30T00:00:00Z", "finish", "prod", "--commit", ref("c6"))
    deploy_at(deploy, "2026-03-05T00:00:00Z", "finish", "staging", "--commit", ref("c2"))
    deploy_at(deploy, "2026-03-20T00:00:00Z", "start", "staging", "--commit", ref("c6"))
    deploy_at(deploy, "2026-03-20T01:00:00Z", "fail", "staging")
    deploy_at(deploy, "2026-03-04T00:00:00Z", "finish", "old", "--commit", ref("c2"))
    deploy_at(deploy, "2026-03-04T00:00:00Z", "target", "archive", "old")
    return Built(repo, deploy, commits)


WINDOW = ("--since", "2026-03-02T00:00:00Z", "--until", "2026-03-30T00:00:00Z")


def figures(built: Built, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = built.deploy("metrics", *args, "--json", env=env)
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_the_setup_is_what_the_comments_say(built: Built) -> None:
    shown = built.deploy.json("list", "prod", "-n", "0")
    assert [(d["number"], d["status"], d["rollback_of"]) for d in shown] == [  # type: ignore
        (7, "current", None), (6, "completed", 5), (5, "completed", None),
        (4, "completed", None), (3, "failed", None), (2, "completed", None),
        (1, "completed", None)]
    brought = built.deploy.json("commits", "prod", "5")
    assert [c["subject"] for c in brought["commits"]] == ["c5", "c4"]  # type: ignore
    incidents = built.deploy.json("incidents", "prod")
    assert sorted((i["id"], i["deployment"], i["resolved_at"])  # type: ignore
                  for i in incidents) == [(1, 6, "2026-03-16T00:30:00Z"), (2, 6, None)]


def test_prod_figures_worked_out_by_hand(built: Built) -> None:
    data = figures(built, "prod", *WINDOW)
    assert data["since"] == "2026-03-02T00:00:00Z" and data["until"] == "2026-03-30T00:00:00Z"
    [prod] = data["targets"]
    assert prod["target"] == "prod"
    # #2, #4, #5, #6 (not #1 before, not #7 at until): 4 in 4 weeks, on 03-02, 03-03, 03-10
    assert prod["deployment_frequency"] == {"deployments": 4, "per_week": 1.0,
                                            "days_with_deployment": 3, "band": "high"}
    # [5 h, 6 h, 1 day, 1 day] = [18000, 21600, 86400, 86400]: median the 2nd, p90 the 4th
    assert prod["lead_time"] == {"commits": 4, "median_seconds": 21600, "p90_seconds": 86400,
                                 "band": "elite"}
    # #2 (the failed #3 before #4), #5 (rolled back by #6), #6 (incident 1): 3 of 4
    assert prod["change_failure_rate"] == {"failed": 3, "deployments": 4, "rate": 0.75,
                                           "band": "low"}
    # incident 1: 30 minutes; #3 failed at 02:00, #4 current at 05:00: 3 hours. Incident 2
    # is open. [1800, 10800]: the median is the 1st
    assert prod["time_to_restore"] == {"restores": 2, "median_seconds": 1800, "band": "elite"}
    # weeks from 03-02: #2 and #4 (median of [5 h, 6 h, 1 day]: 6 h), then #5 and #6
    assert prod["series"] == {"weeks": ["2026-03-02", "2026-03-09", "2026-03-16",
                                        "2026-03-23"],
                              "deployments": [2, 2, 0, 0],
                              "lead_time_median_seconds": [21600, 86400, None, None]}
    assert prod["problems"] == []


def test_every_target_and_the_total(built: Built) -> None:
    data = figures(built, *WINDOW)
    assert [t["target"] for t in data["targets"]] == ["prod", "staging"]  # not archived 'old'
    staging = data["targets"][1]
    assert staging["deployment_frequency"] == {"deployments": 1, "per_week": 0.25,
                                               "days_with_deployment": 1, "band": "medium"}
    # its first deployment brings its whole history: [3d6h, 4d, 32d] = [280800, 345600,
    # 2764800]
    assert staging["lead_time"] == {"commits": 3, "median_seconds": 345600,
                                    "p90_seconds": 2764800, "band": "high"}
    assert staging["change_failure_rate"] == {"failed": 1, "deployments": 1, "rate": 1.0,
                                              "band": "low"}
    assert staging["time_to_restore"] == {"restores": 0, "median_seconds": None,
                                          "band": None}
    total = data["total"]
    assert total["target"] is None
    # 5 deployments, on 03-02, 03-03, 03-05, 03-10
    assert total["deployment_frequency"] == {"deployments": 5, "per_week": 1.25,
                                             "days_with_deployment": 4, "band": "high"}
    # [18000, 21600, 86400, 86400, 280800, 345600, 2764800]: the 4th is exactly a day,
    # which is not below a day: high
    assert total["lead_time"] == {"commits": 7, "median_seconds": 86400,
                                  "p90_seconds": 2764800, "band": "high"}
    assert total["change_failure_rate"] == {"failed": 4, "deployments": 5, "rate": 0.8,
                                            "band": "low"}
    assert total["time_to_restore"] == {"restores": 2, "median_seconds": 1800,
                                        "band": "elite"}
    assert data["bands"]["year"] == 2023 and data["errors"] == []
    # an archived target named on the command line is measured
    named = figures(built, "old", *WINDOW)
    assert named["targets"][0]["deployment_frequency"]["deployments"] == 1


def test_until_defaults_to_now_as_other_commands_read_it(built: Built) -> None:
    data = figures(built, "prod", "--since", "28d",
                   env={"GIT_DEPLOY_NOW": "2026-03-30T00:00:00Z"})
    assert (data["since"], data["until"]) == ("2026-03-02T00:00:00Z", "2026-03-30T00:00:00Z")
    assert data["targets"][0]["deployment_frequency"]["deployments"] == 4
    # 90 days by default
    data = figures(built, "prod", env={"GIT_DEPLOY_NOW": "2026-03-30T00:00:00Z"})
    assert data["since"] == "2025-12-30T00:00:00Z"
    assert data["targets"][0]["deployment_frequency"]["deployments"] == 5  # and #1


def test_the_human_output_says_each_band_in_words(built: Built) -> None:
    text = built.deploy("metrics", *WINDOW).stdout
    assert text.splitlines()[0] == ("2026-03-02 00:00:00 UTC to 2026-03-30 00:00:00 UTC "
                                    "(28 days); bands from the 2023 Accelerate State of "
                                    "DevOps Report")
    lines = [line.split() for line in text.splitlines()]
    assert ["prod"] in lines and ["staging"] in lines and ["all", "targets"] in lines
    prod = text.split("\nprod\n", 1)[1]
    assert prod.splitlines()[0].split()[-1] == "high"  # frequency
    assert "median 6h, 90th percentile 1d (4 commits)" in prod and \
        prod.splitlines()[1].endswith("elite")
    assert "75.0% (3 of 4)" in prod and "median 30m (2 restores)" in prod
    staging = text.split("\nstaging\n", 1)[1]
    assert staging.splitlines()[3].split()[-2:] == ["no", "data"]


def one_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert result.stdout == ""
    return lines[0]


def test_bad_input_is_one_line_and_exit_1(built: Built) -> None:
    result = built.deploy("metrics", "--since", "yesterdayish", code=1)
    assert one_error(result) == ("error: invalid --since 'yesterdayish': use a span before "
                                 "--until such as 90d, 12w or 36h, or a date such as 2026-01-01")
    result = built.deploy("metrics", "--since", "2026-03-30T00:00:00Z", "--until",
                          "2026-03-02T00:00:00Z", code=1)
    assert one_error(result) == ("error: --since (2026-03-30T00:00:00Z) must be before --until "
                                 "(2026-03-02T00:00:00Z)")
    result = built.deploy("metrics", "--until", "tomorrowish", code=1)
    assert one_error(result).startswith("error: invalid --until 'tomorrowish'")
    result = built.deploy("metrics", "prod", "nope", code=1)
    assert one_error(result).startswith("error: unknown target 'nope'")
    result = built.deploy("metrics", "Bad", code=1)
    assert one_error(result).startswith("error: invalid target key 'Bad'")
