"""The records: targets, deployments, the index and the operation requests. No I/O.

They are declared as pydantic models are — types, `Field` constraints, `AfterValidator`s — and
pydantic remains the judge of what is valid: a value that is plainly of its declared type (a str
where a str is due, an ISO time, a known status) is checked right here against the same
declarations, and anything else — a value pydantic would coerce, or refuse — goes to pydantic
models generated from them, whose results and errors come back unchanged. Importing pydantic and
building its validators takes longer than a whole `git deploy start` otherwise does, and the
records a command reads and writes are nearly always plain.
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}\Z")  # \Z: "$" would take "x\n"
REPOSITORY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")
COMMIT_PATTERN = re.compile(r"^[0-9a-f]{40}\Z")
MAX_TEXT = 4096
MAX_LINE = 256
MAX_COMMITS = 32
MAX_HISTORY = 1000


class Status(StrEnum):
    SCHEDULED = "scheduled"
    DEPLOYING = "deploying"
    HANGING = "hanging"
    CURRENT = "current"
    FAILED = "failed"
    COMPLETED = "completed"


IN_FLIGHT = frozenset({Status.DEPLOYING, Status.HANGING})
SUCCESSFUL = frozenset({Status.CURRENT, Status.COMPLETED})


def key_problem(key: str) -> str | None:
    """Why `key` cannot name a target, or None."""
    if not KEY_PATTERN.match(key):
        return "use 1-63 of a-z 0-9 . _ - starting with a letter or digit"
    if ".." in key or key.endswith((".", ".lock")):
        return "must not contain '..' or end in '.' or '.lock'"
    return None


def _key(value: str) -> str:
    problem = key_problem(value)
    if problem:
        raise ValueError(f"invalid target key {value!r}: {problem}")
    return value


def _repository(value: str) -> str:
    if not REPOSITORY_PATTERN.match(value):
        raise ValueError(f"invalid repository name {value!r}")
    return value


def _branch(value: str) -> str:
    if not branch_is_valid(value):
        raise ValueError(f"invalid branch name {value!r}")
    return value


def _commit(value: str) -> str:
    if not COMMIT_PATTERN.match(value):
        raise ValueError(f"invalid commit id {value!r}: a full 40-hex id is stored")
    return value


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("times must carry a time zone")
    return value.astimezone(UTC).replace(microsecond=0)


# control characters (C0, DEL, C1): records are printed on other people's terminals, where an
# escape sequence could rewrite what they see
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # newlines and tabs allowed


def _line(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError("must be a single line")
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def _text(value: str) -> str:
    if _CONTROL_IN_TEXT.search(value):
        raise ValueError("must not contain control characters (other than newlines and tabs)")
    return value


def branch_is_valid(name: str) -> bool:
    """git's refname rules for a branch, without asking git (and no ':' ever)."""
    if not name or len(name) > 200 or name.startswith(("-", "/")) or name.endswith(("/", ".")):
        return False
    if any(c in name for c in " ~^:?*[\\") or any(ord(c) < 32 or ord(c) == 127 for c in name):
        return False
    if ".." in name or "//" in name or "@{" in name or name == "@":
        return False
    return not any(part.startswith(".") or part.endswith(".lock") for part in name.split("/"))


# --- declarations, and the validator of plain values ----------------------------------------


class _Unusual(Exception):
    """A value this module does not judge by itself: pydantic does."""


_MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()
_CONSTRAINTS = frozenset({"ge", "min_length", "max_length", "pattern", "discriminator"})


class FieldInfo:
    """What `Field(...)` declares: a default or a default factory, and constraints."""

    __slots__ = ("constraints", "default", "default_factory")

    def __init__(self, default: Any, default_factory: Callable[[], Any] | None,
                 constraints: dict[str, Any]) -> None:
        unknown = set(constraints) - _CONSTRAINTS
        if unknown:
            raise TypeError(f"Field() does not take {', '.join(sorted(unknown))}")
        self.default = default
        self.default_factory = default_factory
        self.constraints = constraints


