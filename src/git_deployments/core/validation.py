"""Records declared as pydantic models are, judged by pydantic, without importing it for the
values it would accept as they are.

`Record`, `Field`, `AfterValidator`, `BeforeValidator`, `Strict`, `model_validator` and
`ConfigDict` stand for pydantic's own names, and a record class is handed to pydantic as the
pydantic model of the same declarations (`pydantic_model`). Before that, a fast path looks at
each value: where the value is plainly of its declared type (an int where an int is due, a str
within its length, a known status, a dict of a record's fields) the result is certain and made
here; anything else — a declaration or a value this module does not know, a value pydantic would
convert, or refuse — goes to pydantic, whose result (or refusal) is the answer. So a record of
any shape pydantic supports works: what the fast path cannot judge, pydantic does.

Why a fast path at all: importing pydantic and building the validators of these records costs a
`git deploy status` or `start` more than the rest of its work (bench/fastpaths.py measures it),
and the records a command reads and writes are nearly always plain.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Iterator
from datetime import datetime
from enum import Enum
from functools import cache
from typing import Annotated, Any, ClassVar, Literal, Self, Union, get_args, get_origin

from git_deployments.errors import InvalidValue

Check = Callable[[Any], Any]


class Unusual(Exception):  # a signal to ask pydantic, not an error
    """A value (or a declaration) the fast path does not judge: pydantic does."""


_MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()


# --- pydantic's names, standing in for it until it is needed ------------------------------------


class FieldInfo:
    """What `Field(...)` declares: a default or a default factory, and any of pydantic's other
    arguments (the fast path judges a few constraints; any other argument leaves the field to
    pydantic)."""

    __slots__ = ("default", "default_factory", "options")

    def __init__(self, default: Any, default_factory: Callable[[], Any] | None,
                 options: dict[str, Any]) -> None:
        self.default = default
        self.default_factory = default_factory
        self.options = options

    def pydantic(self) -> Any:
        import pydantic

        kwargs = dict(self.options)
        if self.default_factory is not None:
            kwargs["default_factory"] = self.default_factory
        elif self.default is not _MISSING:
            kwargs["default"] = self.default
        return pydantic.Field(**kwargs)


def Field(default: Any = _MISSING, *,  # noqa: N802 - named as pydantic names it
          default_factory: Callable[[], Any] | None = None, **options: Any) -> Any:
    """pydantic's `Field`. Typed Any, as pydantic's is, so that `x: int = Field(ge=1)` reads
    as the declaration it is."""
    return FieldInfo(default, default_factory, options)


class AfterValidator:
    """pydantic's `AfterValidator`: `func` checks (and may normalise) a value of the type."""

    __slots__ = ("func",)

    def __init__(self, func: Callable[[Any], Any]) -> None:
        self.func = func

    def pydantic(self) -> Any:
        import pydantic

        return pydantic.AfterValidator(self.func)


class BeforeValidator:
    """pydantic's `BeforeValidator`: `func` takes the raw value before the type is checked."""

    __slots__ = ("func",)

    def __init__(self, func: Callable[[Any], Any]) -> None:
        self.func = func

    def pydantic(self) -> Any:
        import pydantic

        return pydantic.BeforeValidator(self.func)


class Strict:
    """pydantic's `Strict`: whether the type is checked strictly (no conversions)."""

    __slots__ = ("strict",)

    def __init__(self, strict: bool = True) -> None:
        self.strict = strict

    def pydantic(self) -> Any:
        import pydantic

        return pydantic.Strict(self.strict)


def ConfigDict(**options: Any) -> dict[str, Any]:  # noqa: N802 - named as pydantic names it
    """pydantic's `ConfigDict`."""
    return dict(options)


def model_validator(*, mode: Literal["after"]) -> Callable[[Callable[[Any], Any]],
                                                          Callable[[Any], Any]]:
    """pydantic's `model_validator(mode="after")`: a method checking the made record (raising
    ValueError) and returning it."""

    def mark(func: Callable[[Any], Any]) -> Callable[[Any], Any]:
        func.__model_validator__ = mode  # type: ignore[attr-defined]
        return func

    return mark


def pydantic_hint(hint: Any) -> Any:
    """`hint` in pydantic's terms: its markers for ours, records as pydantic models."""
    origin = get_origin(hint)
    if origin is Annotated:
        base, *meta = get_args(hint)
        return Annotated[(pydantic_hint(base), *(_pydantic_marker(m) for m in meta))]
    if isinstance(hint, type) and issubclass(hint, Record):
        return hint.pydantic_model()
    args = get_args(hint)
    if not args or origin is Literal:
        return hint
    if origin in (Union, types.UnionType):
        return Union[tuple(pydantic_hint(arg) for arg in args)]  # noqa: UP007 - built at run time
    return origin[tuple(pydantic_hint(arg) for arg in args)]  # list[X], dict[K, V], tuple...


