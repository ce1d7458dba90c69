"""`git deploy commits|pending|contains|compare|issues|rollback|import-tags|keep`: what
deployments brought, where a commit went, going back on purpose, and history from old tags."""

from __future__ import annotations

import functools
import gc
import json
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec

from git_deployments.commands.common import (
    add_json,
    add_write_options,
    count,
    number,
    runs,
    target_key,
)
from git_deployments.commands.output import Output
from git_deployments.core.model import REPOSITORY_PATTERN
from git_deployments.errors import DeployError

P = ParamSpec("P")

if TYPE_CHECKING:
    from git_deployments.commands.context import Context
    from git_deployments.core.model import Deployment
    from git_deployments.history.questions import Commit, RepoRange


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "commits", help="the commits a deployment brought (default: the current one)",
        description="The commits a deployment brought: new since the previous successful "
                    "deployment, one list per repository; for a first deployment, its history.")
    p.add_argument("target", type=target_key)
    p.add_argument("number", type=number, nargs="?")
    _max_count(p)
    add_json(p)
    runs(p, lambda ctx, a: cmd_commits(ctx, target=a.target, number=a.number,
                                       max_count=a.max_count, as_json=a.as_json))

    p = subparsers.add_parser(
        "pending", help="commits on the branch not yet in the current deployment",
        description="What the next deployment would bring: commits on the branch tip that the "
                    "target's current deployment does not contain.")
    p.add_argument("target", type=target_key)
    p.add_argument("--branch", metavar="[REPO:]BRANCH",
                   help="the branch to compare with (default: the deployed branch)")
    _max_count(p)
    add_json(p)
    runs(p, lambda ctx, a: cmd_pending(ctx, target=a.target, branch=a.branch,
                                       max_count=a.max_count, as_json=a.as_json))

    p = subparsers.add_parser(
        "contains", help="which targets run a commit, and the deployment that first shipped it",
        description="For every target: whether its current deployment contains the commit "
                    "(by ancestry), and the first deployment that shipped it.")
    p.add_argument("commit", help="a commit id, tag or branch of this repository")
    p.add_argument("--target", dest="targets", action="append", type=target_key,
                   metavar="TARGET", help="only this target (repeatable)")
    p.add_argument("--repository", metavar="NAME",
                   help="the repository the commit is in, by the name targets give it (default: "
                        "this one, else any repository the targets record that has it)")
    add_json(p)
    runs(p, lambda ctx, a: cmd_contains(ctx, commit=a.commit, targets=a.targets,
                                        repository=a.repository, as_json=a.as_json))

    p = subparsers.add_parser(
        "compare", help="what one target's current deployment has that another's has not",
        description="What B's current deployment has that A's has not, and the reverse: the "
                    "preview of promoting B to A (e.g. 'compare production staging').")
    p.add_argument("a", type=target_key, metavar="TARGET_A")
    p.add_argument("b", type=target_key, metavar="TARGET_B")
    add_json(p)
    runs(p, lambda ctx, a: cmd_compare(ctx, a=a.a, b=a.b, as_json=a.as_json))

    p = subparsers.add_parser(
        "issues", help="merges and issue references in what a deployment brought",
        description="The merges (pull and merge requests) and the issues referenced (trailers "
                    "such as Fixes:, keys such as #123 or ABC-123; see deploy.issuePattern) in "
                    "the commits a deployment brought.")
    p.add_argument("target", type=target_key)
    p.add_argument("number", type=number, nargs="?")
    _max_count(p)
    add_json(p)
    runs(p, lambda ctx, a: cmd_issues(ctx, target=a.target, number=a.number,
                                      max_count=a.max_count, as_json=a.as_json))

    p = subparsers.add_parser(
        "rollback", help="redeploy an earlier successful deployment on purpose",
        description="Start a new deployment with the commits and version of an earlier one "
                    "that completed (default: the newest before the current with other "
                    "commits); --finish records it as current at once. The timeline marks it "
                    "as a rollback of the current deployment.")
    p.add_argument("target", type=target_key)
    p.add_argument("--to", type=number, metavar="N", help="the deployment to return to")
    p.add_argument("--finish", action="store_true",
                   help="record it as current now (default: deploying, for the CI to finish)")
    p.add_argument("--version", help="the version (default: the earlier deployment's)")
    p.add_argument("--description", help="shown with the deployment")
    p.add_argument("--reason", help="why (default: 'rollback to #N')")
    p.add_argument("--ext-label", metavar="LABEL", help="label of an external link")
    p.add_argument("--ext-url", metavar="URL", help="URL of the external link")
    add_write_options(p)
    runs(p, lambda ctx, a: cmd_rollback(ctx, target=a.target, to=a.to, finish=a.finish,
                                        version=a.version, description=a.description,
                                        reason=a.reason, ext_label=a.ext_label,
                                        ext_url=a.ext_url, as_json=a.as_json))

    p = subparsers.add_parser(
        "import-tags", help="build a target's history from release tags",
        description="Record one deployment per matching tag, oldest first, each dated by its "
                    "tag and named by it, through the normal write path (creates the target if "
                    "needed). Tags imported before are skipped.")
    p.add_argument("target", type=target_key)
    p.add_argument("--pattern", default="v*", help="which tags (a glob; default: v*)")
    p.add_argument("--branch", help="the branch the releases were made on (default: HEAD's)")
    p.add_argument("--dry-run", action="store_true", help="show what would be imported")
    add_json(p)
    runs(p, lambda ctx, a: cmd_import_tags(ctx, target=a.target, pattern=a.pattern,
                                           branch=a.branch, dry_run=a.dry_run,
                                           as_json=a.as_json))

    p = subparsers.add_parser(
        "keep", help="rebuild the refs that keep deployed commits from being pruned",
        description="Regenerate refs/deployments-kept/<target> from each timeline, so git gc "
                    "keeps every deployed commit; reports deployed commits this repository "
                    "lacks.")
    p.add_argument("targets", type=target_key, nargs="*", metavar="TARGET")
    add_json(p)
    runs(p, lambda ctx, a: cmd_keep(ctx, targets=a.targets, as_json=a.as_json))