def Field(default: Any = _MISSING, *,  # noqa: N802 - named as pydantic names it
          default_factory: Callable[[], Any] | None = None, **constraints: Any) -> Any:
    """pydantic's `Field`, reduced to what these records use; handed to pydantic as its own
    `Field` whenever pydantic validates. Typed Any, as pydantic's is, so that `x: int =
    Field(ge=1)` reads as the declaration it is."""
    return FieldInfo(default, default_factory, constraints)


class AfterValidator:
    """pydantic's `AfterValidator`: `func` checks (and may normalise) a value of the type."""

    __slots__ = ("func",)

    def __init__(self, func: Callable[[Any], Any]) -> None:
        self.func = func


_ISO_MOMENT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
                         r"(?:Z|[+-][0-9]{2}:[0-9]{2})")
Check = Callable[[Any], Any]


def _plain_check(hint: Any, constraints: dict[str, Any],
                 after: list[Callable[[Any], Any]]) -> Check:
    """A function that returns what pydantic would make of a plain value of type `hint` (with
    `constraints`, then the `after` validators), and raises _Unusual for any other value."""
    origin = get_origin(hint)
    if origin is Annotated:
        base, *meta = get_args(hint)
        constraints, inner_after = dict(constraints), []
        for item in meta:
            if isinstance(item, FieldInfo):
                constraints.update(item.constraints)
            elif isinstance(item, AfterValidator):
                inner_after.append(item.func)
            else:
                raise TypeError(f"unsupported annotation {item!r}")
        return _plain_check(base, constraints, inner_after + after)
    if after:
        inner = _plain_check(hint, constraints, [])

        def validated(value: Any) -> Any:
            value = inner(value)
            try:
                for func in after:
                    value = func(value)
            except Exception:  # noqa: BLE001 - pydantic turns these into its error: let it
                raise _Unusual from None
            return value

        return validated
    if origin in (Union, types.UnionType):
        members = get_args(hint)
        nullable = type(None) in members
        checks = [_plain_check(m, constraints, []) for m in members if m is not type(None)]

        def one_of(value: Any) -> Any:
            if value is None and nullable:
                return None
            found = []
            for check in checks:
                try:
                    found.append(check(value))
                except _Unusual:
                    continue
            if len(found) != 1:  # none plainly, or several: pydantic's union rules decide
                raise _Unusual
            return found[0]

        return one_of
    if origin is Literal:
        allowed = get_args(hint)

        def literal(value: Any) -> Any:
            for choice in allowed:
                if type(value) is type(choice) and value == choice:
                    return choice
                if isinstance(choice, StrEnum) and type(value) is str and value == choice.value:
                    return choice
            raise _Unusual

        return literal
    if origin is list:
        (item_hint,) = get_args(hint)
        item = _plain_check(item_hint, {}, [])
        low, high = constraints.get("min_length", 0), constraints.get("max_length")

        def listed(value: Any) -> Any:
            if type(value) is not list or len(value) < low or \
                    (high is not None and len(value) > high):
                raise _Unusual
            return [item(v) for v in value]

        return listed
    if origin is dict:
        key_hint, value_hint = get_args(hint)
        if key_hint is not str:
            raise TypeError(f"unsupported mapping {hint!r}")
        entry = _plain_check(value_hint, {}, [])
        high = constraints.get("max_length")

        def mapped(value: Any) -> Any:
            if type(value) is not dict or (high is not None and len(value) > high) or \
                    any(type(k) is not str for k in value):
                raise _Unusual
            return {k: entry(v) for k, v in value.items()}

        return mapped
    if hint is str:
        low, high = constraints.get("min_length", 0), constraints.get("max_length")
        pattern = re.compile(constraints["pattern"]) if "pattern" in constraints else None

        def text(value: Any) -> Any:
            if type(value) is not str or len(value) < low or \
                    (high is not None and len(value) > high):
                raise _Unusual
            # pydantic's regex `$` never matches before a final newline; Python's does
            if pattern is not None and ("\n" in value or not pattern.search(value)):
                raise _Unusual
            return value

        return text
    if hint is int:
        ge = constraints.get("ge")

        def integer(value: Any) -> Any:
            if type(value) is not int or (ge is not None and value < ge):
                raise _Unusual
            return value

        return integer
    if hint is bool:
        def boolean(value: Any) -> Any:
            if type(value) is not bool:
                raise _Unusual
            return value

        return boolean
    if hint is datetime:
        def moment(value: Any) -> Any:
            if type(value) is datetime:
                return value
            if type(value) is str and _ISO_MOMENT.fullmatch(value):
                try:
                    return datetime.fromisoformat(value)
                except ValueError:
                    raise _Unusual from None
            raise _Unusual

        return moment
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        values = {member.value: member for member in hint}

        def member(value: Any) -> Any:
            if type(value) is hint:
                return value
            if type(value) is str and value in values:
                return values[value]
            raise _Unusual

        return member
    if isinstance(hint, type) and issubclass(hint, Record):
        record_class = hint

        def nested(value: Any) -> Any:
            if type(value) is record_class:
                return value  # a made record stands as it is (pydantic does not revalidate)
            return record_class._validate_plain(value)

        return nested
    raise TypeError(f"unsupported field type {hint!r}")


