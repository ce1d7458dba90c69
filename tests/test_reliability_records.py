"""The records' own validator agrees with pydantic, the authority it stands in for: on any input,
the same record (the same dumps) or the same errors, which pydantic itself raises."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from git_deployments.core import model, validation
from git_deployments.core.validation import unwrapped

T = "2026-01-01T00:00:00Z"
commit = {"repository": "app", "branch": "main", "commit": "a" * 40}
change = {"status": "current", "at": T, "by": "Ada <a@b>", "op": "finish", "reason": None}
base = {"op_id": "a" * 32, "at": T, "by": "x", "target": "prod"}
valid = {
    "CommitRef": commit,
    "ExternalLink": {"label": "CI", "url": "https://x"},
    "StatusChange": change,
    "Deployment": {
        "number": 3,
        "version": "1.0",
        "status": "current",
        "commits": [commit],
        "description": "d",
        "external_link": {"label": "l", "url": "https://ci.example/1"},
        "scheduled_for": T,
        "rollback_of": 1,
        "created_at": T,
        "updated_at": T,
        "history": [change],
    },
    "Repository": {"name": "app", "location": None},
    "Target": {
        "key": "prod",
        "name": "Prod",
        "description": "",
        "repository": "app",
        "repositories": [{"name": "app"}],
        "manual_controls": False,
        "hanging_after": 60,
        "failed_after": None,
        "start_requires_schedule": False,
        "schedule_on_push": ["main"],
        "archived": False,
        "created_at": T,
    },
    "ScheduledEntry": {"repository": "app", "branch": "main", "number": 2},
    "Index": {
        "next_number": 3,
        "count": 2,
        "in_flight": None,
        "current": 1,
        "scheduled": [{"repository": "app", "branch": "main", "number": 2}],
    },
    "TargetSettings": {
        "name": "x",
        "hanging_after": "off",
        "failed_after": 30,
        "repositories": [{"name": "app"}],
        "schedule_on_push": ["main"],
    },
    "CreateTarget": {**base, "op": "target-create", "repository": "app", "settings": {}},
    "EditTarget": {**base, "op": "target-edit", "settings": {"manual_controls": True}},
    "ArchiveTarget": {**base, "op": "target-archive", "archived": True},
    "Deploy": {
        **base,
        "op": "start",
        "commits": [commit],
        "version": "1",
        "facts": {"describe:app:x": None, "a": True, "b": "v"},
    },
    "SetStatus": {**base, "op": "set-status", "number": 1, "status": "failed"},
    "Timeout": {**base, "op": "timeout", "number": 1, "status": "hanging"},
    "Edit": {**base, "op": "edit", "number": 1, "description": "x"},
    "Delete": {**base, "op": "delete", "number": 1},
    "Comment": {**base, "op": "comment", "number": None, "text": "hi"},
}
odd: Any = st.one_of(
    st.sampled_from(
        [
            None,
            "",
            "5",
            5,
            5.0,
            5.5,
            True,
            False,
            "true",
            "false",
            [],
            {},
            T,
            "2026-01-01T00:00:00+02:00",
            "2026-01-01 00:00:00Z",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00.123Z",
            "2026-02-30T00:00:00Z",
            "2026-01-01",
            dt.datetime(2026, 1, 1),
            dt.datetime(2026, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=3))),
            "x" * 300,
            "x" * 5000,
            "a\nb",
            "a\rb",
            "current",
            "hanging",
            "completed",
            "Current",
            "off",
            "on",
            0,
            -1,
            1,
            2**70,
            "prod",
            "Prod",
            "a..b",
            "x.lock",
            "a" * 40,
            "A" * 40,
            "a" * 32,
            "a" * 32 + "\n",
            "main",
            "ma in",
            "-x",
            [commit],
            [change],
            [{}],
            [1],
            {"label": "x"},
            {"x": 1},
            b"bytes",
            "start",
            "finish",
            "schedule",
            "target-create",
            "comment",
            {"name": "app"},
            [{"name": "app"}, {"name": "app"}],
            "1",
            "01",
            " 1",
            "1e3",
            1e3,
            [None],
            ["main", "dev"],
            {"a": 1},
            {"a": None},
            {1: "x"},
            "settings",
        ]
    ),
    st.text(max_size=8),
    st.integers(-3, 3),
)


def outcome(validate: Any, data: Any) -> tuple[Any, ...]:
    try:
        made = validate(data)
    except ValueError as exc:
        exc = getattr(exc, "verdict", None) or exc  # pydantic's own, under our one-line message
        errors = exc.errors(include_context=False) if hasattr(exc, "errors") else None
        return ("refused", type(exc).__name__, str(exc), errors)
    return (
        "made",
        type(made).__name__,
        made.model_dump(mode="json"),
        made.model_dump(mode="json", exclude_none=True),
        unwrapped(made.model_dump()),
    )


@settings(
    max_examples=1500, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
@given(name=st.sampled_from(sorted(valid)), data=st.data())
def test_records_are_judged_as_pydantic_judges_them(name: str, data: st.DataObject) -> None:
    cls = getattr(model, name)
    given_ = dict(valid[name])
    for _ in range(data.draw(st.integers(0, 3))):
        how = data.draw(st.sampled_from(["set", "del", "add"]))
        if how == "set" and given_:
            given_[data.draw(st.sampled_from(sorted(given_)))] = data.draw(odd)
        elif how == "del" and given_:
            del given_[data.draw(st.sampled_from(sorted(given_)))]
        else:
            given_[data.draw(st.sampled_from(["extra", "number", "op", "status"]))] = data.draw(odd)
    ours = outcome(cls.model_validate, given_)
    theirs = outcome(lambda d: cls.pydantic_model().model_validate(unwrapped(d)), given_)
    assert ours[0] == theirs[0], (given_, ours, theirs)
    assert ours[2:] == theirs[2:], (given_, ours, theirs)
    if ours[0] == "made":
        assert ours[1] == name


@settings(
    max_examples=600, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
@given(
    name=st.sampled_from(
        [
            "CreateTarget",
            "EditTarget",
            "ArchiveTarget",
            "Deploy",
            "SetStatus",
            "Timeout",
            "Edit",
            "Delete",
            "Comment",
        ]
    ),
    data=st.data(),
)
def test_recorded_requests_are_judged_as_pydantic_judges_them(
    name: str, data: st.DataObject
) -> None:
    given_ = dict(valid[name])
    if data.draw(st.booleans()):
        given_[data.draw(st.sampled_from(sorted(given_)))] = data.draw(odd)
    ours = outcome(model.parse_operation, given_)
    theirs = outcome(validation.adapter(model.Operation).validate_python, given_)
    assert ours[0] == theirs[0] and ours[2:4] == theirs[2:4], (given_, ours, theirs)


def test_made_records_behave_as_frozen_values() -> None:
    record = model.Deployment.model_validate(valid["Deployment"])
    same = model.Deployment(**valid["Deployment"])
    assert (
        record == same and record is not same and hash(record.commits[0]) == hash(same.commits[0])
    )
    assert model.Deployment.model_validate(record) is record
    changed = record.model_copy(update={"number": 4})
    assert changed.number == 4 and record.number == 3 and changed != record
    assert dict(record)["number"] == 3
    try:
        record.number = 5  # type: ignore[misc]
    except TypeError:
        pass
    else:
        raise AssertionError("a record must be frozen")
    assert repr(record.commits[0]) == (
        f"CommitRef(repository='app', branch='main', commit='{'a' * 40}')"
    )


def test_writing_and_reading_never_import_pydantic(repo: Path, deploy: Any) -> None:
    """The point of the plain validator: `start`, `finish` and `status` run without it."""
    deploy("target", "create", "prod")
    code = (
        "import sys; from git_deployments.cli import main; "
        "codes = [main(['start', 'prod']), main(['finish', 'prod']), main(['status'])]; "
        "print(codes, sorted(m for m in ('pydantic', 'ruamel') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True
    )
    assert done.stdout.splitlines()[-1] == "[0, 0, 0] []", done.stdout