def _pydantic_marker(item: Any) -> Any:
    if isinstance(item, (FieldInfo, AfterValidator, BeforeValidator, Strict)):
        return item.pydantic()
    return item  # pydantic's own, or annotated_types': pydantic knows them


# --- the fast path --------------------------------------------------------------------------------


def _never(value: Any) -> Any:
    raise Unusual


def plain_check(hint: Any, strict: bool, constraints: dict[str, Any] | None = None) -> Check:
    """A function returning what pydantic makes of a plain value of type `hint`, and raising
    Unusual for any other value (for every value, when the fast path does not know `hint`)."""
    try:
        return _check(hint, constraints or {}, [], strict)
    except Unusual:
        return _never


_KNOWN = frozenset({"ge", "le", "min_length", "max_length", "pattern", "discriminator"})
_NOTES = frozenset({"description", "title", "examples"})  # change nothing that is accepted


def _constraints(field: FieldInfo) -> dict[str, Any]:
    """What `field` constrains, as the fast path knows it; Unusual for anything else."""
    options = {k: v for k, v in field.options.items() if k not in _NOTES}
    if set(options) - _KNOWN:
        raise Unusual
    return options


def _check(hint: Any, constraints: dict[str, Any], after: list[Check], strict: bool) -> Check:
    origin = get_origin(hint)
    if origin is Annotated:
        base, *meta = get_args(hint)
        constraints, inner_after = dict(constraints), []
        before: list[Check] = []
        for item in meta:
            if isinstance(item, FieldInfo):
                constraints.update(_constraints(item))
            elif isinstance(item, AfterValidator):
                inner_after.append(item.func)
            elif isinstance(item, BeforeValidator):
                before.insert(0, item.func)  # the last declared runs first, as in pydantic
            elif isinstance(item, Strict):
                strict = item.strict
            else:
                raise Unusual
        return _validated(_check(base, constraints, inner_after + after, strict), before, [])
    if after:
        return _validated(_check(hint, constraints, [], strict), [], after)
    if origin in (Union, types.UnionType):
        return _union(hint, constraints, strict)
    if set(constraints) - {"discriminator"} and hint not in (str, int) and \
            origin not in (list, dict):
        raise Unusual  # a constraint on a type the fast path does not constrain
    if origin is Literal:
        return _literal(get_args(hint))
    if origin is list:
        return _list(_check(get_args(hint)[0], {}, [], strict), constraints)
    if origin is dict:
        key_hint, value_hint = get_args(hint)
        return _dict(_check(key_hint, {}, [], strict), _check(value_hint, {}, [], strict),
                     constraints)
    if hint is str:
        return _str(constraints)
    if hint is int:
        return _int(constraints)
    if hint is bool:
        return _exactly(bool)
    if hint is datetime:
        return _exactly(datetime)  # text is pydantic's to parse (in lax mode)
    if isinstance(hint, type) and issubclass(hint, Enum) and issubclass(hint, (str, int)):
        return _enum(hint, strict)
    if isinstance(hint, type) and issubclass(hint, Record):
        return _record(hint)
    raise Unusual


def _validated(check: Check, before: list[Check], after: list[Check]) -> Check:
    if not before and not after:
        return check

    def validated(value: Any) -> Any:
        try:
            for func in before:
                value = func(value)
        except Exception:  # noqa: BLE001 - pydantic turns these into its error: let it
            raise Unusual from None
        value = check(value)
        try:
            for func in after:
                value = func(value)
        except Exception:  # noqa: BLE001 - pydantic turns these into its error: let it
            raise Unusual from None
        return value

    return validated


def _union(hint: Any, constraints: dict[str, Any], strict: bool) -> Check:
    members = get_args(hint)
    nullable = type(None) in members
    member_constraints = {k: v for k, v in constraints.items() if k != "discriminator"}
    checks = [plain_check(m, strict, member_constraints) for m in members
              if m is not type(None)]
    tag = constraints.get("discriminator")
    if tag is not None:
        return _tagged(members, tag, strict)

    def one_of(value: Any) -> Any:
        if value is None and nullable:
            return None
        found = []
        for check in checks:
            try:
                found.append(check(value))
            except Unusual:
                continue
        if len(found) != 1:  # none plainly, or several: pydantic's union rules decide
            raise Unusual
        return found[0]

    return one_of