class _FieldSpec:
    __slots__ = ("check", "declared", "default", "factory", "hint", "name")

    def __init__(self, name: str, hint: Any, declared: Any) -> None:
        self.name = name
        self.hint = hint
        self.declared = declared  # what the class body assigned: a default, a Field or nothing
        field = declared if isinstance(declared, FieldInfo) else None
        self.default = field.default if field else declared
        self.factory = field.default_factory if field else None
        self.check = _plain_check(hint, field.constraints if field else {}, [])


def _pydantic_hint(hint: Any) -> Any:
    """`hint` in pydantic's terms: its Field and AfterValidator, records as pydantic models."""
    origin = get_origin(hint)
    if origin is Annotated:
        base, *meta = get_args(hint)
        return Annotated[(_pydantic_hint(base), *(_pydantic_meta(m) for m in meta))]
    if origin in (Union, types.UnionType):
        return Union[tuple(_pydantic_hint(m) for m in get_args(hint))]  # noqa: UP007 - built at run time
    if origin is list:
        return list[_pydantic_hint(get_args(hint)[0])]  # type: ignore[misc]
    if origin is dict:
        key, value = get_args(hint)
        return dict[key, _pydantic_hint(value)]  # type: ignore[valid-type,misc]
    if isinstance(hint, type) and issubclass(hint, Record):
        return hint._pydantic_model()
    return hint


def _pydantic_meta(item: Any) -> Any:
    import pydantic

    if isinstance(item, FieldInfo):
        return _pydantic_field(item)
    return pydantic.AfterValidator(item.func)


def _pydantic_field(field: FieldInfo) -> Any:
    import pydantic

    kwargs = dict(field.constraints)
    if field.default_factory is not None:
        kwargs["default_factory"] = field.default_factory
    elif field.default is not _MISSING:
        kwargs["default"] = field.default
    return pydantic.Field(**kwargs)


