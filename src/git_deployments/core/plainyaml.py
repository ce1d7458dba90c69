"""The canonical YAML subset most records are written in, without ruamel.yaml: what ruamel
writes for plain data, and what it reads from such text.

ruamel.yaml stays the judge (core/records.py asks it whenever this module answers NOT_PLAIN):
records are JSON-like data whose strings are mostly identifiers, versions, ids and times, so they
are emitted here exactly as ruamel emits them, and anything outside that plain subset is left to
ruamel. Loading parses the same subset and accepts the result only when dumping it gives back the
very same text: then ruamel would have read the same data (it reads back what it writes).
"""

from __future__ import annotations

import re
from typing import Any

NOT_PLAIN: Any = type("NotPlain", (), {"__repr__": lambda self: "NOT_PLAIN"})()


def dump(data: Any) -> str | None:
    """ruamel's output for `data`; None when that is not certain (ruamel writes it)."""
    try:
        return _dump(data)
    except _Unsupported:
        return None


def load(text: str, max_nodes: int, max_depth: int) -> Any:
    """What ruamel's safe loader reads from `text` (within the bounds its bounded composer
    enforces); NOT_PLAIN unless the text is exactly what `dump` writes."""
    try:
        data = _load(text)
    except _Unsupported:
        return NOT_PLAIN
    nodes, depth = _extent(data)
    if nodes > max_nodes or depth > max_depth:
        return NOT_PLAIN  # ruamel refuses it with the usual message
    return data



class _Unsupported(Exception):  # a signal to fall back, not an error
    """Data or text outside the subset handled here: ruamel takes it."""


MAX_SCALAR = 1000  # far below the 4096 line width at which ruamel would fold
MAX_DIGITS = 30  # far below the 4300 digits Python turns into an int
# printable ASCII that ruamel writes plain: no indicator first, no `: ` or ` #` inside (checked
# where it is used), no space or colon last
_PLAIN = re.compile(r"[A-Za-z0-9_][\x20-\x7e]*")
_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
# ruamel's implicit resolvers (YAML 1.2) for the scalars _PLAIN admits: those that would read
# back as something other than a string are written single-quoted instead
_NOT_STR = re.compile(
    r"(?:true|True|TRUE|false|False|FALSE|null|Null|NULL"
    r"|(?=[0-9])(?:0b[0-1_]+|0o?[0-7_]+|[0-9_]+|0x[0-9a-fA-F_]+"  # int
    r"|[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+"  # float
    r"|[0-9]{4}-[0-9]{2}-[0-9]{2}"  # timestamp
    r"|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?"
    r"(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?))")
_INT = re.compile(r"-?[0-9]+")
# how times are stored (and, being timestamps to YAML, quoted)
_MOMENT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    kind = type(value)
    if kind is int:
        return str(value)
    if kind is str and (value == "" or _MOMENT.fullmatch(value)):
        return f"'{value}'"  # a time reads back as a timestamp: ruamel quotes it
    if kind is str and len(value) <= MAX_SCALAR and _PLAIN.fullmatch(value) and \
            value[-1] not in " :" and ": " not in value and " #" not in value:
        return f"'{value}'" if _NOT_STR.fullmatch(value) else value
    raise _Unsupported


def _key(key: Any) -> str:
    if type(key) is str and _KEY.fullmatch(key) and not _NOT_STR.fullmatch(key):
        return key
    raise _Unsupported


def _emit_map(data: dict[Any, Any], indent: int, out: list[str], lead: str | None = None) -> None:
    pad = " " * indent
    for key, value in data.items():
        head = f"{lead if lead is not None else pad}{_key(key)}:"
        lead = None
        kind = type(value)
        if kind is dict:
            if value:
                out.append(head + "\n")
                _emit_map(value, indent + 2, out)
            else:
                out.append(head + " {}\n")
        elif kind is list:
            if value:
                out.append(head + "\n")
                _emit_seq(value, indent, out)
            else:
                out.append(head + " []\n")
        else:
            out.append(f"{head} {_scalar(value)}\n")


