"""The four DORA figures — how often a target gets a new version, how long a commit waits to
run there, how often a new version goes wrong, how soon things are put right — computed from the
timelines and git history alone. docs/metrics.md states every definition; this is its code.

Two halves. `measure` and what it calls are pure: records, incidents and commit times in,
figures out (the unit tests build their inputs by hand). `read` gathers those inputs from a
repository: every record and incident of a target, read once from its tip, and the author times
of the commits each deployment brought, one `git rev-list` per repository range, the ranges
chosen by history/questions.py as for `git deploy commits`.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from git_deployments.core.model import EARLIEST, Deployment, Incident, Status
from git_deployments.errors import CorruptRecord, DeployError

if TYPE_CHECKING:
    from git_deployments.core.store import Store

HOUR = 3600
DAY = 24 * HOUR
WEEK = 7 * DAY
MONTH = 30 * DAY  # what "a month" is in the bands
DEFAULT_SPAN = 90 * DAY
REPORT = "Accelerate State of DevOps Report"
REPORT_YEAR = 2023
# `--since 90d`: a span before `until` (weeks, days or hours)
_SPAN = re.compile(r"^([0-9]{1,6})([wdh])\Z")
_SPAN_UNITS = {"w": WEEK, "d": DAY, "h": HOUR}
MAX_PROBLEM_NUMBERS = 10


# --- the bands -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    """Where a metric's bands begin: a value reaching `elite` is elite, else one reaching
    `high` is high, else one reaching `medium` is medium, else it is low."""

    unit: str
    higher_is_better: bool
    inclusive: bool  # a value equal to a threshold is in the better band
    elite: float
    high: float
    medium: float

    def band(self, value: float | None) -> str | None:
        if value is None:
            return None
        for name, limit in (("elite", self.elite), ("high", self.high),
                            ("medium", self.medium)):
            if self.higher_is_better:
                reached = value >= limit if self.inclusive else value > limit
            else:
                reached = value <= limit if self.inclusive else value < limit
            if reached:
                return name
        return "low"

    @property
    def comparison(self) -> str:
        return (">" if self.higher_is_better else "<") + ("=" if self.inclusive else "")

    def as_json(self) -> dict[str, Any]:
        return {"unit": self.unit, "comparison": self.comparison, "elite": self.elite,
                "high": self.high, "medium": self.medium}


# the 2023 report's clusters, made contiguous (its low cluster overlaps its medium one)
FREQUENCY = Thresholds("deployments per week", True, True, 7.0, 1.0, 7 / 30)
LEAD_TIME = Thresholds("seconds", False, False, DAY, WEEK, MONTH)
FAILURE_RATE = Thresholds("fraction of deployments", False, True, 0.05, 0.10, 0.15)
RESTORE = Thresholds("seconds", False, False, HOUR, DAY, WEEK)


def bands_json() -> dict[str, Any]:
    """The thresholds every band is judged by, and the report they come from."""
    return {"report": f"{REPORT_YEAR} {REPORT}", "year": REPORT_YEAR,
            "deployment_frequency": FREQUENCY.as_json(), "lead_time": LEAD_TIME.as_json(),
            "change_failure_rate": FAILURE_RATE.as_json(),
            "time_to_restore": RESTORE.as_json()}


# --- the window --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """[since, until): a moment equal to `until` is outside."""

    since: datetime
    until: datetime

    def __contains__(self, moment: object) -> bool:
        return isinstance(moment, datetime) and self.since <= moment < self.until

    @property
    def seconds(self) -> int:
        return int((self.until - self.since).total_seconds())

    def weeks(self) -> list[datetime]:
        """The start of every week (Monday 00:00 UTC) the window touches, oldest first."""
        first = self.since.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        first -= timedelta(days=first.weekday())
        starts = []
        while first < self.until:
            starts.append(first)
            first += timedelta(days=7)
        return starts


def window_of(since: str | None, until: str | None, now: datetime, *,
              prefix: str = "--") -> Window:
    """The window `since` and `until` name (`prefix`: how the options are written, for the
    messages): `until` a time, by default `now`; `since` a time or a span before `until`
    (90d, 12w, 36h), by default 90 days."""
    from git_deployments.core.timeutil import iso, parse_datetime

    end = now
    if until is not None:
        try:
            end = parse_datetime(until, reference=now)
        except DeployError:
            raise DeployError(f"invalid {prefix}until {until[:60]!r}: use a date such as "
                              "2026-01-01 or a time such as 2026-01-01T12:00Z") from None
    if since is None:
        start = end - timedelta(seconds=DEFAULT_SPAN)
    else:
        span = _SPAN.match(since.strip().lower())
        try:
            if span:
                seconds = int(span.group(1)) * _SPAN_UNITS[span.group(2)]
                start = end - timedelta(seconds=seconds)
            else:
                start = parse_datetime(since, reference=now)
        except (DeployError, OverflowError):
            raise DeployError(f"invalid {prefix}since {since[:60]!r}: use a span before "
                              f"{prefix}until such as 90d, 12w or 36h, or a date such as "
                              "2026-01-01") from None
        start = max(start, EARLIEST)
    if start >= end:
        raise DeployError(f"{prefix}since ({iso(start)}) must be before {prefix}until "
                          f"({iso(end)})")
    return Window(start, end)


# --- what the figures are computed from --------------------------------------------------------


@dataclass
class TargetHistory:
    """One target's records and incidents, and the author times (seconds since 1970) of the
    commits brought by each deployment that became current in the window, by its number."""

    key: str
    records: list[Deployment]
    incidents: list[Incident] = field(default_factory=list)
    brought: dict[int, list[int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def became_current(record: Deployment) -> datetime | None:
    """When the deployment first became current; None if it never did."""
    return next((change.at for change in record.history if change.status == Status.CURRENT),
                None)


def failed_at(record: Deployment) -> datetime | None:
    """When the deployment first became failed; None if it never did."""
    return next((change.at for change in record.history if change.status == Status.FAILED),
                None)


def percentile(values: Sequence[int], p: int) -> int | None:
    """The nearest-rank `p`th percentile: the smallest value at least p% of the values are
    less than or equal to (rank ceil(p/100 * n), counted from 1); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-p * len(ordered) // 100))  # ceil in integers: no float rounding
    return ordered[rank - 1]