def _unwrapped(value: Any) -> Any:
    """`value` with every record in it as its fields, which is how pydantic models take them."""
    if isinstance(value, Record):
        return value.model_dump()
    if type(value) is dict:
        return {k: _unwrapped(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_unwrapped(v) for v in value)
    return value


def _json_value(value: Any, exclude_none: bool) -> Any:
    if isinstance(value, Record):
        return value.model_dump(mode="json", exclude_none=exclude_none)
    if isinstance(value, StrEnum):
        return value.value
    if type(value) is datetime:
        offset = value.utcoffset()
        if offset is not None and not offset and not value.microsecond:
            return value.strftime("%Y-%m-%dT%H:%M:%SZ")  # what pydantic writes for UTC
        from pydantic import TypeAdapter

        return TypeAdapter(datetime).dump_python(value, mode="json")
    if type(value) is list:
        return [_json_value(v, exclude_none) for v in value]
    if type(value) is dict:
        return {k: _json_value(v, exclude_none) for k, v in value.items()}
    return value


def _python_value(value: Any, exclude_none: bool) -> Any:
    if isinstance(value, Record):
        return value.model_dump(exclude_none=exclude_none)
    if type(value) is list:
        return [_python_value(v, exclude_none) for v in value]
    if type(value) is dict:
        return {k: _python_value(v, exclude_none) for k, v in value.items()}
    return value


R = TypeVar("R", bound="Record")


class Record:
    """A frozen record with pydantic's API as this code uses it: `model_validate`,
    `model_dump(mode=, exclude_none=)`, `model_copy(update=)`, equality by fields."""

    _spec: ClassVar[dict[str, _FieldSpec] | None] = None
    _pydantic: ClassVar[Any] = None

    def __init__(self, **data: Any) -> None:
        made = type(self).model_validate(data)
        object.__setattr__(self, "__dict__", dict(made.__dict__))

    # --- the fields, read from the annotations on first use ---

    @classmethod
    def _fields(cls) -> dict[str, _FieldSpec]:
        spec = cls.__dict__.get("_spec")
        if spec is None:
            import typing

            hints = typing.get_type_hints(cls, globalns=vars(sys.modules[cls.__module__]),
                                          include_extras=True)
            spec = {}
            for klass in reversed(cls.__mro__):  # a base's fields first, as pydantic orders them
                # not inspect.get_annotations: importing inspect costs every command 4 ms
                for name in klass.__dict__.get("__annotations__", {}):  # noqa: RUF063
                    if name.startswith("_") or get_origin(hints[name]) is ClassVar:
                        continue
                    declared = _MISSING
                    for owner in cls.__mro__:
                        if name in owner.__dict__:
                            declared = owner.__dict__[name]
                            break
                    spec[name] = _FieldSpec(name, hints[name], declared)
            cls._spec = spec
        return spec

    # --- making records ---

    @classmethod
    def _made(cls: type[R], values: dict[str, Any]) -> R:
        record = object.__new__(cls)
        object.__setattr__(record, "__dict__", values)
        return record

    @classmethod
    def _validate_plain(cls: type[R], data: Any) -> R:
        if type(data) is not dict:
            raise _Unusual
        fields = cls._fields()
        if any(name not in fields for name in data):
            raise _Unusual  # an unknown field: pydantic says which
        values: dict[str, Any] = {}
        for name, field in fields.items():
            if name in data:
                values[name] = field.check(data[name])
            elif field.factory is not None:
                values[name] = field.factory()
            elif field.default is not _MISSING:
                values[name] = field.default
            else:
                raise _Unusual  # a missing field
        return cls._made(values)

    @classmethod
    def model_validate(cls: type[R], obj: Any) -> R:
        """The record `obj` describes; pydantic's ValidationError when it describes none."""
        if type(obj) is cls:
            return obj
        try:
            return cls._validate_plain(obj)
        except _Unusual:
            pass
        return cls._from_pydantic(cls._pydantic_model().model_validate(_unwrapped(obj)))

    @classmethod
    def _from_pydantic(cls: type[R], made: Any) -> R:
        try:
            return cls._validate_plain(made.model_dump())
        except _Unusual:  # pragma: no cover - pydantic's output is always plain
            raise TypeError(f"{cls.__name__}: pydantic made a value this module cannot hold") \
                from None

    @classmethod
    def _pydantic_model(cls) -> Any:
        """The pydantic model of the same declarations (and name, so errors read the same)."""
        model = cls.__dict__.get("_pydantic")
        if model is None:
            import pydantic

            fields: dict[str, Any] = {}
            for name, field in cls._fields().items():
                declared = field.declared
                if isinstance(declared, FieldInfo):
                    declared = _pydantic_field(declared)
                elif declared is _MISSING:
                    declared = ...
                fields[name] = (_pydantic_hint(field.hint), declared)
            config = pydantic.ConfigDict(extra="forbid", frozen=True, strict=False)
            model = pydantic.create_model(cls.__name__, __config__=config,
                                          __module__=cls.__module__, **fields)
            cls._pydantic = model
        return model

    # --- using records ---

    def model_dump(self, *, mode: str = "python", exclude_none: bool = False) -> dict[str, Any]:
        convert = _json_value if mode == "json" else _python_value
        return {name: convert(value, exclude_none) for name, value in self.__dict__.items()
                if not (exclude_none and value is None)}

    def model_copy(self: R, *, update: dict[str, Any] | None = None, deep: bool = False) -> R:
        """A copy with `update` applied as given: not validated, as in pydantic."""
        values = dict(self.__dict__)
        if deep:
            import copy

            values = copy.deepcopy(values)
        if update:
            values.update(update)
        return type(self)._made(values)

    def __setattr__(self, name: str, value: Any) -> None:
        raise TypeError(f"{type(self).__name__} is frozen: use model_copy(update=...)")

    def __delattr__(self, name: str) -> None:
        raise TypeError(f"{type(self).__name__} is frozen")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash((type(self), *self.__dict__.values()))

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        yield from self.__dict__.items()

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self.__dict__.items())
        return f"{type(self).__name__}({fields})"