def _emit_seq(items: list[Any], indent: int, out: list[str], lead: str | None = None) -> None:
    pad = " " * indent
    for item in items:
        head = (lead if lead is not None else pad) + "- "
        lead = None
        kind = type(item)
        if kind is dict and item:
            _emit_map(item, indent + 2, out, head)
        elif kind is list and item:
            _emit_seq(item, indent + 2, out, head)
        elif kind is dict:
            out.append(head + "{}\n")
        elif kind is list:
            out.append(head + "[]\n")
        else:
            out.append(head + _scalar(item) + "\n")


def _dump(data: Any) -> str:
    if type(data) is not dict or not data:
        raise _Unsupported
    out: list[str] = []
    _emit_map(data, 0, out)
    return "".join(out)


def _parse_scalar(text: str) -> Any:
    if text == "null":
        return None
    if text == "true":
        return True
    if text == "false":
        return False
    if text == "[]":
        return []
    if text == "{}":
        return {}
    if len(text) >= 2 and text[0] == "'" and text[-1] == "'":  # the subset never doubles a quote
        return text[1:-1]
    if _INT.fullmatch(text):
        if len(text) > MAX_DIGITS:
            raise _Unsupported  # past what a record holds: ruamel reads it, the model refuses
        return int(text)
    return text


class _Parser:
    def __init__(self, text: str) -> None:
        self.lines = text.split("\n")
        if self.lines[-1] != "":
            raise _Unsupported
        self.lines.pop()
        self.i = 0

    def at(self, indent: int, dash: bool) -> bool:
        """Whether the next line starts an entry at `indent` (a `- ` item when `dash`)."""
        if self.i >= len(self.lines):
            return False
        line = self.lines[self.i]
        if len(line) <= indent or line[:indent].strip(" "):
            return False
        char = line[indent]
        if dash:
            return line.startswith("- ", indent)
        return char not in " -"

    def mapping(self, indent: int, first: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {}
        while True:
            if first is not None:
                text, first = first, None
            elif self.at(indent, dash=False):
                text = self.lines[self.i][indent:]
                self.i += 1
            else:
                break
            key, sep, rest = text.partition(":")
            if not sep or key in data:
                raise _Unsupported
            if rest:
                if rest[0] != " ":
                    raise _Unsupported
                data[key] = _parse_scalar(rest[1:])
            elif self.at(indent, dash=True):
                data[key] = self.sequence(indent)
            elif self.at(indent + 2, dash=False):
                data[key] = self.mapping(indent + 2)
            else:
                raise _Unsupported
        return data

    def sequence(self, indent: int, first: str | None = None) -> list[Any]:
        items: list[Any] = []
        while True:
            if first is not None:
                text, first = first, None
            elif self.at(indent, dash=True):
                text = self.lines[self.i][indent + 2:]
                self.i += 1
            else:
                break
            if text.startswith("- "):
                items.append(self.sequence(indent + 2, text[2:]))
            elif text[:1] != "'" and (": " in text or text.endswith(":")):
                items.append(self.mapping(indent + 2, text))
            else:
                items.append(_parse_scalar(text))
        return items


def _load(text: str) -> Any:
    parser = _Parser(text)
    data = parser.mapping(0)
    if parser.i != len(parser.lines) or _dump(data) != text:
        raise _Unsupported
    return data


def _extent(value: Any) -> tuple[int, int]:
    """(nodes, depth) as the bounded composer counts them: keys are nodes too."""
    if type(value) is dict:
        nodes, depth = 1, 1
        for item in value.values():
            inner, deeper = _extent(item)
            nodes, depth = nodes + 1 + inner, max(depth, 1 + deeper)
        return nodes, depth
    if type(value) is list:
        nodes, depth = 1, 1
        for item in value:
            inner, deeper = _extent(item)
            nodes, depth = nodes + inner, max(depth, 1 + deeper)
        return nodes, depth
    return 1, 1
