"""The fast YAML path writes exactly what ruamel writes and reads exactly what ruamel reads, so
a record's bytes, and so every tree id, are the same whichever path made them."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from git_deployments.core import plainyaml, records
from git_deployments.errors import CorruptRecord


def ruamel_dump(data: Any) -> str:
    stream = io.StringIO()
    records._yaml_dumper().dump(data, stream)
    return stream.getvalue()


def plain_load(text: str) -> Any:
    return plainyaml.load(text, records.MAX_NODES, records.MAX_DEPTH)


def ruamel_load(text: str) -> Any:
    yaml, composer = records._yaml_loader()
    composer.depth = composer.nodes = 0
    return yaml.load(text)


moments = st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ"))
tricky = st.sampled_from([
    "true", "True", "TRUE", "false", "null", "Null", "NULL", "yes", "no", "on", "y", "~", "<<",
    "=", "1.0", "1.2.3", "1e5", "1E-5", "0x1f", "0o17", "017", "1_000", "_1", "_", "2026-01-01",
    "2026-01-01T00:00:00Z", "2026-1-1 1:00:00", "12:30", ".5", ".inf", "-1", "+1", "0b101",
    "0b1021", "1.", "1_2.3", "a b", "a  b", " a", "a ", "", "-", "- a", "-a", "@a", "a@b",
    "x>y", "<a>", "a'b", "'", "#", "a #b", "a: b", "é", "\t", "a\nb", "x" * 1200,
    "Ada Lovelace <ada@example.com>", "v1.2.3-rc.1+build.5", "release/2026.05",
])
strings = st.one_of(moments, tricky, st.text("0123456789abcdef", min_size=1, max_size=40),
                    st.text("0123456789_.eE+-:xob", min_size=1, max_size=12),
                    st.text("abcXYZ019_ .@<>+/-:#'\"\\%&*!|?,[]{}~`=", min_size=1, max_size=30),
                    st.text(max_size=15))
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), strings)
keys = st.one_of(st.text("abcz_09", min_size=1, max_size=12), strings)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(keys, inner, max_size=3)),
                      max_leaves=14)
documents = st.dictionaries(keys, values, min_size=1, max_size=6)


@settings(max_examples=3000, deadline=None)
@given(documents)
def test_fast_dump_is_ruamel_dump(data: dict[str, Any]) -> None:
    fast = plainyaml.dump(data)
    if fast is None:
        return  # not plain: ruamel writes it
    assert fast == ruamel_dump(data)
    assert plain_load(fast) == data == ruamel_load(fast)


@settings(max_examples=2000, deadline=None)
@given(documents)
def test_fast_load_reads_what_ruamel_reads(data: dict[str, Any]) -> None:
    text = ruamel_dump(data)
    assert records.load_data(text.encode(), "x") == ruamel_load(text)


@settings(max_examples=1000, deadline=None)
@given(st.text(st.sampled_from(list("ab: -'\n01[]{}#&*!|>\"%@`,?")), max_size=80))
def test_odd_text_reads_as_ruamel_reads_it(text: str) -> None:
    try:
        expected = ruamel_load(text)
    except Exception:  # noqa: BLE001 - ruamel refuses it: then so must load_data (CorruptRecord)
        with pytest.raises(CorruptRecord):
            records.load_data(text.encode(), "x")
        return
    try:
        got = records.load_data(text.encode(), "x")
    except CorruptRecord:
        return  # the bounded loader is stricter (anchors, tags)
    assert got == expected


def test_the_limits_hold_on_the_fast_path() -> None:
    wide = {"history": [{"a": 1, "b": 2}] * 4000}
    text = plainyaml.dump(wide)
    assert text
    with pytest.raises(CorruptRecord, match="too many nodes"):
        records.load_data(text.encode(), "x", limit=10**7)
    deep: dict[str, Any] = {"a": 1}
    for _ in range(8):
        deep = {"a": deep}
    with pytest.raises(CorruptRecord, match="nested too deeply"):
        records.load_data((plainyaml.dump(deep) or "").encode(), "x")


def test_stored_records_take_the_fast_path(repo: Path, deploy: Any) -> None:
    """What git deploy writes day to day never needs ruamel."""
    from conftest import git

    deploy("target", "create", "prod", "--description", "the live site", "--manual-controls",
           "--hanging-after", "30m", "--schedule-on-push", "main")
    deploy("schedule", "prod", "--commit", "app:main:HEAD", "--version", "1.0",
           "--ext-label", "CI job 12", "--ext-url", "https://ci.example.com/job/12?run=1")
    deploy("start", "prod", "--commit", "app:main:HEAD", "--reason", "go")
    deploy("finish", "prod")
    deploy("start", "prod", "--commit", "app:release:HEAD")
    tip = git(repo, "rev-parse", "refs/deployments/prod")
    for path in git(repo, "ls-tree", "-r", "--name-only", tip).splitlines():
        if path.endswith(".yaml"):
            text = git(repo, "show", f"{tip}:{path}") + "\n"
            assert plainyaml.dump(plain_load(text)) == text, path
