"""History answers as `--json` and the API show them: what a deployment brought, what is
pending, how two targets differ, the merges and issues in a deployment, where a commit runs.

Lists of commits sit under the keys in COMMIT_LISTS, each entry starting with its "commit" key,
so a printer may lay them out one commit per line (see commands/history.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from git_deployments.core.model import Deployment
    from git_deployments.core.store import Store
    from git_deployments.history.questions import (
        Brought,
        Comparison,
        Contained,
        Issue,
        Merge,
        Pending,
        RepoRange,
    )

COMMIT_LISTS = frozenset({"commits", "only_in_a", "only_in_b"})


Entries = Callable[["RepoRange"], list[dict[str, str]]]


def commit_entries(span: RepoRange) -> list[dict[str, str]]:
    """The JSON entries of a range's commits."""
    return [c.as_json(span.repository) for c in span.commits]


def _ranges(ranges: list[RepoRange], entries_of: Entries) -> dict[str, Any]:
    """`repositories` (each with its own list of commits) and all the commits, flat."""
    repositories = []
    flat: list[dict[str, str]] = []
    lists = []
    for span in ranges:
        entry = span.as_json(with_commits=False)
        entries = entries_of(span)
        flat.extend(entries)
        entry["commits"] = entries
        lists.append(entries)
        repositories.append(entry)
    # one repository: the same list twice (a printer encodes it once)
    return {"repositories": repositories, "commits": lists[0] if len(ranges) == 1 else flat}


def brought_json(result: Brought, entries: Entries = commit_entries) -> dict[str, Any]:
    """`git deploy commits --json`; `entries` gives each range's entries (made already, as
    the command line makes them while git lists the commits)."""
    record = result.record
    return {"target": result.key, "number": record.number, "version": record.version,
            "status": str(record.status), "rollback_of": record.rollback_of,
            "first": result.first, **_ranges(result.ranges, entries)}


def pending_json(result: Pending, entries: Entries = commit_entries) -> dict[str, Any]:
    """`git deploy pending --json` (`entries` as for brought_json)."""
    current = result.current
    return {"target": result.key, "current": current.number if current else None,
            "count": sum(len(s.commits) for s in result.ranges),
            **_ranges(result.ranges, entries)}


def compare_json(result: Comparison) -> dict[str, Any]:
    """`git deploy compare A B --json`."""
    def side(key: str, current: Deployment | None) -> dict[str, Any]:
        return {"target": key, "current": current.number if current else None,
                "version": current.version if current else None}

    repositories = []
    all_b: list[dict[str, str]] = []
    all_a: list[dict[str, str]] = []
    for repository, only_b, only_a, problem in result.repositories:
        b_entries = [c.as_json(repository) for c in only_b]
        a_entries = [c.as_json(repository) for c in only_a]
        all_b.extend(b_entries)
        all_a.extend(a_entries)
        repositories.append({"repository": repository, "problem": problem,
                             "only_in_b": b_entries, "only_in_a": a_entries})
    return {"a": side(result.a.key, result.a.current), "b": side(result.b.key, result.b.current),
            "repositories": repositories, "only_in_b": all_b, "only_in_a": all_a}


@dataclass
class Issues:
    """The merges and issue references in the commits a deployment brought."""

    brought: Brought
    merges: list[Merge]
    issues: list[Issue]

    def as_json(self) -> dict[str, Any]:
        record = self.brought.record
        return {"target": self.brought.key, "number": record.number, "version": record.version,
                "status": str(record.status),
                "repositories": [s.as_json(with_commits=False) for s in self.brought.ranges],
                "merges": [m.as_json() for m in self.merges],
                "issues": [i.as_json() for i in self.issues]}


def issues(store: Store, key: str, number: int | None = None,
           max_count: int | None = None) -> Issues:
    """`git deploy issues`: merges and issue keys (deploy.issuePattern) in what it brought."""
    from git_deployments.history import questions as history

    patterns, defaults = history.issue_patterns(store.git)
    result = history.brought(store, key, number, max_count=max_count, full=True)
    messages = [(span.repository, c) for span in result.ranges for c in span.commits]
    merges, found = history.issues_in(messages, patterns, defaults)  # type: ignore[arg-type]
    return Issues(result, merges, found)


def contains_json(result: Contained) -> list[dict[str, Any]]:
    """`git deploy contains --json`: one entry per target."""
    return [answer.as_json() for answer in result.answers]