def _seconds(later: datetime, earlier: datetime) -> int:
    return int((later - earlier).total_seconds())


# --- the pure computation ----------------------------------------------------------------------


@dataclass(frozen=True)
class Shipped:
    """A deployment that became current in the window, and what is measured of it."""

    key: str
    number: int
    at: datetime  # when it first became current
    failed: bool  # followed by a failure (an incident, a rollback, a failed deployment)
    lead_times: tuple[int, ...]  # seconds from each commit it brought to `at`


@dataclass(frozen=True)
class Restore:
    """Something that went wrong and was put right: an incident, or a failed deployment."""

    key: str
    start: datetime
    seconds: int


def shipped(history: TargetHistory, window: Window) -> list[Shipped]:
    """The deployments of `history` that first became current in the window, oldest first,
    each judged a failure or not, with the lead times of the commits it brought."""
    order = sorted(((at, record) for record in history.records
                    if (at := became_current(record)) is not None),
                   key=lambda pair: (pair[0], pair[1].number))
    failures = sorted(f for record in history.records if (f := failed_at(record)) is not None)
    blamed = {incident.deployment for incident in history.incidents
              if incident.deployment is not None}
    found = []
    for i, (at, record) in enumerate(order):
        if at not in window:
            continue
        following = order[i + 1] if i + 1 < len(order) else None
        # a failed deployment after it became current, up to the next one becoming current
        first_after = bisect_right(failures, at)
        failed_after = first_after < len(failures) and (
            following is None or failures[first_after] <= following[0])
        rolled_back = following is not None and following[1].rollback_of == record.number
        failed = record.number in blamed or rolled_back or failed_after
        moment = int(at.timestamp())
        lead_times = tuple(moment - t for t in history.brought.get(record.number, [])
                           if t <= moment)  # a commit dated after its deployment: dropped
        found.append(Shipped(history.key, record.number, at, failed, lead_times))
    return found


def restores(history: TargetHistory, window: Window) -> list[Restore]:
    """Incidents opened in the window and resolved; deployments that failed in the window and
    were followed by a deployment becoming current (the restore)."""
    found = []
    for incident in history.incidents:
        if incident.opened_at in window and incident.resolved_at is not None:
            found.append(Restore(history.key, incident.opened_at,
                                 max(0, _seconds(incident.resolved_at, incident.opened_at))))
    currents = sorted(change.at for record in history.records for change in record.history
                      if change.status == Status.CURRENT)
    for record in history.records:
        failed = failed_at(record)
        if failed is None or failed not in window:
            continue
        after = bisect_left(currents, failed)
        if after < len(currents):
            found.append(Restore(history.key, failed, _seconds(currents[after], failed)))
    return sorted(found, key=lambda r: (r.start, r.key))


