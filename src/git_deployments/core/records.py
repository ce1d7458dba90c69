"""The only ruamel.yaml user: canonical dumps and bounded, safe loads of stored records. The
plain subset most records are written in goes through core/plainyaml.py, with ruamel as the
judge: whatever that module cannot answer for certain, ruamel does."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, TypeVar

from git_deployments import FORMAT
from git_deployments.core import plainyaml
from git_deployments.errors import CorruptRecord, InvalidValue

if TYPE_CHECKING:
    from git_deployments.core.validation import Record

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


def dump(model: Record) -> bytes:
    """The canonical text of a record: fixed key order, no flow style, UTF-8."""
    data = _canonical(model)
    text = plainyaml.dump(data)
    if text is not None:
        return text.encode("utf-8")
    stream = io.StringIO()
    _yaml_dumper().dump(data, stream)
    return stream.getvalue().encode("utf-8")


def _canonical(model: Record) -> dict[str, Any]:
    """The record's fields as JSON data, leaving out a later field that holds its default (the
    records that have such fields are the top-level ones: target, index)."""
    data = model.model_dump(mode="json", exclude_none=False)
    for name in getattr(model, "OMITTED_AT_DEFAULT", ()):
        spec = type(model).fields()[name]
        default = spec.factory() if spec.factory is not None else spec.default
        if getattr(model, name) == default:
            del data[name]
    return data


def load_data(raw: bytes, where: str, limit: int = MAX_RECORD_BYTES) -> Any:
    """Parse YAML from a ref: bounded in size, depth and nodes; no aliases, no tags."""
    if len(raw) > limit:
        raise CorruptRecord(f"{where}: record is {len(raw)} bytes, more than the {limit} allowed")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CorruptRecord(f"{where}: record is not valid UTF-8") from None
    data = plainyaml.load(text, MAX_NODES, MAX_DEPTH)
    if data is not plainyaml.NOT_PLAIN:
        return data
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
    if not isinstance(data, dict):
        raise CorruptRecord(f"{where}: invalid record (not a mapping of fields)")
    try:
        return model.model_validate(data)
    except InvalidValue as exc:
        raise CorruptRecord(f"{where}: {exc}") from None


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
