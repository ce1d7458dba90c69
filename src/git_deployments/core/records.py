"""The only ruamel.yaml user: canonical dumps and bounded, safe loads of stored records (with a
fast path for the plain subset most records are written in)."""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING, Any, TypeVar

from git_deployments import FORMAT
from git_deployments.errors import CorruptRecord

if TYPE_CHECKING:
    from git_deployments.core.model import Record

MAX_RECORD_BYTES = 64 * 1024
MAX_INDEX_BYTES = 512 * 1024
MAX_DEPTH = 8
MAX_NODES = 20000

M = TypeVar("M", bound="Record")

_dumper: Any = None
_loader: Any = None


def _yaml_dumper() -> Any:
    global _dumper
    if _dumper is None:
        from ruamel.yaml import YAML

        yaml = YAML(typ="safe", pure=True)
        yaml.default_flow_style = False
        yaml.allow_unicode = True
        yaml.width = 4096
        # ruamel.yaml annotates this switch as None, its default
        yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
        _dumper = yaml
    return _dumper


def _yaml_loader() -> Any:
    global _loader
    if _loader is None:
        from ruamel.yaml import YAML
        from ruamel.yaml.composer import Composer, ComposerError
        from ruamel.yaml.events import AliasEvent

        class BoundedComposer(Composer):
            """Refuses aliases and anchors (no YAML bombs), deep nesting and huge documents."""

            depth = 0
            nodes = 0

            def compose_node(self, parent: Any, index: Any) -> Any:
                if self.parser.check_event(AliasEvent):
                    raise ComposerError(None, None, "aliases are not allowed in records")
                event = self.parser.peek_event()
                if getattr(event, "anchor", None) is not None:
                    raise ComposerError(None, None, "anchors are not allowed in records")
                BoundedComposer.nodes += 1
                if BoundedComposer.nodes > MAX_NODES:
                    raise ComposerError(None, None, "too many nodes")
                BoundedComposer.depth += 1
                try:
                    if BoundedComposer.depth > MAX_DEPTH:
                        raise ComposerError(None, None, "nested too deeply")
                    return super().compose_node(parent, index)
                finally:
                    BoundedComposer.depth -= 1

        yaml = YAML(typ="safe", pure=True)
        yaml.Composer = BoundedComposer
        _loader = (yaml, BoundedComposer)
    return _loader


# --- the canonical YAML subset, without ruamel ------------------------------------------------
#
# ruamel's pure-Python emitter and parser cost about a millisecond per record; the write path
# dumps two or three records and loads as many. Records are JSON-like data whose strings are
# mostly identifiers, versions, ids and times, so they are emitted here exactly as ruamel emits
# them, and anything outside that plain subset is left to ruamel. Loading parses the same
# subset and accepts the result only when dumping it gives back the very same text: then ruamel
# would have read the same data (it reads back what it writes).


class _Unsupported(Exception):
    """Data or text outside the subset handled here: ruamel takes it."""


MAX_FAST_SCALAR = 1000  # far below the 4096 line width at which ruamel would fold
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
    if kind is str and len(value) <= MAX_FAST_SCALAR and _PLAIN.fullmatch(value) and \
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


def _fast_dump(data: Any) -> str:
    """ruamel's output for `data`; _Unsupported when that is not certain."""
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


def _fast_load(text: str) -> Any:
    """What ruamel's safe loader reads from `text`; _Unsupported unless the text is exactly
    what _fast_dump writes, within the size limits ruamel's bounded loader enforces."""
    parser = _Parser(text)
    data = parser.mapping(0)
    if parser.i != len(parser.lines) or _fast_dump(data) != text:
        raise _Unsupported
    nodes, depth = _extent(data)
    if nodes > MAX_NODES or depth > MAX_DEPTH:
        raise _Unsupported  # ruamel refuses it with the usual message
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


def dump(model: Record) -> bytes:
    """The canonical text of a record: fixed key order, no flow style, UTF-8."""
    data = model.model_dump(mode="json", exclude_none=False)
    try:
        return _fast_dump(data).encode("utf-8")
    except _Unsupported:
        pass
    stream = io.StringIO()
    _yaml_dumper().dump(data, stream)
    return stream.getvalue().encode("utf-8")


def load_data(raw: bytes, where: str, limit: int = MAX_RECORD_BYTES) -> Any:
    """Parse YAML from a ref: bounded in size, depth and nodes; no aliases, no tags."""
    if len(raw) > limit:
        raise CorruptRecord(f"{where}: record is {len(raw)} bytes, more than the {limit} allowed")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CorruptRecord(f"{where}: record is not valid UTF-8") from None
    try:
        return _fast_load(text)
    except _Unsupported:
        pass
    yaml, composer = _yaml_loader()
    composer.depth = 0
    composer.nodes = 0
    try:
        return yaml.load(text)
    except RecursionError:
        raise CorruptRecord(f"{where}: record is nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - ruamel raises many unrelated classes for bad input
        reason = str(getattr(exc, "problem", None) or exc).splitlines()[0][:160]
        raise CorruptRecord(f"{where}: record is not valid YAML ({reason})") from None


def load(model: type[M], raw: bytes, where: str, limit: int = MAX_RECORD_BYTES) -> M:
    data = load_data(raw, where, limit)
    try:
        return model.model_validate(data)
    except ValueError as exc:
        from pydantic import ValidationError  # only a refused record comes to pydantic

        if not isinstance(exc, ValidationError):
            raise
        first = exc.errors()[0]
        loc = ".".join(str(part) for part in first["loc"]) or "record"
        raise CorruptRecord(f"{where}: invalid record ({loc}: {first['msg']})") from None


def format_blob() -> bytes:
    return f"{FORMAT}\n".encode()


def check_format(raw: bytes | None, where: str) -> None:
    if raw is None:
        raise CorruptRecord(f"{where}: no 'format' file; not a git-deployments timeline")
    text = raw[:64].decode("utf-8", "replace").strip()
    if text != FORMAT:
        raise CorruptRecord(
            f"{where}: unknown format {text!r} (this git-deploy reads {FORMAT!r}; "
            "upgrade git-deployments?)"
        )