def _tagged(members: tuple[Any, ...], tag: str, strict: bool) -> Check:
    """A discriminated union of records: the member named by the value's `tag` decides."""
    by_tag: dict[Any, Check] = {}
    for member in members:
        if not (isinstance(member, type) and issubclass(member, Record)):
            raise Unusual
        field = member.fields().get(tag)
        if field is None or get_origin(field.hint) is not Literal:
            raise Unusual
        for value in get_args(field.hint):
            by_tag[value] = _record(member)

    def tagged(value: Any) -> Any:
        if type(value) is not dict or type(value.get(tag)) is not str:
            raise Unusual
        check = by_tag.get(value[tag])
        if check is None:
            raise Unusual
        return check(value)

    return tagged


def _literal(allowed: tuple[Any, ...]) -> Check:
    def literal(value: Any) -> Any:
        for choice in allowed:
            if type(value) is type(choice) and value == choice:
                return choice
            if isinstance(choice, Enum) and type(value) is type(choice.value) and \
                    value == choice.value:
                return choice
        raise Unusual

    return literal


def _list(item: Check, constraints: dict[str, Any]) -> Check:
    if set(constraints) - {"min_length", "max_length"}:
        raise Unusual
    low, high = constraints.get("min_length", 0), constraints.get("max_length")

    def listed(value: Any) -> Any:
        if type(value) is not list or len(value) < low or (high is not None and len(value) > high):
            raise Unusual
        return [item(v) for v in value]

    return listed


def _dict(key: Check, entry: Check, constraints: dict[str, Any]) -> Check:
    if set(constraints) - {"min_length", "max_length"}:
        raise Unusual
    low, high = constraints.get("min_length", 0), constraints.get("max_length")

    def mapped(value: Any) -> Any:
        if type(value) is not dict or len(value) < low or (high is not None and len(value) > high):
            raise Unusual
        return {key(k): entry(v) for k, v in value.items()}

    return mapped


def _str(constraints: dict[str, Any]) -> Check:
    if set(constraints) - {"min_length", "max_length", "pattern"}:
        raise Unusual
    low, high = constraints.get("min_length", 0), constraints.get("max_length")
    pattern = re.compile(constraints["pattern"]) if "pattern" in constraints else None

    def text(value: Any) -> Any:
        if type(value) is not str or len(value) < low or (high is not None and len(value) > high):
            raise Unusual
        # pydantic's regex `$` never matches before a final newline; Python's does
        if pattern is not None and ("\n" in value or not pattern.search(value)):
            raise Unusual
        return value

    return text


def _int(constraints: dict[str, Any]) -> Check:
    if set(constraints) - {"ge", "le"}:
        raise Unusual
    ge, le = constraints.get("ge"), constraints.get("le")

    def integer(value: Any) -> Any:
        if type(value) is not int or (ge is not None and value < ge) or \
                (le is not None and value > le):
            raise Unusual
        return value

    return integer


def _exactly(kind: type) -> Check:
    def exact(value: Any) -> Any:
        if type(value) is not kind:
            raise Unusual
        return value

    return exact


def _enum(hint: type[Enum], strict: bool) -> Check:
    values = {member.value: member for member in hint}
    base = str if issubclass(hint, str) else int

    def member(value: Any) -> Any:
        if type(value) is hint:
            return value
        if not strict and type(value) is base and value in values:
            return values[value]
        raise Unusual

    return member


def _record(record_class: type[Record]) -> Check:
    def nested(value: Any) -> Any:
        if type(value) is record_class:
            return value  # a made record stands as it is (pydantic does not revalidate)
        return record_class.validate_plain(value)

    return nested


# --- records ------------------------------------------------------------------------------------


