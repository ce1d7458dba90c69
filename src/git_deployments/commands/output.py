"""The one way commands print: JSON for machines, aligned and coloured text for people."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO

from git_deployments.core.model import Status

_COLOURS = {
    Status.SCHEDULED: "36", Status.DEPLOYING: "33", Status.HANGING: "35",
    Status.CURRENT: "32", Status.FAILED: "31", Status.COMPLETED: "2",
}


def use_colour(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR") is not None or os.environ.get("TERM") == "dumb":
        return False
    if os.environ.get("GIT_DEPLOY_COLOR") == "always":
        return True
    return hasattr(stream, "isatty") and stream.isatty()


class Output:
    def __init__(self, as_json: bool = False, stream: TextIO | None = None) -> None:
        self.as_json = as_json
        self.stream = stream or sys.stdout
        self.colour = use_colour(self.stream)

    def json(self, data: Any) -> None:
        self.stream.write(json.dumps(data, indent=2, ensure_ascii=False, default=_default))
        self.stream.write("\n")

    def line(self, text: str = "") -> None:
        self.stream.write(text + "\n")

    def paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour and code else text

    def bold(self, text: str) -> str:
        return self.paint(text, "1")

    def dim(self, text: str) -> str:
        return self.paint(text, "2")

    def status(self, status: Status | str, width: int = 0) -> str:
        """The status in its colour, padded to `width` visible characters."""
        return self.paint(str(status).ljust(width), _COLOURS.get(Status(status), ""))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        """Columns aligned on visible width (colour codes do not count)."""
        widths = [len(h) for h in header]
        for row in rows:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], _visible(cell))
        self.line(self.dim("  ".join(h.ljust(widths[i]) for i, h in enumerate(header)).rstrip()))
        for row in rows:
            cells = [cell + " " * (widths[i] - _visible(cell)) for i, cell in enumerate(row)]
            self.line("  ".join(cells).rstrip())


def _visible(text: str) -> int:
    length, skipping = 0, False
    for ch in text:
        if ch == "\x1b":
            skipping = True
        elif skipping and ch == "m":
            skipping = False
        elif not skipping:
            length += 1
    return length


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        from git_deployments.core.timeutil import iso

        return iso(value)
    raise TypeError(f"cannot encode {type(value).__name__}")