def _max_count(p: Any) -> None:
    p.add_argument("-n", "--max-count", type=count, metavar="N",
                   help="list at most N commits per repository (a first deployment: 100 "
                        "unless given)")


# --- JSON for long lists -------------------------------------------------------------------------

_PLACEHOLDER = "\x00list:{}\x00"
# a placeholder as json.dumps writes it into the envelope
_ENCODED_PLACEHOLDER = re.compile(r'"\\u0000list:([^\\"]+)\\u0000"')
# where one entry of a compactly encoded list of commits ends and the next begins: every entry
# starts with its "commit" key, and a quote inside a JSON string is always escaped, so this can
# only join two entries (a string that ends in '}, {' is followed by its closing quote and then
# ',' or '}', never by 'commit')
_BETWEEN = '}, {"commit": '
# entries printed per write: some tens of kilobytes, memory the allocator hands out again and
# again (one string of a whole list of 40,000 is fresh memory, several times slower to fill)
_WRITTEN_AT_ONCE = 256


def _encode_entries(entries: list[dict[str, Any]]) -> list[str]:
    """Each of a list of commits' entries as compact JSON, from one call of the C encoder for
    all of them (an indented dump of 40,000 commits takes the pure-Python encoder, several
    times slower), cut between entries."""
    if not entries:
        return []
    opening = '{"commit": '
    parts = json.dumps(entries, ensure_ascii=False)[1 + len(opening):-2].split(_BETWEEN)
    return [opening + part + "}" for part in parts]


def _encode_commits(commits: list[Commit], repository: str) -> list[str]:
    """`_encode_entries` of the commits' entries (Commit.as_json), without the dicts: each
    string as the C encoder writes it, the keys in the entries' order."""
    from json.encoder import encode_basestring as string  # what json.dumps writes a str with

    where = string(repository)
    return [f'{{"commit": {string(c.commit)}, "author": {string(c.author)}, '
            f'"date": {string(c.date)}, "subject": {string(c.subject)}, "repository": {where}}}'
            for c in commits]