class FieldSpec:
    __slots__ = ("_check", "declared", "default", "default_in_hint", "factory", "hint", "name",
                 "strict")

    def __init__(self, name: str, hint: Any, declared: Any, strict: bool) -> None:
        self.name = name
        self.hint = hint
        self.declared = declared  # what the class body assigned: a default, a Field or nothing
        self.strict = strict
        field = declared if isinstance(declared, FieldInfo) else None
        self.default = field.default if field else declared
        self.factory = field.default_factory if field else None
        # a default declared inside Annotated[...] (pydantic's to weigh against the assigned
        # one, or to refuse beside it): a missing value of such a field goes to pydantic
        self.default_in_hint = get_origin(hint) is Annotated and any(
            isinstance(item, FieldInfo) and
            (item.default is not _MISSING or item.default_factory is not None)
            for item in get_args(hint)[1:])
        self._check: Check | None = None

    @property
    def check(self) -> Check:
        if self._check is None:  # built on first use: records may refer to later ones
            try:
                constraints = _constraints(self.declared) \
                    if isinstance(self.declared, FieldInfo) else {}
            except Unusual:
                self._check = _never
            else:
                self._check = plain_check(self.hint, self.strict, constraints)
        return self._check

    def pydantic(self) -> tuple[Any, Any]:
        declared = self.declared
        if isinstance(declared, FieldInfo):
            declared = declared.pydantic()
        elif declared is _MISSING:
            declared = ...
        return pydantic_hint(self.hint), declared


_CONFIG = {"extra": ("forbid", "ignore"), "frozen": (True,), "strict": (True, False)}


class Record:
    """A frozen record with pydantic's API as this code uses it: `model_validate`,
    `model_dump(mode=, exclude_none=)`, `model_copy(update=)`, equality by fields; declared as
    a pydantic model is (`model_config`, annotations, `Field`, validators)."""

    model_config: ClassVar[dict[str, Any]] = {}
    _spec: ClassVar[dict[str, FieldSpec] | None] = None
    _checks: ClassVar[list[Callable[[Any], Any]]] = []
    _plain: ClassVar[bool] = True
    _pydantic: ClassVar[Any] = None

    def __init__(self, **data: Any) -> None:
        made = type(self).model_validate(data)
        object.__setattr__(self, "__dict__", dict(made.__dict__))

    # --- the declarations, read from the class on first use ---

    @classmethod
    def fields(cls) -> dict[str, FieldSpec]:
        spec = cls.__dict__.get("_spec")
        if spec is None:
            import typing

            hints = typing.get_type_hints(cls, include_extras=True)  # each class's own names
            config = cls.model_config
            strict = config.get("strict") is True
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
                    spec[name] = FieldSpec(name, hints[name], declared, strict)
            checks, other_validators = [], False
            for klass in reversed(cls.__mro__):
                for value in klass.__dict__.values():
                    if getattr(value, "__model_validator__", None) == "after":
                        checks.append(value)
                    elif type(value).__name__ == "PydanticDescriptorProxy":
                        other_validators = True  # pydantic's own decorators: pydantic judges
            cls._checks = checks
            # the fast path knows these settings; any other leaves every value to pydantic
            cls._plain = not other_validators and all(
                key in _CONFIG and value in _CONFIG[key] for key, value in config.items())
            cls._spec = spec
        return spec

    @classmethod
    def pydantic_model(cls) -> Any:
        """The pydantic model of the same declarations (and name, so errors read the same)."""
        model = cls.__dict__.get("_pydantic")
        if model is None:
            import pydantic

            fields = {name: field.pydantic() for name, field in cls.fields().items()}
            validators: dict[str, Any] = {
                func.__name__: pydantic.model_validator(mode="after")(func)
                for func in cls._checks}
            for klass in reversed(cls.__mro__):
                for name, value in klass.__dict__.items():
                    if type(value).__name__ == "PydanticDescriptorProxy":
                        validators[name] = value
            create: Any = pydantic.create_model  # its typing knows no built field list
            model = create(cls.__name__, __config__=dict(cls.model_config),
                           __validators__=validators, __module__=cls.__module__, **fields)
            _RECORD_OF[model] = cls
            cls._pydantic = model
        return model

    # --- making records ---

    @classmethod
    def _made(cls, values: dict[str, Any]) -> Self:
        record = object.__new__(cls)
        object.__setattr__(record, "__dict__", values)
        return record

    @classmethod
    def validate_plain(cls, data: Any) -> Self:
        """The record a plain `data` describes, by the fast path alone; Unusual otherwise."""
        fields = cls.fields()
        if type(data) is not dict or not cls._plain:
            raise Unusual
        extra = [name for name in data if name not in fields]
        if extra and cls.model_config.get("extra", "ignore") != "ignore":
            raise Unusual  # an unknown field: pydantic says which
        values: dict[str, Any] = {}
        for name, field in fields.items():
            if name in data:
                values[name] = field.check(data[name])
            elif field.default_in_hint:
                raise Unusual
            elif field.factory is not None:
                values[name] = field.factory()
            elif field.default is not _MISSING:
                values[name] = field.default
            else:
                raise Unusual  # a missing field
        made = cls._made(values)
        for check in cls._checks:
            try:
                check(made)
            except Exception:  # noqa: BLE001 - pydantic turns these into its error: let it
                raise Unusual from None
        return made

    @classmethod
    def model_validate(cls, obj: Any) -> Self:
        """The record `obj` describes; InvalidValue (pydantic's verdict, in a line) when it
        describes none."""
        if type(obj) is cls:
            return obj
        try:
            return cls.validate_plain(obj)
        except Unusual:
            pass
        try:
            made = cls.pydantic_model().model_validate(unwrapped(obj))
        except ValueError as exc:  # pydantic's ValidationError
            raise InvalidValue.from_pydantic(exc) from None
        return ours(made)  # type: ignore[no-any-return]

    # --- using records ---

    def model_dump(self, *, mode: str = "python", exclude_none: bool = False) -> dict[str, Any]:
        try:
            return {name: _dumped(value, mode, exclude_none)
                    for name, value in self.__dict__.items()
                    if not (exclude_none and value is None)}
        except Unusual:  # a value of a type only pydantic writes
            dumped: dict[str, Any] = theirs(self).model_dump(mode=mode, exclude_none=exclude_none)
            return dumped

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> Self:
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