Key = Annotated[str, AfterValidator(_key)]
RepositoryName = Annotated[str, AfterValidator(_repository)]
Branch = Annotated[str, AfterValidator(_branch)]
CommitId = Annotated[str, AfterValidator(_commit)]
Moment = Annotated[datetime, AfterValidator(_utc)]
Line = Annotated[str, Field(max_length=MAX_LINE), AfterValidator(_line)]
Text = Annotated[str, Field(max_length=MAX_TEXT), AfterValidator(_text)]


class Strict(Record):
    """Every record: unknown fields refused, frozen once made."""


class CommitRef(Strict):
    repository: RepositoryName
    branch: Branch
    commit: CommitId | None = None

    @property
    def branch_key(self) -> tuple[str, str]:
        return (self.repository, self.branch)

    def label(self, short: bool = True) -> str:
        commit = (self.commit[:7] if short else self.commit) if self.commit else "latest"
        return f"{self.repository}:{self.branch}:{commit}"


class ExternalLink(Strict):
    label: Line = ""
    url: Line = ""


class StatusChange(Strict):
    status: Status
    at: Moment
    by: Line
    op: Line
    reason: Text | None = None


class Deployment(Strict):
    number: int = Field(ge=1)
    version: Line | None = None
    status: Status
    commits: list[CommitRef] = Field(max_length=MAX_COMMITS)
    description: Text = ""
    external_link: ExternalLink | None = None
    scheduled_for: Moment | None = None
    rollback_of: int | None = Field(default=None, ge=1)
    created_at: Moment
    updated_at: Moment
    history: list[StatusChange] = Field(min_length=1, max_length=MAX_HISTORY)

    @property
    def branch_keys(self) -> set[tuple[str, str]]:
        return {ref.branch_key for ref in self.commits}

    @property
    def since(self) -> datetime:
        """When the deployment entered its present status."""
        return self.history[-1].at

    def entered(self, status: Status) -> datetime | None:
        """When the deployment last entered `status` (None if it never did)."""
        for change in reversed(self.history):
            if change.status == status:
                return change.at
        return None

    def title(self) -> str:
        version = self.version or "(no version)"
        several = len(self.commits) > 1  # then each names its repository
        refs = ", ".join(f"{f'{ref.repository}:' if several else ''}{ref.branch}@"
                         f"{ref.commit[:7] if ref.commit else 'latest'}"
                         for ref in self.commits)
        return f"{version} ({refs})" if refs else version


class Repository(Strict):
    name: RepositoryName
    location: Line | None = None


class Target(Strict):
    key: Key
    name: Line
    description: Text = ""
    repository: RepositoryName
    repositories: list[Repository] = Field(min_length=1, max_length=MAX_COMMITS)
    manual_controls: bool = False
    hanging_after: int | None = Field(default=None, ge=1)
    failed_after: int | None = Field(default=None, ge=1)
    start_requires_schedule: bool = False
    schedule_on_push: list[Branch] = Field(default_factory=list, max_length=64)
    archived: bool = False
    created_at: Moment

    def repository_names(self) -> list[str]:
        return [repo.name for repo in self.repositories]

    def location_of(self, name: str) -> str | None:
        for repo in self.repositories:
            if repo.name == name:
                return repo.location
        return None


class ScheduledEntry(Strict):
    repository: RepositoryName
    branch: Branch
    number: int = Field(ge=1)


