"""The records' fast path agrees with pydantic, the judge it stands in for, on records of any
shape: the same records accepted with the same values, the same refused with pydantic's own
errors. Record classes are generated here from shapes the fast path knows and shapes it does not
(floats, tuples, sets, decimals, constraints and validators of pydantic's own), so a new field
of a new shape needs no change to the machinery."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import math
import types
import uuid
from typing import Annotated, Any, Literal, Optional, Union, get_args, get_origin

import annotated_types
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from git_deployments.core import validation
from git_deployments.core.validation import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    Record,
    Strict,
    model_validator,
)
from git_deployments.errors import InvalidValue


class Colour(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


def _short(value: str) -> str:
    if len(value) > 3:
        raise ValueError("at most 3 characters")
    return value.upper()


def _stripped(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _positive(value: int) -> int:
    assert value > 0, "must be positive"
    return value


class Leaf(Record):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    size: int = 0


class StrictLeaf(Record):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    name: str
    when: dt.datetime | None = None


# what a field may be declared as: shapes the fast path judges, and shapes only pydantic does
SHAPES: list[Any] = [
    int, str, bool, float, dt.datetime, dt.date, decimal.Decimal, uuid.UUID, bytes, Colour,
    Level, Literal["a", "b"], Literal[1, 2], Literal[Colour.RED], Optional[int],  # noqa: UP045
    int | None,
    int | str, str | bool | None, list[int], list[str], tuple[int, ...], tuple[int, str],
    set[str], frozenset[int], dict[str, int], dict[int, str], list[Leaf], Leaf, Leaf | None,
    StrictLeaf, dict[str, Leaf], Annotated[int, Field(ge=0, le=10)],
    Annotated[int, Field(gt=0)], Annotated[int, Field(multiple_of=2)],
    Annotated[str, Field(min_length=1, max_length=4)], Annotated[str, Field(pattern=r"^a+$")],
    Annotated[str, Field(description="documented")], Annotated[int, Strict()],
    Annotated[Colour, Strict(False)], Annotated[str, AfterValidator(_short)],
    Annotated[str, BeforeValidator(_stripped), AfterValidator(_short)],
    Annotated[int, AfterValidator(_positive)], Annotated[int, annotated_types.Gt(3)],
    Annotated[float, annotated_types.Interval(ge=0, le=1)],
    Annotated[str, pydantic.StringConstraints(strip_whitespace=True)],
    Annotated[list[int], Field(min_length=1, max_length=2)],
    Annotated[int | Literal["off"] | None, Field(default=None)],
]
CONFIGS = [
    ConfigDict(extra="forbid", frozen=True),
    ConfigDict(extra="forbid", frozen=True, strict=True),
    ConfigDict(extra="ignore", frozen=True),
    ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True),
]

ODD: list[Any] = [
    None, 0, 1, 2, -1, 7, 2**70, 1.0, 1.5, float("nan"), True, False, "", "a", "aa", "ab",
    " ab ", "abcd", "abcdef", "5", "1.5", "red", "RED", "blue", "off", "2026-01-01T00:00:00Z",
    "2026-01-01", "1700000000", dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 1, 1),
    dt.date(2026, 1, 1), decimal.Decimal("1.5"), uuid.UUID(int=1), str(uuid.UUID(int=1)),
    b"x", [], [1], [1, 2, 3], ["a", "b"], [1, "a"], (1,), (1, "a"), {"a"}, frozenset({1}), {},
    {"a": 1}, {1: "a"}, {"name": "x"}, {"name": "x", "size": 3}, {"name": 5},
    {"name": "x", "extra": 1}, [{"name": "x"}], {"k": {"name": "y"}}, Colour.RED, Level.HIGH,
    Leaf(name="made"), StrictLeaf(name="made"),
]
values = st.one_of(st.sampled_from(ODD), st.integers(-3, 12), st.text(max_size=5),
                   st.lists(st.integers(-2, 3), max_size=3))


TIMES = st.sampled_from([dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 1, 1),
                         "2026-01-01T00:00:00Z"])


def plausible(hint: Any) -> st.SearchStrategy[Any]:
    """Values of about the declared type (often plainly of it, sometimes just outside)."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Annotated:
        return plausible(args[0])
    if origin is Literal:
        return st.sampled_from(args)
    if origin in (Union, types.UnionType):
        return st.one_of([plausible(arg) for arg in args])
    if origin is list:
        return st.lists(plausible(args[0]), max_size=3)
    if origin is dict:
        return st.dictionaries(plausible(args[0]), plausible(args[1]), max_size=2)
    simple: dict[Any, st.SearchStrategy[Any]] = {
        int: st.integers(-2, 12), str: st.text("ab A", max_size=5), bool: st.booleans(),
        float: st.floats(-2, 2), type(None): st.none(),
        dt.datetime: TIMES,
        Colour: st.sampled_from([*Colour, "red", "blue"]),
        Level: st.sampled_from([*Level, 1, 2]),
        Leaf: st.fixed_dictionaries({"name": st.text("ab", max_size=3)},
                                    optional={"size": st.integers(-1, 3)}),
        StrictLeaf: st.fixed_dictionaries({"name": st.text("ab", max_size=3)},
                                          optional={"when": TIMES}),
    }
    return simple.get(hint, st.sampled_from(ODD))