class _Listing:
    """The `listed` of history.brought and history.pending: each range's commits turned into
    their JSON entries and encoded batch by batch while git still walks, so that printing is
    what is left to do when the walk ends."""

    def __init__(self) -> None:
        self._entries: dict[int, list[dict[str, str]]] = {}  # by the range's id
        # by the id of a list of entries: each entry's compact encoding
        self.encoded: dict[int, list[str]] = {}

    def add(self, span: RepoRange, commits: list[Commit]) -> None:
        entries = self._entries.setdefault(id(span), [])
        entries.extend([c.as_json(span.repository) for c in commits])
        self.encoded.setdefault(id(entries), []).extend(_encode_commits(commits,
                                                                        span.repository))

    def entries(self, span: RepoRange) -> list[dict[str, str]]:
        """The entries of `span`'s commits (reading.history's `entries`)."""
        entries = self._entries.get(id(span))
        if entries is None or len(entries) != len(span.commits):
            return [c.as_json(span.repository) for c in span.commits]
        return entries


def _with_placeholders(data: Any, lists: dict[str, tuple[list[dict[str, Any]], int]],
                       depth: int = 0) -> Any:
    """`data` with each list of commits (under a key of COMMIT_LISTS) put aside in `lists` and
    replaced by a placeholder string; `depth` is how deep the value sits in the JSON."""
    from git_deployments.reading.history import COMMIT_LISTS

    if isinstance(data, dict):
        copy = {}
        for name, value in data.items():
            if name in COMMIT_LISTS and isinstance(value, list):
                tag = str(len(lists))
                lists[tag] = (value, depth + 1)
                copy[name] = _PLACEHOLDER.format(tag)
            else:
                copy[name] = _with_placeholders(value, lists, depth + 1)
        return copy
    if isinstance(data, list):
        return [_with_placeholders(item, lists, depth + 1) for item in data]
    return data


def _joined(entries: list[dict[str, Any]],
            known: dict[int, tuple[list[dict[str, Any]], list[str]]]) -> list[str] | None:
    """The encoding of `entries` when it is lists encoded before, one after the other (all the
    repositories' commits after each repository's own): the same dicts, so the same text."""
    from operator import is_

    starts = {id(listed[0]): (listed, texts) for listed, texts in known.values() if listed}
    found: list[str] = []
    at = 0
    while at < len(entries):
        part = starts.get(id(entries[at]))
        if part is None or at + len(part[0]) > len(entries) or \
                not all(map(is_, entries[at:at + len(part[0])], part[0])):
            return None
        found.extend(part[1])
        at += len(part[0])
    return found


def _emit(out: Output, data: Any, encoded: dict[int, list[str]] | None = None) -> None:
    """Print `data` as indented JSON with one commit per line in its lists of commits, written
    piece by piece rather than joined into one large string. `encoded` holds lists of commits
    encoded already (by the id of the list: each entry's compact encoding, see _Listing)."""
    lists: dict[str, tuple[list[dict[str, Any]], int]] = {}
    envelope = json.dumps(_with_placeholders(data, lists), indent=2, ensure_ascii=False)
    # each list's entries encoded, by the list's id: a list given twice (one repository's, and
    # all) is encoded once
    known: dict[int, tuple[list[dict[str, Any]], list[str]]] = {}
    for entries, _depth in lists.values():
        if id(entries) not in known:
            texts = encoded.get(id(entries)) if encoded else None
            if texts is None or len(texts) != len(entries):
                texts = _joined(entries, known)
            if texts is None:
                texts = _encode_entries(entries)
            known[id(entries)] = (entries, texts)
    stream = out.stream
    for i, piece in enumerate(_ENCODED_PLACEHOLDER.split(envelope)):
        if i % 2 == 0:
            stream.write(piece)
            continue
        entries, depth = lists[piece]
        texts = known[id(entries)][1]
        if not texts:
            stream.write("[]")
            continue
        pad = "  " * (depth + 1)
        between = ",\n" + pad
        stream.write("[\n" + pad)
        for at in range(0, len(texts), _WRITTEN_AT_ONCE):
            if at:
                stream.write(between)
            stream.write(between.join(texts[at:at + _WRITTEN_AT_ONCE]))
        stream.write("\n" + "  " * depth + "]")
    stream.write("\n")


