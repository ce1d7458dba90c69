"""The questions the server answers, each once: the API URL it is answered at, the refs the
answer depends on, and how it is computed from the services the command line calls. The API
serves a query as JSON; a page asks the same query (so it shares the answer kept in memory) and
renders it. A page's data is therefore always at the JSON URL its query names."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

if TYPE_CHECKING:
    from git_deployments.core.store import Store
    from git_deployments.history.metrics import Window

API = "/api/v1/projects"
DEFAULT_PAGE = 50
MAX_PAGE = 1000
# a deployment's own changes are looked for this many timeline commits at a time: a page never
# walks a long timeline to its start
TIMELINE_SCAN = 2000

# the ref sources an answer depends on: a name ending in '/' is every ref under it
DEPLOYMENTS = "refs/deployments/"
BRANCHES = ("refs/heads/", "refs/remotes/", "HEAD")
EVERY_REF = ("refs/", "HEAD")
# not a ref: the health checks' last results, kept in the repository's local state
HEALTH = "state:health"


def target_ref(key: str) -> str:
    return DEPLOYMENTS + key


@dataclass(frozen=True)
class Query:
    """One question about one project: where the API answers it, what it depends on, and how."""

    path: str
    params: tuple[tuple[str, str], ...]
    sources: tuple[str, ...]
    compute: Callable[[Store], Any] = field(compare=False)
    # the `Link` header naming the next page, from the answer
    next_page: Callable[[Any], dict[str, str]] | None = field(default=None, compare=False)

    @property
    def url(self) -> str:
        return self.path + (f"?{urlencode(self.params)}" if self.params else "")

    def link(self, **params: Any) -> dict[str, str]:
        """A `Link: <…>; rel="next"` header to this query with `params` replaced."""
        kept = [(k, v) for k, v in self.params if k not in params]
        kept += [(k, str(v)) for k, v in params.items()]
        return {"Link": f'<{self.path}?{urlencode(kept)}>; rel="next"'}


def base(project: str) -> str:
    return f"{API}/{quote(project, safe='')}"


def target_path(project: str, key: str) -> str:
    return f"{base(project)}/targets/{key}"


def status(project: str, include_archived: bool) -> Query:
    from git_deployments.reading.status import status as read_status

    return Query(f"{base(project)}/status", (("all", "true"),) if include_archived else (),
                 (DEPLOYMENTS, *BRANCHES, HEALTH),
                 lambda store: read_status(store, include_archived=include_archived))


def targets(project: str, include_archived: bool) -> Query:
    from git_deployments.reading.targets import target_entry
    from git_deployments.reading.targets import targets as read_targets

    return Query(f"{base(project)}/targets", (("all", "true"),) if include_archived else (),
                 (DEPLOYMENTS,),
                 lambda store: [target_entry(t, i)
                                for t, i in read_targets(store, include_archived)])


def target(project: str, key: str) -> Query:
    from git_deployments.reading.targets import target_show

    return Query(target_path(project, key), (), (target_ref(key), HEALTH),
                 lambda store: target_show(store, key))


def deployments(project: str, key: str, statuses: Sequence[str] = (), branch: str | None = None,
                limit: int = DEFAULT_PAGE, before: int | None = None) -> Query:
    """A target's deployments, newest first, a page at a time (`Link` names the next)."""
    from git_deployments.reading.deployments import deployment_json, newest_first

    wanted = sorted(set(statuses))
    params: list[tuple[str, str]] = []
    if wanted:
        params.append(("status", ",".join(wanted)))
    if branch:
        params.append(("branch", branch))
    params.append(("limit", str(limit)))
    if before is not None:
        params.append(("before", str(before)))

    def page(store: Store) -> list[dict[str, Any]]:
        snap = store.existing(key)
        _, index = snap.require()
        found = newest_first(snap, index, set(wanted) or None, limit, before, branch=branch)
        return [deployment_json(key, r) for r in found]

    query = Query(f"{target_path(project, key)}/deployments", tuple(params),
                  (target_ref(key),), page)

    def link(data: list[dict[str, Any]]) -> dict[str, str]:
        if len(data) < limit or data[-1]["number"] <= 1:
            return {}
        return query.link(before=data[-1]["number"], limit=limit)

    return Query(query.path, query.params, query.sources, page, link)


def incidents(project: str, key: str, open_only: bool = False) -> Query:
    """A target's incidents, newest first (git deploy incidents TARGET)."""
    from git_deployments.reading.incidents import list_incidents

    return Query(f"{target_path(project, key)}/incidents",
                 (("open", "true"),) if open_only else (), (target_ref(key),),
                 lambda store: list_incidents(store, key, open_only).incidents)


def project_incidents(project: str, open_only: bool = False) -> Query:
    """Every target's incidents, newest first (git deploy incidents)."""
    from git_deployments.reading.incidents import list_incidents

    return Query(f"{base(project)}/incidents", (("open", "true"),) if open_only else (),
                 (DEPLOYMENTS,), lambda store: list_incidents(store, None, open_only).incidents)


