"""Durations as people write them (`1h30m`): below both the model, whose limits name them, and
timeutil, which parses them."""

from __future__ import annotations


def format_duration(seconds: int) -> str:
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"