def _collection_paused_in(command: Callable[P, int]) -> Callable[P, int]:
    """`command` with Python's cycle collector paused: a long list of commits makes tens of
    thousands of objects, none of them in a cycle, and each collection would walk them all
    again."""

    @functools.wraps(command)
    def paused(*args: P.args, **kwargs: P.kwargs) -> int:
        if not gc.isenabled():
            return command(*args, **kwargs)
        gc.disable()
        try:
            return command(*args, **kwargs)
        finally:
            gc.enable()

    return paused


# --- human output --------------------------------------------------------------------------------


def _commit_lines(out: Output, commits: list[Commit], prefix: str = "  ") -> None:
    if not commits:
        return
    lines = [f"{prefix}{out.paint(c.commit[:10], '33')}  {c.date[:10]}  "
             f"{c.author.split(' <')[0]}  {c.subject}" for c in commits]
    out.stream.write("\n".join(lines) + "\n")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _counted(listed: list[Commit], truncated: bool, word: str = "commit") -> str:
    """`3 commits`, or `more than 3 commits` when -n cut the list."""
    return ("more than " if truncated else "") + \
        f"{len(listed)} {word}{'' if len(listed) == 1 and not truncated else 's'}"


def _more(listed: list[Commit], truncated: bool) -> str:
    return f" ({len(listed)} shown: -n N to list more)" if truncated else ""


def _heading(out: Output, key: str, record: Deployment) -> None:
    rollback = f"  (rolls back #{record.rollback_of})" if record.rollback_of else ""
    out.line(out.bold(f"{key} #{record.number}") + f"  {out.status(record.status)}  "
             f"{record.version or '(no version)'}{rollback}")


def _print_range(out: Output, key: str, span: RepoRange, what: str) -> None:
    where = f"{span.repository}:{span.branch}"
    if span.problem:
        out.line(f"{where}  {span.problem}")
        return
    shown = _counted(span.commits, span.truncated)
    more = _more(span.commits, span.truncated)
    since = f"#{span.base_number}" if span.base_number else (span.base or "")[:10]
    if span.base is None:
        out.line(f"{where}  {what}: {shown} of its history, newest first{more}")
    else:
        out.line(f"{where}  {shown} {what} since {since} "
                 f"({span.base[:10]}..{(span.head or '')[:10]}){more}")
    _commit_lines(out, span.commits)
    if span.removed:
        cut = span.removed_truncated
        out.line(f"{where}  {_counted(span.removed, cut)} of {since} not in it (rolled back, "
                 f"or dropped from the branch){_more(span.removed, cut)}:")
        _commit_lines(out, span.removed, "  - ")


def brought_lines(key: str, record: Deployment, counts: list[dict[str, Any]]) -> list[str]:
    """What `show` says about a deployment's commits: per repository how many it brought,
    and the command that lists them."""
    lines = []
    for entry in counts:
        where = f"{entry['repository']}:{entry['branch']}"
        if entry["from_deployment"] is None:
            text = f"{where}: first deployment of it"
        elif entry["count"] is None:
            text = f"{where}: since #{entry['from_deployment']} (commits not available here)"
        else:
            text = f"{where}: {_plural(entry['count'], 'new commit')} since " \
                   f"#{entry['from_deployment']}"
        lines.append(f"  brought      {text}")
    if lines:
        lines.append(f"               (list them: git deploy commits {key} {record.number})")
    return lines


# --- commits -------------------------------------------------------------------------------------


@_collection_paused_in
def cmd_commits(ctx: Context, target: str, number: int | None = None,
                max_count: int | None = None, as_json: bool = False) -> int:
    from git_deployments.history import questions as history

    out = Output(as_json)
    if as_json:
        from git_deployments.reading.history import brought_json

        listing = _Listing()
        result = history.brought(ctx.store_for_reading, target, number, max_count=max_count,
                                 listed=listing.add)
        _emit(out, brought_json(result, listing.entries), listing.encoded)
        return 0
    result = history.brought(ctx.store_for_reading, target, number, max_count=max_count)
    record = result.record
    _heading(out, target, record)
    if not result.ranges:
        out.line("no commits recorded")
    for span in result.ranges:
        what = "first deployment" if span.base is None else "new"
        _print_range(out, target, span, what)
    return 0


# --- pending -------------------------------------------------------------------------------------


