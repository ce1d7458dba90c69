"""`git deploy metrics`: the four DORA figures of each target, and of all of them together."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from git_deployments.commands.common import add_json, runs, target_key
from git_deployments.commands.output import Output

if TYPE_CHECKING:
    from git_deployments.commands.context import Context

BAND_COLOURS = {"elite": "32", "high": "36", "medium": "33", "low": "31"}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "metrics", help="the four DORA figures: deployment frequency, lead time, change "
                        "failure rate, time to restore",
        description="Deployment frequency, lead time for changes, change failure rate and "
                    "time to restore of each target (default: every target not archived) and "
                    "of all of them together, over [--since, --until), each with its band "
                    "(elite, high, medium, low) from the 2023 Accelerate State of DevOps "
                    "Report. docs/metrics.md defines each figure exactly.")
    p.add_argument("targets", type=target_key, nargs="*", metavar="TARGET",
                   help="a target to measure (default: every target not archived)")
    p.add_argument("--since", metavar="90d|DATE",
                   help="the window's start: a span before --until (90d, 12w, 36h) or a date "
                        "(default: 90d)")
    p.add_argument("--until", metavar="DATE",
                   help="the window's end, not included (default: now, or GIT_DEPLOY_NOW)")
    add_json(p)
    runs(p, lambda ctx, a: cmd_metrics(ctx, targets=a.targets, since=a.since, until=a.until,
                                       as_json=a.as_json))


def cmd_metrics(ctx: Context, targets: list[str] | None = None, since: str | None = None,
                until: str | None = None, as_json: bool = False) -> int:
    from git_deployments.core.intake import clock
    from git_deployments.history.metrics import report, window_of

    window = window_of(since, until, clock())  # refused before the repository is read
    result = report(ctx.store, targets or [], window)
    data = result.as_json()
    out = Output(as_json)
    code = 1 if result.unreadable else 0
    if as_json:
        out.json(data)
        return code
    for key, why in result.unreadable:
        print(f"error: target '{key}': {why}", file=sys.stderr)
    days = result.window.seconds / 86400
    out.line(f"{_moment(data['since'])} to {_moment(data['until'])} ({_days(days)}); bands "
             f"from the {data['bands']['report']}")
    entries = data["targets"]
    if not entries:
        out.line("no targets yet; create one with 'git deploy target create <key>'")
        return code
    shown = [*entries, data["total"]] if len(entries) > 1 else entries
    width = max(len(text) for entry in shown for _, text, _ in _rows(entry))
    for entry in shown:
        out.line()
        out.line(out.bold(entry["target"] or "all targets"))
        for name, text, band in _rows(entry):
            out.line(f"  {name:<21} {text:<{width}}  {_band(out, band)}")
        for problem in entry["problems"]:
            out.line(out.dim(f"  note: {problem}"))
    return code


def _rows(entry: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    frequency = entry["deployment_frequency"]
    lead = entry["lead_time"]
    failures = entry["change_failure_rate"]
    restore = entry["time_to_restore"]
    count = frequency["deployments"]
    rows: list[tuple[str, str, str | None]] = [(
        "deployment frequency",
        f"{_plural(count, 'deployment')}, {frequency['per_week']:g} a week, on "
        f"{_plural(frequency['days_with_deployment'], 'day')}", frequency["band"])]
    if lead["commits"]:
        rows.append(("lead time", f"median {approximately(lead['median_seconds'])}, 90th "
                                  f"percentile {approximately(lead['p90_seconds'])} "
                                  f"({_plural(lead['commits'], 'commit')})", lead["band"]))
    else:
        rows.append(("lead time", "no commits", None))
    if failures["rate"] is not None:
        rows.append(("change failure rate", f"{failures['rate'] * 100:.1f}% ({failures['failed']}"
                                            f" of {failures['deployments']})", failures["band"]))
    else:
        rows.append(("change failure rate", "no deployments", None))
    if restore["restores"]:
        rows.append(("time to restore", f"median {approximately(restore['median_seconds'])} "
                                        f"({_plural(restore['restores'], 'restore')})",
                     restore["band"]))
    else:
        rows.append(("time to restore", "nothing restored", None))
    return rows


def _band(out: Output, band: str | None) -> str:
    if band is None:
        return out.dim("no data")
    return out.paint(band, BAND_COLOURS.get(band, ""))


def approximately(seconds: int) -> str:
    """`2h 5m`, `3d 4h`, `45s`: the two largest units."""
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
        if len(parts) == 2 or (parts and seconds == 0):
            break
    return " ".join(parts)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _moment(text: str) -> str:
    return text.replace("T", " ").replace("Z", " UTC")


def _days(days: float) -> str:
    return f"{days:g} day{'' if days == 1 else 's'}" if days == int(days) else \
        f"{days:.1f} days"