@dataclass
class Figures:
    """The four figures of one target, or of several together (`target` None)."""

    target: str | None
    window: Window
    shipped: list[Shipped]
    restores: list[Restore]
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        from git_deployments.core.timeutil import iso

        count = len(self.shipped)
        per_week = count / (self.window.seconds / WEEK)
        leads = [t for s in self.shipped for t in s.lead_times]
        median_lead = percentile(leads, 50)
        failed = sum(1 for s in self.shipped if s.failed)
        rate = failed / count if count else None
        restore_times = [r.seconds for r in self.restores]
        median_restore = percentile(restore_times, 50)
        return {
            "target": self.target,
            "since": iso(self.window.since),
            "until": iso(self.window.until),
            "deployment_frequency": {
                "deployments": count, "per_week": round(per_week, 3),
                "days_with_deployment": len({s.at.astimezone(UTC).date()
                                             for s in self.shipped}),
                "band": FREQUENCY.band(per_week) if count else None},
            "lead_time": {
                "commits": len(leads), "median_seconds": median_lead,
                "p90_seconds": percentile(leads, 90), "band": LEAD_TIME.band(median_lead)},
            "change_failure_rate": {
                "failed": failed, "deployments": count,
                "rate": round(rate, 4) if rate is not None else None,
                "band": FAILURE_RATE.band(rate)},
            "time_to_restore": {
                "restores": len(restore_times), "median_seconds": median_restore,
                "band": RESTORE.band(median_restore)},
            "series": self.series(),
            "problems": self.problems,
        }

    def series(self) -> dict[str, list[Any]]:
        """Per week (Monday 00:00 UTC) the window touches: the deployments that became
        current, and the median lead time of the commits they brought (None: no commits)."""
        starts = self.window.weeks()
        counts = [0] * len(starts)
        leads: list[list[int]] = [[] for _ in starts]
        for s in self.shipped:
            week = _seconds(s.at, starts[0]) // WEEK
            counts[week] += 1
            leads[week].extend(s.lead_times)
        return {"weeks": [start.date().isoformat() for start in starts],
                "deployments": counts,
                "lead_time_median_seconds": [percentile(week, 50) for week in leads]}


def measure(history: TargetHistory, window: Window) -> Figures:
    """One target's figures."""
    return Figures(history.key, window, shipped(history, window), restores(history, window),
                   list(history.problems))


def together(parts: Sequence[Figures], window: Window) -> Figures:
    """The figures of several targets computed over all their deployments, commits and
    restores together (never an average of their figures)."""
    return Figures(None, window,
                   sorted((s for f in parts for s in f.shipped), key=lambda s: s.at),
                   sorted((r for f in parts for r in f.restores), key=lambda r: r.start),
                   [f"{f.target}: {problem}" for f in parts for problem in f.problems])


# --- reading a repository ----------------------------------------------------------------------


def read(store: Store, key: str, window: Window) -> TargetHistory:
    """What `key`'s figures are computed from: its records and incidents, read once, and the
    author times of the commits each deployment that became current in the window brought."""
    from git_deployments.history import questions

    snap = store.existing(key)
    target, _ = snap.require()
    records = snap.all_records()
    by_number = {record.number: record for record in records}
    repos = questions.Repositories(store.git, target)
    brought: dict[int, list[int]] = {}
    unreadable: dict[str, list[int]] = {}  # why a range cannot be read -> the deployments
    for record in records:
        at = became_current(record)
        if at is None or at not in window:
            continue
        times: list[int] = []
        for span in questions.spans(by_number.get, record):
            times.extend(when for _, when in questions.author_times(span, repos))
            if span.problem is not None:
                unreadable.setdefault(f"{span.repository}: {span.problem}",
                                      []).append(record.number)
        brought[record.number] = times
    problems = [f"{why}; the commits of {_numbers(numbers)} in it are not counted"
                for why, numbers in unreadable.items()]
    return TargetHistory(key, records, snap.all_incidents(), brought, problems)


def _numbers(numbers: list[int]) -> str:
    shown = ", ".join(f"#{n}" for n in numbers[:MAX_PROBLEM_NUMBERS])
    more = len(numbers) - MAX_PROBLEM_NUMBERS
    return shown + (f" and {more} more" if more > 0 else "")


@dataclass
class Report:
    """Every asked target's figures, and all of them together."""

    window: Window
    targets: list[Figures]
    total: Figures
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (target, why)

    def as_json(self) -> dict[str, Any]:
        from git_deployments.core.timeutil import iso

        return {"since": iso(self.window.since), "until": iso(self.window.until),
                "bands": bands_json(),
                "targets": [figures.as_json() for figures in self.targets],
                "total": self.total.as_json(),
                "errors": [{"target": key, "error": why} for key, why in self.unreadable]}


def report(store: Store, keys: Sequence[str], window: Window,
           reader: Callable[[Store, str, Window], TargetHistory] = read) -> Report:
    """The figures of `keys` (each must exist), or of every target not archived. Without
    named targets, one that cannot be read is left out and named (`unreadable`)."""
    figures = []
    unreadable = []
    if keys:
        for key in dict.fromkeys(keys):
            store.existing(key)  # an unknown one is refused before anything is read
        for key in dict.fromkeys(keys):
            figures.append(measure(reader(store, key, window), window))
    else:
        for key in sorted(store.keys()):
            try:
                target, _ = store.existing(key).require()
                if target.archived:
                    continue
                figures.append(measure(reader(store, key, window), window))
            except CorruptRecord as exc:
                unreadable.append((key, str(exc)))
    return Report(window, figures, together(figures, window), unreadable)