@_collection_paused_in
def cmd_pending(ctx: Context, target: str, branch: str | None = None,
                max_count: int | None = None, as_json: bool = False) -> int:
    from git_deployments.history import questions as history

    out = Output(as_json)
    if as_json:
        from git_deployments.reading.history import pending_json

        listing = _Listing()
        result = history.pending(ctx.store_for_reading, target, branch, max_count=max_count,
                                 listed=listing.add)
        _emit(out, pending_json(result, listing.entries), listing.encoded)
        return 0
    result = history.pending(ctx.store_for_reading, target, branch, max_count=max_count)
    current = result.current
    if current is None:
        out.line(f"{target}: nothing deployed yet; the next deployment brings the branch's "
                 "history")
    else:
        out.line(f"{out.bold(target)}: current is #{current.number} "
                 f"{current.version or '(no version)'}")
    for span in result.ranges:
        if span.base is None:
            _print_range(out, target, span, "not deployed")
            continue
        where = f"{span.repository}:{span.branch}"
        if span.problem:
            out.line(f"{where}  {span.problem}")
            continue
        out.line(f"{where}  {_counted(span.commits, span.truncated)} pending "
                 f"({span.base[:10]}..{(span.head or '')[:10]})"
                 f"{_more(span.commits, span.truncated)}")
        _commit_lines(out, span.commits)
        if span.removed:
            out.line(f"{where}  the branch no longer has "
                     f"{_counted(span.removed, span.removed_truncated, 'deployed commit')} "
                     f"(force-pushed?){_more(span.removed, span.removed_truncated)}:")
            _commit_lines(out, span.removed, "  - ")
    return 0


# --- contains ------------------------------------------------------------------------------------


def cmd_contains(ctx: Context, commit: str, targets: list[str] | None = None,
                 repository: str | None = None, as_json: bool = False) -> int:
    from datetime import UTC, datetime

    from git_deployments.core.timeutil import iso
    from git_deployments.history import questions as history

    if repository is not None and not REPOSITORY_PATTERN.match(repository):
        raise DeployError(f"invalid repository name {repository!r}")
    result = history.contains(ctx.store, commit, targets, repository)
    answers = result.answers
    out = Output(as_json)
    if as_json:
        from git_deployments.reading.history import contains_json

        out.json(contains_json(result))
        return 0
    where = f"  (repository {result.elsewhere})" if result.elsewhere else ""
    out.line(out.bold(f"commit {result.commit[:12]}") + f"  {result.summary}{where}")
    if not answers:
        out.line("no targets yet")
        return 0
    rows = []
    for answer in answers:
        first = answer.first
        if first is None:
            where = "never shipped"
        else:
            when = iso(datetime.fromtimestamp(first.shipped_at, UTC))[:10] \
                if first.shipped_at is not None else "?"
            where = f"first shipped in #{first.number} {first.version or ''} on {when}"
            where = " ".join(where.split())
        if answer.problem:
            state, where = "unknown", answer.problem
        elif answer.live and answer.current is not None:
            state = f"live in #{answer.current.number}"
        elif answer.current is None:
            state = "nothing current"
        else:
            state = f"not in #{answer.current.number}"
        if answer.unknown:
            where += f"; unknown for {', '.join(f'#{n}' for n in answer.unknown)} " \
                     "(their commits are missing here)"
        rows.append((answer.key, state, where))
    out.table(["TARGET", "CURRENT", "FIRST"], rows)
    return 0


# --- compare -------------------------------------------------------------------------------------


def cmd_compare(ctx: Context, a: str, b: str, as_json: bool = False) -> int:
    from git_deployments.history import questions as history

    result = history.compare(ctx.store, a, b)
    out = Output(as_json)

    if as_json:
        from git_deployments.reading.history import compare_json

        _emit(out, compare_json(result))
        return 0
    for s in (result.a, result.b):
        if s.current is None:
            out.line(f"{s.key}: nothing current")
    name_a = f"{a} #{result.a.current.number}" if result.a.current else a
    name_b = f"{b} #{result.b.current.number}" if result.b.current else b
    for repository, only_b, only_a, problem in result.repositories:
        if problem:
            out.line(f"{repository}  {problem}")
            continue
        out.line(out.bold(f"{repository}") + f"  {name_b} has {_plural(len(only_b), 'commit')} "
                 f"{name_a} has not")
        _commit_lines(out, only_b)
        out.line(out.bold(f"{repository}") + f"  {name_a} has {_plural(len(only_a), 'commit')} "
                 f"{name_b} has not")
        _commit_lines(out, only_a)
    return 0