_RECORD_OF: dict[Any, type[Record]] = {}  # pydantic model -> the record it stands for


def _dumped(value: Any, mode: str, exclude_none: bool) -> Any:
    """`value` as pydantic's model_dump writes it, for the types the fast path makes."""
    kind = type(value)
    if kind in (str, int, bool) or value is None:
        return value
    if isinstance(value, Record):
        return value.model_dump(mode=mode, exclude_none=exclude_none)
    if kind is list:
        return [_dumped(v, mode, exclude_none) for v in value]
    if kind is dict and all(type(k) is str for k in value):
        return {k: _dumped(v, mode, exclude_none) for k, v in value.items()}
    if isinstance(value, Enum) and type(value.value) in (str, int):
        return value.value if mode == "json" else value
    if kind is datetime:
        if mode != "json":
            return value
        offset = value.utcoffset()
        if offset is not None and not offset and not value.microsecond:
            return value.strftime("%Y-%m-%dT%H:%M:%SZ")  # what pydantic writes for UTC
    raise Unusual


def unwrapped(value: Any) -> Any:
    """`value` with every record in it as its fields, which is how pydantic models take them."""
    if isinstance(value, Record):
        return {k: unwrapped(v) for k, v in value.__dict__.items()}
    if type(value) is dict:
        return {k: unwrapped(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(unwrapped(v) for v in value)
    return value


def ours(value: Any) -> Any:
    """pydantic's result with its models as our records, taken as they are (not validated)."""
    record_class = _RECORD_OF.get(type(value))
    if record_class is not None:
        return record_class._made({name: ours(getattr(value, name))
                                   for name in record_class.fields()})
    if type(value) is dict:
        return {ours(k): ours(v) for k, v in value.items()}
    if type(value) in (list, tuple, set, frozenset):
        return type(value)(ours(v) for v in value)
    return value


def theirs(value: Any) -> Any:
    """Our records as pydantic's models, taken as they are (for pydantic to write them)."""
    if isinstance(value, Record):
        model = type(value).pydantic_model()
        return model.model_construct(**{k: theirs(v) for k, v in value.__dict__.items()})
    if type(value) is dict:
        return {theirs(k): theirs(v) for k, v in value.items()}
    if type(value) in (list, tuple, set, frozenset):
        return type(value)(theirs(v) for v in value)
    return value


def validate(hint: Any, data: Any) -> Any:
    """`data` validated as `hint` (a union of records, say); InvalidValue when it is none."""
    try:
        return _fast(hint)(data)
    except Unusual:
        pass
    try:
        made = adapter(hint).validate_python(unwrapped(data))
    except ValueError as exc:  # pydantic's ValidationError
        # a tagged union's errors are placed under the tag, which names no field
        tag = next((item.options.get("discriminator") for item in get_args(hint)[1:]
                    if isinstance(item, FieldInfo)), None) if get_origin(hint) is Annotated \
            else None
        tagged = tag is not None and type(data) is dict and data.get(tag) is not None
        raise InvalidValue.from_pydantic(exc, tagged=tagged) from None
    return ours(made)


@cache
def _fast(hint: Any) -> Check:
    return plain_check(hint, strict=False)


@cache
def adapter(hint: Any) -> Any:
    """pydantic's TypeAdapter for `hint`."""
    from pydantic import TypeAdapter

    return TypeAdapter(pydantic_hint(hint))


