"""One error family; the CLI maps each class to an exit code."""

from __future__ import annotations


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