# --- issues --------------------------------------------------------------------------------------


def cmd_issues(ctx: Context, target: str, number: int | None = None,
               max_count: int | None = None, as_json: bool = False) -> int:
    from git_deployments.reading.history import issues as find_issues

    found = find_issues(ctx.store, target, number, max_count)
    out = Output(as_json)
    if as_json:
        out.json(found.as_json())
        return 0
    result, merges, issues = found.brought, found.merges, found.issues
    record = result.record
    _heading(out, target, record)
    for span in result.ranges:
        if span.problem:
            out.line(f"{span.repository}:{span.branch}  {span.problem}")
    total = sum(len(s.commits) for s in result.ranges)
    out.line(f"{_plural(total, 'commit')}, {_plural(len(merges), 'merge')}, "
             f"{_plural(len(issues), 'issue')}")
    if merges:
        out.line("merges")
        for merge in merges:
            label = f"{merge.kind} {merge.request}" if merge.request else "merge"
            out.line(f"  {out.paint(merge.commit.commit[:10], '33')}  {label:<22}  "
                     f"{merge.commit.subject}")
    if issues:
        out.line("issues")
        for issue in issues:
            how = f"closed by {', '.join(issue.trailers) or 'its message'}" if issue.closing \
                else "mentioned"
            ids = ", ".join(c[:10] for c in issue.commits)
            out.line(f"  {issue.key:<16}  {how:<22}  in {ids}")
    return 0


# --- rollback ------------------------------------------------------------------------------------


def default_rollback(snap: Any, index: Any) -> int:
    """The newest completed deployment before the current one that deployed other commits."""
    current = snap.record(index.current)
    commits = current.commits if current is not None else []
    for n in range(index.current - 1, 0, -1):
        record = snap.record(n)
        if record is not None and record.status == "completed" and record.commits != commits:
            return n
    raise DeployError(f"target '{snap.key}' has no earlier completed deployment to roll back "
                      "to")


def cmd_rollback(ctx: Context, target: str, to: int | None = None, finish: bool = False,
                 version: str | None = None, description: str | None = None,
                 reason: str | None = None, ext_label: str | None = None,
                 ext_url: str | None = None, as_json: bool = False) -> int:
    from git_deployments.commands.deployments import report
    from git_deployments.core import intake
    from git_deployments.core.model import Deploy

    snap = ctx.store.existing(target)
    _, index = snap.require()
    if index.current is None:
        raise DeployError(f"target '{target}' has no current deployment to roll back")
    to = to if to is not None else default_rollback(snap, index)
    request = intake.new_request(
        Deploy, ctx.git, target, op="finish" if finish else "start", rollback_to=to,
        version=version, description=description, reason=reason or f"rollback to #{to}",
        external_link=intake.external_link(ext_label, ext_url))
    result = ctx.write(request)
    if as_json:
        return report(result, as_json)
    out = Output()
    out.line(result.change.subject)
    for effect in result.change.effects:
        if effect.number != result.change.number:
            out.line(f"{target} #{effect.number}: {effect.old} -> {effect.new}")
    record = result.record
    if record is not None:
        out.line(f"rolls back #{record.rollback_of} with the commits and version of #{to}")
        if record.status != "current":
            out.line(f"finish it with 'git deploy finish {target}' once it is deployed")
    return 0


# --- import-tags ---------------------------------------------------------------------------------