@st.composite
def records(draw: st.DrawFn) -> type[Record]:
    """A record class of a few fields of drawn shapes, some with defaults, perhaps with a
    check of the whole record."""
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {"model_config": draw(st.sampled_from(CONFIGS))}
    for index in range(draw(st.integers(1, 4))):
        name = f"f{index}"
        annotations[name] = draw(st.sampled_from(SHAPES))
        if draw(st.booleans()):
            namespace[name] = draw(st.sampled_from([None, 0, "a", Field(default=1),
                                                    Field(default_factory=list)]))
    if draw(st.booleans()):
        def first_is_set(self: Any) -> Any:
            if getattr(self, "f0", None) in (None, "", 0):
                raise ValueError("f0 must be set")
            return self

        namespace["first_is_set"] = model_validator(mode="after")(first_is_set)
    namespace["__annotations__"] = annotations
    namespace["__module__"] = __name__
    return type(f"Generated{draw(st.integers(0, 10**9))}", (Record,), namespace)


def outcome(validate: Any, data: Any) -> tuple[Any, ...]:
    try:
        made = validate(data)
    except InvalidValue as exc:
        return ("refused", exc.errors(include_url=False, include_context=False))
    except pydantic.ValidationError as exc:
        return ("refused", exc.errors(include_url=False, include_context=False))
    except Exception as exc:  # noqa: BLE001 - a declaration pydantic itself refuses
        return ("broken", type(exc).__name__)
    return ("made", made.model_dump(mode="json"), made.model_dump(mode="json", exclude_none=True),
            made.model_dump(mode="python"))


def same(ours: Any, theirs: Any) -> bool:
    """Equal, with nan equal to itself (pydantic keeps a nan as given)."""
    if isinstance(ours, float) and isinstance(theirs, float) and math.isnan(ours):
        return math.isnan(theirs)
    if type(ours) in (list, tuple) and type(theirs) is type(ours):
        return len(ours) == len(theirs) and all(map(same, ours, theirs))
    if type(ours) is dict and type(theirs) is dict:
        return ours.keys() == theirs.keys() and all(same(ours[k], theirs[k]) for k in ours)
    return bool(ours == theirs) and type(ours) is type(theirs)


def pydantic_judges(cls: type[Record], data: Any) -> tuple[Any, ...]:
    return outcome(lambda d: cls.pydantic_model().model_validate(validation.unwrapped(d)), data)


@pytest.mark.filterwarnings("ignore::UserWarning")  # defaults are not validated, as in pydantic
@settings(max_examples=1500, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(cls=records(), data=st.data())
def test_records_of_any_shape_are_judged_as_pydantic_judges_them(cls: type[Record],
                                                                 data: st.DataObject) -> None:
    given_: dict[str, Any] = {}
    for name, field in cls.fields().items():
        if data.draw(st.integers(0, 5)):  # mostly present, mostly about right
            given_[name] = data.draw(plausible(field.hint) if data.draw(st.integers(0, 3))
                                     else values)
    if data.draw(st.integers(0, 9)) == 0:
        given_["extra"] = data.draw(values)
    theirs = pydantic_judges(cls, given_)
    ours = outcome(cls.model_validate, given_)
    if theirs[0] == "broken":  # a declaration pydantic refuses is refused, not half-judged
        assert ours[0] == "broken", (given_, ours, theirs)
        return
    assert ours[0] == theirs[0], (given_, ours, theirs)
    assert same(ours[1:], theirs[1:]), (given_, ours, theirs)


def test_a_field_of_a_new_shape_works_without_touching_the_machinery() -> None:
    class Measure(Record):
        model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
        ratio: Annotated[float, annotated_types.Interval(ge=0, le=1)]
        tags: frozenset[str] = frozenset()
        amount: decimal.Decimal = decimal.Decimal(0)
        when: dt.date | None = None

        @pydantic.field_validator("tags")
        @classmethod
        def lower(cls, value: frozenset[str]) -> frozenset[str]:
            return frozenset(tag.lower() for tag in value)

    made = Measure.model_validate({"ratio": 0.5, "tags": frozenset({"A"}),
                                   "amount": decimal.Decimal("2.50")})
    assert made.tags == frozenset({"a"}) and made.amount == decimal.Decimal("2.50")
    assert made.model_dump(mode="json") == {"ratio": 0.5, "tags": ["a"], "amount": "2.50",
                                            "when": None}
    with pytest.raises(InvalidValue, match=r"^invalid ratio: Input should be less than or equal"):
        Measure.model_validate({"ratio": 2.0})
    assert made.model_copy(update={"ratio": 0.25}).ratio == 0.25


def test_plain_values_take_the_fast_path() -> None:
    """What the fast path is for: plain records are made without asking pydantic."""
    checks: list[Any] = []

    class Plain(Record):
        model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
        name: Annotated[str, Field(max_length=5)]
        count: int = Field(default=0, ge=0)
        leaves: list[Leaf] = Field(default_factory=list)
        colour: Annotated[Colour, Strict(False)] = Colour.RED

        @model_validator(mode="after")
        def seen(self) -> Any:
            checks.append(self)
            return self

    made = Plain.validate_plain({"name": "x", "count": 2, "leaves": [{"name": "y"}],
                                 "colour": "blue"})
    assert made == Plain(name="x", count=2, leaves=[Leaf(name="y")], colour=Colour.BLUE)
    assert checks and made.colour is Colour.BLUE
    for odd in ({"name": "x" * 6}, {"name": "x", "count": "2"}, {"name": "x", "other": 1}):
        with pytest.raises(validation.Unusual):
            Plain.validate_plain(odd)


def test_a_default_in_the_annotation_beside_an_assigned_one_is_pydantic_s_to_judge() -> None:
    # pydantic refuses a field with a default in Annotated[...] and a factory assigned; the
    # fast path must not fill the field in from the factory instead
    class Both(Record):
        model_config = ConfigDict(extra="forbid", frozen=True)
        f0: Annotated[int | None, Field(default=None)] = Field(default_factory=list)

    assert outcome(Both.model_validate, {}) == pydantic_judges(Both, {}) == ("broken",
                                                                             "TypeError")
