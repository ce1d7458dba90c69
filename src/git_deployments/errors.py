"""One error family; the CLI maps each class to an exit code."""

from __future__ import annotations

from typing import Any


class DeployError(Exception):
    """A refusal a user can act on: a rule, an unknown name, an invalid value (exit 1)."""

    exit_code = 1


class UsageError(DeployError):
    """The command line itself is wrong (exit 2)."""

    exit_code = 2


class NotFound(DeployError):
    """An unknown target, deployment or commit."""


class RuleViolation(DeployError):
    """The state machine refuses the operation."""


class CorruptRecord(DeployError):
    """A record stored in a ref cannot be trusted (bad YAML, wrong format, too large)."""


class ConflictError(DeployError):
    """A write lost every compare-and-swap race or could not take its lock."""


class InternalError(DeployError):
    """A bug or an environment failure (exit 3)."""

    exit_code = 3


_TYPE_TAGS = frozenset({"int", "str", "bool", "float", "none", "list", "dict", "datetime"})


class InvalidValue(DeployError, ValueError):
    """A value the records' model refuses: pydantic's verdict, told in one line (exit 1). A
    ValueError too, as pydantic's ValidationError is, which stays at hand as `verdict`."""

    def __init__(self, message: str, verdict: Any = None) -> None:
        super().__init__(message)
        self.verdict = verdict

    def errors(self, **options: Any) -> list[Any]:
        """pydantic's errors (its `errors()`, taking the same options)."""
        return list(self.verdict.errors(**options)) if self.verdict is not None else []

    @classmethod
    def from_pydantic(cls, verdict: Any, tagged: bool = False) -> InvalidValue:
        """The first of `verdict`'s errors as `invalid <field>: <reason>` (`tagged`: the
        location starts with a union's tag, which names no field)."""
        first = verdict.errors(include_url=False)[0]
        loc = list(first["loc"])[1 if tagged else 0:]
        # field names only: no list positions, no union members (`int`, `literal['off']`)
        where = ".".join(part for part in loc if isinstance(part, str) and part.isidentifier()
                         and part not in _TYPE_TAGS)
        reason = str(first["msg"]).removeprefix("Value error, ")
        return cls(f"invalid {where.replace('_', ' ')}: {reason}" if where else reason, verdict)