class Index(Strict):
    """Derived summary of the records, so reads and writes never scan history."""

    next_number: int = Field(ge=1)
    count: int = Field(ge=0)
    in_flight: int | None = None
    current: int | None = None
    scheduled: list[ScheduledEntry] = Field(default_factory=list)

    def scheduled_for(self, branch_keys: set[tuple[str, str]]) -> list[int]:
        """Numbers of scheduled deployments sharing a (repository, branch) with `branch_keys`."""
        found = {e.number for e in self.scheduled if (e.repository, e.branch) in branch_keys}
        return sorted(found)


# --- operation requests: what a change asked for, recorded in its commit ---------------------


class Request(Strict):
    op_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    at: Moment
    by: Line
    target: Key
    # answers the repository gave while the operation was applied (describe, ancestry), so that
    # replaying the request elsewhere gives the same tree
    facts: dict[str, str | bool | None] = Field(default_factory=dict, max_length=256)


class TargetSettings(Strict):
    name: Line | None = None
    description: Text | None = None
    repositories: list[Repository] | None = Field(default=None, max_length=MAX_COMMITS)
    manual_controls: bool | None = None
    hanging_after: int | Literal["off"] | None = None
    failed_after: int | Literal["off"] | None = None
    start_requires_schedule: bool | None = None
    schedule_on_push: list[Branch] | None = Field(default=None, max_length=64)


class CreateTarget(Request):
    op: Literal["target-create"] = "target-create"
    repository: RepositoryName
    settings: TargetSettings


class EditTarget(Request):
    op: Literal["target-edit"] = "target-edit"
    settings: TargetSettings


class ArchiveTarget(Request):
    op: Literal["target-archive"] = "target-archive"
    archived: bool = True


DEPLOY_OPS = ("schedule", "start", "finish", "fail")


class Deploy(Request):
    """schedule, start, finish or fail (and rollback, which starts or finishes an old version)."""

    op: Literal["schedule", "start", "finish", "fail"]
    commits: list[CommitRef] = Field(default_factory=list, max_length=MAX_COMMITS)
    version: Line | None = None
    external_link: ExternalLink | None = None
    description: Text | None = None
    scheduled_for: Moment | None = None
    reason: Text | None = None
    rollback_to: int | None = Field(default=None, ge=1)
    # finish/fail: exactly this deployment, which must be in flight (what `run` started)
    number: int | None = Field(default=None, ge=1)
    # finish/fail recorded after the fact (history imported from tags): the records' time
    happened_at: Moment | None = None


class SetStatus(Request):
    op: Literal["set-status"] = "set-status"
    number: int = Field(ge=1)
    status: Status
    reason: Text | None = None


class Timeout(Request):
    """The watcher's automatic change: deploying -> hanging, or in flight -> failed."""

    op: Literal["timeout"] = "timeout"
    number: int = Field(ge=1)
    status: Literal[Status.HANGING, Status.FAILED]


class Edit(Request):
    op: Literal["edit"] = "edit"
    number: int = Field(ge=1)
    version: Line | None = None
    description: Text | None = None
    external_link: ExternalLink | None = None
    scheduled_for: Moment | None = None


class Delete(Request):
    op: Literal["delete"] = "delete"
    number: int = Field(ge=1)


class Comment(Request):
    op: Literal["comment"] = "comment"
    number: int | None = Field(default=None, ge=1)
    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT), AfterValidator(_text)]


Operation = Annotated[
    CreateTarget | EditTarget | ArchiveTarget | Deploy | SetStatus | Timeout | Edit | Delete
    | Comment,
    Field(discriminator="op"),
]


def parse_operation(data: Any) -> Request:
    """`data` validated as one of the operations, chosen by its `op` (a recorded request);
    pydantic's ValidationError when it is none."""
    if type(data) is dict and type(data.get("op")) is str:
        cls = _operation_classes().get(data["op"])
        if cls is not None:
            try:
                return cls._validate_plain(data)
            except _Unusual:
                pass
    made = _operation_adapter().validate_python(_unwrapped(data))
    return _operation_classes()[made.op]._from_pydantic(made)


@cache
def _operation_adapter() -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(_pydantic_hint(Operation))


@cache
def _operation_classes() -> dict[str, type[Request]]:
    found: dict[str, type[Request]] = {}
    for cls in get_args(get_args(Operation)[0]):
        for op in get_args(cls._fields()["op"].hint):
            found[op] = cls
    return found