def deployment(project: str, key: str, number: int) -> Query:
    from git_deployments.reading.deployments import show

    return Query(f"{target_path(project, key)}/deployments/{number}", (),
                 (target_ref(key),), lambda store: show(store, key, number).as_json())


def commits(project: str, key: str, number: int, limit: int | None = None) -> Query:
    from git_deployments.history.questions import brought
    from git_deployments.reading.history import brought_json

    return Query(f"{target_path(project, key)}/deployments/{number}/commits",
                 (("limit", str(limit)),) if limit else (), (target_ref(key),),
                 lambda store: brought_json(brought(store, key, number, max_count=limit)))


def issues(project: str, key: str, number: int, limit: int | None = None) -> Query:
    from git_deployments.reading.history import issues as read_issues

    return Query(f"{target_path(project, key)}/deployments/{number}/issues",
                 (("limit", str(limit)),) if limit else (), (target_ref(key),),
                 lambda store: read_issues(store, key, number, limit).as_json())


def timeline(project: str, key: str, limit: int = DEFAULT_PAGE, before: str | None = None,
             number: int | None = None) -> Query:
    """A target's changes, newest first (`git deploy log --json`), a page at a time: `before`
    is the timeline commit the page starts below. With `number`, only the changes about that
    deployment, from the newest back to the one that created it."""
    from git_deployments.core.timeline import entries
    from git_deployments.errors import NotFound

    params: list[tuple[str, str]] = []
    if number is not None:
        params.append(("number", str(number)))
    params.append(("limit", str(limit)))
    if before is not None:
        params.append(("before", before))
    walked: dict[str, str | None] = {}  # where the last page's walk stopped, for its Link

    def page(store: Store) -> list[dict[str, Any]]:
        snap = store.existing(key)
        start = snap.tip
        if number is not None:
            snap.require()
            if number >= snap.require()[1].next_number:
                raise NotFound(f"target '{key}' has no deployment #{number}")
        if before is not None:
            assert snap.tip is not None
            if not store.git.has_object(before) or not store.git.is_ancestor(before, snap.tip):
                raise NotFound(f"{before} is not a change of target '{key}'")
            parents = store.git.commit_info(before).parents
            start = parents[0] if parents else None
        found: list[dict[str, Any]] = []
        walked["stop"] = None
        if start is None:
            return found
        for seen, entry in enumerate(entries(store.git, key, start), 1):
            if number is None or entry.number == number or \
                    any(t.number == number for t in entry.transitions):
                found.append(entry.as_json())
            if number is not None and entry.created == number:
                break  # nothing about a deployment comes before the change that created it
            if len(found) >= limit or (number is not None and seen >= TIMELINE_SCAN):
                walked["stop"] = entry.commit
                break
        return found

    query = Query(f"{target_path(project, key)}/timeline", tuple(params),
                  (target_ref(key),), page)

    def link(data: list[dict[str, Any]]) -> dict[str, str]:
        stop = walked.get("stop")
        if stop is None:
            return {}
        return query.link(before=stop, limit=limit)

    return Query(query.path, query.params, query.sources, page, link)


def pending(project: str, key: str, branch: str | None = None,
            limit: int | None = None) -> Query:
    from git_deployments.history.questions import pending as read_pending
    from git_deployments.reading.history import pending_json

    params = [("branch", branch)] if branch else []
    if limit:
        params.append(("limit", str(limit)))
    return Query(f"{target_path(project, key)}/pending", tuple(params),
                 (target_ref(key), *BRANCHES),
                 lambda store: pending_json(read_pending(store, key, branch, max_count=limit)))


def compare(project: str, key: str, other: str) -> Query:
    """What `other`'s current deployment has that `key`'s has not (promoting `other` to `key`
    would bring `only_in_b`)."""
    from git_deployments.history.questions import compare as read_compare
    from git_deployments.reading.history import compare_json

    return Query(f"{target_path(project, key)}/compare", (("with", other),),
                 (target_ref(key), target_ref(other)),
                 lambda store: compare_json(read_compare(store, key, other)))


def contains(project: str, commit: str, keys: Sequence[str] | None = None,
             repository: str | None = None) -> Query:
    from git_deployments.history.questions import contains as read_contains
    from git_deployments.reading.history import contains_json

    params = [("target", k) for k in keys or []]
    if repository:
        params.append(("repository", repository))
    return Query(f"{base(project)}/contains/{quote(commit, safe='/')}", tuple(params),
                 EVERY_REF,
                 lambda store: contains_json(read_contains(store, commit, keys or None,
                                                           repository)))


def metrics(project: str, keys: Sequence[str], window: Window) -> Query:
    """The four DORA figures of `keys` (none: every target not archived) and of all together
    over `window` (git deploy metrics). The window is in the parameters, so an answer is kept
    for exactly that window."""
    from git_deployments.core.timeutil import iso
    from git_deployments.history.metrics import report

    chosen = list(dict.fromkeys(keys))
    params = (*(("target", key) for key in chosen), ("since", iso(window.since)),
              ("until", iso(window.until)))
    sources = tuple(target_ref(key) for key in chosen) or (DEPLOYMENTS,)
    return Query(f"{base(project)}/metrics", params, sources,
                 lambda store: report(store, chosen, window).as_json())
