"""Times and durations as the tool reads and writes them: UTC, second precision."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from git_deployments.core.durations import format_duration as format_duration  # re-exported
from git_deployments.core.model import EARLIEST, duration_problem, moment_problem
from git_deployments.errors import DeployError

_DURATION = re.compile(r"^(?:(\d{1,9})d)?(?:(\d{1,9})h)?(?:(\d{1,9})m)?(?:(\d{1,9})s)?\Z")


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def parse_duration(text: str) -> int:
    """`90s`, `30m`, `2h`, `1h30m`, `1d` or a bare number of seconds -> seconds."""
    value = text.strip().lower()
    if value.isascii() and value.isdigit():
        seconds = int(value) if len(value) <= 12 else 0  # too long for a duration either way
    else:
        match = _DURATION.match(value)
        if not value or not match or not any(match.groups()):
            raise DeployError(f"invalid duration {text!r}: use forms like 90s, 30m, 2h or 1h30m")
        d, h, m, s = (int(g) if g else 0 for g in match.groups())
        seconds = ((d * 24 + h) * 60 + m) * 60 + s
    problem = duration_problem(seconds)  # the records' own limit, told in the same words
    if problem:
        raise DeployError(f"invalid duration {text!r}: {problem}")
    return seconds


def parse_datetime(text: str, *, reference: datetime | None = None) -> datetime:
    """An ISO 8601 time (local time when no zone is given), `now`, or `+30m` from now."""
    value = text.strip()
    base = reference or now()
    if value == "now":
        parsed = base
    elif value.startswith("+"):
        parsed = later(base, parse_duration(value[1:]))
    else:
        parsed = _parse_iso(text, value)
    problem = moment_problem(parsed)  # the records' own limit, told in the same words
    if problem:
        raise DeployError(f"invalid time {text!r}: {problem}")
    return parsed


def _parse_iso(text: str, value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise DeployError(
            f"invalid time {text!r}: use ISO 8601 (2026-05-01T14:00, 2026-05-01 14:00+02:00), "
            "'now' or '+2h'"
        ) from None
    try:
        if parsed.tzinfo is None:
            parsed = parsed.astimezone()
        parsed = parsed.astimezone(UTC).replace(microsecond=0)
    except (OverflowError, ValueError, OSError):
        parsed = EARLIEST - timedelta(days=1)  # out of range either way: refused by the caller
    return parsed


def later(moment: datetime, seconds: float) -> datetime:
    """`moment` plus `seconds`, held at the last representable time rather than overflowing
    (deadlines are computed from records that may not be ours)."""
    try:
        return moment + timedelta(seconds=seconds)
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC) if seconds > 0 else \
            datetime.min.replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def relative(moment: datetime, reference: datetime | None = None) -> str:
    """`3 days ago`, `in 2 hours`, `just now`."""
    delta = int(((reference or now()) - moment).total_seconds())
    future = delta < 0
    delta = abs(delta)
    if delta < 45:
        return "just now"
    for unit, size in (("year", 31536000), ("month", 2592000), ("week", 604800),
                       ("day", 86400), ("hour", 3600), ("minute", 60)):
        if delta >= size:
            count = round(delta / size) if unit != "year" else delta // size
            break
    else:  # pragma: no cover - delta >= 45 always meets "minute"
        unit, count = "minute", 1
    text = f"{count} {unit}{'s' if count != 1 else ''}"
    return f"in {text}" if future else f"{text} ago"


def span(moment: datetime, reference: datetime | None = None) -> str:
    """`3 days` (how long since), for 'current for 3 days'; a moment dated ahead of the clock
    (GIT_DEPLOY_NOW set later than the clock) says so."""
    text = relative(moment, reference)
    if text.startswith("in "):
        return f"a moment (dated {text})"
    return text.removesuffix(" ago").removeprefix("in ") if text != "just now" else "a moment"