def cmd_import_tags(ctx: Context, target: str, pattern: str = "v*", branch: str | None = None,
                    dry_run: bool = False, as_json: bool = False) -> int:
    from datetime import UTC, datetime

    from git_deployments.core.timeutil import iso
    from git_deployments.history.tags import plan_import

    git = ctx.git
    plan = plan_import(ctx.store, target, pattern, branch)
    out = Output(as_json)
    planned = [{"tag": t.name, "commit": t.commit,
                "at": iso(datetime.fromtimestamp(t.time, UTC)), "by": str(t.person)}
               for t in plan.todo]
    skipped = [t.name for t in plan.skipped]
    if dry_run:
        if as_json:
            out.json({"target": target, "dry_run": True, "create_target": plan.create,
                      "imported": planned, "skipped": skipped})
        else:
            out.line(f"would import {_plural(len(plan.todo), 'tag')} into '{target}'"
                     f"{' (a new target)' if plan.create else ''} on branch {plan.branch}"
                     f"{f'; {len(skipped)} imported already' if skipped else ''}")
            for entry in planned:
                out.line(f"  {entry['at']}  {entry['tag']}  {entry['commit'][:10]}")
        return 0
    create = plan.create_request(git)
    if create is not None:
        ctx.write(create)
    progress = _Progress(len(plan.todo))
    imported = []
    for i, (_, request) in enumerate(plan.requests(git)):
        result = ctx.write(request)
        imported.append({**planned[i], "number": result.change.number})
        progress.step(i + 1)
    progress.done()
    if as_json:
        out.json({"target": target, "dry_run": False, "create_target": plan.create,
                  "imported": imported, "skipped": skipped})
        return 0
    out.line(f"imported {_plural(len(imported), 'tag')} into '{target}'"
             f"{' (created)' if plan.create else ''}"
             f"{f'; {len(skipped)} imported already' if skipped else ''}")
    if imported:
        out.line(f"  #{imported[0]['number']} {imported[0]['tag']} .. "
                 f"#{imported[-1]['number']} {imported[-1]['tag']}")
    return 0


class _Progress:
    """`importing tags: 120/1000` on a terminal's stderr; nothing when stderr is not one."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.shown = hasattr(sys.stderr, "isatty") and sys.stderr.isatty() and total > 1
        self.last = -1

    def step(self, done: int) -> None:
        percent = done * 100 // max(self.total, 1)
        if self.shown and percent != self.last:
            self.last = percent
            sys.stderr.write(f"\rimporting tags: {done}/{self.total}")
            sys.stderr.flush()

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


# --- keep ----------------------------------------------------------------------------------------


def cmd_keep(ctx: Context, targets: list[str] | None = None, as_json: bool = False) -> int:
    from git_deployments.core.keepalive import kept_ref
    from git_deployments.history import keep
    from git_deployments.history import questions as history

    store = ctx.store
    keys = targets or store.keys()
    for key in keys:
        store.existing(key)
    results = []
    for key in keys:
        scan = history.scan_timeline(ctx.git, key)  # read once, for both questions
        results.append((key, keep.rebuild(ctx.git, key, scan), _other_repositories(store, scan)))
    out = Output(as_json)
    if as_json:
        out.json([{"target": key, "ref": kept_ref(key), "kept": len(kept.added),
                   "missing": kept.missing, "other_repositories": others}
                  for key, kept, others in results])
        return 0
    if not results:
        out.line("no targets yet")
    for key, kept, others in results:
        out.line(f"{key}: keeps {_plural(len(kept.added), 'deployed commit')} "
                 f"({kept_ref(key)})")
        for commit in kept.missing:
            out.line(f"  missing {commit} (not in this repository: never fetched, or pruned "
                     "before it was kept)")
        for other in others:
            name = other["repository"]
            if other["problem"]:
                out.line(f"  {name}: {other['problem']}; its deployed commits were not checked")
                continue
            for commit in other["missing"]:
                out.line(f"  {name}: missing {commit} (not in that repository: keep a branch "
                         "or tag there for each deployed commit)")
    return 0


def _other_repositories(store: Any, scan: Any) -> list[dict[str, Any]]:
    """The target's other repositories: which recorded commits their copies here lack. Only
    this repository's commits are kept by refs/deployments-kept; another repository keeps its
    own (its branches and tags), so `keep` can only name what is gone there."""
    from git_deployments.history import questions as history

    target, _ = store.existing(scan.key).require()
    repos = history.Repositories(store.git, target)
    found = []
    for name in sorted({r for r, _ in scan.recorded} - {scan.repository}):
        repo, problem = repos.open(name)
        missing = [c for c in scan.commits_of(name)
                   if repo is not None and not repo.is_commit(c)]
        found.append({"repository": name, "location": target.location_of(name),
                      "problem": problem, "missing": missing})
    return found
