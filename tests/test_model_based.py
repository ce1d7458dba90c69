"""Random sequences of operations through the real store, checked against a plain model.

The model below restates the rules in the simplest way possible (a dict of deployments); after
every step the stored records must agree with it, and the invariants and the index must hold.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from conftest import git, make_commit
from git_deployments.core import machine
from git_deployments.core.model import CreateTarget, Delete, Deploy, Request, SetStatus
from git_deployments.core.store import Store, open_store
from git_deployments.core.timeutil import now
from git_deployments.errors import DeployError

BRANCHES = ["main", "release"]
IN_FLIGHT = {"deploying", "hanging"}


class Model:
    """The rules, restated plainly: number -> {"status", "refs": {branch: commit or None}}."""

    def __init__(self) -> None:
        self.recs: dict[int, dict[str, Any]] = {}
        self.next = 1

    def numbers(self, *statuses: str) -> list[int]:
        return [n for n, r in self.recs.items() if r["status"] in statuses]

    def scheduled_for(self, branch: str) -> int | None:
        found = [n for n in self.numbers("scheduled") if branch in self.recs[n]["refs"]]
        return found[0] if found else None

    def new(self, status: str, refs: dict[str, str | None]) -> bool:
        if status == "current":
            self.retire(None)
        self.recs[self.next] = {"status": status, "refs": refs}
        self.next += 1
        return True

    def retire(self, keep: int | None) -> None:
        for n in self.numbers("current"):
            if n != keep:
                self.recs[n]["status"] = "completed"

    def land(self, n: int, status: str, refs: dict[str, str | None]) -> bool:
        if None in refs.values():
            return False
        if status == "current":
            self.retire(n)
        self.recs[n].update(status=status, refs=refs)
        return True

    @staticmethod
    def merged(refs: dict[str, str | None], branch: str, commit: str | None) -> dict[str, Any]:
        out = dict(refs)
        if commit is not None or branch not in out:
            out[branch] = commit
        return out

    def schedule(self, branch: str, commit: str | None) -> bool:
        n = self.scheduled_for(branch)
        if n is None:
            return self.new("scheduled", {branch: commit})
        self.recs[n]["refs"] = self.merged(self.recs[n]["refs"], branch, commit)
        return True

    def start(self, branch: str, commit: str | None) -> bool:
        flying = self.numbers(*IN_FLIGHT)
        if flying:
            n = flying[0]
            return self.land(n, "deploying", self.merged(self.recs[n]["refs"], branch, commit))
        n = self.scheduled_for(branch)
        if n is not None:
            return self.land(n, "deploying", self.merged(self.recs[n]["refs"], branch, commit))
        return commit is not None and self.new("deploying", {branch: commit})

    def finish(self, status: str, branch: str | None, commit: str | None) -> bool:
        flying = self.numbers(*IN_FLIGHT)
        if branch is None:
            return bool(flying) and self.land(flying[0], status, self.recs[flying[0]]["refs"])
        if flying and branch in self.recs[flying[0]]["refs"]:
            n = flying[0]
            return self.land(n, status, self.merged(self.recs[n]["refs"], branch, commit))
        if commit is None:
            return False
        n = self.scheduled_for(branch)
        if n is not None and self.recs[n]["refs"][branch] == commit:
            return self.land(n, status, self.recs[n]["refs"])
        return self.new(status, {branch: commit})

    def set_status(self, n: int, status: str) -> bool:
        record = self.recs.get(n)
        if record is None or record["status"] == status:
            return False
        if status in ("current", "deploying") and None in record["refs"].values():
            return False
        if status == "deploying" and any(m != n for m in self.numbers(*IN_FLIGHT)):
            return False
        if status == "scheduled" and any(self.scheduled_for(b) not in (None, n)
                                         for b in record["refs"]):
            return False
        if status == "current":
            self.retire(n)
        record["status"] = status
        return True

    def delete(self, n: int) -> bool:
        return self.recs.pop(n, None) is not None


class Deployments(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="model-"))
        shutil.copytree(TEMPLATE, self.dir / "app")
        self.store: Store = open_store(self.dir / "app")
        self.commits = COMMITS
        self.model = Model()
        self.write(CreateTarget, repository="app", settings={"manual_controls": True})

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, cls: type[Request], **fields: Any) -> bool:
        request = cls.model_validate({"op_id": uuid.uuid4().hex, "at": now(),
                                      "by": "Model <model@example.com>", "target": "prod",
                                      **fields})
        before = self.store.git.read_ref("refs/deployments/prod")
        try:
            self.store.write(request)
        except DeployError:
            assert self.store.git.read_ref("refs/deployments/prod") == before
            return False
        return True

    def refs(self, branch: str | None, commit: int | None) -> list[dict[str, Any]]:
        if branch is None:
            return []
        return [{"repository": "app", "branch": branch,
                 "commit": None if commit is None else self.commits[commit]}]

    def commit_id(self, commit: int | None) -> str | None:
        return None if commit is None else self.commits[commit]

    @rule(branch=st.sampled_from(BRANCHES), commit=st.none() | st.integers(0, 2))
    def schedule(self, branch: str, commit: int | None) -> None:
        done = self.write(Deploy, op="schedule", commits=self.refs(branch, commit))
        assert done == self.model.schedule(branch, self.commit_id(commit))

    @rule(branch=st.sampled_from(BRANCHES), commit=st.none() | st.integers(0, 2))
    def start(self, branch: str, commit: int | None) -> None:
        done = self.write(Deploy, op="start", commits=self.refs(branch, commit))
        assert done == self.model.start(branch, self.commit_id(commit))

    @rule(op=st.sampled_from(["finish", "fail"]), branch=st.none() | st.sampled_from(BRANCHES),
          commit=st.none() | st.integers(0, 2))
    def finish(self, op: str, branch: str | None, commit: int | None) -> None:
        done = self.write(Deploy, op=op, commits=self.refs(branch, commit))
        status = "current" if op == "finish" else "failed"
        assert done == self.model.finish(status, branch, self.commit_id(commit if branch else None))

    @precondition(lambda self: self.model.next > 1)
    @rule(data=st.data(), status=st.sampled_from(["scheduled", "deploying", "current", "failed"]))
    def set_status(self, data: st.DataObject, status: str) -> None:
        n = data.draw(st.integers(1, self.model.next))
        done = self.write(SetStatus, number=n, status=status)
        assert done == self.model.set_status(n, status)

    @precondition(lambda self: self.model.next > 1)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        n = data.draw(st.integers(1, self.model.next))
        assert self.write(Delete, number=n) == self.model.delete(n)

    @invariant()
    def records_agree_with_the_model(self) -> None:
        snap = self.store.snapshot("prod")
        stored = {r.number: r for r in snap.all_records()}
        assert set(stored) == set(self.model.recs)
        for n, expected in self.model.recs.items():
            record = stored[n]
            assert record.status == expected["status"], n
            assert {ref.branch: ref.commit for ref in record.commits} == expected["refs"], n
        assert snap.index == machine.derive_index(stored.values(), snap.index.next_number)
        assert snap.index.next_number == self.model.next


TEMPLATE: Path
COMMITS: list[str]


def setup_module() -> None:
    global TEMPLATE, COMMITS
    TEMPLATE = Path(tempfile.mkdtemp(prefix="model-template-")) / "app"
    TEMPLATE.mkdir()
    git(TEMPLATE, "init", "-q")
    COMMITS = [make_commit(TEMPLATE, f"c{i}", f"2026-01-0{i + 1}T00:00:00Z") for i in range(3)]
    git(TEMPLATE, "branch", "release")


def teardown_module() -> None:
    shutil.rmtree(TEMPLATE.parent, ignore_errors=True)


Deployments.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestDeployments = Deployments.TestCase
